//! The `Recorder` trait: where the request engine hands audit events.
//!
//! The writer (`veritrail-writer`) implements [`Recorder`]; the request engine calls it with the
//! durability the route asks for. [`MemoryRecorder`] is a simple in-memory implementation for
//! tests and examples: it keeps nothing on disk and proves nothing.
//!
//! ```
//! use veritrail_core::event::{AuditEvent, Outcome};
//! use veritrail_core::recorder::{Durability, MemoryRecorder, Recorder};
//!
//! # futures_lite_block_on(async {
//! let recorder = MemoryRecorder::new();
//! let event = AuditEvent::http("GET", "/orders/7").status(200).build();
//! let receipt = recorder.record(event, Durability::Durable).await.unwrap();
//! assert_eq!(receipt.index, Some(0));
//! assert_eq!(recorder.events()[0].as_http().unwrap().outcome, Some(Outcome::Success));
//! # });
//! # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     // MemoryRecorder's futures are always ready: one poll completes them.
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     match f.as_mut().poll(&mut cx) { std::task::Poll::Ready(v) => v, _ => unreachable!() }
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::event::AuditEvent;

/// How long the caller waits for its event (chosen per route).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Fire and forget: the caller waits only until the event is queued.
    #[default]
    Async,
    /// The caller waits until the batch holding its event is fsynced.
    Durable,
    /// An intent event is made durable before the action runs; if it cannot be, the action
    /// must not happen.
    WriteAhead,
}

/// What the recorder did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The log index, when known (always for `Durable` / `WriteAhead`).
    pub index: Option<u64>,
}

/// Why an event was not recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The queue is full and the overflow policy refused the event.
    #[error(
        "audit queue full: the overflow policy refused the event (retry later or raise the queue capacity)"
    )]
    Overflow,
    /// The writer failed (I/O or fsync error); nothing more is recorded.
    #[error("audit writer failed: {0}; nothing more can be recorded until it is restarted")]
    Failed(String),
    /// The writer is shut down.
    #[error("audit writer is shut down")]
    Closed,
    /// The log's store (a database or a broker over the network) did not confirm the event
    /// within the writer's bound on waiting; the writer keeps retrying, so the event may
    /// still be recorded once the store is back. Treat the request as not audited.
    #[error(
        "the audit log did not confirm the event within {0:?} (its store is unreachable; the writer keeps retrying)"
    )]
    TimedOut(std::time::Duration),
}

/// The future a [`Recorder`] returns.
pub type RecordFuture =
    Pin<Box<dyn Future<Output = Result<Receipt, RecordError>> + Send + 'static>>;

/// Where audit events go.
///
/// `Async`: the future resolves when the event is accepted into the queue (or refused by the
/// overflow policy). `Durable` / `WriteAhead`: it resolves when the batch holding the event is
/// fsynced. The trait is object-safe: the engine holds an `Arc<dyn Recorder>`.
pub trait Recorder: Send + Sync + 'static {
    /// Hands one event over with the given durability.
    fn record(&self, event: AuditEvent, durability: Durability) -> RecordFuture;

    /// Hands one `Async` event over without waiting, for callers that cannot wait (a request
    /// dropped unfinished records its `cancelled` event from `Drop`). The event is either
    /// queued, or — when there is no room — counted as lost where the log shows it (the writer
    /// counts it into a `gap` record, whatever its overflow policy); `Err` says which refusal
    /// it was. It never blocks.
    ///
    /// The default polls [`record`](Self::record) once: enough for recorders whose `Async`
    /// answer is immediate. A recorder whose `Async` future can wait (a bounded queue that
    /// blocks for room) must override it, or the event is lost without a trace.
    fn try_record(&self, event: AuditEvent) -> Result<Receipt, RecordError> {
        let mut future = self.record(event, Durability::Async);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => Err(RecordError::Overflow),
        }
    }

    /// Hands one event over as [`record`](Self::record) does, but answers at once when the
    /// answer needs no waiting (`Ok`: an `Async` event queued or refused), without a future
    /// to allocate; `Err` is the future to wait on. The default always returns the future of
    /// `record`.
    fn record_now(
        &self,
        event: AuditEvent,
        durability: Durability,
    ) -> Result<Result<Receipt, RecordError>, RecordFuture> {
        Err(self.record(event, durability))
    }

    /// Whether the recorder can still take events: `Err(Failed)` once it has failed for good
    /// (an I/O or fsync error), `Err(Closed)` once it is shut down. A full queue is not a
    /// health problem (it is answered per event by the overflow policy). The engine checks it
    /// before running a request: a request whose event cannot be recorded is refused (503)
    /// rather than run unaudited. Called for every request: keep it cheap. The default is
    /// always `Ok`.
    fn health(&self) -> Result<(), RecordError> {
        Ok(())
    }
}

