//! The sequencer: integrates a JetStream stream, in order, into one signed log.
//!
//! # What it does
//!
//! One sequencer per origin is *active* — it holds the lease ([`lease`](crate::lease)) —
//! and any number wait as standbys. The active one:
//!
//! 1. opens the log (only once it holds the lease: a standby holds nothing), writes a `start`
//!    record (and a `recovered` record when the previous sequencer was killed, or the log
//!    cut a torn tail), and notes the event ids of the records written since the
//!    next-to-last checkpoint (see *Exactly once*);
//! 2. reads the sequencers' *position* in the stream — the stream sequence up to which every
//!    message has been taken into a signed checkpoint — and creates a new durable pull
//!    consumer that starts right after it (see *The position*);
//! 3. takes the messages in stream order; gives each event the next log index — the record
//!    the tree commits to is the published record with its provisional index replaced
//!    ([`record`](crate::record)) — and appends it;
//! 4. every `checkpoint_every` events or `checkpoint_interval` (whichever comes first):
//!    syncs the log, checks it still holds the lease, signs a checkpoint, publishes it to
//!    `veritrail.<origin>.checkpoints`, and only then acknowledges what it took: one
//!    cumulative acknowledgement (`AckPolicy::All`) of the last message taken, whose
//!    confirmation by the server it waits for before integrating more.
//!
//! A message that is not a record in the writer's layout, whose `Nats-Msg-Id` is not its
//! event id, or that is not JSON, is not integrated: it is counted in a `gap` record
//! (`reason: "malformed_message"`), so the log says that something was refused.
//!
//! # The position
//!
//! The consumer's acknowledgement floor is the position: the sequencer acknowledges only
//! after signing, and cumulatively, so every message up to the floor is in the log under a
//! signed checkpoint (integrated, refused into a `gap` record, or skipped as a duplicate).
//! One acknowledgement per checkpoint instead of one per message (`AckPolicy::Explicit`,
//! until 2026-12-05) is what lets the sequencer keep up with the stream; a cumulative
//! acknowledgement is only sound because nothing is ever taken out of stream order:
//!
//! - *A new consumer each term.* With one long-lived consumer, the messages a dead sequencer
//!   had pulled come back only after `ack_wait`, after newer ones, and a cumulative
//!   acknowledgement of a newer one would acknowledge them unseen. So each term creates a
//!   fresh consumer starting at the position + 1, under the name of
//!   `consumer_names` not holding the position, and deletes the old one only then: one of
//!   the two always holds the position, and a crash in between leaves two whose highest
//!   floor is still right.
//! - *No gap.* Each message delivered must carry the consumer sequence after the last one
//!   taken; a delivery lost on the way (a connection that dropped) shows as a jump. The
//!   sequencer then signs and acknowledges what it took, and replaces the consumer by one
//!   starting after the position; it does the same when the consumer reports trouble
//!   (missed heartbeats, deleted). It never skips ahead.
//! - *Redeliveries.* A message delivered again (its acknowledgement came after `ack_wait`)
//!   is at or before the position, and is passed over.
//!
//! `veritrail reconcile` reads the same position: an event in the stream after it and not in
//! the log is pending, one at or before it and not in the log is missing.
//!
//! # Exactly once
//!
//! A crash before an event is integrated and signed loses nothing: it is after the position,
//! and the next term's consumer delivers it again. A crash after it was integrated but before
//! the acknowledgement was confirmed must not integrate it twice. Since the sequencer waits
//! for the confirmation of each checkpoint's acknowledgement before integrating anything
//! after it, the only events after the position that can already be in the log are those
//! written after the next-to-last checkpoint; the sequencer reads their ids from the log when
//! it takes over (and at least those of the last `recent_ids` records, which also covers a
//! chain of sequencers each killed before its first acknowledgement) and skips them whenever
//! they come back during its term. It also remembers the ids of the last `recent_ids`
//! records integrated, which catches a replica's retried publish that came after the
//! stream's duplicate window (two messages, one event id). The log is the state a new
//! sequencer resumes from; the consumer's floor only says where in the stream to start
//! reading, never later than the log.
//!
//! # Never two histories
//!
//! The log refuses to sign a checkpoint that does not extend the last one signed. The lease
//! keeps a second sequencer from writing at all (and a directory log is also locked by its
//! writer); a sequencer that cannot renew its lease stops before it signs or acknowledges
//! anything more and goes back to waiting.
//!
//! # Failover time
//!
//! A standby takes over when the lease expires (`lease_ttl` after the last renewal, default
//! 2 s), plus the time to open the log, read the ids since the next-to-last checkpoint and
//! create its consumer: about 2–3 s, measured in BENCHMARKS.md. Its consumer delivers at
//! once everything after the position, including what the dead sequencer had pulled and not
//! signed. A clean stop (SIGTERM) releases the lease, and a standby takes over at once.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, consumer, message::Message};
use futures_util::StreamExt;
use time::OffsetDateTime;
use veritrail_core::event::AuditEvent;
use veritrail_log::Checkpoint;
use veritrail_log::source::LogSource;
use veritrail_writer::{Batch, FileSink, Sink, SinkError};

