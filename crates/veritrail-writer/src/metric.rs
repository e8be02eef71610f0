//! Metric names, reported through the [`metrics`] facade with an `origin` label (the log's
//! origin). Install a recorder (Prometheus exporter, OpenTelemetry bridge…) before starting
//! the writer: the writer binds its metric handles when it starts.
//!
//! | name | type | unit | what |
//! | --- | --- | --- | --- |
//! | `veritrail_writer_queue_depth` | gauge | events | events waiting in the queue after the writer took a batch |
//! | `veritrail_writer_queue_bytes` | gauge | bytes | serialized bytes waiting in the queue |
//! | `veritrail_writer_batch_records` | histogram | records | records per committed batch (events and system records) |
//! | `veritrail_writer_batch_bytes` | histogram | bytes | bytes per committed batch |
//! | `veritrail_writer_commit_seconds` | histogram | seconds | one batch's write plus fsync (`Sink::append` + `Sink::commit`) |
//! | `veritrail_writer_events_written_total` | counter | events | events made durable |
//! | `veritrail_writer_events_rejected_total` | counter | events | events refused with `Overflow` (`Reject`, `Block` timeout) |
//! | `veritrail_writer_events_dropped_total` | counter | events | events dropped and recorded in a `gap` record (`DropNewest`, a cancelled request's event that found the queue full, shutdown deadline) |
//! | `veritrail_writer_events_lost_total` | counter | events | events accepted but never made durable because the writer failed (queued, in the failed batch, or written but not fsynced) |
//! | `veritrail_writer_events_refused_after_failure_total` | counter | events | events refused with `Failed` because the writer had failed |
//! | `veritrail_writer_checkpoints_total` | counter | checkpoints | checkpoints signed |
//! | `veritrail_writer_failed` | gauge | 0 / 1 | 1 once the writer is in its failed state |
//! | `veritrail_writer_failures_total` | counter | failures | the failure, labelled `stage`: `write`, `fsync`, `checkpoint` or `panic` (the error text goes to [`WriterConfig::on_failure`](crate::WriterConfig::on_failure) and the shutdown report) |

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

/// Gauge: events waiting in the queue.
pub const QUEUE_DEPTH: &str = "veritrail_writer_queue_depth";
/// Gauge: serialized bytes waiting in the queue.
pub const QUEUE_BYTES: &str = "veritrail_writer_queue_bytes";
/// Histogram: records per batch written to the sink.
pub const BATCH_RECORDS: &str = "veritrail_writer_batch_records";
/// Histogram: bytes per batch written to the sink.
pub const BATCH_BYTES: &str = "veritrail_writer_batch_bytes";
/// Histogram: seconds per commit (the write and fsync of a batch somebody waits for, or the
/// fsync of batches nobody waited for; see `WriterConfig::async_sync_interval`).
pub const COMMIT_SECONDS: &str = "veritrail_writer_commit_seconds";
/// Counter: events made durable.
pub const EVENTS_WRITTEN: &str = "veritrail_writer_events_written_total";
/// Counter: events refused with `Overflow`.
pub const EVENTS_REJECTED: &str = "veritrail_writer_events_rejected_total";
/// Counter: events dropped and recorded in a `gap` record.
pub const EVENTS_DROPPED: &str = "veritrail_writer_events_dropped_total";
/// Counter: events accepted but never made durable because the writer failed.
pub const EVENTS_LOST: &str = "veritrail_writer_events_lost_total";
/// Counter: events refused because the writer had failed.
pub const EVENTS_REFUSED_AFTER_FAILURE: &str =
    "veritrail_writer_events_refused_after_failure_total";
/// Counter: checkpoints signed.
pub const CHECKPOINTS: &str = "veritrail_writer_checkpoints_total";
/// Gauge: 1 once the writer has failed.
pub const FAILED: &str = "veritrail_writer_failed";
/// Counter: the writer's failure, labelled `stage` (`write`, `fsync`, `checkpoint`, `panic`).
pub const FAILURES: &str = "veritrail_writer_failures_total";

/// The writer's metric handles, bound once at start.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) queue_depth: Gauge,
    pub(crate) queue_bytes: Gauge,
    pub(crate) batch_records: Histogram,
    pub(crate) batch_bytes: Histogram,
    pub(crate) commit_seconds: Histogram,
    pub(crate) written: Counter,
    pub(crate) rejected: Counter,
    pub(crate) dropped: Counter,
    pub(crate) lost: Counter,
    pub(crate) refused_after_failure: Counter,
    pub(crate) checkpoints: Counter,
    pub(crate) failed: Gauge,
    /// [`FAILURES`] per stage, in the order of [`STAGES`].
    failures: [Counter; 4],
}

/// The `stage` labels of [`FAILURES`].
const STAGES: [&str; 4] = ["write", "fsync", "checkpoint", "panic"];

impl Metrics {
    pub(crate) fn new(origin: &str) -> Self {
        let label = || [("origin", origin.to_owned())];
        Metrics {
            queue_depth: gauge!(QUEUE_DEPTH, &label()),
            queue_bytes: gauge!(QUEUE_BYTES, &label()),
            batch_records: histogram!(BATCH_RECORDS, &label()),
            batch_bytes: histogram!(BATCH_BYTES, &label()),
            commit_seconds: histogram!(COMMIT_SECONDS, &label()),
            written: counter!(EVENTS_WRITTEN, &label()),
            rejected: counter!(EVENTS_REJECTED, &label()),
            dropped: counter!(EVENTS_DROPPED, &label()),
            lost: counter!(EVENTS_LOST, &label()),
            refused_after_failure: counter!(EVENTS_REFUSED_AFTER_FAILURE, &label()),
            checkpoints: counter!(CHECKPOINTS, &label()),
            failed: gauge!(FAILED, &label()),
            failures: STAGES.map(|stage| {
                counter!(
                    FAILURES,
                    &[("origin", origin.to_owned()), ("stage", stage.to_owned())]
                )
            }),
        }
    }

    /// Counts the writer's failure at `stage` (one of `write`, `fsync`, `checkpoint`,
    /// `panic`).
    pub(crate) fn failure(&self, stage: &'static str) {
        let at = STAGES.iter().position(|s| *s == stage).unwrap_or(0);
        self.failures[at].increment(1);
    }
}
