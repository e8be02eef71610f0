//! The overview's full verification: one run at a time of the library verifier over the
//! whole log, in the background, with its progress and its last result.
//!
//! It verifies with the key given by `--verify-key`, or else with the key stored in the log,
//! which proves the log intact (every record, hash and signature agrees) but not that it is the
//! log the reader thinks it is; the page says which key was used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use veritrail_log::NoteVerifier;
use veritrail_log::source::verify_source_with;
use veritrail_log::verify::{VerifyOptions, verify_dir_with};

use super::html::text;
use super::trail::Trail;
use crate::events::rfc3339;
use crate::output::plural;

/// The verification state the overview shows.
pub(crate) struct Verification {
    key: Option<NoteVerifier>,
    state: Mutex<State>,
}

enum State {
    Never,
    Running {
        started: OffsetDateTime,
        done: Arc<AtomicU64>,
        total: u64,
    },
    Finished {
        at: OffsetDateTime,
        result: Result<String, String>,
    },
}

impl Verification {
    /// With `key` (`--verify-key`), or the log's stored key when `None`.
    pub(crate) fn new(key: Option<NoteVerifier>) -> Self {
        Verification {
            key,
            state: Mutex::new(State::Never),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a run over `trail`'s log unless one is running; returns whether it started.
    pub(crate) fn start(self: &Arc<Self>, trail: &Arc<Trail>) -> bool {
        let snapshot = trail.snapshot();
        let total = snapshot.size;
        let key = self
            .key
            .clone()
            .unwrap_or_else(|| snapshot.verifier.clone());
        let done = Arc::new(AtomicU64::new(0));
        {
            let mut state = self.lock();
            if matches!(*state, State::Running { .. }) {
                return false;
            }
            *state = State::Running {
                started: OffsetDateTime::now_utc(),
                done: Arc::clone(&done),
                total,
            };
        }
        let (this, location) = (Arc::clone(self), trail.location().to_path_buf());
        tokio::task::spawn_blocking(move || {
            let progress = |index: u64, _: &[u8]| {
                done.store(index + 1, Ordering::Relaxed);
                Ok(())
            };
            let opts = VerifyOptions::default();
            // A directory is verified file by file (framing, indexes); another store through
            // what it stores, over a connection of its own.
            let result = match crate::logdir::postgres_location(&location) {
                Ok(None) => {
                    verify_dir_with(&location, &key, &opts, progress).map_err(|e| e.to_string())
                }
                Ok(Some(_)) => crate::logdir::open_source(&location)
                    .map_err(|e| format!("{e:#}"))
                    .and_then(|src| {
                        verify_source_with(&*src, &key, &opts, progress).map_err(|e| e.to_string())
                    }),
                Err(e) => Err(format!("{e:#}")),
            };
            let result = result.map(|report| {
                format!(
                    "valid: {} and {} checked",
                    plural(report.records, "record"),
                    plural(report.checkpoints_checked as u64, "checkpoint")
                )
            });
            *this.lock() = State::Finished {
                at: OffsetDateTime::now_utc(),
                result,
            };
        });
        true
    }

    /// The overview's section (markup made safe).
    pub(crate) fn html(&self, stored_key: &NoteVerifier) -> String {
        let key = match &self.key {
            Some(key) => format!(
                "with the key given to the view (<code>{}</code>)",
                text(&key.to_text())
            ),
            None => format!(
                "with the key stored in the log (<code>{}</code>): that proves the log intact, \
                 not that it is the log you think; give the view <code>--verify-key</code>, or \
                 run <code>veritrail verify LOG --key VKEY</code> where you trust the machine",
                text(&stored_key.to_text())
            ),
        };
        let status = match &*self.lock() {
            State::Never => "<p id=\"verification\">No full verification has run since the view \
                             started.</p>"
                .to_owned(),
            State::Running {
                started,
                done,
                total,
            } => {
                let done = done.load(Ordering::Relaxed).min(*total);
                format!(
                    "<p id=\"verification\" data-running=\"true\" role=\"status\">Verifying since \
                     {}: <progress max=\"{total}\" value=\"{done}\">{done} of {total}</progress> \
                     {done} of {total} records.</p>",
                    rfc3339(*started)
                )
            }
            State::Finished { at, result } => {
                let (state, what) = match result {
                    Ok(report) => ("verified", report.clone()),
                    Err(why) => ("failed", format!("FAILED: {why}")),
                };
                format!(
                    "<p id=\"verification\" data-state=\"{state}\">Last full verification, \
                     finished {}: {}</p>",
                    rfc3339(*at),
                    text(&what)
                )
            }
        };
        format!(
            "<h2>Full verification</h2>{status}<form method=\"post\" action=\"/verify\"><p>\
             <button type=\"submit\" id=\"verify-log\">Verify the whole log now</button> \
             {key}.</p></form>"
        )
    }
}
