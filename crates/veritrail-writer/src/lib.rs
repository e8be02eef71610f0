//! veritrail's audit writer: a bounded queue in front of one writer thread that batches
//! events and commits each batch with one write and one `fdatasync` (group commit), with the
//! durability chosen per event and an explicit overflow policy.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use veritrail_core::event::AuditEvent;
//! use veritrail_core::recorder::{Durability, Recorder};
//! use veritrail_log::NoteSigner;
//! use veritrail_writer::{OverflowPolicy, Writer, WriterConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let signer = NoteSigner::generate("audit.example/orders")?;
//! let config = WriterConfig::default()
//!     .overflow(OverflowPolicy::Block { timeout: Duration::from_millis(50) })
//!     .checkpoint_every(Some(10_000));
//! let writer = Writer::open(dir.path(), signer, config)?;
//!
//! // Handles are cheap clones; hand one to each request handler or middleware.
//! let recorder = writer.handle();
//! let event = AuditEvent::http("DELETE", "/orders/7").status(204).build();
//! let receipt = recorder.record(event, Durability::Durable).await?;
//! // Index 0 is the writer's `start` record; our event was fsynced at index 1.
//! assert_eq!(receipt.index, Some(1));
//!
//! let report = writer.shutdown(Instant::now() + Duration::from_secs(5)).await;
//! assert_eq!((report.flushed, report.dropped), (1, 0));
//! assert_eq!(report.size, 3); // start, the event, stop
//! assert!(report.checkpoint.is_some());
//! # Ok(())
//! # }
//! ```
//!
//! # Durability
//!
//! Per event, as the route asks ([`Durability`](veritrail_core::recorder::Durability)):
//! `Async` resolves once the event is queued; `Durable` and `WriteAhead` resolve with the
//! event's log index once the batch holding it is fsynced. The event is serialized on the
//! caller's thread; the writer thread only splices in the index, frames, hashes and writes.
//! Over a sink whose store can be unreachable for a while (a database, a broker), a `Durable`
//! caller waits at most [`WriterConfig::durable_timeout`] and is then told `TimedOut`; see
//! [sink](sink#a-store-that-goes-away-for-a-while).
//!
//! # Overflow
//!
//! The queue is bounded in events and bytes ([`WriterConfig::queue_capacity`]). When it is
//! full, [`OverflowPolicy`] decides: `Block` up to a timeout then `Overflow`, `Reject` at once,
//! or `DropNewest`, which counts the loss and writes a `gap` record in its place. A caller that
//! cannot wait ([`Recorder::try_record`](veritrail_core::recorder::Recorder::try_record): a
//! request dropped unfinished) gets the `DropNewest` treatment under every policy. No event is
//! ever dropped without either its caller or the log knowing.
//!
//! # Checkpoints, start and stop
//!
//! The writer writes a `start` record when it starts — followed by a `recovered` record when
//! the log cut a torn tail after a crash, or when the previous writer ended without its `stop`
//! record (killed between two batches) — signs a checkpoint every N records and every T
//! ([`WriterConfig::checkpoint_every`], [`WriterConfig::checkpoint_interval`]), and on
//! [`Writer::shutdown`] drains the queue until the deadline, writes a `gap` for what was left,
//! a `stop` record and a final checkpoint. Dropping the writer does the same with
//! [`WriterConfig::drop_timeout`]; a process killed outright loses nothing it acknowledged as
//! durable.
//!
//! # Failure
//!
//! A write or fsync error is final: the writer enters its failed state, every waiting and
//! later caller gets `Failed` at once, and nothing is written any more (the sink is never
//! called again: after a failed fsync a retry could falsely succeed). The handle's
//! [`health`](veritrail_core::recorder::Recorder::health) turns `Failed`, so the engine refuses
//! every request with 503 before running it. Events accepted but never made durable — queued,
//! in the failed batch, or written but not yet fsynced — are counted as `lost`, events refused
//! afterwards as `refused_after_failure` (in the [`ShutdownReport`] and the metrics); the
//! reason goes to [`WriterConfig::on_failure`] when it happens. Restart the service to reopen
//! the log.
//!
//! # Sinks
//!
//! The writer writes into one [`Sink`]; [`FileSink`] over the `veritrail-log` file log is the
//! default, and other crates provide more (database, broker, exporter). See [`sink`].
//!
//! # Metrics
//!
//! Through the [`metrics`] facade; the names are listed in [`metric`].

#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod file;
pub mod metric;
mod queue;
pub mod sink;
mod writer;

pub use config::{FailureHook, OverflowPolicy, WriterConfig};
pub use file::{Cosigned, FileSink};
pub use sink::{Batch, Sink, SinkError};
pub use writer::{
    GAP_QUEUE_FULL, GAP_SHUTDOWN_DEADLINE, ShutdownReport, Writer, WriterError, WriterHandle,
};
