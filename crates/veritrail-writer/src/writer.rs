//! [`Writer`], its handle and the writer thread.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{Notify, oneshot};
use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{Durability, Receipt, RecordError, RecordFuture, Recorder};
use veritrail_log::{LogOptions, NoteSigner};

use crate::config::{FailureHook, OverflowPolicy, WriterConfig};
use crate::file::FileSink;
use crate::metric::Metrics;
use crate::queue::{Ack, BatchLimits, Item, Next, PushError, Record, Shared, Status, Taken};
use crate::sink::{Batch, Sink, SinkError};

/// How long `shutdown` and `Drop` wait past the deadline for the final `stop` record and
/// checkpoint (a commit in flight at the deadline is not interrupted).
const FINISH_GRACE: Duration = Duration::from_secs(2);

/// The `gap` reason for events dropped by `DropNewest`.
pub const GAP_QUEUE_FULL: &str = "queue_full";
/// The `gap` reason for events still queued when the shutdown deadline passed.
pub const GAP_SHUTDOWN_DEADLINE: &str = "shutdown_deadline";

/// Why a writer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriterError {
    /// The sink could not be opened, or the `start` record could not be made durable.
    #[error("cannot start the audit writer: {0}")]
    Sink(#[from] SinkError),
    /// The operating system refused a new thread.
    #[error("cannot spawn the audit writer thread: {0}")]
    Spawn(std::io::Error),
}

/// What the writer did over its life, returned by [`Writer::shutdown`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Events made durable over the writer's life (system records not counted).
    pub flushed: u64,
    /// Of those, the events that were still queued when shutdown began.
    pub drained: u64,
    /// Events dropped, each counted in a `gap` record: by `DropNewest`, events handed over
    /// without waiting ([`Recorder::try_record`]) that found the queue full, or events still
    /// queued at the shutdown deadline (their `Durable` callers got `Closed`).
    pub dropped: u64,
    /// Events refused with `Overflow` by `Reject` or a `Block` timeout (their callers knew).
    pub rejected: u64,
    /// Events accepted but never made durable because the writer failed: queued, in the batch
    /// that failed, or written but not yet fsynced when an fsync failed (their `Durable`
    /// callers got `Failed`; `Async` callers had been answered on enqueue — their requests
    /// were answered, their events are not in the log).
    pub lost: u64,
    /// Events refused with `Failed` because the writer had already failed (the engine
    /// refuses requests before running them once it sees the failure; these are mostly the
    /// records of those refusals, and of requests that were already running).
    pub refused_after_failure: u64,
    /// The log size when the writer stopped.
    pub size: u64,
    /// The last checkpoint signed (a C2SP signed note), if the sink signs checkpoints.
    pub checkpoint: Option<String>,
    /// Why the writer failed, if it did; nothing was written after that.
    pub error: Option<String>,
}

/// What the writer thread hands back when it ends.
#[derive(Debug, Default)]
struct Outcome {
    flushed: u64,
    drained: u64,
    size: u64,
    checkpoint: Option<String>,
    error: Option<String>,
}

/// Where the writer thread leaves its [`Outcome`].
#[derive(Debug, Default)]
struct Finished {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
    notify: Notify,
}

impl Finished {
    fn set(&self, outcome: Outcome) {
        let mut slot = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(outcome);
        }
        drop(slot);
        self.done.notify_all();
        self.notify.notify_waiters();
    }

    fn take(&self) -> Option<Outcome> {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn wait_blocking(&self, until: Instant) -> Option<Outcome> {
        let mut slot = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        while slot.is_none() {
            let now = Instant::now();
            if now >= until {
                return None;
            }
            slot = self
                .done
                .wait_timeout(slot, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        slot.take()
    }

    async fn wait(&self, until: Instant) -> Option<Outcome> {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(outcome) = self.take() {
                    return outcome;
                }
                notified.await;
            }
        };
        tokio::time::timeout_at(until.into(), wait).await.ok()
    }
}

