//! The log as the view reads it: a read-only snapshot, opened again when the log changes.
//!
//! Every page reads from the snapshot by position: a record through the stored offsets, a
//! proof through the stored hashes, so the cost of a page does not grow with the log. Only a
//! filtered search reads records one after another, newest first, and it stops after
//! [`SEARCH_BUDGET`] records, saying which range it searched so the reader can go on.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;
use veritrail_core::event::AuditEvent;
use veritrail_log::source::{LogSource, StoredRecord};
use veritrail_log::{Checkpoint, Log, NoteVerifier};

use crate::dirstate::DirState;
use crate::filter::Filter;
use crate::logdir;

/// Records a filtered search reads at most for one page.
pub(crate) const SEARCH_BUDGET: u64 = 200_000;

/// Records appended out of time order by at most this many positions are still found when a
/// search starts from its `until` time (requests finish, and so are appended, out of order).
pub(crate) const TIME_SLACK: u64 = 4096;

/// How often a log directory is looked at for new records.
const POLL: Duration = Duration::from_millis(250);
/// How often another store (PostgreSQL) is opened again for new records.
const STORE_POLL: Duration = Duration::from_secs(2);

/// The log being shown, kept current.
pub(crate) struct Trail {
    location: PathBuf,
    current: RwLock<Arc<Snapshot>>,
    size: watch::Sender<u64>,
}

/// The log as opened at one moment.
pub(crate) struct Snapshot {
    store: Store,
    /// Where the log is (for messages).
    pub(crate) location: PathBuf,
    /// Its size when opened.
    pub(crate) size: u64,
    /// Its origin.
    pub(crate) origin: String,
    /// The verifier key the store says is the log's.
    pub(crate) verifier: NoteVerifier,
    /// The latest signed checkpoint (note text and body), if any.
    pub(crate) checkpoint: Option<(String, Checkpoint)>,
}

/// A directory log is read from many threads at once; another store (a database connection)
/// one reader at a time.
enum Store {
    Directory(Box<Log>),
    Other(Mutex<Box<dyn LogSource + Send>>),
}

/// One record of a page.
pub(crate) struct Row {
    /// Its index.
    pub(crate) index: u64,
    /// Its bytes, as stored.
    pub(crate) record: Vec<u8>,
    /// The audit event it holds, when it is one.
    pub(crate) event: Option<AuditEvent>,
}

/// One page of a search, newest first.
pub(crate) struct Page {
    /// The records selected.
    pub(crate) rows: Vec<Row>,
    /// The indexes looked at.
    pub(crate) searched: Range<u64>,
    /// Where the next (older) page starts (`before`), if there are older records.
    pub(crate) older: Option<u64>,
    /// The log's size when the page was read.
    pub(crate) size: u64,
}