use crate::lease::Lease;
use crate::location::NatsLocation;
use crate::record::{EventId, Layout};
use crate::stream::{StreamSettings, lease_bucket};
use crate::{Error, Result};

/// The `gap` reason for messages the sequencer refused to integrate.
pub const GAP_MALFORMED: &str = "malformed_message";

/// A log the sequencer can integrate into: a writer [`Sink`] (append, sync, sign) that can
/// also read back its recent event ids and checkpoint sizes. Implemented by [`FileSink`],
/// and by [`Integrating`] for any other store (PostgreSQL).
pub trait IntegrationLog: Sink {
    /// The event ids of the records from index `from` to the end, in order (records that are
    /// not in the writer's layout are left out).
    fn ids_from(&self, from: u64) -> Result<Vec<EventId>>;

    /// The sizes of the last `n` checkpoints signed, oldest first.
    fn recent_checkpoint_sizes(&self, n: usize) -> Result<Vec<u64>>;
}

impl IntegrationLog for FileSink {
    fn ids_from(&self, from: u64) -> Result<Vec<EventId>> {
        ids_in(self.log(), from)
    }

    fn recent_checkpoint_sizes(&self, n: usize) -> Result<Vec<u64>> {
        checkpoint_sizes(self.log(), n)
    }
}

/// A writer sink and a read-only view of the same log (opened after the sink, so that it
/// sees what the sink recovered): how a store other than the directory log — PostgreSQL's
/// `PgSink` and `PgStore` — becomes an [`IntegrationLog`].
pub struct Integrating<S, R> {
    /// Writes the log.
    pub sink: S,
    /// Reads it.
    pub source: R,
}

impl<S: Sink, R: LogSource + Send + 'static> Sink for Integrating<S, R> {
    fn origin(&self) -> &str {
        self.sink.origin()
    }
    fn size(&self) -> u64 {
        self.sink.size()
    }
    fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        self.sink.append(batch)
    }
    fn commit(&mut self) -> Result<(), SinkError> {
        self.sink.commit()
    }
    fn checkpoint(&mut self) -> Result<Option<String>, SinkError> {
        self.sink.checkpoint()
    }
    fn durable_timeout(&self) -> Option<Duration> {
        self.sink.durable_timeout()
    }
    fn recovered(&self) -> Option<veritrail_core::event::RecoveredRecord> {
        self.sink.recovered()
    }
}

impl<S: Sink, R: LogSource + Send + 'static> IntegrationLog for Integrating<S, R> {
    fn ids_from(&self, from: u64) -> Result<Vec<EventId>> {
        ids_in(&self.source, from)
    }

    fn recent_checkpoint_sizes(&self, n: usize) -> Result<Vec<u64>> {
        checkpoint_sizes(&self.source, n)
    }
}

fn ids_in<L: LogSource + ?Sized>(log: &L, from: u64) -> Result<Vec<EventId>> {
    let mut ids = Vec::new();
    for record in log.records(from) {
        let record = record.map_err(|e| Error::State(format!("reading the log: {e}")))?;
        if let Some(layout) = Layout::of(&record.record) {
            ids.push(*layout.id(&record.record));
        }
    }
    Ok(ids)
}

