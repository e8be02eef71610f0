//! [`WriterConfig`]: queue, batching, overflow and checkpoint settings.

use std::time::Duration;

/// What the writer does with an event that does not fit in a full queue. There is no silent
/// drop: every refused event is either reported to its caller or recorded in a `gap` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// The caller waits for room up to `timeout`, then gets
    /// [`RecordError::Overflow`](veritrail_core::recorder::RecordError::Overflow). Waiting
    /// uses the tokio timer: record from inside a runtime with time enabled.
    Block {
        /// How long a caller may wait for room.
        timeout: Duration,
    },
    /// The caller gets [`RecordError::Overflow`](veritrail_core::recorder::RecordError::Overflow)
    /// at once (the middleware answers 503).
    Reject,
    /// The event is dropped and its caller gets
    /// [`RecordError::Overflow`](veritrail_core::recorder::RecordError::Overflow) at once; the
    /// writer counts the drops and writes a `gap` record (`reason: "queue_full"`, how many,
    /// first and last time) at the place in the log where the events would have been, as soon
    /// as there is room. The loss itself is in the tamper-evident log.
    DropNewest,
}

impl Default for OverflowPolicy {
    /// `Block` for up to 100 ms.
    fn default() -> Self {
        OverflowPolicy::Block {
            timeout: Duration::from_millis(100),
        }
    }
}

/// Called once, on the writer's thread, when the writer enters its failed state, with the
/// reason (see [`WriterConfig::on_failure`]).
pub type FailureHook = std::sync::Arc<dyn Fn(&str) + Send + Sync + 'static>;

/// The writer's settings, built with chained setters from [`WriterConfig::default`]:
///
/// ```
/// use std::time::Duration;
/// use veritrail_writer::{OverflowPolicy, WriterConfig};
///
/// let config = WriterConfig::default()
///     .queue_capacity(100_000, 64 << 20)
///     .batch_max(2_048, 1 << 20)
///     .linger(Duration::from_micros(200))
///     .overflow(OverflowPolicy::DropNewest)
///     .checkpoint_every(Some(10_000))
///     .checkpoint_interval(Some(Duration::from_secs(5)));
/// assert_eq!(config.overflow_policy(), OverflowPolicy::DropNewest);
/// ```
#[derive(Clone)]
pub struct WriterConfig {
    pub(crate) queue_events: usize,
    pub(crate) queue_bytes: usize,
    pub(crate) batch_events: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) linger: Duration,
    pub(crate) async_sync_interval: Duration,
    pub(crate) async_linger: Duration,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) checkpoint_every: Option<u64>,
    pub(crate) checkpoint_interval: Option<Duration>,
    pub(crate) drop_timeout: Duration,
    pub(crate) durable_timeout: Option<Duration>,
    pub(crate) on_failure: Option<FailureHook>,
}

impl std::fmt::Debug for WriterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterConfig")
            .field("queue_events", &self.queue_events)
            .field("queue_bytes", &self.queue_bytes)
            .field("batch_events", &self.batch_events)
            .field("batch_bytes", &self.batch_bytes)
            .field("linger", &self.linger)
            .field("async_sync_interval", &self.async_sync_interval)
            .field("async_linger", &self.async_linger)
            .field("overflow", &self.overflow)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("drop_timeout", &self.drop_timeout)
            .field("durable_timeout", &self.durable_timeout)
            .field("on_failure", &self.on_failure.is_some())
            .finish()
    }
}

impl Default for WriterConfig {
    /// Queue of 65,536 events / 64 MiB; batches of at most 16,384 records / 8 MiB; no linger
    /// (a batch is whatever queued up during the previous commit); batches of `Async` events
    /// alone gathered for up to 1 ms and fsynced at least every 10 ms; `Block` for 100 ms;
    /// a checkpoint every 1,000,000 records and every 10 s (each one costs a few fsyncs, which
    /// the callers of the next batch wait for); dropping the writer waits up to 5 s for the
    /// queue to drain.
    fn default() -> Self {
        WriterConfig {
            queue_events: 65_536,
            queue_bytes: 64 << 20,
            batch_events: 16_384,
            batch_bytes: 8 << 20,
            linger: Duration::ZERO,
            async_sync_interval: Duration::from_millis(10),
            async_linger: Duration::from_millis(1),
            overflow: OverflowPolicy::default(),
            checkpoint_every: Some(1_000_000),
            checkpoint_interval: Some(Duration::from_secs(10)),
            drop_timeout: Duration::from_secs(5),
            durable_timeout: None,
            on_failure: None,
        }
    }
}

