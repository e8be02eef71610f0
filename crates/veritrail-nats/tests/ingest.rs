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