fn checkpoint_sizes<L: LogSource + ?Sized>(log: &L, n: usize) -> Result<Vec<u64>> {
    let history = log
        .checkpoint_history()
        .map_err(|e| Error::State(format!("reading the log's checkpoints: {e}")))?;
    history[history.len().saturating_sub(n)..]
        .iter()
        .map(|note| {
            Checkpoint::open(note, log.verifier())
                .map(|c| c.size)
                .map_err(|e| Error::State(format!("a checkpoint of the log does not open: {e}")))
        })
        .collect()
}

/// Opens the log when a sequencer becomes active.
pub type LogOpener = Box<dyn FnMut() -> Result<Box<dyn IntegrationLog>> + Send>;

/// How the sequencer runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SequencerOptions {
    /// Sign a checkpoint after this many integrated records (default 100,000).
    pub checkpoint_every: u64,
    /// …and at least this often while events arrive (default 200 ms).
    pub checkpoint_interval: Duration,
    /// Messages pulled per request (default 8,192).
    pub pull_batch: usize,
    /// How long the server waits for a checkpoint's acknowledgement before delivering its
    /// messages again (default 30 s; the sequencer passes over such redeliveries). Keep it
    /// well above the time a checkpoint takes.
    pub ack_wait: Duration,
    /// How often a standby tries to take the lease (default 100 ms).
    pub lease_poll: Duration,
    /// Ids of the last this-many records remembered to skip late duplicates (default 524,288;
    /// about 30 MB).
    pub recent_ids: usize,
    /// Who this sequencer is, written in the lease (default `host:pid`).
    pub holder: String,
    /// The stream and lease-bucket settings (for the lease TTL, and to create the bucket when
    /// it is missing).
    pub settings: StreamSettings,
}

impl Default for SequencerOptions {
    fn default() -> Self {
        SequencerOptions {
            checkpoint_every: 100_000,
            checkpoint_interval: Duration::from_millis(200),
            pull_batch: 8192,
            ack_wait: Duration::from_secs(30),
            lease_poll: Duration::from_millis(100),
            recent_ids: 1 << 19,
            holder: format!(
                "{}:{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "sequencer".into()),
                std::process::id()
            ),
            settings: StreamSettings::default(),
        }
    }
}

impl SequencerOptions {
    /// Sets [`checkpoint_every`](Self::checkpoint_every).
    #[must_use]
    pub fn checkpoint_every(mut self, checkpoint_every: u64) -> Self {
        self.checkpoint_every = checkpoint_every;
        self
    }

    /// Sets [`checkpoint_interval`](Self::checkpoint_interval).
    #[must_use]
    pub fn checkpoint_interval(mut self, checkpoint_interval: Duration) -> Self {
        self.checkpoint_interval = checkpoint_interval;
        self
    }

    /// Sets [`pull_batch`](Self::pull_batch).
    #[must_use]
    pub fn pull_batch(mut self, pull_batch: usize) -> Self {
        self.pull_batch = pull_batch;
        self
    }

    /// Sets [`ack_wait`](Self::ack_wait).
    #[must_use]
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Sets [`lease_poll`](Self::lease_poll).
    #[must_use]
    pub fn lease_poll(mut self, lease_poll: Duration) -> Self {
        self.lease_poll = lease_poll;
        self
    }

    /// Sets [`recent_ids`](Self::recent_ids).
    #[must_use]
    pub fn recent_ids(mut self, recent_ids: usize) -> Self {
        self.recent_ids = recent_ids;
        self
    }

    /// Sets [`holder`](Self::holder).
    #[must_use]
    pub fn holder(mut self, holder: String) -> Self {
        self.holder = holder;
        self
    }

    /// Sets [`settings`](Self::settings).
    #[must_use]
    pub fn settings(mut self, settings: StreamSettings) -> Self {
        self.settings = settings;
        self
    }
}

