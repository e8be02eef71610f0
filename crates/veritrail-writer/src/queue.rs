//! The bounded queue between the callers and the writer thread.
//!
//! Callers serialize their event (at index 0) on their own thread, into a scratch buffer the
//! thread keeps, and the queue copies the bytes into one byte arena under its lock. The writer
//! thread takes the arena whole (a buffer swap) with its batch and only splices the real index
//! in. So recording allocates nothing per event, nothing allocated by a caller is freed by the
//! writer thread, the writer's work per event is a copy, a hash and a frame, and the queue's
//! byte bound is exact.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{Notify, oneshot};
use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{Receipt, RecordError};

use crate::metric::Metrics;

/// Where an acknowledgement goes once the event's batch is durable (or has failed).
pub(crate) type Ack = oneshot::Sender<Result<Receipt, RecordError>>;

/// The digits `write_json` writes for index 0, with their delimiters.
const INDEX_ZERO: &[u8] = b"\"index\":0,";

/// Where `write_json` puts the index digit: after `{"v":1,"id":"<36-character uuid>","index":`.
/// Checked for each record (a cheap comparison); a record laid out otherwise is searched.
const INDEX_AT: usize = 59;

/// Scratch buffers kept per thread for serialising records, up to this capacity.
const SCRATCH_MAX: usize = 64 << 10;

/// An event's record bytes, prepared on the caller's thread.
#[derive(Debug)]
pub(crate) enum Record {
    /// Written with index 0; the `0` at `index_at` is replaced by the real index.
    Spliced { bytes: Vec<u8>, index_at: usize },
    /// An event whose layout did not show where the index goes: serialized by the writer.
    Event { event: Box<AuditEvent>, len: usize },
}

thread_local! {
    /// The buffer this thread serialises records into: its bytes are copied into the queue,
    /// and the buffer comes back for the next record, so recording allocates nothing.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

impl Record {
    /// Serializes `event` at index 0 and remembers where the index digit is.
    pub(crate) fn new(event: AuditEvent) -> Record {
        let mut bytes = SCRATCH.take();
        bytes.clear();
        bytes.reserve(1024);
        event.write_json(0, &mut bytes);
        let at_fixed = bytes.get(INDEX_AT + 2 - INDEX_ZERO.len()..INDEX_AT + 2) == Some(INDEX_ZERO);
        // `v` and `id` precede `index` and hold no caller text, so the first match is the
        // top-level field; the tests compare the splice with `write_json` byte for byte.
        let index_at = if at_fixed {
            Some(INDEX_AT)
        } else {
            bytes
                .windows(INDEX_ZERO.len())
                .position(|w| w == INDEX_ZERO)
                .map(|at| at + INDEX_ZERO.len() - 2)
        };
        match index_at {
            Some(index_at) => Record::Spliced { bytes, index_at },
            None => {
                let len = bytes.len();
                recycle(bytes);
                Record::Event {
                    len,
                    event: Box::new(event),
                }
            }
        }
    }

    /// The record's size in bytes (at index 0).
    pub(crate) fn len(&self) -> usize {
        match self {
            Record::Spliced { bytes, .. } => bytes.len(),
            Record::Event { len, .. } => *len,
        }
    }

    /// Appends the record bytes at log index `index` to `out`: exactly what
    /// `AuditEvent::write_json(index, out)` writes.
    #[cfg(test)]
    pub(crate) fn write(&self, index: u64, out: &mut Vec<u8>) {
        match self {
            Record::Spliced { bytes, index_at } => splice(bytes, *index_at, index, out),
            Record::Event { event, .. } => event.write_json(index, out),
        }
    }
}

/// Gives a scratch buffer back to this thread.
fn recycle(bytes: Vec<u8>) {
    if bytes.capacity() <= SCRATCH_MAX {
        SCRATCH.set(bytes);
    }
}

/// Appends `bytes` with the index digit at `index_at` replaced by `index`.
fn splice(bytes: &[u8], index_at: usize, index: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&bytes[..index_at]);
    write_decimal(index, out);
    out.extend_from_slice(&bytes[index_at + 1..]);
}

/// A queued event's bytes.
#[derive(Debug)]
pub(crate) enum Payload {
    /// `len` bytes in the queue's byte arena, from absolute offset `at`; the index digit is
    /// `index_at` bytes in.
    Arena {
        at: u64,
        len: usize,
        index_at: usize,
    },
    /// Serialized by the writer.
    Event { event: Box<AuditEvent>, len: usize },
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Arena { len, .. } | Payload::Event { len, .. } => *len,
        }
    }

    /// Appends the record bytes at log index `index` to `out` (the arena bytes are in
    /// `taken`, which [`Shared::next_batch`] filled with this payload's batch).
    pub(crate) fn write(&self, taken: &Taken, index: u64, out: &mut Vec<u8>) {
        match self {
            Payload::Arena { at, len, index_at } => {
                let start = usize::try_from(at - taken.base).expect("in the taken bytes");
                splice(&taken.bytes[start..start + len], *index_at, index, out);
            }
            Payload::Event { event, .. } => event.write_json(index, out),
        }
    }
}

