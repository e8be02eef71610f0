//! [`NatsSink`]: a writer sink that publishes each event to a JetStream stream.
//!
//! For a replica that holds no log and no key: the writer batches as usual, and each batch is
//! published to the stream's events subject, one message per record, with `Nats-Msg-Id` =
//! the event id, so that a retried publish is stored once (within the stream's duplicate
//! window; the sequencer also skips ids it has integrated).
//!
//! - `Durable` / `WriteAhead` callers are acknowledged when JetStream has acknowledged their
//!   event: it is then in the stream at the stream's replication factor (a majority of its
//!   replicas hold it), **not yet in the tree** — the sequencer integrates it, usually within
//!   a checkpoint interval. Their receipt's index is the provisional one ([`crate::record`]).
//! - `Async` events are published as their batch is written and their acknowledgements are
//!   awaited within the writer's `async_sync_interval`, without anyone waiting.
//! - While the broker is unreachable the sink keeps retrying (republishing what was not
//!   acknowledged, with the same message id), so, as for any sink whose store can go away
//!   (see [`veritrail_writer::sink`]): `Durable` callers get `TimedOut` after
//!   [`SinkOptions::durable_timeout`], `Async` events wait in the writer's bounded queue under
//!   its overflow policy (`gap` records for what it drops), and publishing resumes on its own
//!   when the broker is back (the client reconnects by itself).
//! - Errors that retrying cannot fix end the writer: an event larger than the server's
//!   maximum payload, or the subject captured by another stream than the one configured.
//!
//! The sink runs its own small tokio runtime (one thread) for the NATS client, so that it
//! can be called from the writer's thread and created from sync or async code alike.

use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self};
use bytes::Bytes;
use tokio::runtime::Runtime;
use veritrail_writer::{Batch, Sink, SinkError};

use crate::location::NatsLocation;
use crate::record::Layout;
use crate::{Error, Result};

/// How a [`NatsSink`] publishes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SinkOptions {
    /// How long a `Durable` caller waits for JetStream's acknowledgement before it is told
    /// `TimedOut` (the writer's own [`durable_timeout`](veritrail_writer::WriterConfig::durable_timeout)
    /// overrides it). Default 5 s.
    pub durable_timeout: Duration,
    /// How long one publish waits for its acknowledgement before it is sent again.
    /// Default 2 s.
    pub ack_timeout: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            durable_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(2),
        }
    }
}

impl SinkOptions {
    /// Sets [`durable_timeout`](Self::durable_timeout).
    #[must_use]
    pub fn durable_timeout(mut self, durable_timeout: Duration) -> Self {
        self.durable_timeout = durable_timeout;
        self
    }

    /// Sets [`ack_timeout`](Self::ack_timeout).
    #[must_use]
    pub fn ack_timeout(mut self, ack_timeout: Duration) -> Self {
        self.ack_timeout = ack_timeout;
        self
    }
}

/// One record handed to the sink and not yet acknowledged by JetStream.
struct Unconfirmed {
    id: String,
    payload: Bytes,
    ack: Option<PublishAckFuture>,
}

/// The writer sink for a replica: see the [module docs](self).
pub struct NatsSink {
    runtime: Option<Runtime>,
    js: jetstream::Context,
    origin: String,
    subject: String,
    stream: String,
    options: SinkOptions,
    /// Records published since the writer started: the next provisional index.
    published: u64,
    unconfirmed: Vec<Unconfirmed>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("origin", &self.origin)
            .field("subject", &self.subject)
            .field("stream", &self.stream)
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("veritrail-nats-sink")
        .enable_all()
        .build()
        .map_err(|e| Error::State(format!("cannot start the NATS client's runtime: {e}")))
}

impl NatsSink {
    /// Connects to the server of `at` and checks that the stream `at.stream()` exists and
    /// captures the events subject (create it with `veritrail sequencer --init`).
    pub async fn connect(at: &NatsLocation, options: SinkOptions) -> Result<NatsSink> {
        let runtime = runtime()?;
        let connecting = runtime.spawn(connected(at.clone(), options.clone()));
        let joined = connecting.await;
        let js = match joined {
            Ok(result) => result,
            Err(e) => Err(Error::State(format!("connecting to NATS panicked: {e}"))),
        };
        match js {
            Ok(js) => Ok(NatsSink::new(runtime, js, at, options)),
            Err(e) => {
                runtime.shutdown_background();
                Err(e)
            }
        }
    }

    /// [`connect`](Self::connect), blocking the calling thread (from sync code, or briefly
    /// from inside another runtime: the connection is made on the sink's own).
    pub fn connect_blocking(at: &NatsLocation, options: SinkOptions) -> Result<NatsSink> {
        let runtime = runtime()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn({
            let (at, options) = (at.clone(), options.clone());
            async move {
                let _ = tx.send(connected(at, options).await);
            }
        });
        let js = rx
            .recv()
            .map_err(|_| Error::State("connecting to NATS panicked".into()))
            .and_then(|r| r);
        match js {
            Ok(js) => Ok(NatsSink::new(runtime, js, at, options)),
            Err(e) => {
                runtime.shutdown_background();
                Err(e)
            }
        }
    }

