//! veritrail over NATS JetStream: many replicas, one log.
//!
//! A service that runs as many replicas wants one audit trail. Each replica's writer
//! publishes its events to a JetStream stream through [`NatsSink`] — a replica holds no log
//! and no signing key — and one [`sequencer`] integrates the stream, in order, into one
//! verifiable log, signing its checkpoints. Sequencers for one origin elect the active one
//! with a lease in a JetStream key-value bucket; a standby takes over when the active one
//! dies. JetStream is the replicated, durable queue; the log is the single source of truth.
//!
//! ```text
//!  replica A ─┐  publish (Nats-Msg-Id = event id)       ┌─ sequencer (active: holds the lease)
//!  replica B ─┼─► JetStream stream  ──► durable pull ───┤    append, fsync, sign, then ack
//!  replica C ─┘   veritrail.<origin>.events  consumer    └─ sequencer (standby) ─► one log
//! ```
//!
//! - Locations are written `nats://HOST:PORT/STREAM?origin=ORIGIN` ([`NatsLocation`]).
//! - The stream's production settings: [`StreamSettings`], created by [`ensure_stream`].
//! - What a replica publishes, and how the sequencer gives each event its log index:
//!   [`record`].
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use veritrail_core::event::AuditEvent;
//! use veritrail_core::recorder::{Durability, Recorder};
//! use veritrail_nats::{NatsLocation, NatsSink, SinkOptions};
//! use veritrail_writer::{Writer, WriterConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let at: NatsLocation = "nats://127.0.0.1:4222/AUDIT?origin=example.com/orders".parse()?;
//! let sink = NatsSink::connect(&at, SinkOptions::default()).await?;
//! let writer = Writer::start(sink, WriterConfig::default())?;
//! let event = AuditEvent::http("DELETE", "/orders/7").status(204).build();
//! // Durable: JetStream has acknowledged the event (it is in the stream at its replication
//! // factor); it is in the log once the sequencer has integrated it.
//! writer.handle().record(event, Durability::Durable).await?;
//! writer.shutdown(Instant::now() + Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```

pub mod lease;
mod location;
pub mod reconcile;
pub mod record;
pub mod sequencer;
pub mod sink;
mod stream;

/// The NATS client this crate uses (to create streams, read them, or share a connection).
pub use async_nats;
pub use location::{LocationError, NatsLocation, checkpoints_subject, events_subject};
pub use sequencer::{Integrating, IntegrationLog, Sequencer, SequencerOptions, SequencerReport};
pub use sink::{NatsSink, SinkOptions};
pub use stream::{DEFAULT_LEASE_TTL, StreamSettings, ensure_stream};

use std::time::Duration;

/// What went wrong talking to NATS or integrating the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The NATS server could not be reached or refused a request.
    #[error("NATS: {0}")]
    Nats(String),
    /// The log could not be opened, written or signed.
    #[error("log: {0}")]
    Log(#[from] veritrail_log::store::LogError),
    /// The log or the stream is not in a state the sequencer can continue from.
    #[error("{0}")]
    State(String),
}

impl Error {
    fn nats(e: impl std::fmt::Display) -> Self {
        Error::Nats(e.to_string())
    }
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Connects to the server of `at`, reconnecting for ever (every 100 ms at first, then at
/// most every second) when the connection drops.
pub async fn connect(at: &NatsLocation, name: &str) -> Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(1000))
        });
    if let Some((user, password)) = at.credentials() {
        options = options.user_and_password(user.to_owned(), password.to_owned());
    }
    options
        .connect(at.server())
        .await
        .map_err(|e| Error::Nats(format!("cannot connect to {}: {e}", at.server())))
}
