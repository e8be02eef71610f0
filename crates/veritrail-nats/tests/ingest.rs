//! Replicas publish through the sink to the shared JetStream; the sequencer integrates the
//! stream into one directory log: every event exactly once, each at its log index, a valid
//! tree, checkpoints published, malformed messages refused into a `gap` record.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use veritrail_core::event::{AuditEvent, EventBody, Kind};
use veritrail_core::recorder::{Durability, Recorder};
use veritrail_log::Checkpoint;
use veritrail_nats::reconcile::{reconcile, stream_events};
use veritrail_nats::sequencer::GAP_MALFORMED;
use veritrail_nats::{NatsSink, SinkOptions};
use veritrail_writer::{Writer, WriterConfig};

fn event(replica: usize, i: usize) -> AuditEvent {
    AuditEvent::http("POST", format!("/orders/{i}"))
        .route("/orders/{id}")
        .action(format!("replica-{replica}"))
        .status(201)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_publish_and_one_sequencer_integrates_every_event_once() {
    require_shared();
    let at = location(SHARED, "vt_ingest");
    init(&at).await;
    let client = veritrail_nats::connect(&at, "test").await.unwrap();
    let mut checkpoints = client.subscribe(at.checkpoints_subject()).await.unwrap();

    // Three replicas, each its own writer and sink: half Durable, half Async.
    let mut ids: HashMap<String, Kind> = HashMap::new();
    let mut writers = Vec::new();
    for replica in 0..3 {
        let sink = NatsSink::connect(&at, SinkOptions::default())
            .await
            .unwrap();
        writers.push(Writer::start(sink, WriterConfig::default()).unwrap());
        let _ = replica;
    }
    let mut tasks = Vec::new();
    for (replica, writer) in writers.iter().enumerate() {
        let handle = writer.handle();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..200 {
                let event = event(replica, i);
                let id = event.id.to_string();
                let durability = if i % 2 == 0 {
                    Durability::Durable
                } else {
                    Durability::Async
                };
                handle.record(event, durability).await.expect("recorded");
                acked.push(id);
            }
            acked
        }));
    }
    for task in tasks {
        for id in task.await.unwrap() {
            ids.insert(id, Kind::Http);
        }
    }
    for writer in writers {
        let report = writer
            .shutdown(Instant::now() + Duration::from_secs(10))
            .await;
        assert_eq!((report.error, report.lost, report.dropped), (None, 0, 0));
    }
    // Something that is not a veritrail record, published straight to the subject.
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "not-a-veritrail-record");
    js.publish_with_headers(
        at.events_subject(),
        headers,
        Bytes::from_static(b"{\"x\":1}"),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let key = signer(at.origin());
    let running = tokio::task::spawn_blocking({
        let (at, dir, key) = (at.clone(), dir.path().to_owned(), key.to_text().to_string());
        move || {
            let key = veritrail_log::NoteSigner::from_text(&key).unwrap();
            let running = start_sequencer(&at, &dir, &key, test_options());
            // 600 events + 3 starts + 3 stops from the replicas, the sequencer's start, a gap.
            wait_until(Duration::from_secs(30), "every event integrated", || {
                veritrail_log::Log::open_read_only(&dir).is_ok_and(|log| log.size() >= 608)
            });
            running.stop()
        }
    })
    .await
    .unwrap();
    assert_eq!(running.integrated, 606, "{running:?}");
    assert_eq!(
        (running.duplicates, running.malformed, running.terms),
        (0, 1, 1)
    );

    let report = verify(dir.path(), &key);
    let records = records(dir.path());
    assert_eq!(report.records, records.len() as u64);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut gaps = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let event = AuditEvent::from_json(record).expect("an audit event");
        assert_eq!(
            event.index,
            Some(index as u64),
            "each record carries its log index"
        );
        *seen.entry(event.id.to_string()).or_default() += 1;
        if let EventBody::Gap(gap) = &event.body {
            gaps.push((gap.dropped, gap.reason.clone()));
        }
    }
    for id in ids.keys() {
        assert_eq!(seen.get(id), Some(&1), "event {id} exactly once");
    }
    assert_eq!(gaps, [(1, GAP_MALFORMED.to_string())]);

    // The checkpoints went out on the subject, signed by the log's key, the last one the log's.
    let log = veritrail_log::Log::open_read_only(dir.path()).unwrap();
    let latest = log.latest_checkpoint().unwrap().unwrap();
    let mut last = None;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), checkpoints.next()).await
    {
        let note = String::from_utf8(message.payload.to_vec()).unwrap();
        Checkpoint::open(&note, &key.verifier()).expect("a checkpoint signed by the log's key");
        last = Some(note);
    }
    assert_eq!(last.as_deref(), Some(latest.as_str()));

    let events = stream_events(&js, &at).await.unwrap();
    let records = log.records(0).map(|r| Ok(r.unwrap().1));
    let reconciled = reconcile(events, records).unwrap();
    assert!(reconciled.is_ok(), "{reconciled:?}");
    assert_eq!(
        (
            reconciled.in_stream,
            reconciled.exactly_once,
            reconciled.malformed
        ),
        (606, 606, 1)
    );
    cleanup(&at).await;
}