/// What a sequencer did, returned when it stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SequencerReport {
    /// Events integrated into the log.
    pub integrated: u64,
    /// Messages skipped because their event was already in the log (redelivered after a
    /// crash, or published again after the stream's duplicate window).
    pub duplicates: u64,
    /// Messages refused as malformed (counted in `gap` records).
    pub malformed: u64,
    /// Checkpoints signed.
    pub checkpoints: u64,
    /// Times this sequencer became active.
    pub terms: u64,
    /// The log size when it stopped (0 if it never became active).
    pub size: u64,
    /// Lag from JetStream storing an event to the checkpoint that covers it being signed:
    /// median and 99th percentile, in milliseconds, over this run.
    pub lag_ms: Option<(u64, u64)>,
}

/// Integrates a stream into a log, as the active sequencer or a standby; see the
/// [module docs](self).
pub struct Sequencer {
    at: NatsLocation,
    options: SequencerOptions,
    open_log: LogOpener,
    stop: Arc<AtomicBool>,
    on_active: Option<Box<dyn FnMut() + Send>>,
}

/// Why an active term ended.
enum TermEnd {
    Stopped,
    LeaseLost,
}

impl Sequencer {
    /// A sequencer for `at` that opens its log with `open_log` when it becomes active.
    pub fn new(at: NatsLocation, options: SequencerOptions, open_log: LogOpener) -> Self {
        Sequencer {
            at,
            options,
            open_log,
            stop: Arc::new(AtomicBool::new(false)),
            on_active: None,
        }
    }

    /// Set it to stop the sequencer: it finishes its batch, writes a `stop` record, signs,
    /// acknowledges, releases the lease and returns.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Calls `hook` each time this sequencer becomes active (after opening the log).
    pub fn on_active(mut self, hook: impl FnMut() + Send + 'static) -> Self {
        self.on_active = Some(Box::new(hook));
        self
    }

