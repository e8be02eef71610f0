//! `veritrail tail`: follows a log directory, printing events as they are appended.
//!
//! The log is polled: every `--interval` milliseconds (200 by default) the sizes and
//! modification times of the directory's files are compared with the last look, and only when
//! something changed is the log opened again (read-only, so a running writer is never
//! disturbed) and the new records read. A record still being written (a torn tail) is not
//! read until it is complete. Starts at the end of the log unless `--from-start` or `-n N`.
//! Runs until interrupted (Ctrl-C) or until its reader goes away (`veritrail tail LOG | head`),
//! which ends it with success.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use time::OffsetDateTime;
use veritrail_log::Log;
use veritrail_log::source::LogSource;

use crate::cli::TailArgs;
use crate::dirstate::DirState;
use crate::events::{HEADER, Scan, for_each_event, print};
use crate::exit::invalid;
use crate::filter::Filter;
use crate::lines::Lines;
use crate::logdir;

/// Looking at or reopening the log may fail while a writer is between two writes of one
/// update (or the directory is being replaced); give up only after this many failures.
const MAX_REOPEN_FAILURES: u32 = 25;

/// Follows the log until interrupted or the reader goes away.
pub(crate) fn run(args: &TailArgs) -> Result<()> {
    let filter = Filter::from_args(&args.filter, OffsetDateTime::now_utc())?;
    let dir = args.log.as_path();
    let interval = Duration::from_millis(args.interval);
    #[cfg(feature = "postgres")]
    if let Some(loc) = logdir::postgres_location(dir)? {
        let store = veritrail_postgres::PgStore::open(&loc)
            .with_context(|| format!("cannot open {loc}"))?;
        return follow(args, &filter, store, |store, size| {
            wait_for_rows(store, &loc, interval, size)
        });
    }
    let log = logdir::open_read_only(dir)?;
    let mut seen = DirState::of(dir)?;
    follow(args, &filter, log, |_, size| {
        wait_for_growth(dir, &mut seen, interval, size)
    })
}

/// Prints what `log` holds from where the arguments say, then what `grow(log, size)` — which
/// returns once the log holds more than `size` records — brings, until the reader goes away.
fn follow<S: LogSource>(
    args: &TailArgs,
    filter: &Filter,
    mut log: S,
    mut grow: impl FnMut(S, u64) -> Result<S>,
) -> Result<()> {
    let mut next = if args.from_start {
        0
    } else {
        log.size().saturating_sub(args.lines.unwrap_or(0))
    };
    let mut out = Lines::stdout();
    if !args.json {
        out.line(HEADER.as_bytes())?;
    }
    let mut scan = Scan::default();
    loop {
        for_each_event(&log, next, &mut scan, |index, record, event| {
            if filter.matches(event) {
                print(&mut out, args.json, index, record, event)?;
            }
            Ok(!out.is_closed())
        })?;
        out.flush()?;
        if out.is_closed() {
            return Ok(());
        }
        next = log.size();
        log = grow(log, next)?;
    }
}

/// Polls a log in PostgreSQL (one index lookup per interval) until it holds more than `size`
/// records.
#[cfg(feature = "postgres")]
fn wait_for_rows(
    mut store: veritrail_postgres::PgStore,
    loc: &logdir::PgLocation,
    interval: Duration,
    size: u64,
) -> Result<veritrail_postgres::PgStore> {
    loop {
        std::thread::sleep(interval);
        let now = store
            .refresh()
            .with_context(|| format!("cannot read the size of {loc}"))?;
        if now < size {
            return Err(invalid(format!(
                "{loc} now holds {now} records, fewer than the {size} already shown: rows were \
                 removed — run `veritrail verify` with a checkpoint you hold"
            )));
        }
        if now > size {
            return Ok(store);
        }
    }
}

/// Sleeps until the directory changes and the log opens with at least `size` records.
fn wait_for_growth(dir: &Path, seen: &mut DirState, interval: Duration, size: u64) -> Result<Log> {
    let mut failures = 0;
    loop {
        std::thread::sleep(interval);
        let now = match DirState::of(dir) {
            Ok(now) => now,
            Err(_) if failures + 1 < MAX_REOPEN_FAILURES => {
                // The directory is being replaced, or a file vanished while listed.
                failures += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        if now == *seen {
            continue;
        }
        *seen = now;
        match Log::open_read_only(dir) {
            Ok(log) if log.size() < size => {
                return Err(invalid(format!(
                    "{} now holds {} records, fewer than the {size} already shown: it was \
                     truncated or replaced — run `veritrail verify` with a checkpoint you hold",
                    dir.display(),
                    log.size()
                )));
            }
            Ok(log) => return Ok(log),
            Err(e) => {
                failures += 1;
                if failures >= MAX_REOPEN_FAILURES {
                    return Err(e).with_context(|| format!("cannot reopen {}", dir.display()));
                }
                // Look again at the next tick even if nothing else changes.
                seen.forget();
            }
        }
    }
}