impl WriterConfig {
    /// Bounds the queue: at most `events` queued events and `bytes` bytes of serialized
    /// records (an event larger than `bytes` is still taken when the queue is empty). Memory
    /// held by the queue is at most about `bytes` plus 64 bytes per event; the writer thread
    /// holds up to as much again for the batch it is writing. Values below 1 count as 1.
    pub fn queue_capacity(mut self, events: usize, bytes: usize) -> Self {
        self.queue_events = events.max(1);
        self.queue_bytes = bytes.max(1);
        self
    }

    /// Bounds one batch (one write and one fsync): at most `events` records and about `bytes`
    /// bytes (a batch always takes at least one record). Values below 1 count as 1.
    pub fn batch_max(mut self, events: usize, bytes: usize) -> Self {
        self.batch_events = events.max(1);
        self.batch_bytes = bytes.max(1);
        self
    }

    /// How long the writer waits for a batch to fill before committing what it has. Zero
    /// (the default) commits at once; the records that arrive during a commit form the next
    /// batch, so batches grow with the load by themselves.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// How long records that no caller waits for (`Async` events, `gap` records) may stay
    /// written but not yet fsynced. A batch with a `Durable` or `WriteAhead` caller is always
    /// fsynced before they are answered, which also makes everything before it durable;
    /// checkpoints and shutdown fsync too. Zero fsyncs every batch. A crash can lose up to
    /// this much of the `Async` events — events nobody was told were durable.
    pub fn async_sync_interval(mut self, interval: Duration) -> Self {
        self.async_sync_interval = interval;
        self
    }

    /// How long the writer gathers events that no caller waits for (`Async`) before writing
    /// them, so that a stream of them wakes the writer thread once per batch rather than once
    /// per event (each wake-up costs the request thread a system call). An event whose caller
    /// waits (`Durable`, `WriteAhead`) ends the wait at once. Zero writes at once.
    pub fn async_linger(mut self, linger: Duration) -> Self {
        self.async_linger = linger;
        self
    }

    /// What happens when the queue is full.
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Signs a checkpoint after every `records` records (`None`: not by count).
    pub fn checkpoint_every(mut self, records: Option<u64>) -> Self {
        self.checkpoint_every = records.map(|n| n.max(1));
        self
    }

    /// Signs a checkpoint at least this often while records arrive (`None`: not by time).
    pub fn checkpoint_interval(mut self, interval: Option<Duration>) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// How long dropping a [`Writer`](crate::Writer) without calling `shutdown` waits for the
    /// queue to drain and the `stop` record to be written.
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// How long a `Durable` or `WriteAhead` caller waits for its event to be confirmed before
    /// it gets [`RecordError::TimedOut`](veritrail_core::recorder::RecordError::TimedOut)
    /// (the middleware answers 503). Unset, the sink's own bound applies
    /// ([`Sink::durable_timeout`](crate::Sink::durable_timeout)): none for the file log, whose
    /// fsync either completes or fails; a few seconds for a sink over the network, which
    /// keeps retrying while its store is unreachable. The event stays queued (or in the
    /// batch being retried) and may still be recorded afterwards. Waiting uses the tokio
    /// timer: record from inside a runtime with time enabled.
    pub fn durable_timeout(mut self, timeout: Duration) -> Self {
        self.durable_timeout = Some(timeout);
        self
    }

    /// Calls `hook` once, on the writer's thread, with the reason when the writer enters its
    /// failed state (a write, fsync or checkpoint error, or a panic) — for a service to say
    /// so at once (on stderr, in its log) rather than at shutdown. Keep it short: the writer
    /// thread runs it.
    pub fn on_failure(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_failure = Some(std::sync::Arc::new(hook));
        self
    }

    /// The overflow policy in force.
    pub fn overflow_policy(&self) -> OverflowPolicy {
        self.overflow
    }
}