    /// Runs until the stop flag is set, on the calling thread, using `runtime` for the NATS
    /// client (call it outside async code, e.g. from `spawn_blocking` or a thread of its own).
    pub fn run(mut self, runtime: &tokio::runtime::Handle) -> Result<SequencerReport> {
        // The JetStream context spawns its acknowledgement task where it is built.
        let _entered = runtime.enter();
        let client = runtime.block_on(crate::connect(&self.at, "veritrail-sequencer"))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client.clone());
        let kv = runtime.block_on(async {
            loop {
                match lease_bucket(&js, &self.at, &self.options.settings).await {
                    Ok(kv) => return Ok(kv),
                    Err(e) if self.stop.load(Ordering::Relaxed) => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        })?;
        let mut report = SequencerReport::default();
        let mut lags = LagHistogram::default();
        loop {
            let lease = runtime.block_on(Lease::acquire(
                kv.clone(),
                self.at.lease_key(),
                self.options.holder.clone(),
                self.options.settings.lease_ttl,
                self.options.lease_poll,
                &self.stop,
            ));
            let Some(lease) = lease else { break };
            report.terms += 1;
            let end = self.lead(runtime, &js, &client, &lease, &mut report, &mut lags);
            match end {
                Ok(TermEnd::Stopped) => {
                    runtime.block_on(lease.release());
                    break;
                }
                Ok(TermEnd::LeaseLost) => {
                    drop(lease);
                    continue;
                }
                Err(e) => {
                    runtime.block_on(lease.release());
                    return Err(e);
                }
            }
        }
        report.lag_ms = lags.p50_p99();
        Ok(report)
    }

    /// One term as the active sequencer.
    fn lead(
        &mut self,
        runtime: &tokio::runtime::Handle,
        js: &jetstream::Context,
        client: &async_nats::Client,
        lease: &Lease,
        report: &mut SequencerReport,
        lags: &mut LagHistogram,
    ) -> Result<TermEnd> {
        let mut log = loop {
            match (self.open_log)() {
                Ok(log) => break log,
                // The previous sequencer's process may not have released the log yet.
                Err(_) if lease.is_held() && !self.stop.load(Ordering::Relaxed) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        };
        let mut recent = RecentIds::new(self.options.recent_ids);
        let sizes = log.recent_checkpoint_sizes(2)?;
        let from = sizes
            .first()
            .copied()
            .unwrap_or(0)
            .min(log.size().saturating_sub(self.options.recent_ids as u64));
        for id in log.ids_from(from)? {
            recent.pin(id);
        }
        let mut opening = vec![AuditEvent::start(log.origin())];
        if let Some(recovered) = log.recovered() {
            opening.push(AuditEvent::new(recovered));
        }
        let mut batch = Pending::default();
        for event in &opening {
            let index = log.size() + batch.ends.len() as u64;
            event.write_json(index, &mut batch.bytes);
            batch.ends.push(batch.bytes.len());
        }
        batch.append_to(log.as_mut())?;
        log.commit()?;
        if let Some(hook) = &mut self.on_active {
            hook();
        }

        let stream = match runtime.block_on(js.get_stream(self.at.stream())) {
            Ok(stream) => stream,
            // The broker went away as we took over: give the term up (the log is closed
            // with nothing unsigned but our start record) and wait for the lease again.
            Err(_) if !self.stop.load(Ordering::Relaxed) => {
                std::thread::sleep(Duration::from_millis(200));
                return Ok(TermEnd::LeaseLost);
            }
            Err(e) => {
                return Err(Error::Nats(format!("stream {}: {e}", self.at.stream())));
            }
        };
        let reading = runtime.block_on(async {
            let bookmark = Bookmark::read(&stream, &self.at).await?;
            let from = bookmark.position() + 1;
            let reader =
                Reader::start(&stream, &self.at, &self.options, bookmark.kept(), from).await?;
            Ok::<_, Error>((bookmark.position(), reader))
        });
        let (position, mut reader) = match reading {
            Ok(reading) => reading,
            Err(Error::Nats(_)) => {
                std::thread::sleep(Duration::from_millis(200));
                return Ok(TermEnd::LeaseLost);
            }
            Err(e) => return Err(e),
        };
        let mut state = Term {
            signed_size: log.size(),
            unsigned: 0,
            position,
            acked: position,
            ack: None,
            lags: Vec::new(),
            since: Instant::now(),
        };
        let mut malformed = Malformed::default();
        let checkpoints_subject = self.at.checkpoints_subject();
        loop {
            if !lease.is_held() {
                return Ok(TermEnd::LeaseLost);
            }
            let stopping = self.stop.load(Ordering::Relaxed);
            let due = state.since + self.options.checkpoint_interval;
            let (received, mut restart) = if stopping {
                (Vec::new(), false)
            } else {
                runtime.block_on(reader.take(self.options.pull_batch, due))
            };
            let now = OffsetDateTime::now_utc();
            for message in received {
                let Ok(info) = message.info() else { continue };
                // A delivery lost on the way (a connection that dropped): read again, from a
                // new consumer, after what was taken — never skip ahead.
                if info.consumer_sequence != reader.delivered + 1 {
                    restart = true;
                    break;
                }
                reader.delivered = info.consumer_sequence;
                // Delivered again (its acknowledgement came after `ack_wait`): already taken.
                if info.stream_sequence <= state.position {
                    continue;
                }
                let published = info.published;
                state.position = info.stream_sequence;
                state.ack = message.reply.clone();
                let index = log.size() + batch.ends.len() as u64;
                match checked(&message) {
                    Some((_, id)) if recent.contains(&id) => report.duplicates += 1,
                    Some((layout, id)) => {
                        recent.insert(id);
                        layout.write_with_index(&message.payload, index, &mut batch.bytes);
                        batch.ends.push(batch.bytes.len());
                        state.lags.push(published);
                        report.integrated += 1;
                    }
                    None => malformed.add(published.min(now)),
                }
            }
            if let Some(gap) = malformed.take() {
                report.malformed += gap.dropped;
                let index = log.size() + batch.ends.len() as u64;
                AuditEvent::gap(gap.dropped, GAP_MALFORMED, gap.first, gap.last)
                    .write_json(index, &mut batch.bytes);
                batch.ends.push(batch.bytes.len());
            }
            state.unsigned += batch.ends.len() as u64;
            batch.append_to(log.as_mut())?;
            if stopping {
                let stop = AuditEvent::stop(report.integrated, report.malformed);
                stop.write_json(log.size(), &mut batch.bytes);
                batch.ends.push(batch.bytes.len());
                batch.append_to(log.as_mut())?;
            }
            let due = stopping
                || restart
                || state.unsigned >= self.options.checkpoint_every
                || Instant::now() >= state.since + self.options.checkpoint_interval;
            if due && (state.position > state.acked || log.size() > state.signed_size) {
                if !self.settle(
                    runtime,
                    client,
                    &checkpoints_subject,
                    log.as_mut(),
                    lease,
                    &mut state,
                    report,
                    lags,
                )? {
                    return Ok(TermEnd::LeaseLost);
                }
            } else if due {
                state.since = Instant::now();
            }
            report.size = log.size();
            if stopping {
                return Ok(TermEnd::Stopped);
            }
            if restart {
                // Everything taken is signed and acknowledged: the new consumer starts after it.
                let from = state.position + 1;
                match runtime.block_on(reader.restart(&stream, &self.at, &self.options, from)) {
                    Ok(()) => {}
                    Err(Error::Nats(_)) => {
                        std::thread::sleep(Duration::from_millis(200));
                        return Ok(TermEnd::LeaseLost);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Syncs, signs (when the log grew), publishes the checkpoint and acknowledges everything
    /// taken — in that order, the acknowledgement confirmed by the server. `false` if the
    /// lease was lost first.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        runtime: &tokio::runtime::Handle,
        client: &async_nats::Client,
        subject: &str,
        log: &mut dyn IntegrationLog,
        lease: &Lease,
        state: &mut Term,
        report: &mut SequencerReport,
        lags: &mut LagHistogram,
    ) -> Result<bool> {
        log.commit()?;
        if log.size() > state.signed_size {
            if !lease.is_held() {
                return Ok(false);
            }
            if let Some(note) = log.checkpoint()? {
                report.checkpoints += 1;
                let signed = OffsetDateTime::now_utc();
                for published in state.lags.drain(..) {
                    lags.add(signed - published);
                }
                let (client, subject) = (client.clone(), subject.to_owned());
                let _ = runtime.block_on(client.publish(subject, note.into()));
            }
            state.signed_size = log.size();
        }
        if let Some(reply) = &state.ack {
            loop {
                if !lease.is_held() {
                    return Ok(false);
                }
                if runtime.block_on(acknowledge_all(client, reply)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            state.ack = None;
        }
        state.acked = state.position;
        state.unsigned = 0;
        state.since = Instant::now();
        Ok(true)
    }
}

/// The names the sequencer's durable consumer alternates between: a new consumer, starting
/// after the position, is created under the name not in use before the old one is deleted,
/// so that one of them always holds the position.
pub(crate) fn consumer_names(at: &NatsLocation) -> [String; 2] {
    let base = at.consumer_name();
    [format!("{base}-b"), base]
}

/// The sequencers' position in the stream, as their consumers hold it: the highest
/// acknowledgement floor of the (at most two) consumers of [`consumer_names`]. Every message
/// up to it was integrated (or refused into a `gap` record, or skipped as a duplicate) and is
/// under a signed checkpoint.
pub(crate) struct Bookmark {
    /// Each name's acknowledgement floor, when the consumer exists.
    floors: [Option<u64>; 2],
}

impl Bookmark {
    /// Reads both consumers' floors; an error if the server could not say (never "absent"
    /// for a consumer it failed to report).
    pub(crate) async fn read(
        stream: &jetstream::stream::Stream,
        at: &NatsLocation,
    ) -> Result<Bookmark> {
        let mut floors = [None, None];
        for (floor, name) in floors.iter_mut().zip(consumer_names(at)) {
            match stream.consumer_info(&name).await {
                Ok(info) if info.config.filter_subject != at.events_subject() => {
                    return Err(Error::State(format!(
                        "the consumer {name} of stream {} reads {:?}, not {}: it is not this origin's sequencer",
                        at.stream(),
                        info.config.filter_subject,
                        at.events_subject()
                    )));
                }
                Ok(info) => *floor = Some(info.ack_floor.stream_sequence),
                Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {}
                Err(e) => return Err(Error::Nats(format!("consumer {name}: {e}"))),
            }
        }
        Ok(Bookmark { floors })
    }

    /// The stream sequence up to which everything is integrated (0: nothing yet).
    pub(crate) fn position(&self) -> u64 {
        self.floors.iter().flatten().copied().max().unwrap_or(0)
    }

    /// Which name holds the position (`None` when neither consumer exists).
    fn kept(&self) -> Option<usize> {
        let position = self.position();
        self.floors.iter().position(|f| *f == Some(position))
    }
}

/// The term's reading: a durable pull consumer starting right after the position, and the
/// consumer sequence of the last message it delivered.
struct Reader {
    /// Which of [`consumer_names`] is the current consumer.
    current: usize,
    messages: std::pin::Pin<Box<consumer::pull::Stream>>,
    /// The consumer sequence of the last message taken from the current consumer.
    delivered: u64,
}

impl Reader {
    /// Creates the consumer under the name that does not hold the position (`kept`), starting
    /// at stream sequence `from`, then deletes the one that did.
    async fn start(
        stream: &jetstream::stream::Stream,
        at: &NatsLocation,
        options: &SequencerOptions,
        kept: Option<usize>,
        from: u64,
    ) -> Result<Reader> {
        let names = consumer_names(at);
        let current = kept.map_or(1, |k| 1 - k);
        let name = &names[current];
        // A consumer left under this name holds no more than the position: replace it.
        match stream.delete_consumer(name).await {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ConsumerErrorKind::JetStream(ref j) if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND) =>
                {}
            Err(e) => return Err(Error::Nats(format!("consumer {name}: {e}"))),
        }
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!("veritrail sequencer of {}", at.origin())),
            filter_subject: at.events_subject(),
            ack_policy: consumer::AckPolicy::All,
            ack_wait: options.ack_wait,
            deliver_policy: if from <= 1 {
                consumer::DeliverPolicy::All
            } else {
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                }
            },
            max_deliver: -1,
            max_ack_pending: (options.checkpoint_every as i64 * 4).max(1 << 20),
            ..Default::default()
        };
        let consumer: consumer::PullConsumer =
            stream.create_consumer(config).await.map_err(Error::nats)?;
        if let Some(old) = kept {
            // Best effort: left behind, it holds a position no further than the new one's.
            let _ = stream.delete_consumer(&names[old]).await;
        }
        let messages = consumer
            .stream()
            .max_messages_per_batch(options.pull_batch)
            .heartbeat(Duration::from_secs(1))
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(Error::nats)?;
        Ok(Reader {
            current,
            messages: Box::pin(messages),
            delivered: 0,
        })
    }

    /// Replaces the consumer by a new one starting at `from` (everything before it signed and
    /// acknowledged on the current one).
    async fn restart(
        &mut self,
        stream: &jetstream::stream::Stream,
        at: &NatsLocation,
        options: &SequencerOptions,
        from: u64,
    ) -> Result<()> {
        *self = Reader::start(stream, at, options, Some(self.current), from).await?;
        Ok(())
    }

    /// Up to `wanted` messages, waiting until `due` (at most 100 ms) for them; `true` with
    /// them if the consumer reported trouble (missed heartbeats, deleted): it is replaced.
    async fn take(&mut self, wanted: usize, due: Instant) -> (Vec<Message>, bool) {
        let mut got = Vec::with_capacity(wanted.min(1 << 16));
        let deadline = tokio::time::Instant::from_std(due.max(Instant::now()))
            .min(tokio::time::Instant::now() + Duration::from_millis(100));
        while got.len() < wanted {
            match tokio::time::timeout_at(deadline, self.messages.next()).await {
                Ok(Some(Ok(message))) => got.push(message),
                Ok(Some(Err(_))) | Ok(None) => return (got, true),
                Err(_) => break,
            }
        }
        (got, false)
    }
}

/// Acknowledges every message up to `reply`'s (the consumer's `AckPolicy::All`), as a
/// request: `true` once the server has confirmed it.
async fn acknowledge_all(client: &async_nats::Client, reply: &async_nats::Subject) -> bool {
    let confirmed = tokio::time::timeout(
        Duration::from_secs(2),
        client.request(reply.clone(), ACK.into()),
    )
    .await;
    matches!(confirmed, Ok(Ok(_)))
}

/// A JetStream acknowledgement.
const ACK: &[u8] = b"+ACK";

/// The layout and event id of the message's record, or `None` if the message is malformed:
/// not a record in the writer's layout, not JSON, or its `Nats-Msg-Id` is not its event id.
fn checked(message: &Message) -> Option<(Layout, EventId)> {
    let record = message.payload.as_ref();
    let layout = Layout::of(record)?;
    let id = *layout.id(record);
    let header = message
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))?;
    if header.as_str().as_bytes() != id {
        return None;
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(record).ok()?;
    Some((layout, id))
}

/// The batch being built: records back to back and their ends.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Pending {
    fn append_to(&mut self, log: &mut dyn IntegrationLog) -> Result<()> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let first = log.size();
        log.append(&Batch::new(first, &self.bytes, &self.ends))?;
        if log.size() != first + self.ends.len() as u64 {
            return Err(Error::State(
                "the log took another number of records than given: is another process writing it?"
                    .into(),
            ));
        }
        self.bytes.clear();
        self.ends.clear();
        Ok(())
    }
}

impl From<SinkError> for Error {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Log(e) => Error::Log(e),
            other => Error::State(other.to_string()),
        }
    }
}