impl<R: Recorder + ?Sized> Recorder for Arc<R> {
    fn record(&self, event: AuditEvent, durability: Durability) -> RecordFuture {
        (**self).record(event, durability)
    }
    fn try_record(&self, event: AuditEvent) -> Result<Receipt, RecordError> {
        (**self).try_record(event)
    }
    fn record_now(
        &self,
        event: AuditEvent,
        durability: Durability,
    ) -> Result<Result<Receipt, RecordError>, RecordFuture> {
        (**self).record_now(event, durability)
    }
    fn health(&self) -> Result<(), RecordError> {
        (**self).health()
    }
}

/// How a [`MemoryRecorder`] answers, so that tests can exercise refusal paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MemoryRecorderState {
    /// Records every event.
    #[default]
    Open,
    /// Refuses every event with [`RecordError::Overflow`].
    Overflow,
    /// Refuses every event with [`RecordError::Failed`] and this message.
    Failed(String),
    /// Refuses every event with [`RecordError::Closed`].
    Closed,
}

#[derive(Debug, Default)]
struct MemoryLog {
    state: MemoryRecorderState,
    events: Vec<(AuditEvent, Durability)>,
}

/// An in-memory [`Recorder`] for tests and examples.
///
/// Assigns consecutive indexes from 0, keeps every event with the durability it was recorded
/// with, and answers at once. It writes nothing to disk, hashes nothing and signs nothing: use
/// `veritrail-writer` for a real log. Cloning shares the same store.
#[derive(Clone, Debug, Default)]
pub struct MemoryRecorder {
    log: Arc<Mutex<MemoryLog>>,
}

impl MemoryRecorder {
    /// An empty, open recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryLog> {
        // A panic while holding the lock cannot leave the Vec half-updated.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes how later calls to [`Recorder::record`] answer.
    pub fn set_state(&self, state: MemoryRecorderState) {
        self.lock().state = state;
    }

    /// The recorded events, in order, each with its `index` set.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.lock().events.iter().map(|(e, _)| e.clone()).collect()
    }

    /// The recorded events with the durability each was recorded with.
    pub fn entries(&self) -> Vec<(AuditEvent, Durability)> {
        self.lock().events.clone()
    }

    /// The recorded events as the log would store them: one compact JSON object each.
    pub fn records(&self) -> Vec<Vec<u8>> {
        self.lock()
            .events
            .iter()
            .map(|(e, _)| {
                let mut out = Vec::new();
                e.write_json(e.index.unwrap_or_default(), &mut out);
                out
            })
            .collect()
    }

    /// How many events were recorded.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether no event was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Recorder for MemoryRecorder {
    fn record(&self, mut event: AuditEvent, durability: Durability) -> RecordFuture {
        let mut log = self.lock();
        let result = match &log.state {
            MemoryRecorderState::Open => {
                let index = log.events.len() as u64;
                event.index = Some(index);
                log.events.push((event, durability));
                Ok(Receipt { index: Some(index) })
            }
            MemoryRecorderState::Overflow => Err(RecordError::Overflow),
            MemoryRecorderState::Failed(msg) => Err(RecordError::Failed(msg.clone())),
            MemoryRecorderState::Closed => Err(RecordError::Closed),
        };
        Box::pin(std::future::ready(result))
    }

    /// `Failed` and `Closed` as set with [`set_state`](MemoryRecorder::set_state); `Ok`
    /// otherwise (`Overflow` is per event, not a health problem).
    fn health(&self) -> Result<(), RecordError> {
        match &self.lock().state {
            MemoryRecorderState::Failed(msg) => Err(RecordError::Failed(msg.clone())),
            MemoryRecorderState::Closed => Err(RecordError::Closed),
            MemoryRecorderState::Open | MemoryRecorderState::Overflow => Ok(()),
        }
    }
}
