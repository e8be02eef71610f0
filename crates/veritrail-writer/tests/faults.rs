//! Fault injection at the `Sink` boundary: ENOSPC, EIO on write, EIO on fsync, short writes
//! (reported, and silent), and a full queue under every overflow policy — including the
//! `cancelled` event of a request dropped while the queue is full. Each time: nothing that was
//! acknowledged is lost, and every loss is visible (a `gap` record, a counter in the shutdown
//! report and the metrics, an error to the caller).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use veritrail_core::event::{AuditEvent, EventBody, Kind};
use veritrail_core::recorder::{Durability, RecordError, Recorder};
use veritrail_writer::{GAP_QUEUE_FULL, OverflowPolicy, Writer, WriterConfig, WriterHandle};

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// Waits (politely) until `cond` holds, failing after 10 s.
async fn until(mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < give_up, "condition not reached in 10 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The `gap` records' counts and reasons, in log order.
fn gaps(events: &[AuditEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Gap(g) => Some((g.dropped, g.reason.clone())),
            _ => None,
        })
        .collect()
}

/// The writer's counters as the metrics facade saw them, by name and `stage` label.
fn counters(snapshotter: &metrics_util::debugging::Snapshotter) -> BTreeMap<String, f64> {
    use metrics_util::debugging::DebugValue;
    let mut out = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut name = key.name().to_owned();
        if let Some(stage) = key.labels().find(|l| l.key() == "stage") {
            name = format!("{name}{{{}}}", stage.value());
        }
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(_) => continue,
        };
        out.insert(name, value);
    }
    out
}

/// What one caller was told.
#[derive(Debug)]
enum Told {
    /// `Durable`, acknowledged at this index.
    Durable(u64),
    /// `Async`, queued.
    Queued,
    Failed,
}

