//! The [`Sink`] trait: where the writer's batches go.
//!
//! The writer owns exactly one sink and calls it from its own thread, one batch at a time:
//!
//! 1. [`Sink::size`] once at start — the index the next record gets; from then on the writer
//!    counts indexes itself (it is the only writer of its origin).
//! 2. For each batch: [`Sink::append`] with the serialized records (each one already carries
//!    its index), then [`Sink::commit`], which must not return before the records are durable
//!    (one `fdatasync` for the file log; a transaction commit or a publish acknowledgement for
//!    a database or a broker). Only then are the waiting callers acknowledged.
//! 3. [`Sink::checkpoint`] every N records, every T and at shutdown.
//!
//! Any error is final: the writer enters its failed state and never calls the sink again
//! (after a failed `fsync`, Linux may have dropped the dirty pages and a retried `fsync` can
//! falsely succeed — "fsyncgate"). A sink that can retry safely (a network sink) does so
//! inside `commit` before giving up.
//!
//! # A store that goes away for a while
//!
//! A sink over the network (a database, a broker) keeps retrying inside
//! [`Sink::append`] and [`Sink::commit`] while its store is unreachable, and returns only
//! once the batch is confirmed (or with an error that retrying cannot fix). Retrying must be
//! safe: the broker de-duplicates by event id, a database checks what a lost commit did.
//! Meanwhile the writer thread waits, so an outage behaves as follows, with no code of the
//! sink's: `Durable` and `WriteAhead` callers get
//! [`RecordError::TimedOut`](veritrail_core::recorder::RecordError::TimedOut) after
//! [`Sink::durable_timeout`] (or [`WriterConfig::durable_timeout`](crate::WriterConfig::durable_timeout));
//! `Async` events fill the bounded queue, where the overflow policy applies (`gap` records
//! for what `DropNewest` drops); and writing resumes by itself when the store is back.
//!
//! The calls are blocking; a sink over an async client can `block_on` a runtime handle it
//! keeps, since the writer thread is not a runtime worker.
//!
//! A sink is small to write. This one keeps the records in memory (it makes nothing durable:
//! an illustration, not a sink to use):
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::{Duration, Instant};
//! use veritrail_core::event::{AuditEvent, Kind};
//! use veritrail_writer::{Batch, Sink, SinkError, Writer, WriterConfig};
//!
//! struct MemorySink {
//!     records: Arc<Mutex<Vec<Vec<u8>>>>,
//! }
//!
//! impl Sink for MemorySink {
//!     fn origin(&self) -> &str {
//!         "example.com/audit"
//!     }
//!     fn size(&self) -> u64 {
//!         self.records.lock().unwrap().len() as u64
//!     }
//!     fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
//!         let mut records = self.records.lock().unwrap();
//!         records.extend(batch.records().map(<[u8]>::to_vec));
//!         Ok(())
//!     }
//!     fn commit(&mut self) -> Result<(), SinkError> {
//!         Ok(()) // a real sink makes the appended records durable here
//!     }
//! }
//!
//! let records = Arc::new(Mutex::new(Vec::new()));
//! let writer = Writer::start(MemorySink { records: records.clone() }, WriterConfig::default())?;
//! let report = writer.shutdown_blocking(Instant::now() + Duration::from_secs(5));
//! assert_eq!(report.size, 2);
//! let kinds: Vec<Kind> = records.lock().unwrap().iter()
//!     .map(|r| AuditEvent::from_json(r).unwrap().kind())
//!     .collect();
//! assert_eq!(kinds, [Kind::Start, Kind::Stop]);
//! # Ok::<(), veritrail_writer::WriterError>(())
//! ```

use std::ops::Range;

use veritrail_core::event::{AuditEvent, Kind, RecoveredRecord};

/// A batch of serialized records with consecutive log indexes, stored back to back.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    first_index: u64,
    bytes: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Batch<'a> {
    /// A batch whose record `i` is `bytes[ends[i-1]..ends[i]]` (from 0 for the first) and has
    /// index `first_index + i`. `ends` must be non-decreasing and end at or before
    /// `bytes.len()`.
    pub fn new(first_index: u64, bytes: &'a [u8], ends: &'a [usize]) -> Self {
        debug_assert!(ends.windows(2).all(|w| w[0] <= w[1]));
        debug_assert!(ends.last().is_none_or(|&end| end <= bytes.len()));
        Batch {
            first_index,
            bytes,
            ends,
        }
    }

    /// The log indexes of the records, in order.
    pub fn indexes(&self) -> Range<u64> {
        self.first_index..self.first_index + self.ends.len() as u64
    }

    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The records' total size in bytes.
    pub fn byte_len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The records, in index order: the exact bytes to store and hash.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let bytes = self.bytes;
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let record = &bytes[start..end];
            start = end;
            record
        })
    }
}