/// The audit writer: a bounded queue in front of one thread that batches events, writes each
/// batch with one write and one fsync (group commit) and then acknowledges every waiting
/// caller of that batch.
///
/// Record through [`Writer::handle`] (a cheap, cloneable [`Recorder`]) or through the writer
/// itself. End with [`shutdown`](Writer::shutdown); dropping the writer shuts it down too,
/// waiting up to [`WriterConfig::drop_timeout`].
#[derive(Debug)]
#[must_use = "dropping the Writer shuts it down"]
pub struct Writer {
    handle: WriterHandle,
    finished: Arc<Finished>,
    drop_timeout: Duration,
    shut_down: bool,
}

/// A cheap, cloneable handle to a [`Writer`], implementing [`Recorder`].
///
/// - `Async`: resolves when the event is queued (or refused by the overflow policy).
/// - `Durable` and `WriteAhead`: resolve with the event's log index once the batch holding it
///   is durable, or with `Failed` if the writer fails first.
///
/// The event is serialized on the calling thread; with [`OverflowPolicy::Block`] a full queue
/// makes the future wait (tokio timer).
#[derive(Clone, Debug)]
pub struct WriterHandle {
    shared: Arc<Shared>,
    overflow: OverflowPolicy,
    /// How long a caller waits for durability (none: until the commit ends).
    durable_timeout: Option<Duration>,
}

impl Writer {
    /// Opens (or creates) the file log in `dir`, signing checkpoints with `signer`, and
    /// starts a writer over it. For other [`LogOptions`] (origin, segment size), open a
    /// [`FileSink`] and call [`Writer::start`].
    pub fn open(
        dir: impl AsRef<Path>,
        signer: NoteSigner,
        config: WriterConfig,
    ) -> Result<Writer, WriterError> {
        let sink = FileSink::open(dir.as_ref(), signer, LogOptions::default())?;
        Writer::start(sink, config)
    }

    /// Starts a writer over any sink: writes and commits the `start` record — and a
    /// `recovered` record when the sink reports one ([`Sink::recovered`]: a torn tail cut, or
    /// a previous writer that never wrote its `stop`) — before returning, then runs the
    /// writer thread.
    pub fn start(sink: impl Sink, config: WriterConfig) -> Result<Writer, WriterError> {
        let metrics = Metrics::new(sink.origin());
        let durable_timeout = config.durable_timeout.or(sink.durable_timeout());
        let shared = Arc::new(Shared::new(
            config.queue_events,
            config.queue_bytes,
            metrics,
        ));
        let mut thread = WriterThread::new(Box::new(sink), shared.clone(), &config);
        let on_failure = config.on_failure.clone();
        let mut opening = vec![AuditEvent::start(thread.sink.origin())];
        if let Some(recovered) = thread.sink.recovered() {
            opening.push(AuditEvent::new(recovered));
        }
        thread.write_system_records(&opening)?;
        thread.last_checkpoint_size = thread.next_index;

        let finished = Arc::new(Finished::default());
        let done = finished.clone();
        std::thread::Builder::new()
            .name("veritrail-writer".into())
            .spawn(move || {
                let mut guard = PanicGuard {
                    shared: thread.shared.clone(),
                    finished: done,
                    on_failure,
                    armed: true,
                };
                let outcome = thread.run();
                guard.armed = false;
                guard.finished.set(outcome);
            })
            .map_err(WriterError::Spawn)?;
        Ok(Writer {
            handle: WriterHandle {
                shared,
                overflow: config.overflow,
                durable_timeout,
            },
            finished,
            drop_timeout: config.drop_timeout,
            shut_down: false,
        })
    }

    /// A cloneable [`Recorder`] handle for request handlers and middleware.
    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Stops taking events (later calls get `Closed`), writes what is queued until
    /// `deadline`, then a `gap` record for anything left (`shutdown_deadline`), the `stop`
    /// record and a final signed checkpoint. Waits at most a short grace past `deadline`
    /// for a commit in flight. Needs a tokio runtime with time enabled; see
    /// [`shutdown_blocking`](Writer::shutdown_blocking) otherwise.
    pub async fn shutdown(mut self, deadline: Instant) -> ShutdownReport {
        self.shut_down = true;
        self.handle.shared.close(deadline);
        let outcome = self.finished.wait(deadline + FINISH_GRACE).await;
        self.report(outcome)
    }