    fn new(
        runtime: Runtime,
        js: jetstream::Context,
        at: &NatsLocation,
        options: SinkOptions,
    ) -> NatsSink {
        NatsSink {
            runtime: Some(runtime),
            js,
            origin: at.origin().to_owned(),
            subject: at.events_subject(),
            stream: at.stream().to_owned(),
            options,
            published: 0,
            unconfirmed: Vec::new(),
        }
    }

    /// Runs `work` on the sink's runtime and waits for it, from any thread (the writer's,
    /// or — for the `start` record — a caller inside another runtime).
    fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, SinkError> {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the sink");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv()
            .map_err(|_| SinkError::Other("the NATS client's runtime stopped".into()))
    }
}

impl Drop for NatsSink {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so the sink may be dropped anywhere (even inside async code).
            runtime.shutdown_background();
        }
    }
}

/// Connects and checks the stream.
async fn connected(at: NatsLocation, options: SinkOptions) -> Result<jetstream::Context> {
    let client = crate::connect(&at, "veritrail-sink").await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(options.ack_timeout)
        .max_ack_inflight(1 << 20)
        .build(client);
    let subject = at.events_subject();
    match js.stream_by_subject(subject.clone()).await {
        Ok(name) if name == at.stream() => Ok(js),
        Ok(other) => Err(Error::State(format!(
            "subject {subject} is captured by stream {other}, not {}",
            at.stream()
        ))),
        Err(e) => Err(Error::State(format!(
            "no JetStream stream {} captures {subject} ({e}); create it with `veritrail sequencer --from {at} --init …`",
            at.stream()
        ))),
    }
}

impl Sink for NatsSink {
    fn origin(&self) -> &str {
        &self.origin
    }

    /// The provisional index of the next record: how many this sink has published.
    fn size(&self) -> u64 {
        self.published
    }

    fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let mut all = Vec::with_capacity(batch.byte_len());
        for record in batch.records() {
            all.extend_from_slice(record);
        }
        let bytes = Bytes::from(all);
        let mut start = 0;
        let mut records = Vec::with_capacity(batch.len());
        for record in batch.records() {
            let layout = Layout::of(record).ok_or_else(|| {
                SinkError::Other(
                    "a record is not in the writer's layout (`v`, `id`, `index` first)".into(),
                )
            })?;
            let id = String::from_utf8_lossy(layout.id(record)).into_owned();
            records.push((id, bytes.slice(start..start + record.len())));
            start += record.len();
        }
        let (js, subject) = (self.js.clone(), self.subject.clone());
        let published = self.run(async move {
            let mut out = Vec::with_capacity(records.len());
            for (id, payload) in records {
                let ack = publish(&js, &subject, &id, payload.clone()).await?;
                out.push(Unconfirmed { id, payload, ack });
            }
            Ok::<_, SinkError>(out)
        })??;
        self.unconfirmed.extend(published);
        self.published += batch.len() as u64;
        Ok(())
    }

    /// Returns once JetStream has acknowledged every record appended so far, republishing
    /// (same message ids) what was not acknowledged, for as long as it takes.
    fn commit(&mut self) -> Result<(), SinkError> {
        if self.unconfirmed.is_empty() {
            return Ok(());
        }
        let unconfirmed = std::mem::take(&mut self.unconfirmed);
        let (js, subject, stream) = (self.js.clone(), self.subject.clone(), self.stream.clone());
        self.run(confirm(js, subject, stream, unconfirmed))?
    }

    fn durable_timeout(&self) -> Option<Duration> {
        Some(self.options.durable_timeout)
    }
}

/// Publishes one record; `None` when it could not be handed to the client (retried later).
async fn publish(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: Bytes,
) -> Result<Option<PublishAckFuture>, SinkError> {
    let message = PublishMessage::build().payload(payload).message_id(id);
    match js.send_publish(subject.to_owned(), message).await {
        Ok(ack) => Ok(Some(ack)),
        Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => Err(SinkError::Other(
            format!("event {id} is larger than the NATS server's maximum payload: {e}").into(),
        )),
        Err(_) => Ok(None),
    }
}

/// Waits for every acknowledgement; republishes what failed, backing off up to a second
/// between rounds, until everything is acknowledged.
async fn confirm(
    js: jetstream::Context,
    subject: String,
    stream: String,
    mut todo: Vec<Unconfirmed>,
) -> Result<(), SinkError> {
    let mut round: u32 = 0;
    loop {
        for record in todo.iter_mut().filter(|r| r.ack.is_none()) {
            record.ack = publish(&js, &subject, &record.id, record.payload.clone()).await?;
        }
        let acks = todo.iter_mut().map(|r| r.ack.take());
        let results = futures_util::future::join_all(acks.map(|ack| async move {
            match ack {
                Some(ack) => Some(ack.await),
                None => None,
            }
        }))
        .await;
        let mut failed = Vec::new();
        for (record, result) in todo.into_iter().zip(results) {
            match result {
                Some(Ok(ack)) if ack.stream == stream => {}
                Some(Ok(ack)) => {
                    return Err(SinkError::Other(
                        format!(
                            "event {} was stored by stream {}, not {stream}: two streams capture {subject}",
                            record.id, ack.stream
                        )
                        .into(),
                    ));
                }
                Some(Err(_)) | None => failed.push(record),
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        todo = failed;
        round = round.saturating_add(1);
        tokio::time::sleep(Duration::from_millis((50 * u64::from(round)).min(1000))).await;
    }
}