/// The arena bytes of the batch the writer took: `bytes` starts at absolute offset `base`.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    bytes: Vec<u8>,
    base: u64,
}

/// Appends `n` in decimal, as serde_json writes a `u64` (with the same `itoa`).
fn write_decimal(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// One queue entry.
#[derive(Debug)]
pub(crate) enum Item {
    /// A caller's event, with its acknowledgement for `Durable` / `WriteAhead`.
    Event { payload: Payload, ack: Option<Ack> },
    /// Events dropped by `DropNewest` at this point of the queue; becomes a `gap` record.
    Gap {
        dropped: u64,
        first: OffsetDateTime,
        last: OffsetDateTime,
    },
}

impl Item {
    fn byte_len(&self) -> usize {
        match self {
            Item::Event { payload, .. } => payload.len(),
            Item::Gap { .. } => 0,
        }
    }
}

/// Whether the writer takes new events.
#[derive(Clone, Debug)]
pub(crate) enum Status {
    Open,
    /// Shutdown began: no new events; drain until `deadline`.
    Closing {
        deadline: Instant,
    },
    /// A sink error: nothing more is written.
    Failed(Arc<str>),
}

#[derive(Debug)]
struct State {
    items: VecDeque<Item>,
    /// The bytes of the queued `Payload::Arena` events, back to back in queue order;
    /// `arena[0]` is at absolute offset `arena_base`.
    arena: Vec<u8>,
    arena_base: u64,
    /// Queued events (gap markers not counted).
    events: usize,
    bytes: usize,
    status: Status,
    /// `Some(n)` while the writer thread sleeps: wake it once `n` events are queued.
    writer_waits_for: Option<usize>,
    /// Queued events whose caller waits for durability.
    acks: usize,
    /// The writer lingers over a batch nobody waits for: a caller who waits wakes it.
    async_lingering: bool,
}

/// The arena's capacity kept when it is handed over empty: a burst may grow it to the queue's
/// byte bound, which is given back afterwards.
const ARENA_KEEP: usize = 8 << 20;

impl State {
    /// Moves the arena bytes of the items just taken into `taken`: all of them (`until:
    /// None`), by swapping buffers, or those before absolute offset `until`.
    fn take_arena(&mut self, taken: &mut Taken, until: Option<u64>) {
        taken.bytes.clear();
        taken.base = self.arena_base;
        match until {
            None => {
                std::mem::swap(&mut taken.bytes, &mut self.arena);
                if self.arena.capacity() > ARENA_KEEP {
                    self.arena.shrink_to(ARENA_KEEP);
                }
            }
            Some(until) => {
                let n = usize::try_from(until.saturating_sub(self.arena_base))
                    .expect("within the arena");
                taken.bytes.extend_from_slice(&self.arena[..n]);
                self.arena.drain(..n);
            }
        }
        self.arena_base += taken.bytes.len() as u64;
    }
}

/// Counts kept for the shutdown report.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Refused with `Overflow` (Reject, Block timeout, DropNewest with its gap record).
    pub(crate) rejected: AtomicU64,
    /// Dropped and recorded in a gap record (DropNewest, shutdown deadline).
    pub(crate) dropped: AtomicU64,
    /// Accepted but lost because the writer failed: queued, in the batch that failed, or
    /// written but not yet fsynced when an fsync failed.
    pub(crate) lost: AtomicU64,
    /// Refused with `Failed` because the writer had already failed.
    pub(crate) refused_after_failure: AtomicU64,
}

/// The limits a batch is cut to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchLimits {
    pub(crate) events: usize,
    pub(crate) bytes: usize,
    pub(crate) linger: Duration,
    /// How long the writer waits for more events when nobody waits for the queued ones.
    pub(crate) async_linger: Duration,
}

/// Why `push` did not queue an event.
#[derive(Debug)]
pub(crate) enum PushError {
    /// No room; the event is handed back (for `Block`).
    Full(Record, Option<Ack>),
    /// Refused for good.
    Refused(RecordError),
}