/// A broker that goes away: `Durable` callers are told `TimedOut` within the bound, `Async`
/// events wait in the writer's queue and what `DropNewest` drops is counted in a `gap`
/// record; when the broker is back, publishing resumes on its own and everything
/// acknowledged is in the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_times_durable_out_and_publishing_resumes() {
    use veritrail_core::recorder::RecordError;
    use veritrail_writer::OverflowPolicy;

    let mut server = OwnServer::start();
    let at = location(&server.addr(), "vt_outage");
    init(&at).await;
    let bound = Duration::from_millis(800);
    let sink = NatsSink::connect(&at, SinkOptions::default().durable_timeout(bound))
        .await
        .unwrap();
    let config = WriterConfig::default()
        .queue_capacity(50, 1 << 20)
        .overflow(OverflowPolicy::DropNewest);
    let writer = Writer::start(sink, config).unwrap();
    let handle = writer.handle();
    let before = event(0, 0);
    let before_id = before.id.to_string();
    handle
        .record(before, Durability::Durable)
        .await
        .expect("the broker is up");

    server.kill();
    let started = Instant::now();
    let told = handle.record(event(0, 1), Durability::Durable).await;
    assert!(
        matches!(told, Err(RecordError::TimedOut(d)) if d == bound),
        "{told:?}"
    );
    assert!(
        started.elapsed() < bound * 4,
        "bounded: {:?}",
        started.elapsed()
    );
    let mut queued = Vec::new();
    for i in 0..200 {
        let e = event(1, i);
        let id = e.id.to_string();
        if handle.record(e, Durability::Async).await.is_ok() {
            queued.push(id);
        }
    }
    assert!(queued.len() < 200, "the queue filled up");

    server.restart();
    let after = event(2, 0);
    let after_id = after.id.to_string();
    let resumed = Instant::now();
    loop {
        match handle.record(after.clone(), Durability::Durable).await {
            Ok(_) => break,
            // Until the queue has drained into the stream again.
            Err(RecordError::TimedOut(_) | RecordError::Overflow)
                if resumed.elapsed() < Duration::from_secs(30) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publishing did not resume: {e}"),
        }
    }
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(10))
        .await;
    assert_eq!((&report.error, report.lost), (&None, 0));
    assert!(report.dropped > 0, "{report:?}");

    // Everything acknowledged or queued is in the stream, and the loss is in a gap record.
    let client = veritrail_nats::connect(&at, "test").await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(at.stream()).await.unwrap();
    // Publishing again after a lost acknowledgement stores once (same Nats-Msg-Id).
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut ids = HashMap::new();
    let mut gap_dropped = 0;
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.unwrap();
        let event = AuditEvent::from_json(&message.payload).unwrap();
        if let EventBody::Gap(gap) = &event.body {
            gap_dropped += gap.dropped;
        }
        *ids.entry(event.id.to_string()).or_insert(0) += 1;
    }
    for id in queued.iter().chain([&before_id, &after_id]) {
        assert_eq!(ids.get(id), Some(&1), "{id} once in the stream");
    }
    assert_eq!(
        gap_dropped, report.dropped,
        "every drop is counted in a gap record"
    );
}

/// `--init` twice is harmless, and the stream has the production settings it documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_the_stream_is_idempotent_and_as_documented() {
    use async_nats::jetstream::stream::{DiscardPolicy, StorageType};
    use veritrail_nats::StreamSettings;

    require_shared();
    let at = location(SHARED, "vt_init");
    let settings = StreamSettings::default().replicas(1);
    let client = veritrail_nats::connect(&at, "test").await.unwrap();
    let js = async_nats::jetstream::new(client);
    let first = veritrail_nats::ensure_stream(&js, &at, &settings)
        .await
        .unwrap();
    let again = veritrail_nats::ensure_stream(&js, &at, &settings)
        .await
        .unwrap();
    assert_eq!(first.config, again.config);
    let config = again.config;
    assert_eq!(config.subjects, [at.events_subject()]);
    assert_eq!(config.storage, StorageType::File);
    assert_eq!(config.discard, DiscardPolicy::New);
    assert_eq!(config.duplicate_window, Duration::from_secs(600));
    assert_eq!(config.max_age, Duration::from_secs(7 * 24 * 3600));
    assert!(config.deny_delete && config.deny_purge);
    assert!(
        js.get_key_value(at.lease_bucket()).await.is_ok(),
        "the lease bucket exists"
    );
    cleanup(&at).await;
}