    /// [`shutdown`](Writer::shutdown) for callers outside async code (blocks the thread).
    pub fn shutdown_blocking(mut self, deadline: Instant) -> ShutdownReport {
        self.shut_down = true;
        self.handle.shared.close(deadline);
        let outcome = self.finished.wait_blocking(deadline + FINISH_GRACE);
        self.report(outcome)
    }

    fn report(&self, outcome: Option<Outcome>) -> ShutdownReport {
        let counters = &self.handle.shared.counters;
        let outcome = outcome.unwrap_or_else(|| Outcome {
            error: Some("the writer thread did not finish before the deadline".into()),
            ..Outcome::default()
        });
        ShutdownReport {
            flushed: outcome.flushed,
            drained: outcome.drained,
            dropped: counters.dropped.load(Ordering::Relaxed),
            rejected: counters.rejected.load(Ordering::Relaxed),
            lost: counters.lost.load(Ordering::Relaxed),
            refused_after_failure: counters.refused_after_failure.load(Ordering::Relaxed),
            size: outcome.size,
            checkpoint: outcome.checkpoint,
            error: outcome.error,
        }
    }
}

impl Drop for Writer {
    /// Shuts down as [`shutdown_blocking`](Writer::shutdown_blocking) with a deadline of
    /// [`WriterConfig::drop_timeout`] from now. What was acknowledged as durable is on disk
    /// either way.
    fn drop(&mut self) {
        if !self.shut_down {
            let deadline = Instant::now() + self.drop_timeout;
            self.handle.shared.close(deadline);
            self.finished.wait_blocking(deadline + FINISH_GRACE);
        }
    }
}

impl Recorder for Writer {
    fn record(&self, event: AuditEvent, durability: Durability) -> RecordFuture {
        self.handle.record(event, durability)
    }
    fn record_now(
        &self,
        event: AuditEvent,
        durability: Durability,
    ) -> Result<Result<Receipt, RecordError>, RecordFuture> {
        self.handle.record_now(event, durability)
    }
    fn try_record(&self, event: AuditEvent) -> Result<Receipt, RecordError> {
        self.handle.try_record(event)
    }
    fn health(&self) -> Result<(), RecordError> {
        self.handle.health()
    }
}

impl WriterHandle {
    /// Why the writer failed, once it has (then every call is refused with `Failed`).
    pub fn failure(&self) -> Option<String> {
        match self.shared.status() {
            Status::Failed(why) => Some(why.to_string()),
            _ => None,
        }
    }

    /// Events waiting in the queue.
    pub fn queued(&self) -> usize {
        self.shared.queued()
    }
}

fn ready(result: Result<Receipt, RecordError>) -> RecordFuture {
    Box::pin(std::future::ready(result))
}

async fn acknowledged(
    rx: Option<oneshot::Receiver<Result<Receipt, RecordError>>>,
    timeout: Option<Duration>,
) -> Result<Receipt, RecordError> {
    let Some(rx) = rx else {
        return Ok(Receipt { index: None });
    };
    let stopped = |_| {
        Err(RecordError::Failed(
            "the audit writer stopped without acknowledging the event".into(),
        ))
    };
    match timeout {
        None => rx.await.unwrap_or_else(stopped),
        Some(timeout) => match tokio::time::timeout(timeout, rx).await {
            Ok(answer) => answer.unwrap_or_else(stopped),
            Err(_) => Err(RecordError::TimedOut(timeout)),
        },
    }
}