/// What the writer thread gets from [`Shared::next_batch`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// `items` holds a batch to write; `closing` once shutdown has begun.
    Batch { closing: bool },
    /// The timer the writer asked for expired with nothing queued.
    Timer,
    /// Shutdown: the queue is empty.
    Drained,
    /// Shutdown: the deadline passed; `items` holds everything that was left.
    Overdue,
}

/// [`Shared::health`] values: the status without taking the lock.
const HEALTH_OPEN: u8 = 0;
const HEALTH_CLOSING: u8 = 1;
const HEALTH_FAILED: u8 = 2;

/// State shared by the handles and the writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// The status's kind, readable without the lock (checked for every request).
    health: AtomicU8,
    wake_writer: Condvar,
    /// Signalled when room frees up or the status changes (for `Block` waiters).
    pub(crate) room: Notify,
    queue_events: usize,
    queue_bytes: usize,
    pub(crate) counters: Counters,
    pub(crate) metrics: Metrics,
}

impl Shared {
    pub(crate) fn new(queue_events: usize, queue_bytes: usize, metrics: Metrics) -> Self {
        Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                arena: Vec::new(),
                arena_base: 0,
                events: 0,
                bytes: 0,
                status: Status::Open,
                writer_waits_for: None,
                acks: 0,
                async_lingering: false,
            }),
            health: AtomicU8::new(HEALTH_OPEN),
            wake_writer: Condvar::new(),
            room: Notify::new(),
            queue_events,
            queue_bytes,
            counters: Counters::default(),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer's status.
    pub(crate) fn status(&self) -> Status {
        self.lock().status.clone()
    }

    /// `Ok` while the writer takes events; `Failed` or `Closed` once it does not. Lock-free
    /// while open.
    pub(crate) fn health(&self) -> Result<(), RecordError> {
        match self.health.load(Ordering::Acquire) {
            HEALTH_OPEN => Ok(()),
            _ => match self.status() {
                Status::Open => Ok(()),
                Status::Closing { .. } => Err(RecordError::Closed),
                Status::Failed(why) => Err(RecordError::Failed(why.to_string())),
            },
        }
    }

    /// Queued events.
    pub(crate) fn queued(&self) -> usize {
        self.lock().events
    }

    /// Queues an event if there is room. With `drop_when_full`, an event that does not fit
    /// is dropped, counted into the gap marker at the queue's tail, and refused.
    pub(crate) fn push(
        &self,
        record: Record,
        ack: Option<Ack>,
        drop_when_full: bool,
    ) -> Result<(), PushError> {
        let len = record.len();
        let mut st = self.lock();
        match &st.status {
            Status::Open => {}
            Status::Closing { .. } => return Err(PushError::Refused(RecordError::Closed)),
            Status::Failed(why) => {
                let why = why.to_string();
                drop(st);
                self.counters
                    .refused_after_failure
                    .fetch_add(1, Ordering::Relaxed);
                self.metrics.refused_after_failure.increment(1);
                return Err(PushError::Refused(RecordError::Failed(why)));
            }
        }
        let fits =
            st.events == 0 || (st.events < self.queue_events && st.bytes + len <= self.queue_bytes);
        if !fits {
            if !drop_when_full {
                return Err(PushError::Full(record, ack));
            }
            let now = OffsetDateTime::now_utc();
            match st.items.back_mut() {
                Some(Item::Gap { dropped, last, .. }) => {
                    *dropped += 1;
                    *last = now;
                }
                // The queue may exceed its bound by this one marker, which later drops join.
                _ => st.items.push_back(Item::Gap {
                    dropped: 1,
                    first: now,
                    last: now,
                }),
            }
            drop(st);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.dropped.increment(1);
            return Err(PushError::Refused(RecordError::Overflow));
        }
        let waits = ack.is_some();
        let (payload, spare) = match record {
            Record::Spliced { bytes, index_at } => {
                let at = st.arena_base + st.arena.len() as u64;
                let need = st.arena.len() + len;
                if need > st.arena.capacity() {
                    // Doubling, but never past the byte bound (or this one record): the
                    // arena's memory stays within the queue's capacity.
                    let target = (2 * st.arena.capacity()).clamp(need, need.max(self.queue_bytes));
                    let extra = target - st.arena.len();
                    st.arena.reserve_exact(extra);
                }
                st.arena.extend_from_slice(&bytes);
                (Payload::Arena { at, len, index_at }, Some(bytes))
            }
            Record::Event { event, len } => (Payload::Event { event, len }, None),
        };
        st.items.push_back(Item::Event { payload, ack });
        st.events += 1;
        st.bytes += len;
        st.acks += usize::from(waits);
        let wake =
            st.writer_waits_for.is_some_and(|n| st.events >= n) || (waits && st.async_lingering);
        if wake {
            st.writer_waits_for = None;
        }
        drop(st);
        if wake {
            self.wake_writer.notify_one();
        }
        if let Some(bytes) = spare {
            recycle(bytes);
        }
        Ok(())
    }

    /// Waits for the next batch (writer thread). `timer`: return [`Next::Timer`] at this
    /// instant if nothing arrived (the next checkpoint by time).
    pub(crate) fn next_batch(
        &self,
        items: &mut Vec<Item>,
        taken: &mut Taken,
        limits: BatchLimits,
        timer: Option<Instant>,
    ) -> Next {
        let mut st = self.lock();
        let mut linger_until: Option<Instant> = None;
        let mut async_until: Option<Instant> = None;
        // Set once the writer slept on an empty queue in this call: a busy writer (events
        // already queued when it comes back) writes on without lingering.
        let mut was_idle = false;
        loop {
            let deadline = match st.status {
                Status::Closing { deadline } => Some(deadline),
                _ => None,
            };
            if !st.items.is_empty() {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    items.extend(st.items.drain(..));
                    st.events = 0;
                    st.acks = 0;
                    st.bytes = 0;
                    st.take_arena(taken, None);
                    drop(st);
                    self.after_take(0, 0);
                    return Next::Overdue;
                }
                if !limits.linger.is_zero() && deadline.is_none() && st.events < limits.events {
                    let until = *linger_until.get_or_insert_with(|| Instant::now() + limits.linger);
                    if Instant::now() < until {
                        st = self.linger(st, until, limits, false);
                        continue;
                    }
                }
                // Woken from idle and nobody waits for what is queued: gather more before
                // writing, so that a trickle of `Async` events costs one wake-up per batch,
                // not per event. A caller who waits for durability ends the wait at once.
                if was_idle
                    && !limits.async_linger.is_zero()
                    && deadline.is_none()
                    && st.acks == 0
                    && st.events < limits.events
                {
                    let until =
                        *async_until.get_or_insert_with(|| Instant::now() + limits.async_linger);
                    if Instant::now() < until {
                        st = self.linger(st, until, limits, true);
                        continue;
                    }
                }
                let (mut records, mut bytes) = (0usize, 0usize);
                let mut arena_end = None;
                while let Some(item) = st.items.front() {
                    let len = item.byte_len();
                    if records > 0 && (records >= limits.events || bytes + len > limits.bytes) {
                        break;
                    }
                    let item = st.items.pop_front().expect("front exists");
                    if let Item::Event { ack, payload } = &item {
                        st.events -= 1;
                        st.acks -= usize::from(ack.is_some());
                        if let Payload::Arena { at, len, .. } = payload {
                            arena_end = Some(at + *len as u64);
                        }
                    }
                    st.bytes -= len;
                    records += 1;
                    bytes += len;
                    items.push(item);
                }
                let all = st.items.is_empty();
                st.take_arena(taken, (!all).then_some(arena_end.unwrap_or(0)));
                let (events, bytes) = (st.events, st.bytes);
                drop(st);
                self.after_take(events, bytes);
                return Next::Batch {
                    closing: deadline.is_some(),
                };
            }
            if deadline.is_some() || matches!(st.status, Status::Failed(_)) {
                return Next::Drained;
            }
            st.writer_waits_for = Some(1);
            was_idle = true;
            match timer {
                Some(at) => {
                    let now = Instant::now();
                    if at <= now {
                        st.writer_waits_for = None;
                        return Next::Timer;
                    }
                    st = self
                        .wake_writer
                        .wait_timeout(st, at - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None => st = self.wake_writer.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
            st.writer_waits_for = None;
        }
    }

    /// Sleeps (writer thread) until `until`, or until a full batch is queued — or, with
    /// `ack_wakes`, until a caller who waits for durability queues an event.
    fn linger<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        until: Instant,
        limits: BatchLimits,
        ack_wakes: bool,
    ) -> MutexGuard<'a, State> {
        st.writer_waits_for = Some(limits.events.min(self.queue_events));
        st.async_lingering = ack_wakes;
        let mut st = self
            .wake_writer
            .wait_timeout(st, until.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| e.into_inner())
            .0;
        st.writer_waits_for = None;
        st.async_lingering = false;
        st
    }

    fn after_take(&self, events: usize, bytes: usize) {
        self.metrics.queue_depth.set(events as f64);
        self.metrics.queue_bytes.set(bytes as f64);
        self.room.notify_waiters();
    }

    /// Begins shutdown: no new events; the writer drains until `deadline`. Returns `false`
    /// if the writer had already failed or was closing.
    pub(crate) fn close(&self, deadline: Instant) -> bool {
        let mut st = self.lock();
        let open = matches!(st.status, Status::Open);
        if open {
            st.status = Status::Closing { deadline };
            self.health.store(HEALTH_CLOSING, Ordering::Release);
        }
        drop(st);
        self.wake_writer.notify_one();
        self.room.notify_waiters();
        open
    }

    /// Enters the failed state and hands back everything still queued.
    pub(crate) fn fail(&self, why: Arc<str>) -> Vec<Item> {
        let mut st = self.lock();
        st.status = Status::Failed(why);
        self.health.store(HEALTH_FAILED, Ordering::Release);
        let items: Vec<Item> = st.items.drain(..).collect();
        st.events = 0;
        st.acks = 0;
        st.bytes = 0;
        let arena = st.arena.len() as u64;
        st.arena.clear();
        st.arena_base += arena;
        drop(st);
        self.metrics.failed.set(1.0);
        self.after_take(0, 0);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veritrail_core::event::Actor;

    fn sample(custom: &str) -> AuditEvent {
        let actor = Actor {
            sub: Some(custom.into()),
            ..Actor::default()
        };
        AuditEvent::http("POST", "/orders")
            .route("/orders")
            .actor(actor)
            .action(custom)
            .status(201)
            .build()
    }

    #[test]
    fn splice_writes_what_write_json_writes() {
        // Caller text that looks like the index field must not be mistaken for it.
        for text in [
            "plain",
            "\"index\":0,",
            "{\"index\":0,\"x\":1}",
            "index\\\":0,",
        ] {
            let event = sample(text);
            let record = Record::new(event.clone());
            assert!(matches!(record, Record::Spliced { .. }), "index located");
            for index in [0, 1, 9, 10, 99, 12_345, u64::MAX / 3, u64::MAX] {
                let mut spliced = Vec::new();
                record.write(index, &mut spliced);
                let mut direct = Vec::new();
                event.write_json(index, &mut direct);
                assert_eq!(
                    String::from_utf8(spliced).unwrap(),
                    String::from_utf8(direct).unwrap()
                );
            }
        }
    }

    #[test]
    fn events_without_a_located_index_are_serialized_by_the_writer() {
        let event = sample("fallback");
        let mut direct = Vec::new();
        event.write_json(7, &mut direct);
        let record = Record::Event {
            len: direct.len(),
            event: Box::new(event),
        };
        let mut out = Vec::new();
        record.write(7, &mut out);
        assert_eq!(out, direct);
    }

    #[test]
    fn batches_cut_by_the_limits_take_their_own_arena_bytes() {
        let shared = Shared::new(100, 1 << 20, Metrics::new("test"));
        let events: Vec<AuditEvent> = (0..7).map(|i| sample(&format!("event-{i}"))).collect();
        for event in &events {
            shared
                .push(Record::new(event.clone()), None, false)
                .unwrap();
        }
        let limits = BatchLimits {
            events: 3,
            bytes: usize::MAX,
            linger: Duration::ZERO,
            async_linger: Duration::ZERO,
        };
        let (mut items, mut taken, mut index) = (Vec::new(), Taken::default(), 0u64);
        for expected in [3, 3, 1] {
            let next = shared.next_batch(&mut items, &mut taken, limits, None);
            assert_eq!(next, Next::Batch { closing: false });
            assert_eq!(items.len(), expected);
            for item in items.drain(..) {
                let Item::Event { payload, .. } = item else {
                    panic!("an event")
                };
                let (mut spliced, mut direct) = (Vec::new(), Vec::new());
                payload.write(&taken, index, &mut spliced);
                events[index as usize].write_json(index, &mut direct);
                assert_eq!(spliced, direct, "event {index}");
                index += 1;
            }
        }
        assert_eq!(shared.queued(), 0);
    }

    #[test]
    fn the_arena_never_grows_past_the_byte_bound() {
        let bound = 20_000;
        let shared = Shared::new(1_000, bound, Metrics::new("test"));
        let mut pushed = 0;
        while shared
            .push(Record::new(sample(&format!("e{pushed}"))), None, false)
            .is_ok()
        {
            pushed += 1;
        }
        let st = shared.lock();
        assert!(pushed > 10, "{pushed} events fit");
        assert!(st.arena.len() <= bound);
        assert!(
            st.arena.capacity() <= bound,
            "capacity {}",
            st.arena.capacity()
        );
    }

    #[test]
    fn decimal_matches_display() {
        for n in [0u64, 5, 10, 101, 4_294_967_296, u64::MAX] {
            let mut out = Vec::new();
            write_decimal(n, &mut out);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