/// The active term's progress.
struct Term {
    /// The log size at the last checkpoint.
    signed_size: u64,
    /// Records appended since the last checkpoint.
    unsigned: u64,
    /// The stream sequence of the last message taken (integrated, skipped as a duplicate or
    /// refused): everything up to it has been taken, in stream order.
    position: u64,
    /// The position acknowledged on the consumer (every message up to it, signed).
    acked: u64,
    /// The reply subject of the message at `position`, while not acknowledged: acknowledging
    /// it acknowledges every message before it.
    ack: Option<async_nats::Subject>,
    /// When JetStream stored each event integrated since the last checkpoint.
    lags: Vec<OffsetDateTime>,
    /// When the last checkpoint was signed.
    since: Instant,
}

/// Malformed messages since the last `gap` record.
#[derive(Default)]
struct Malformed {
    dropped: u64,
    first: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
}

struct Gap {
    dropped: u64,
    first: OffsetDateTime,
    last: OffsetDateTime,
}

impl Malformed {
    fn add(&mut self, at: OffsetDateTime) {
        self.dropped += 1;
        self.first.get_or_insert(at);
        self.last = Some(at);
    }

    fn take(&mut self) -> Option<Gap> {
        let taken = std::mem::take(self);
        Some(Gap {
            dropped: (taken.dropped > 0).then_some(taken.dropped)?,
            first: taken.first?,
            last: taken.last?,
        })
    }
}