impl Store {
    fn with<R>(&self, read: impl FnOnce(&dyn LogSource) -> R) -> R {
        match self {
            Store::Directory(log) => read(&**log),
            Store::Other(store) => read(&**store.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

impl Trail {
    /// Opens the log at `location` (with the CLI's log-opening rules).
    pub(crate) fn open(location: &Path) -> Result<Arc<Trail>> {
        let snapshot = Snapshot::open(location)?;
        let (size, _) = watch::channel(snapshot.size);
        Ok(Arc::new(Trail {
            location: location.to_path_buf(),
            current: RwLock::new(Arc::new(snapshot)),
            size,
        }))
    }

    /// Where the log is.
    pub(crate) fn location(&self) -> &Path {
        &self.location
    }

    /// The latest snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Its size, as it changes (for live pages).
    pub(crate) fn sizes(&self) -> watch::Receiver<u64> {
        self.size.subscribe()
    }

    /// Opens the log again whenever its directory changes (another store: every
    /// [`STORE_POLL`]), until the process ends. A log that
    /// now holds fewer records than already shown is not taken: it was truncated or
    /// replaced, which is said once on stderr.
    pub(crate) async fn follow(self: Arc<Self>) {
        let mut seen = DirState::of(&self.location).ok();
        let mut warned = false;
        // A directory is looked at cheaply (file sizes and times) before it is opened; another
        // store is opened again, over a new connection, less often.
        let poll = if self.location.is_dir() {
            POLL
        } else {
            STORE_POLL
        };
        loop {
            tokio::time::sleep(poll).await;
            let trail = Arc::clone(&self);
            let looked = tokio::task::spawn_blocking(move || {
                let now = DirState::of(&trail.location).ok();
                if now.is_some() && now == seen {
                    return (seen, None);
                }
                (now, Some(Snapshot::open(&trail.location)))
            })
            .await;
            let Ok((now, opened)) = looked else { return };
            seen = now;
            match opened {
                None => {}
                Some(Ok(snapshot)) => {
                    let (old, new) = (self.snapshot().size, snapshot.size);
                    if new < old {
                        if !warned {
                            eprintln!(
                                "warning: {} now holds {new} records, fewer than the {old} \
                                 shown: it was truncated or replaced; still showing the \
                                 {old} — run `veritrail verify` with a checkpoint you hold",
                                self.location.display()
                            );
                            warned = true;
                        }
                        continue;
                    }
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
                    self.size.send_replace(new);
                }
                // A writer between two writes of one update: look again at the next tick.
                Some(Err(_)) => {
                    if let Some(seen) = &mut seen {
                        seen.forget();
                    }
                }
            }
        }
    }
}

impl Snapshot {
    fn open(location: &Path) -> Result<Snapshot> {
        let store = match logdir::postgres_location(location)? {
            None => Store::Directory(Box::new(logdir::open_read_only(location)?)),
            Some(_) => Store::Other(Mutex::new(logdir::open_source(location)?)),
        };
        let (size, origin, verifier, latest) = store.with(|log| {
            (
                log.size(),
                log.origin().to_owned(),
                log.verifier().clone(),
                log.latest_checkpoint(),
            )
        });
        let latest = latest
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot read the checkpoint of {}", location.display()))?;
        let checkpoint = match latest {
            Some(signed) => {
                let body = logdir::unverified_body(&signed, "the latest checkpoint")?;
                Some((signed, body))
            }
            None => None,
        };
        Ok(Snapshot {
            store,
            location: location.to_path_buf(),
            size,
            origin,
            verifier,
            checkpoint,
        })
    }

    /// Runs `read` on the log (one reader at a time for stores other than a directory).
    pub(crate) fn with<R>(&self, read: impl FnOnce(&dyn LogSource) -> R) -> R {
        self.store.with(read)
    }

    /// The records `filter` selects before index `before` (default: the end), newest first,
    /// at most `limit`. Without a filter this reads exactly the page's records; with one it
    /// reads back from `before` until `limit` match or [`SEARCH_BUDGET`] were read. Time
    /// bounds are first located by binary search: the read starts at `until` and stops at
    /// `since` (each with [`TIME_SLACK`] records to spare).
    pub(crate) fn page(&self, filter: &Filter, before: Option<u64>, limit: usize) -> Result<Page> {
        let size = self.size;
        let mut end = before.map_or(size, |b| b.min(size));
        if let Some(until) = filter.until() {
            end = end.min(
                self.first_at_or_after(until, end)?
                    .saturating_add(TIME_SLACK),
            );
        }
        // Records older than `since` (less the slack) are not read at all.
        let start = match filter.since() {
            Some(since) => self
                .first_at_or_after(since, end)?
                .saturating_sub(TIME_SLACK),
            None => 0,
        };
        let floor = end.saturating_sub(SEARCH_BUDGET).max(start);
        let chunk = if filter.selects_everything() {
            limit as u64
        } else {
            4096
        };
        let mut rows = Vec::new();
        let mut cursor = end;
        'chunks: while cursor > floor && rows.len() < limit {
            let start = cursor.saturating_sub(chunk).max(floor);
            for row in self.selected(start..cursor, filter)?.into_iter().rev() {
                let index = row.index;
                rows.push(row);
                if rows.len() == limit {
                    cursor = index;
                    break 'chunks;
                }
            }
            cursor = start;
        }
        Ok(Page {
            rows,
            searched: cursor..end,
            older: (cursor > start).then_some(cursor),
            size,
        })
    }

    /// The records in `range` that `filter` selects, oldest first (a record that is not an
    /// audit event only when the filter selects everything).
    pub(crate) fn selected(&self, range: Range<u64>, filter: &Filter) -> Result<Vec<Row>> {
        let count = range.end.saturating_sub(range.start) as usize;
        self.with(|log| {
            let mut rows = Vec::new();
            for item in log.records(range.start).take(count) {
                let StoredRecord { index, record, .. } =
                    item.map_err(anyhow::Error::from).with_context(|| {
                        format!(
                            "cannot read the records of {} — run `veritrail verify` on it",
                            self.location.display()
                        )
                    })?;
                let event = AuditEvent::from_json(&record).ok();
                let selected = match &event {
                    Some(event) => filter.matches(event),
                    None => filter.selects_everything(),
                };
                if selected {
                    rows.push(Row {
                        index,
                        record,
                        event,
                    });
                }
            }
            Ok(rows)
        })
    }

    /// The first index before `end` whose record's time is at or after `time`, found by binary
    /// search (records are appended in about time order: see [`TIME_SLACK`]); `end` if none.
    /// A record without a time (not an audit event) counts as the next one that has one.
    fn first_at_or_after(&self, time: time::OffsetDateTime, end: u64) -> Result<u64> {
        let (mut low, mut high) = (0, end);
        while low < high {
            let middle = low + (high - low) / 2;
            let at = self.with(|log| {
                log.records(middle)
                    .take((high - middle).min(16) as usize)
                    .filter_map(Result::ok)
                    .find_map(|r| AuditEvent::from_json(&r.record).ok().map(|e| e.time))
            });
            match at {
                Some(t) if t >= time => high = middle,
                Some(_) => low = middle + 1,
                // No time in sight: look further down.
                None => high = middle,
            }
        }
        Ok(low)
    }

    /// Record `index`, checked against its stored leaf hash.
    pub(crate) fn row(&self, index: u64) -> Result<Row> {
        let record = self
            .with(|log| log.read(index))
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("cannot read record {index} of {}", self.location.display())
            })?;
        let event = AuditEvent::from_json(&record).ok();
        Ok(Row {
            index,
            record,
            event,
        })
    }
}