/// Records `tag` and says what the caller was told.
async fn record(handle: &WriterHandle, tag: &str, durability: Durability) -> Told {
    match handle.record(event(tag), durability).await {
        Ok(receipt) => match durability {
            Durability::Async => Told::Queued,
            _ => Told::Durable(receipt.index.expect("a durable receipt has its index")),
        },
        Err(RecordError::Failed(_)) => Told::Failed,
        Err(other) => panic!("{tag}: unexpected {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_fault_fails_the_writer_and_loses_nothing_acknowledged() {
    use metrics_util::debugging::DebuggingRecorder;
    use veritrail_writer::metric;

    for fault in SinkFault::ALL {
        let dir = tempfile::tempdir().unwrap();
        // Batch 1 is the `start` record; the fault hits a batch of events a little later.
        let sink = FaultySink::new(dir.path(), fault, 4);
        let faults = Arc::clone(&sink.log);
        let reasons = Arc::new(Mutex::new(Vec::<String>::new()));
        let config = WriterConfig::default().on_failure({
            let reasons = Arc::clone(&reasons);
            move |why| reasons.lock().unwrap().push(why.to_owned())
        });
        let metrics = DebuggingRecorder::new();
        let snapshotter = metrics.snapshotter();
        let writer =
            metrics::with_local_recorder(&metrics, || Writer::start(sink, config).unwrap());
        let handle = writer.handle();

        // Async and Durable events, several per batch, until the writer has failed.
        let mut told = Vec::new();
        let mut round = 0;
        while handle.health().is_ok() {
            assert!(round < 1_000, "{fault:?}: the writer never failed");
            let mut batch = Vec::new();
            for i in 0..4 {
                let tag = format!("e-{round}-{i}");
                let durability = if i % 2 == 0 {
                    Durability::Async
                } else {
                    Durability::Durable
                };
                let handle = handle.clone();
                batch.push(tokio::spawn(async move {
                    let told = record(&handle, &tag, durability).await;
                    (tag, told)
                }));
            }
            for task in batch {
                told.push(task.await.unwrap());
            }
            round += 1;
        }
        // Once failed, every caller is refused at once, whatever its durability.
        for durability in [
            Durability::Async,
            Durability::Durable,
            Durability::WriteAhead,
        ] {
            let refused = handle.record(event("after"), durability).await;
            assert!(
                matches!(refused, Err(RecordError::Failed(_))),
                "{fault:?}: {refused:?}"
            );
        }
        assert!(matches!(handle.health(), Err(RecordError::Failed(_))));
        assert!(matches!(
            handle.try_record(event("after-try")),
            Err(RecordError::Failed(_))
        ));
        let report = writer.shutdown(soon()).await;

        let why = report
            .error
            .clone()
            .expect("the report says the writer failed");
        assert!(
            why.contains("injected") || why.contains("expected"),
            "{fault:?}: {why}"
        );
        assert_eq!(
            *reasons.lock().unwrap(),
            std::slice::from_ref(&why),
            "{fault:?}: the failure is announced once, when it happens"
        );
        assert_eq!(
            faults.calls_after.load(Ordering::SeqCst),
            0,
            "{fault:?}: the sink was called again after its error (no retry after a failed fsync)"
        );

        // Nothing acknowledged is lost: every Durable receipt names a committed record that
        // holds its event — and none was given for a batch whose fsync failed.
        let records = events(dir.path());
        let committed = faults.committed_size.load(Ordering::SeqCst);
        for (tag, told) in &told {
            if let Told::Durable(index) = told {
                assert!(
                    *index < committed,
                    "{fault:?}: {tag} acknowledged past the last good fsync"
                );
                assert_eq!(
                    action(&records[*index as usize]).as_deref(),
                    Some(tag.as_str()),
                    "{fault:?}: {tag}"
                );
            }
        }
        // Every loss is counted: each event handed over is durable, lost (accepted, then the
        // writer failed) or refused (its caller got `Failed`).
        let handed = told.len() as u64 + 4;
        assert_eq!(
            report.flushed + report.lost + report.refused_after_failure,
            handed,
            "{fault:?}: {report:?}"
        );
        assert!(
            report.lost >= 1,
            "{fault:?}: the failed batch is counted as lost"
        );
        // Every Durable caller got an answer: its index (checked above against the last good
        // fsync) or `Failed`. (The failed batch may hold only Async events, whose callers had
        // their answer when queued: so no count of `Failed` answers is promised.)
        for (tag, told) in &told {
            let durable = tag.ends_with("-1") || tag.ends_with("-3");
            assert!(
                !durable || matches!(told, Told::Durable(_) | Told::Failed),
                "{fault:?}: {tag} was told {told:?}"
            );
        }
        // What the report says durable is in the log; no stop record after a failure.
        let in_log = records.iter().filter(|e| e.kind() == Kind::Http).count() as u64;
        assert!(in_log >= report.flushed, "{fault:?}: {in_log} < {report:?}");
        assert_ne!(records.last().map(AuditEvent::kind), Some(Kind::Stop));
        // The metrics say it too.
        let metrics = counters(&snapshotter);
        assert_eq!(metrics[metric::FAILED], 1.0, "{fault:?}");
        assert_eq!(
            metrics[metric::EVENTS_LOST],
            report.lost as f64,
            "{fault:?}"
        );
        assert_eq!(
            metrics[metric::EVENTS_REFUSED_AFTER_FAILURE],
            report.refused_after_failure as f64
        );
        assert_eq!(
            metrics[metric::EVENTS_WRITTEN],
            report.flushed as f64,
            "{fault:?}"
        );
        assert_eq!(
            metrics[&format!("{}{{{}}}", metric::FAILURES, fault.stage())],
            1.0,
            "{fault:?}: {metrics:?}"
        );
        // What is on disk is still a valid log.
        verify(dir.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_events_written_but_not_fsynced_are_lost_not_flushed_when_the_fsync_fails() {
    let dir = tempfile::tempdir().unwrap();
    // Batch 2 holds Async events only: written at once, fsynced within the interval — and
    // that fsync fails.
    let sink = FaultySink::new(dir.path(), SinkFault::SyncEio, 2);
    let config = WriterConfig::default().async_sync_interval(Duration::from_millis(50));
    let writer = Writer::start(sink, config).unwrap();
    let handle = writer.handle();
    for i in 0..5 {
        handle
            .record(event(&format!("async-{i}")), Durability::Async)
            .await
            .unwrap();
    }
    until(|| handle.health().is_err()).await;
    let report = writer.shutdown(soon()).await;
    assert!(report.error.unwrap().contains("fsync"));
    assert_eq!(report.flushed, 0, "nothing was made durable");
    assert_eq!(
        report.lost, 5,
        "the written but unsynced events are lost and counted"
    );
}

/// A writer whose disk is held (the gate closes the first append of events) with a full
/// queue of `queued` events behind it: one Durable caller (a task) and Async ones.
async fn full_queue(
    dir: &std::path::Path,
    policy: OverflowPolicy,
    queued: usize,
) -> (
    Writer,
    Gate,
    tokio::task::JoinHandle<Result<veritrail_core::recorder::Receipt, RecordError>>,
) {
    let sink = FaultySink::new(dir, SinkFault::WriteEio, u64::MAX);
    let gate = sink.gate.clone();
    let config = WriterConfig::default()
        .queue_capacity(queued, 1 << 20)
        .overflow(policy);
    let writer = Writer::start(sink, config).unwrap();
    let handle = writer.handle();
    gate.close();
    handle
        .record(event("held"), Durability::Async)
        .await
        .unwrap();
    until(|| gate.waiting() == 1).await;
    let durable = tokio::spawn({
        let handle = handle.clone();
        async move {
            handle
                .record(event("queued-durable"), Durability::Durable)
                .await
        }
    });
    until(|| handle.queued() == 1).await;
    for i in 1..queued {
        handle
            .record(event(&format!("queued-{i}")), Durability::Async)
            .await
            .unwrap();
    }
    assert_eq!(handle.queued(), queued);
    (writer, gate, durable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_under_every_overflow_policy_loses_nothing_silently() {
    let block = OverflowPolicy::Block {
        timeout: Duration::from_millis(40),
    };
    for policy in [OverflowPolicy::Reject, OverflowPolicy::DropNewest, block] {
        let dir = tempfile::tempdir().unwrap();
        let (writer, gate, durable) = full_queue(dir.path(), policy, 4).await;
        let handle = writer.handle();

        // Callers who can wait are told: at once, or (Block) after the timeout.
        let started = Instant::now();
        for durability in [Durability::Async, Durability::Durable] {
            let over = handle.record(event("over"), durability).await;
            assert!(
                matches!(over, Err(RecordError::Overflow)),
                "{policy:?}: {over:?}"
            );
        }
        if policy == block {
            assert!(started.elapsed() >= Duration::from_millis(80));
        }
        // A caller who cannot wait (a request dropped unfinished) is counted into a gap
        // under every policy.
        assert!(matches!(
            handle.try_record(event("cannot-wait")),
            Err(RecordError::Overflow)
        ));

        gate.open();
        let receipt = durable
            .await
            .unwrap()
            .expect("the queued Durable event is written");
        let report = writer.shutdown(soon()).await;
        assert_eq!(report.error, None);
        let (dropped, rejected) = match policy {
            OverflowPolicy::DropNewest => (3, 0),
            _ => (1, 2),
        };
        assert_eq!(
            (report.dropped, report.rejected, report.lost),
            (dropped, rejected, 0),
            "{policy:?}: {report:?}"
        );
        let events = events(dir.path());
        let actions: Vec<String> = events.iter().filter_map(action).collect();
        assert_eq!(
            actions,
            ["held", "queued-durable", "queued-1", "queued-2", "queued-3"],
            "{policy:?}: every accepted event, none refused"
        );
        assert_eq!(
            action(&events[receipt.index.unwrap() as usize]).as_deref(),
            Some("queued-durable")
        );
        let gaps = gaps(&events);
        assert_eq!(
            gaps.iter().map(|(n, _)| n).sum::<u64>(),
            report.dropped,
            "{policy:?}: every drop is in a gap record: {gaps:?}"
        );
        assert!(gaps.iter().all(|(_, reason)| reason == GAP_QUEUE_FULL));
        check_log(dir.path());
    }
}

/// Hole 8: under the default `Block` policy with a full queue, a request whose client hangs
/// up (its exchange dropped unfinished) used to vanish: its `cancelled` event went into a
/// waiting future that was dropped at once. Now the log holds a `gap` that counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_while_the_queue_is_full_is_counted_in_a_gap() {
    use veritrail_core::auth::{Authenticator, Issuer, KeySet};
    use veritrail_core::engine::{Engine, RoutePolicy, SimpleRequest};

    let dir = tempfile::tempdir().unwrap();
    let (writer, gate, durable) = full_queue(dir.path(), OverflowPolicy::default(), 4).await;
    // RFC 8037's Ed25519 example key: the route is public, no token is checked.
    let (keys, _) = KeySet::from_jwks(
        br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    )
    .unwrap();
    let authenticator = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.example")
                .keys(keys)
                .audience("api"),
        )
        .build()
        .unwrap();
    let engine = Engine::builder(authenticator, writer.handle())
        .route("/health", RoutePolicy::public())
        // The key-set record at build would meet the full queue too and be counted as a
        // second drop; this test is about the request's own event.
        .archive_keysets(false)
        .build();
    let exchange = engine.start(&SimpleRequest::new("GET", "/health").route("/health"));
    exchange.authenticate().await.unwrap();
    // The client hangs up while the handler runs: the exchange is dropped unfinished.
    drop(exchange);

    gate.open();
    durable.await.unwrap().unwrap();
    let report = writer.shutdown(soon()).await;
    assert_eq!(report.dropped, 1, "{report:?}");
    let events = events(dir.path());
    let cancelled = events.iter().any(|e| {
        e.as_http().is_some_and(|h| {
            h.outcome == Some(veritrail_core::event::Outcome::Cancelled)
                && h.request.path.as_plain() == Some("/health")
        })
    });
    let counted: u64 = gaps(&events).iter().map(|(n, _)| n).sum();
    assert!(
        cancelled || counted == 1,
        "the log holds neither the cancelled event nor a gap counting it: {:?}",
        kinds(&events)
    );
    check_log(dir.path());
}

/// A store that stops answering for a while (a sink over the network retries inside its
/// calls): `Durable` callers are told `TimedOut` within the bound rather than hang, `Async`
/// events wait in the queue under its overflow policy, and once the store answers again the
/// writer carries on by itself — with every event it accepted, the timed-out ones included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_times_durable_callers_out_and_writing_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FaultySink::new(dir.path(), SinkFault::WriteEio, u64::MAX);
    let gate = sink.gate.clone();
    let bound = Duration::from_millis(150);
    let config = WriterConfig::default()
        .queue_capacity(3, 1 << 20)
        .overflow(OverflowPolicy::DropNewest)
        .durable_timeout(bound);
    let writer = Writer::start(sink, config).unwrap();
    let handle = writer.handle();
    gate.close();
    handle
        .record(event("held"), Durability::Async)
        .await
        .unwrap();
    until(|| gate.waiting() == 1).await;

    let started = Instant::now();
    let told = handle.record(event("timed-out"), Durability::Durable).await;
    let waited = started.elapsed();
    assert!(
        matches!(told, Err(RecordError::TimedOut(d)) if d == bound),
        "{told:?}"
    );
    assert!(waited >= bound && waited < bound * 10, "waited {waited:?}");
    assert!(handle.health().is_ok(), "an outage is not a failure");
    for i in 0..4 {
        let _ = handle
            .record(event(&format!("async-{i}")), Durability::Async)
            .await;
    }
    assert_eq!(
        handle.queued(),
        3,
        "the queue is full; the rest is counted in a gap"
    );

    gate.open();
    // Under DropNewest a record into a queue still full is refused: wait until the writer
    // has taken the held batch before asking for more.
    until(|| handle.queued() < 3).await;
    let after = handle
        .record(event("after"), Durability::Durable)
        .await
        .expect("writing resumes on its own");
    let report = writer.shutdown(soon()).await;
    assert_eq!((report.error, report.lost, report.dropped), (None, 0, 2));
    let events = events(dir.path());
    let actions: Vec<String> = events.iter().filter_map(action).collect();
    assert_eq!(
        actions,
        ["held", "timed-out", "async-0", "async-1", "after"],
        "the timed-out event is still recorded once the store is back"
    );
    assert_eq!(gaps(&events), [(2, GAP_QUEUE_FULL.to_string())]);
    assert_eq!(
        action(&events[after.index.unwrap() as usize]).as_deref(),
        Some("after")
    );
    check_log(dir.path());
}