/// The ids of the last `capacity` records integrated, and the ids read at takeover (kept for
/// the whole term: the dead sequencer's unacknowledged messages come back `ack_wait` later).
struct RecentIds {
    set: HashSet<EventId>,
    order: VecDeque<EventId>,
    capacity: usize,
    pinned: HashSet<EventId>,
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        RecentIds {
            set: HashSet::with_capacity(capacity.min(1 << 20)),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            pinned: HashSet::new(),
        }
    }

    fn contains(&self, id: &EventId) -> bool {
        self.set.contains(id) || self.pinned.contains(id)
    }

    /// Remembers `id` for the whole term.
    fn pin(&mut self, id: EventId) {
        self.pinned.insert(id);
    }

    /// Remembers `id`, forgetting the oldest beyond the capacity.
    fn insert(&mut self, id: EventId) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// Lags in milliseconds, in buckets of one millisecond up to a minute.
#[derive(Default)]
struct LagHistogram {
    buckets: Vec<u64>,
    count: u64,
}

impl LagHistogram {
    fn add(&mut self, lag: time::Duration) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; 60_001];
        }
        let ms = lag.whole_milliseconds().clamp(0, 60_000) as usize;
        self.buckets[ms] += 1;
        self.count += 1;
    }

    fn p50_p99(&self) -> Option<(u64, u64)> {
        if self.count == 0 {
            return None;
        }
        let at = |q: f64| {
            let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (ms, n) in self.buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return ms as u64;
                }
            }
            60_000
        };
        Some((at(0.5), at(0.99)))
    }
}
