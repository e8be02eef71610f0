//! The `Recorder` trait: where the request engine hands audit events.
//!
//! CONTRACT (owned by the event helper; the writer implements it, the engine calls it):
//!
//! ```ignore
//! /// How long the caller waits for its event (chosen per route).
//! #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
//! #[serde(rename_all = "kebab-case")]
//! pub enum Durability { #[default] Async, Durable, WriteAhead }
//!
//! /// What the recorder did with an event.
//! #[derive(Clone, Copy, Debug, PartialEq, Eq)]
//! pub struct Receipt { /// the log index, when known (always for Durable/WriteAhead)
//!     pub index: Option<u64> }
//!
//! #[derive(Debug, thiserror::Error)]
//! pub enum RecordError { /// queue full and the overflow policy refused the event
//!     Overflow, /// the writer failed (I/O or fsync error); nothing more is recorded
//!     Failed(String), /// the writer is shut down
//!     Closed }
//!
//! pub type RecordFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Receipt, RecordError>> + Send + 'static>>;
//!
//! /// Async: resolves when the event is accepted into the queue (or refused by the overflow
//! /// policy). Durable / WriteAhead: resolves when the batch holding it is fsynced.
//! pub trait Recorder: Send + Sync + 'static {
//!     fn record(&self, event: crate::event::AuditEvent, durability: Durability) -> RecordFuture;
//! }
//! impl<R: Recorder + ?Sized> Recorder for std::sync::Arc<R> { .. }
//! ```