/// Waits for room under [`OverflowPolicy::Block`], then for the acknowledgement.
async fn block_for_room(
    handle: WriterHandle,
    mut record: Record,
    mut ack: Option<Ack>,
    rx: Option<oneshot::Receiver<Result<Receipt, RecordError>>>,
    timeout: Duration,
) -> Result<Receipt, RecordError> {
    let shared = &handle.shared;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let room = shared.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        match shared.push(record, ack, false) {
            Ok(()) => return acknowledged(rx, handle.durable_timeout).await,
            Err(PushError::Refused(e)) => return Err(e),
            Err(PushError::Full(r, a)) => (record, ack) = (r, a),
        }
        if tokio::time::timeout_at(deadline, room).await.is_err() {
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            shared.metrics.rejected.increment(1);
            return Err(RecordError::Overflow);
        }
    }
}

impl Recorder for WriterHandle {
    fn record(&self, event: AuditEvent, durability: Durability) -> RecordFuture {
        match self.record_now(event, durability) {
            Ok(answer) => ready(answer),
            Err(future) => future,
        }
    }

    /// An `Async` event is answered at once (queued, or refused by the overflow policy),
    /// unless a `Block` queue is full.
    fn record_now(
        &self,
        event: AuditEvent,
        durability: Durability,
    ) -> Result<Result<Receipt, RecordError>, RecordFuture> {
        let record = Record::new(event);
        let (ack, rx) = match durability {
            Durability::Async => (None, None),
            Durability::Durable | Durability::WriteAhead => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
        };
        let drop_when_full = self.overflow == OverflowPolicy::DropNewest;
        match self.shared.push(record, ack, drop_when_full) {
            Ok(()) if rx.is_none() => Ok(Ok(Receipt { index: None })),
            Ok(()) => Err(Box::pin(acknowledged(rx, self.durable_timeout))),
            Err(PushError::Refused(e)) => Ok(Err(e)),
            Err(PushError::Full(record, ack)) => match self.overflow {
                OverflowPolicy::Block { timeout } => Err(Box::pin(block_for_room(
                    self.clone(),
                    record,
                    ack,
                    rx,
                    timeout,
                ))),
                OverflowPolicy::Reject | OverflowPolicy::DropNewest => {
                    self.shared
                        .counters
                        .rejected
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared.metrics.rejected.increment(1);
                    Ok(Err(RecordError::Overflow))
                }
            },
        }
    }

    /// Queues the event as `Async`, or — when the queue is full, whatever the overflow
    /// policy — drops it into the `gap` record at the queue's tail (counted in `dropped`), as
    /// `DropNewest` does. Never waits.
    fn try_record(&self, event: AuditEvent) -> Result<Receipt, RecordError> {
        match self.shared.push(Record::new(event), None, true) {
            Ok(()) => Ok(Receipt { index: None }),
            Err(PushError::Refused(e)) => Err(e),
            // `push` drops rather than hands back when told to.
            Err(PushError::Full(..)) => Err(RecordError::Overflow),
        }
    }

    fn health(&self) -> Result<(), RecordError> {
        self.shared.health()
    }
}

/// Marks the writer failed if its thread unwinds, so callers are not left waiting on a queue
/// nobody drains.
struct PanicGuard {
    shared: Arc<Shared>,
    finished: Arc<Finished>,
    on_failure: Option<FailureHook>,
    armed: bool,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if self.armed {
            let why: Arc<str> = "the audit writer thread panicked".into();
            let queued = self.shared.fail(why.clone());
            let lost = queued
                .iter()
                .filter(|item| matches!(item, Item::Event { .. }))
                .count() as u64;
            self.shared.counters.lost.fetch_add(lost, Ordering::Relaxed);
            self.shared.metrics.lost.increment(lost);
            self.shared.metrics.failure("panic");
            // Dropping the acknowledgements answers their callers with `Failed`.
            drop(queued);
            if let Some(hook) = &self.on_failure {
                hook(&why);
            }
            self.finished.set(Outcome {
                error: Some(why.to_string()),
                ..Outcome::default()
            });
        }
    }
}