/// Why a sink could not take or keep a batch. Every such error puts the writer in its failed
/// state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The file log failed (I/O, fsync, signing).
    #[error("file log: {0}")]
    Log(#[from] veritrail_log::store::LogError),
    /// The sink handed back indexes other than the ones the writer assigned: another process
    /// is writing the same origin.
    #[error(
        "the sink assigned indexes {got:?} where the writer expected {expected:?}: is another writer using the same log?"
    )]
    IndexMismatch {
        /// The indexes the writer put in the records.
        expected: Range<u64>,
        /// The indexes the sink reported.
        got: Range<u64>,
    },
    /// Any other sink's error (database, broker, exporter).
    #[error("{0}")]
    Other(Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// A durable destination for the writer's batches: the file log ([`FileSink`](crate::FileSink))
/// and, in other crates, databases, brokers and exporters.
///
/// Called from the writer's thread only; see the [module docs](self) for the call order and
/// the failure rule.
pub trait Sink: Send + 'static {
    /// The log's origin (the checkpoint origin line): written in the `start` record and used
    /// as the `origin` label of the writer's metrics.
    fn origin(&self) -> &str;

    /// How many records the sink already holds: the index of the next record.
    fn size(&self) -> u64;

    /// Takes a batch of records; they need not be durable before [`commit`](Sink::commit).
    /// The records' indexes are `batch.indexes()`, starting at the current size.
    fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError>;

    /// Makes every appended record durable. The writer acknowledges `Durable` and
    /// `WriteAhead` callers only after this returns `Ok`.
    fn commit(&mut self) -> Result<(), SinkError>;

    /// Signs a checkpoint over every committed record and returns its text (a C2SP signed
    /// note), or `None` for a sink that has no checkpoints of its own.
    fn checkpoint(&mut self) -> Result<Option<String>, SinkError> {
        Ok(None)
    }

    /// How long a `Durable` caller may wait for a commit of this sink before it is told
    /// [`RecordError::TimedOut`](veritrail_core::recorder::RecordError::TimedOut), unless
    /// the writer's config says otherwise. `None` (the default): as long as the commit
    /// takes — right for a local file, whose fsync completes or fails. A sink that retries
    /// through outages returns a bound here.
    fn durable_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// What the sink repaired when it was opened (a torn tail cut after a crash), or that the
    /// previous writer did not stop cleanly (see [`ended_uncleanly`]), for the writer to
    /// record as a `recovered` record right after its `start` record.
    fn recovered(&self) -> Option<RecoveredRecord> {
        None
    }
}

/// Whether `last`, the last record of a log, shows that its writer ended without a clean
/// shutdown: it is an audit event, and not a `stop` record. Records that are not audit events
/// (appended by other tools) say nothing either way.
pub fn ended_uncleanly(last: &[u8]) -> bool {
    AuditEvent::from_json(last).is_ok_and(|event| event.kind() != Kind::Stop)
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn origin(&self) -> &str {
        (**self).origin()
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        (**self).append(batch)
    }
    fn commit(&mut self) -> Result<(), SinkError> {
        (**self).commit()
    }
    fn checkpoint(&mut self) -> Result<Option<String>, SinkError> {
        (**self).checkpoint()
    }
    fn durable_timeout(&self) -> Option<std::time::Duration> {
        (**self).durable_timeout()
    }
    fn recovered(&self) -> Option<RecoveredRecord> {
        (**self).recovered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_splits_records_at_their_ends() {
        let bytes = b"{\"a\":1}{}{\"bb\":22}";
        let ends = [7, 9, 18];
        let batch = Batch::new(40, bytes, &ends);
        assert_eq!(batch.indexes(), 40..43);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.byte_len(), 18);
        let records: Vec<&[u8]> = batch.records().collect();
        assert_eq!(
            records,
            vec![&b"{\"a\":1}"[..], &b"{}"[..], &b"{\"bb\":22}"[..]]
        );
        assert!(Batch::new(0, b"", &[]).is_empty());
    }

    #[test]
    fn only_a_stop_record_ends_a_log_cleanly() {
        let record = |event: AuditEvent| {
            let mut out = Vec::new();
            event.write_json(3, &mut out);
            out
        };
        assert!(!ended_uncleanly(&record(AuditEvent::stop(2, 0))));
        assert!(ended_uncleanly(&record(AuditEvent::start("o"))));
        assert!(ended_uncleanly(&record(
            AuditEvent::http("GET", "/").status(200).build()
        )));
        assert!(!ended_uncleanly(b"{\"not\":\"an audit event\"}"));
    }
}
