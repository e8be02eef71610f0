//! `veritrail reconcile`: is every event still in the stream in the log, exactly once?
//!
//! What an operator runs after an incident (a sequencer killed, a broker restarted, a disk
//! restored): it reads every message of the stream's events subject, then every record of
//! the log, and reports each event id in the stream that the log holds twice, or not at all.
//! An event after the sequencers' position (the acknowledgement floor of their consumer: the
//! sequencer acknowledges, cumulatively, only what a signed checkpoint covers) and not yet in
//! the log is *pending*, not missing; one at or before it and not in the log is *missing*.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;

use crate::location::NatsLocation;
use crate::record::{EventId, Layout};
use crate::sequencer::Bookmark;
use crate::{Error, Result};

/// The event ids in the stream, with where they are.
#[derive(Debug, Default)]
pub struct StreamEvents {
    /// Event id → stream sequence of its first message.
    ids: HashMap<EventId, u64>,
    /// Messages whose record is malformed (the sequencer refuses them too).
    malformed: u64,
    /// Messages carrying an id already seen (stored twice by the stream).
    repeated: u64,
    /// The sequencers' position (their consumer's acknowledgement floor): every message up
    /// to it was integrated.
    ack_floor: u64,
}

/// What [`reconcile`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Distinct event ids in the stream.
    pub in_stream: u64,
    /// Of those, in the log exactly once.
    pub exactly_once: u64,
    /// Not in the log, though the sequencer acknowledged them: (stream sequence, event id).
    pub missing: Vec<(u64, String)>,
    /// Not in the log yet, and not yet acknowledged by the sequencer (it is behind).
    pub pending: u64,
    /// In the log more than once: (event id, how many times).
    pub duplicated: Vec<(String, u64)>,
    /// Messages the sequencer refuses as malformed (recorded in `gap` records, not here).
    pub malformed: u64,
    /// Messages the stream stored twice with the same id (after its duplicate window; the
    /// sequencer integrates the id once).
    pub repeated: u64,
}

impl ReconcileReport {
    /// Whether nothing is missing or duplicated.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty()
    }
}

/// The sequencers' position in `at`'s stream: the stream sequence up to which every message
/// is integrated (or refused into a `gap` record, or skipped as a duplicate) under a signed
/// checkpoint — the acknowledgement floor of their consumer (0: nothing yet).
pub async fn position(js: &jetstream::Context, at: &NatsLocation) -> Result<u64> {
    let stream = js
        .get_stream(at.stream())
        .await
        .map_err(|e| Error::Nats(format!("stream {}: {e}", at.stream())))?;
    Ok(Bookmark::read(&stream, at).await?.position())
}

/// Reads every message of `at`'s events subject that the stream holds now.
pub async fn stream_events(js: &jetstream::Context, at: &NatsLocation) -> Result<StreamEvents> {
    let mut stream = js
        .get_stream(at.stream())
        .await
        .map_err(|e| Error::Nats(format!("stream {}: {e}", at.stream())))?;
    let last = stream
        .info()
        .await
        .map_err(Error::nats)?
        .state
        .last_sequence;
    let ack_floor = Bookmark::read(&stream, at).await?.position();
    let mut events = StreamEvents {
        ack_floor,
        ..StreamEvents::default()
    };
    if last == 0 {
        return Ok(events);
    }
    let reader = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: at.events_subject(),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(Error::nats)?;
    let mut messages = reader.messages().await.map_err(Error::nats)?;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
        let message = match next {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => return Err(Error::nats(e)),
            Ok(None) | Err(_) => break,
        };
        let info = message.info().map_err(Error::nats)?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        let record = message.payload.as_ref();
        let header = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID));
        match Layout::of(record) {
            Some(layout) if header.is_some_and(|h| h.as_str().as_bytes() == layout.id(record)) => {
                if events.ids.insert(*layout.id(record), seq).is_some() {
                    events.repeated += 1;
                }
            }
            _ => events.malformed += 1,
        }
        if seq >= last || pending == 0 {
            break;
        }
    }
    Ok(events)
}

/// Checks the log's records against the stream's events.
pub fn reconcile(
    events: StreamEvents,
    records: impl Iterator<Item = Result<Vec<u8>>>,
) -> Result<ReconcileReport> {
    let mut counts: HashMap<EventId, u64> = HashMap::with_capacity(events.ids.len());
    for record in records {
        let record = record?;
        if let Some(layout) = Layout::of(&record) {
            let id = layout.id(&record);
            if events.ids.contains_key(id) {
                *counts.entry(*id).or_default() += 1;
            }
        }
    }
    let text = |id: &EventId| String::from_utf8_lossy(id).into_owned();
    let mut report = ReconcileReport {
        in_stream: events.ids.len() as u64,
        malformed: events.malformed,
        repeated: events.repeated,
        ..ReconcileReport::default()
    };
    for (id, seq) in &events.ids {
        match counts.get(id).copied().unwrap_or(0) {
            1 => report.exactly_once += 1,
            0 if *seq > events.ack_floor => report.pending += 1,
            0 => report.missing.push((*seq, text(id))),
            n => report.duplicated.push((text(id), n)),
        }
    }
    report.missing.sort();
    report.duplicated.sort();
    Ok(report)
}