/// The writer thread's state.
struct WriterThread {
    sink: Box<dyn Sink>,
    shared: Arc<Shared>,
    limits: BatchLimits,
    checkpoint_every: Option<u64>,
    checkpoint_interval: Option<Duration>,
    next_index: u64,
    /// Log size at the last checkpoint, and when it was signed.
    last_checkpoint_size: u64,
    last_checkpoint_at: Instant,
    checkpoint: Option<String>,
    /// The batch being built: records back to back, their ends, and who waits for which index.
    bytes: Vec<u8>,
    ends: Vec<usize>,
    acks: Vec<(u64, Ack)>,
    items: Vec<Item>,
    /// The queue bytes of `items`.
    taken: Taken,
    /// Events (not system records) in the batch being built.
    batch_events: u64,
    /// Events handed to the sink but not yet committed: durable (counted in `flushed`) only
    /// once a commit succeeds, lost if it fails.
    unsynced_events: u64,
    flushed: u64,
    drained: u64,
    closing: bool,
    /// Records written to the sink but not yet committed (no caller waited for them): since
    /// when, and how long they may wait.
    unsynced_since: Option<Instant>,
    async_sync_interval: Duration,
    on_failure: Option<FailureHook>,
    /// Where the sink failed (the `stage` label of the failure metric).
    failed_at: &'static str,
}

impl WriterThread {
    fn new(sink: Box<dyn Sink>, shared: Arc<Shared>, config: &WriterConfig) -> Self {
        WriterThread {
            on_failure: config.on_failure.clone(),
            next_index: sink.size(),
            sink,
            shared,
            limits: BatchLimits {
                events: config.batch_events,
                bytes: config.batch_bytes,
                linger: config.linger,
                async_linger: config.async_linger,
            },
            checkpoint_every: config.checkpoint_every,
            checkpoint_interval: config.checkpoint_interval,
            unsynced_since: None,
            async_sync_interval: config.async_sync_interval,
            failed_at: "write",
            last_checkpoint_size: 0,
            last_checkpoint_at: Instant::now(),
            checkpoint: None,
            bytes: Vec::with_capacity(config.batch_bytes.min(8 << 20) + 4096),
            ends: Vec::with_capacity(config.batch_events.min(1 << 16)),
            acks: Vec::new(),
            items: Vec::new(),
            taken: Taken::default(),
            batch_events: 0,
            unsynced_events: 0,
            flushed: 0,
            drained: 0,
            closing: false,
        }
    }

