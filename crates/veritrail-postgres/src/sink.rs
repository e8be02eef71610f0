//! [`PgSink`]: the writer's sink into PostgreSQL.

use std::time::Duration;

use veritrail_core::event::RecoveredRecord;
use veritrail_log::NoteSigner;
use veritrail_writer::sink::ended_uncleanly;
use veritrail_writer::{Batch, Sink, SinkError};

use crate::{PgError, PgLocation, PgLog, PgLogOptions, PgStore};
use veritrail_log::source::LogSource;

/// A [`Sink`] over [`PgLog`]: each batch is kept in memory by `append` and written by
/// `commit` in one transaction, with a checkpoint over it (so the writer's own `checkpoint`
/// call returns the one already committed).
///
/// While the database cannot be reached, `commit` keeps retrying (reconnecting, taking the
/// origin's lock again, and checking whether a commit cut off by the outage went through, so
/// that nothing is stored twice), as the writer's [sink contract](veritrail_writer::sink)
/// asks of a network sink: `Durable` callers get `TimedOut` after
/// [`durable_timeout`](Sink::durable_timeout) (the [`PgLogOptions::commit_timeout`]), `Async`
/// events wait in the writer's queue under its overflow policy, and writing resumes on its
/// own. An error retrying cannot fix (another writer took the origin, a constraint refused a
/// row) is returned, and the writer stops.
#[derive(Debug)]
pub struct PgSink {
    log: PgLog,
    recovered: Option<RecoveredRecord>,
    durable_timeout: Duration,
}

impl PgSink {
    /// Opens (or creates) the log `loc` names (its origin, or the signer's key name) for
    /// writing; see [`PgLog::open`].
    pub fn open(loc: &PgLocation, signer: NoteSigner, opts: PgLogOptions) -> Result<Self, PgError> {
        let durable_timeout = opts.commit_timeout;
        let log = PgLog::open(loc, signer, opts)?;
        let recovered = match log.committed().checked_sub(1) {
            None => None,
            Some(last) => {
                let store = PgStore::open(&loc.with_origin(Some(log.origin())))?;
                let record = store.read(last).map_err(|e| PgError::Log(e.to_string()))?;
                ended_uncleanly(&record).then(|| RecoveredRecord {
                    segment: format!("{}.records", loc.schema()),
                    offset: log.committed(),
                    bytes_cut: 0,
                    unsigned_adopted: None,
                })
            }
        };
        Ok(PgSink {
            log,
            recovered,
            durable_timeout,
        })
    }

    /// The underlying log.
    pub fn log(&self) -> &PgLog {
        &self.log
    }
}

fn sink_error(e: PgError) -> SinkError {
    SinkError::Other(Box::new(e))
}

impl PgSink {
    /// Commits, retrying for as long as the database is unreachable.
    fn commit_retrying(&mut self) -> Result<(), SinkError> {
        loop {
            match self.log.commit() {
                Err(e) if e.is_unavailable() => continue,
                other => return other.map_err(sink_error),
            }
        }
    }
}

impl Sink for PgSink {
    fn origin(&self) -> &str {
        self.log.origin()
    }

    fn size(&self) -> u64 {
        self.log.size()
    }

    fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let got = self.log.append_batch(batch.records()).map_err(sink_error)?;
        if got != batch.indexes() {
            return Err(SinkError::IndexMismatch {
                expected: batch.indexes(),
                got,
            });
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        self.commit_retrying()
    }

    fn checkpoint(&mut self) -> Result<Option<String>, SinkError> {
        self.commit_retrying()?;
        Ok(Some(self.log.latest_checkpoint().to_owned()))
    }

    fn durable_timeout(&self) -> Option<Duration> {
        Some(self.durable_timeout)
    }

    /// When the last record is an audit event other than `stop` (the previous writer was
    /// killed): a `recovered` record naming the table and the size (nothing is ever cut: a
    /// transaction is all or nothing).
    fn recovered(&self) -> Option<RecoveredRecord> {
        self.recovered.clone()
    }
}