    fn run(mut self) -> Outcome {
        let mut error = None;
        loop {
            let timer = match (self.checkpoint_timer(), self.sync_timer()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let next = self
                .shared
                .next_batch(&mut self.items, &mut self.taken, self.limits, timer);
            let result = match next {
                Next::Batch { closing } => {
                    self.closing |= closing;
                    self.write_items()
                }
                Next::Timer => Ok(()),
                Next::Drained => break,
                Next::Overdue => {
                    let result = self.write_overdue();
                    if result.is_ok() {
                        break;
                    }
                    result
                }
            };
            let result = result
                .and_then(|()| self.sync_if_due())
                .and_then(|()| self.checkpoint_if_due());
            if let Err(e) = result {
                error = Some(self.fail(e));
                break;
            }
        }
        if error.is_none()
            && let Err(e) = self.finish()
        {
            error = Some(self.fail(e));
        }
        Outcome {
            flushed: self.flushed,
            drained: self.drained,
            size: self.next_index,
            checkpoint: self.checkpoint.take(),
            error,
        }
    }

    /// When the next checkpoint by time is due, if records await one.
    fn checkpoint_timer(&self) -> Option<Instant> {
        let interval = self.checkpoint_interval?;
        (self.next_index > self.last_checkpoint_size).then(|| self.last_checkpoint_at + interval)
    }

    fn checkpoint_if_due(&mut self) -> Result<(), SinkError> {
        let pending = self.next_index - self.last_checkpoint_size;
        let due = pending > 0
            && (self.checkpoint_every.is_some_and(|n| pending >= n)
                || self
                    .checkpoint_interval
                    .is_some_and(|t| self.last_checkpoint_at.elapsed() >= t));
        if due {
            self.sign_checkpoint()?;
        }
        Ok(())
    }

    /// When records written without a commit must be committed.
    fn sync_timer(&self) -> Option<Instant> {
        self.unsynced_since.map(|t| t + self.async_sync_interval)
    }

    /// Commits records written without one, once they have waited long enough.
    fn sync_if_due(&mut self) -> Result<(), SinkError> {
        match self.sync_timer() {
            Some(due) if Instant::now() >= due => self.sync_pending(),
            _ => Ok(()),
        }
    }

    /// Commits records written without one, if any.
    fn sync_pending(&mut self) -> Result<(), SinkError> {
        if self.unsynced_since.take().is_some() {
            let started = Instant::now();
            if let Err(e) = self.sink.commit() {
                self.failed_at = "fsync";
                return Err(e);
            }
            self.shared
                .metrics
                .commit_seconds
                .record(started.elapsed().as_secs_f64());
            self.flushed += self.unsynced_events;
            self.shared.metrics.written.increment(self.unsynced_events);
            self.unsynced_events = 0;
        }
        Ok(())
    }

    fn sign_checkpoint(&mut self) -> Result<(), SinkError> {
        self.sync_pending()?;
        let note = self.sink.checkpoint().inspect_err(|_| {
            self.failed_at = "checkpoint";
        })?;
        if let Some(note) = note {
            self.checkpoint = Some(note);
            self.shared.metrics.checkpoints.increment(1);
        }
        self.last_checkpoint_size = self.next_index;
        self.last_checkpoint_at = Instant::now();
        Ok(())
    }

    /// Appends one record (at the next index of the batch being built).
    fn push_event(&mut self, event: &AuditEvent) {
        let index = self.next_index + self.ends.len() as u64;
        event.write_json(index, &mut self.bytes);
        self.ends.push(self.bytes.len());
    }

    fn push_item(&mut self, item: Item, gap_reason: &str) {
        match item {
            Item::Event { payload, ack } => {
                let index = self.next_index + self.ends.len() as u64;
                payload.write(&self.taken, index, &mut self.bytes);
                self.ends.push(self.bytes.len());
                self.batch_events += 1;
                if let Some(ack) = ack {
                    self.acks.push((index, ack));
                }
            }
            Item::Gap {
                dropped,
                first,
                last,
            } => self.push_event(&AuditEvent::gap(dropped, gap_reason, first, last)),
        }
    }

    /// Writes and commits the batch in `self.items`.
    fn write_items(&mut self) -> Result<(), SinkError> {
        let mut items = std::mem::take(&mut self.items);
        for item in items.drain(..) {
            self.push_item(item, GAP_QUEUE_FULL);
        }
        self.items = items;
        if self.acks.is_empty() && !self.closing && !self.async_sync_interval.is_zero() {
            // Nobody waits for these records: write them now, fsync them within the interval
            // (or with the next batch somebody waits for).
            return self.write_batch();
        }
        self.commit()
    }

    /// The shutdown deadline passed with `self.items` still queued: their callers get
    /// `Closed`, and one `gap` record counts them.
    fn write_overdue(&mut self) -> Result<(), SinkError> {
        let mut items = std::mem::take(&mut self.items);
        let mut overdue = 0u64;
        let now = OffsetDateTime::now_utc();
        for item in items.drain(..) {
            match item {
                Item::Event { ack, .. } => {
                    overdue += 1;
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(RecordError::Closed));
                    }
                }
                gap @ Item::Gap { .. } => self.push_item(gap, GAP_QUEUE_FULL),
            }
        }
        self.items = items;
        if overdue > 0 {
            self.shared
                .counters
                .dropped
                .fetch_add(overdue, Ordering::Relaxed);
            self.shared.metrics.dropped.increment(overdue);
            self.push_event(&AuditEvent::gap(overdue, GAP_SHUTDOWN_DEADLINE, now, now));
        }
        self.commit()
    }

    /// Writes system records created by the writer itself, as one batch.
    fn write_system_records(&mut self, records: &[AuditEvent]) -> Result<(), SinkError> {
        for record in records {
            self.push_event(record);
        }
        self.commit()
    }

    /// The `stop` record and the final checkpoint.
    fn finish(&mut self) -> Result<(), SinkError> {
        let dropped = self.shared.counters.dropped.load(Ordering::Relaxed);
        // Events written but not yet fsynced are made durable by the commit that makes the
        // `stop` record durable: if that fails, neither counts.
        let flushed = self.flushed + self.unsynced_events;
        self.write_system_records(&[AuditEvent::stop(flushed, dropped)])?;
        self.sign_checkpoint()
    }

    /// One write and one fsync for the batch being built; then every waiting caller of the
    /// batch is acknowledged with its index.
    fn commit(&mut self) -> Result<(), SinkError> {
        if self.ends.is_empty() {
            return Ok(());
        }
        self.append_batch()?;
        self.unsynced_since.get_or_insert_with(Instant::now);
        self.batch_written();
        self.sync_pending()?;
        for (index, ack) in self.acks.drain(..) {
            let _ = ack.send(Ok(Receipt { index: Some(index) }));
        }
        Ok(())
    }

    /// One write for the batch being built, committed later (nobody waits for it).
    fn write_batch(&mut self) -> Result<(), SinkError> {
        if self.ends.is_empty() {
            return Ok(());
        }
        self.append_batch()?;
        self.unsynced_since.get_or_insert_with(Instant::now);
        self.batch_written();
        Ok(())
    }

    /// Hands the batch being built to the sink and checks the indexes it took.
    fn append_batch(&mut self) -> Result<(), SinkError> {
        let batch = Batch::new(self.next_index, &self.bytes, &self.ends);
        let expected = batch.indexes();
        if let Err(e) = self.sink.append(&batch) {
            self.failed_at = "write";
            return Err(e);
        }
        let metrics = &self.shared.metrics;
        metrics.batch_records.record(batch.len() as f64);
        metrics.batch_bytes.record(batch.byte_len() as f64);
        let size = self.sink.size();
        if size != expected.end {
            self.failed_at = "write";
            return Err(SinkError::IndexMismatch {
                expected,
                got: self.next_index..size,
            });
        }
        self.next_index = expected.end;
        Ok(())
    }

    /// Counts the batch just handed to the sink (durable at the next successful commit) and
    /// empties the buffers.
    fn batch_written(&mut self) {
        self.unsynced_events += self.batch_events;
        if self.closing {
            self.drained += self.batch_events;
        }
        self.batch_events = 0;
        self.bytes.clear();
        self.ends.clear();
    }

    /// Enters the failed state: the batch in flight and everything queued is answered with
    /// `Failed`; nothing is written any more. Events written but not yet committed count as
    /// lost: after a failed fsync nobody knows whether they reached the disk.
    fn fail(&mut self, error: SinkError) -> String {
        let why = error.to_string();
        let shared_why: Arc<str> = why.as_str().into();
        let queued = self.shared.fail(shared_why);
        let mut lost = self.batch_events + std::mem::take(&mut self.unsynced_events);
        let failed = || Err(RecordError::Failed(why.clone()));
        for (_, ack) in self.acks.drain(..) {
            let _ = ack.send(failed());
        }
        for item in queued.into_iter().chain(self.items.drain(..)) {
            if let Item::Event { ack, .. } = item {
                lost += 1;
                if let Some(ack) = ack {
                    let _ = ack.send(failed());
                }
            }
        }
        self.shared.counters.lost.fetch_add(lost, Ordering::Relaxed);
        self.shared.metrics.lost.increment(lost);
        self.shared.metrics.failure(self.failed_at);
        self.batch_events = 0;
        self.bytes.clear();
        self.ends.clear();
        if let Some(hook) = &self.on_failure {
            hook(&why);
        }
        why
    }
}
