//! The writer end to end over the real file log: durability, overflow policies under a
//! producer faster than the disk, shutdown, the failed state, system records, checkpoints,
//! metrics; every record is checked against the JSON Schema and the log is verified.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use veritrail_core::event::{AuditEvent, EventBody, Kind};
use veritrail_core::recorder::{Durability, RecordError, Recorder};
use veritrail_log::store::StorageFault;
use veritrail_log::{Log, LogOptions};
use veritrail_writer::{
    GAP_QUEUE_FULL, GAP_SHUTDOWN_DEADLINE, OverflowPolicy, ShutdownReport, Writer, WriterConfig,
    WriterHandle,
};

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

/// The HTTP events' actions, in log order.
fn actions(events: &[AuditEvent]) -> Vec<String> {
    events.iter().filter_map(action).collect()
}

fn gaps(events: &[AuditEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Gap(g) => Some((g.dropped, g.reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_receipts_name_the_records_that_hold_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), signer(), WriterConfig::default()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let handle = writer.handle();
        let durability = if i % 2 == 0 {
            Durability::Durable
        } else {
            Durability::WriteAhead
        };
        tasks.push(tokio::spawn(async move {
            let tag = format!("event-{i}");
            let receipt = handle.record(event(&tag), durability).await.unwrap();
            (
                receipt.index.expect("durable receipts carry the index"),
                tag,
            )
        }));
    }
    let mut acked = BTreeMap::new();
    for task in tasks {
        let (index, tag) = task.await.unwrap();
        assert!(
            acked.insert(index, tag).is_none(),
            "index {index} given twice"
        );
    }
    let report = writer.shutdown(soon()).await;
    assert_eq!(report.error, None);
    assert_eq!(
        (report.flushed, report.dropped, report.rejected),
        (300, 0, 0)
    );
    assert_eq!(report.size, 302);

    let events = events(dir.path());
    assert_eq!(events.len(), 302);
    assert_eq!(events[0].kind(), Kind::Start);
    assert_eq!(events[301].kind(), Kind::Stop);
    for (index, tag) in &acked {
        assert_eq!(
            action(&events[*index as usize]).as_deref(),
            Some(tag.as_str())
        );
    }
    assert_schema_valid(dir.path());
    let verified = verify(dir.path());
    assert_eq!(verified.records, 302);
    assert!(verified.checkpoints_checked >= 1);
    // The final checkpoint covers the whole log, stop record included.
    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(log.latest_checkpoint().unwrap(), report.checkpoint);
    assert!(report.checkpoint.unwrap().contains("\n302\n"));
}

/// Fires `n` Async events as fast as possible at a writer whose disk takes 3 ms per commit
/// and whose queue holds 8 events; returns which tags were accepted and which refused.
async fn flood(handle: &WriterHandle, n: usize) -> (Vec<String>, Vec<String>) {
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for i in 0..n {
        let tag = format!("flood-{i}");
        match handle.record(event(&tag), Durability::Async).await {
            Ok(receipt) => {
                assert_eq!(receipt.index, None);
                accepted.push(tag);
            }
            Err(RecordError::Overflow) => refused.push(tag),
            Err(other) => panic!("unexpected {other}"),
        }
        if i % 50 == 49 {
            // Let the writer free some room now and then, so both outcomes occur.
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
    }
    (accepted, refused)
}

fn flood_config(policy: OverflowPolicy) -> WriterConfig {
    WriterConfig::default()
        .queue_capacity(8, 1 << 20)
        .overflow(policy)
}

/// Floods a writer with `policy` over a disk that takes 3 ms per commit, shuts it down, and
/// checks that both outcomes occurred and that the log holds exactly the accepted events.
async fn flood_and_shut_down(
    dir: &std::path::Path,
    policy: OverflowPolicy,
) -> (Vec<String>, Vec<String>, ShutdownReport, Vec<AuditEvent>) {
    let sink = TestSink::new(dir).delay(Duration::from_millis(3));
    let writer = Writer::start(sink, flood_config(policy)).unwrap();
    let (accepted, refused) = flood(&writer.handle(), 400).await;
    assert!(
        !refused.is_empty(),
        "a producer faster than the disk overflows"
    );
    assert!(accepted.len() >= 8);
    let report = writer.shutdown(soon()).await;
    assert_eq!(report.flushed, accepted.len() as u64);
    let events = events(dir);
    assert_eq!(
        actions(&events),
        accepted,
        "exactly the accepted events, in order"
    );
    (accepted, refused, report, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_refuses_at_once_and_writes_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (_, refused, report, events) =
        flood_and_shut_down(dir.path(), OverflowPolicy::Reject).await;
    assert_eq!(report.rejected, refused.len() as u64);
    assert_eq!(report.dropped, 0);
    assert!(gaps(&events).is_empty());
    check_log(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_records_every_loss_in_a_gap_record() {
    let dir = tempfile::tempdir().unwrap();
    let (_, refused, report, events) =
        flood_and_shut_down(dir.path(), OverflowPolicy::DropNewest).await;
    assert_eq!(report.dropped, refused.len() as u64);
    assert_eq!(report.rejected, 0);
    let gaps = gaps(&events);
    assert!(!gaps.is_empty());
    assert!(gaps.iter().all(|(_, reason)| reason == GAP_QUEUE_FULL));
    let recorded: u64 = gaps.iter().map(|(n, _)| n).sum();
    assert_eq!(
        recorded,
        refused.len() as u64,
        "every drop is in a gap record"
    );
    // A gap sits where the events were dropped: between the accepted neighbours of a
    // refused tag.
    let position = |tag: &str| {
        events
            .iter()
            .position(|e| action(e).as_deref() == Some(tag))
    };
    let first_refused: usize = refused[0].trim_start_matches("flood-").parse().unwrap();
    let before = position(&format!("flood-{}", first_refused - 1)).unwrap();
    assert_eq!(events[before + 1].kind(), Kind::Gap);
    match &events.last().unwrap().body {
        EventBody::Stop(stop) => {
            assert_eq!(
                (stop.flushed, stop.dropped),
                (report.flushed, report.dropped)
            )
        }
        other => panic!("last record is {other:?}"),
    }
    check_log(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_waits_for_room_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = TestSink::new(dir.path()).delay(Duration::from_millis(2));
    let policy = OverflowPolicy::Block {
        timeout: Duration::from_secs(10),
    };
    let writer = Writer::start(sink, flood_config(policy)).unwrap();
    let handle = writer.handle();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..60 {
                let tag = format!("block-{i}-{j}");
                handle.record(event(&tag), Durability::Async).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let report = writer.shutdown(soon()).await;
    assert_eq!(
        (report.flushed, report.rejected, report.dropped),
        (240, 0, 0)
    );
    let events = events(dir.path());
    let written: BTreeSet<String> = actions(&events).into_iter().collect();
    assert_eq!(written.len(), 240);
    assert_schema_valid(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_gives_up_with_overflow_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sink = TestSink::new(dir.path());
    let gate = sink.gate.clone();
    let policy = OverflowPolicy::Block {
        timeout: Duration::from_millis(30),
    };
    let writer = Writer::start(sink, flood_config(policy)).unwrap();
    let handle = writer.handle();
    // One event in a held commit, and eight more fill the queue...
    hold_commit_and_queue(&handle, &gate, "queued", 8).await;
    // ...and the next one waits for room, then gives up.
    let started = Instant::now();
    let refused = handle.record(event("late"), Durability::Durable).await;
    assert!(matches!(refused, Err(RecordError::Overflow)), "{refused:?}");
    assert!(started.elapsed() >= Duration::from_millis(30));
    gate.open();
    let report = writer.shutdown(soon()).await;
    assert_eq!((report.flushed, report.rejected), (9, 1));
    assert!(!actions(&events(dir.path())).contains(&"late".to_owned()));
}

/// Holds the disk: closes the gate, records `first` and waits until its commit waits at the
/// gate, then queues `n` Async events tagged `{prefix}-{i}` behind it.
async fn hold_commit_and_queue(handle: &WriterHandle, gate: &Gate, prefix: &str, n: usize) {
    gate.close();
    handle
        .record(event("first"), Durability::Async)
        .await
        .unwrap();
    until(|| gate.waiting() == 1).await;
    for i in 0..n {
        handle
            .record(event(&format!("{prefix}-{i}")), Durability::Async)
            .await
            .unwrap();
    }
}

/// A writer whose disk is held at the gate, with one Durable event in the commit and
/// `queued` Durable callers waiting in the queue.
async fn stuck_writer(
    sink: TestSink,
    queued: usize,
) -> (
    Writer,
    Vec<tokio::task::JoinHandle<Result<u64, RecordError>>>,
) {
    let gate = sink.gate.clone();
    let config = WriterConfig::default().queue_capacity(queued, 1 << 20);
    let writer = Writer::start(sink, config).unwrap();
    gate.close();
    let handle = writer.handle();
    let mut tasks = Vec::new();
    for i in 0..=queued {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            let receipt = handle
                .record(event(&format!("stuck-{i}")), Durability::Durable)
                .await?;
            Ok(receipt.index.unwrap())
        }));
        if i == 0 {
            until(|| gate.waiting() == 1).await;
        }
    }
    until(|| handle.queued() == queued).await;
    (writer, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_full_queue_drains_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = TestSink::new(dir.path());
    let gate = sink.gate.clone();
    let (writer, tasks) = stuck_writer(sink, 64).await;
    let handle = writer.handle();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        gate.open();
    });
    let report = writer.shutdown(soon()).await;
    release.join().unwrap();
    assert_eq!(report.error, None);
    assert_eq!((report.flushed, report.dropped), (65, 0));
    assert!(report.drained >= 64, "{report:?}");
    let mut indexes = BTreeSet::new();
    for task in tasks {
        indexes.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(indexes, (1..66).collect());
    assert!(matches!(
        handle.record(event("after"), Durability::Async).await,
        Err(RecordError::Closed)
    ));
    let events = events(dir.path());
    assert_eq!(events.len(), 67);
    assert_eq!(events[66].kind(), Kind::Stop);
    check_log(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_records_what_it_could_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let sink = TestSink::new(dir.path());
    let gate = sink.gate.clone();
    let (writer, tasks) = stuck_writer(sink, 32).await;
    // The disk comes back only after the deadline has passed.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        gate.open();
    });
    let report = writer
        .shutdown(Instant::now() + Duration::from_millis(50))
        .await;
    release.join().unwrap();
    assert_eq!(report.error, None);
    assert_eq!((report.flushed, report.dropped), (1, 32));
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(outcomes[0].as_ref().ok(), Some(&1));
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| matches!(o, Err(RecordError::Closed)))
    );
    let events = events(dir.path());
    assert_eq!(
        kinds(&events),
        [Kind::Start, Kind::Http, Kind::Gap, Kind::Stop]
    );
    assert_eq!(gaps(&events), [(32, GAP_SHUTDOWN_DEADLINE.to_owned())]);
    check_log(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_error_fails_pending_and_later_callers_at_once() {
    for fault in [
        StorageFault::Sync,
        StorageFault::Write,
        StorageFault::NoSpace,
        StorageFault::ShortWrite,
    ] {
        let dir = tempfile::tempdir().unwrap();
        // Commit 1 is the start record; commit 2 writes the first event and fails.
        let sink = TestSink::new(dir.path()).fault_at(2, fault);
        let gate = sink.gate.clone();
        let (writer, tasks) = stuck_writer(sink, 3).await;
        let handle = writer.handle();
        gate.open();
        for task in tasks {
            let outcome = task.await.unwrap();
            assert!(
                matches!(outcome, Err(RecordError::Failed(_))),
                "{outcome:?}"
            );
        }
        let why = handle.failure().expect("failed state");
        assert!(why.contains("injected"), "{why}");
        // Later callers are refused at once, whatever their durability.
        for durability in [
            Durability::Durable,
            Durability::WriteAhead,
            Durability::Async,
        ] {
            let mut future = handle.record(event("later"), durability);
            let waker = std::task::Waker::noop();
            let poll = future
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker));
            assert!(
                matches!(poll, std::task::Poll::Ready(Err(RecordError::Failed(_)))),
                "{fault:?} {durability:?}: {poll:?}"
            );
        }
        let report = writer.shutdown(soon()).await;
        assert_eq!(report.lost, 4, "{report:?}");
        assert_eq!(report.flushed, 0);
        assert!(report.error.unwrap().contains("injected"));
        // What is on disk is still a valid log. After a failed fsync the failed batch may or
        // may not have reached the disk (its caller was told `Failed`, not `Ok`); after a
        // failed write it did not. Nothing queued behind it was written.
        let events = events(dir.path());
        let written = actions(&events);
        match fault {
            // A short write leaves a torn record, which reopening cuts.
            StorageFault::Write | StorageFault::NoSpace | StorageFault::ShortWrite => {
                assert!(written.is_empty(), "{written:?}")
            }
            StorageFault::Sync => {
                assert!(written.len() <= 1 && written.iter().all(|a| a == "stuck-0"))
            }
        }
        verify(dir.path());
    }
}

/// Appends `garbage` to the newest segment, as a crash in the middle of a write leaves it.
fn tear_tail(dir: &std::path::Path, garbage: &[u8]) {
    use std::io::Write;
    let newest = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(newest)
        .unwrap();
    file.write_all(garbage).unwrap();
    file.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), signer(), WriterConfig::default()).unwrap();
    writer
        .handle()
        .record(event("before"), Durability::Durable)
        .await
        .unwrap();
    writer.shutdown(soon()).await;
    // A frame header announcing 400 bytes, followed by only 10 of them.
    let mut torn = 400u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[7; 14]);
    tear_tail(dir.path(), &torn);

    let writer = Writer::open(dir.path(), signer(), WriterConfig::default()).unwrap();
    writer.shutdown(soon()).await;
    let events = events(dir.path());
    assert_eq!(
        kinds(&events),
        [
            Kind::Start,
            Kind::Http,
            Kind::Stop,
            Kind::Start,
            Kind::Recovered,
            Kind::Stop
        ]
    );
    match &events[4].body {
        EventBody::Recovered(r) => {
            assert_eq!(r.bytes_cut, torn.len() as u64);
            assert!(r.segment.ends_with(".seg"), "{}", r.segment);
            assert!(r.offset > 0);
        }
        other => panic!("{other:?}"),
    }
    assert_schema_valid(dir.path());
    assert!(!verify(dir.path()).recovered_tail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclean_stop_is_recorded_and_a_clean_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    // A writer that died between two batches: its last record is an event, not `stop`.
    let mut log = Log::open(dir.path(), signer(), LogOptions::default()).unwrap();
    let mut record = Vec::new();
    AuditEvent::start(log.origin()).write_json(0, &mut record);
    log.append(&record).unwrap();
    record.clear();
    event("last words").write_json(1, &mut record);
    log.append(&record).unwrap();
    log.sync().unwrap();
    drop(log);

    let writer = Writer::open(dir.path(), signer(), WriterConfig::default()).unwrap();
    writer.shutdown(soon()).await;
    let writer = Writer::open(dir.path(), signer(), WriterConfig::default()).unwrap();
    writer.shutdown(soon()).await;
    let events = events(dir.path());
    assert_eq!(
        kinds(&events),
        [
            Kind::Start,
            Kind::Http,
            Kind::Start,
            Kind::Recovered,
            Kind::Stop,
            Kind::Start,
            Kind::Stop
        ]
    );
    match &events[3].body {
        EventBody::Recovered(r) => assert_eq!(r.bytes_cut, 0),
        other => panic!("{other:?}"),
    }
    check_log(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_writer_drains_the_queue_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), signer(), WriterConfig::default()).unwrap();
    let handle = writer.handle();
    for i in 0..50 {
        handle
            .record(event(&format!("async-{i}")), Durability::Async)
            .await
            .unwrap();
    }
    drop(writer);
    assert!(matches!(
        handle.record(event("after"), Durability::Durable).await,
        Err(RecordError::Closed)
    ));
    let events = events(dir.path());
    assert_eq!(actions(&events).len(), 50);
    assert_eq!(events.last().unwrap().kind(), Kind::Stop);
    verify(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_every_n_records_and_every_t() {
    let dir = tempfile::tempdir().unwrap();
    let config = WriterConfig::default()
        .checkpoint_every(Some(10))
        .checkpoint_interval(None);
    let writer = Writer::open(dir.path(), signer(), config).unwrap();
    for i in 0..45 {
        writer
            .handle()
            .record(event(&format!("n-{i}")), Durability::Durable)
            .await
            .unwrap();
    }
    let history = || {
        Log::open_read_only(dir.path())
            .unwrap()
            .checkpoint_history()
            .unwrap()
    };
    // 46 records (start + 45), one per batch: checkpoints at 10, 20, 30, 40 (after the
    // empty tree's, signed when the log was created).
    assert_eq!(history().len(), 5);
    let report = writer.shutdown(soon()).await;
    assert_eq!(history().len(), 6, "and one at shutdown");
    assert!(report.checkpoint.unwrap().contains("\n47\n"));

    let dir = tempfile::tempdir().unwrap();
    let config = WriterConfig::default()
        .checkpoint_every(None)
        .checkpoint_interval(Some(Duration::from_millis(50)));
    let writer = Writer::open(dir.path(), signer(), config).unwrap();
    writer
        .handle()
        .record(event("timed"), Durability::Async)
        .await
        .unwrap();
    let history = || {
        Log::open_read_only(dir.path())
            .unwrap()
            .checkpoint_history()
            .unwrap()
    };
    until(|| history().len() == 2).await;
    let latest = history().pop().unwrap();
    assert!(latest.contains("\n2\n"), "start and the event: {latest}");
    writer.shutdown(soon()).await;
    verify(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_queue_batches_commits_and_refusals() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use veritrail_writer::metric;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dir = tempfile::tempdir().unwrap();
    let sink = TestSink::new(dir.path()).delay(Duration::from_millis(3));
    let writer = metrics::with_local_recorder(&recorder, || {
        Writer::start(sink, flood_config(OverflowPolicy::Reject)).unwrap()
    });
    let (accepted, refused) = flood(&writer.handle(), 200).await;
    let report = writer.shutdown(soon()).await;

    let mut counters = BTreeMap::new();
    let mut histograms = BTreeMap::new();
    let mut gauges = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        assert!(
            key.labels()
                .any(|l| l.key() == "origin" && l.value() == KEY_NAME)
        );
        let name = key.name().to_owned();
        match value {
            DebugValue::Counter(n) => {
                counters.insert(name, n);
            }
            DebugValue::Histogram(v) => {
                histograms.insert(name, v.len());
            }
            DebugValue::Gauge(g) => {
                gauges.insert(name, g.into_inner());
            }
        }
    }
    assert_eq!(counters[metric::EVENTS_WRITTEN], accepted.len() as u64);
    assert_eq!(counters[metric::EVENTS_REJECTED], refused.len() as u64);
    assert_eq!(counters[metric::EVENTS_DROPPED], 0);
    assert!(counters[metric::CHECKPOINTS] >= 1);
    // One sample per batch; one commit per batch somebody waits for (the start and stop
    // records at least) and at most one per batch that nobody waits for.
    let batches = histograms[metric::BATCH_RECORDS];
    assert_eq!(histograms[metric::BATCH_BYTES], batches);
    let commits = histograms[metric::COMMIT_SECONDS];
    assert!(
        commits >= 2 && commits <= batches,
        "{commits} commits, {batches} batches"
    );
    assert_eq!(gauges[metric::QUEUE_DEPTH], 0.0);
    assert_eq!(gauges[metric::FAILED], 0.0);
    assert_eq!(report.rejected, refused.len() as u64);
}

/// The `veritrail_writer_batch_records` samples of a writer started under `recorder`.
fn batch_sizes(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<f64> {
    use metrics_util::debugging::DebugValue;
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == veritrail_writer::metric::BATCH_RECORDS)
        .flat_map(|(.., value)| match value {
            DebugValue::Histogram(samples) => samples.into_iter().map(|s| s.into_inner()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_cut_by_count_and_gathered_by_linger() {
    use metrics_util::debugging::DebuggingRecorder;

    // Count: ten events queued behind a held commit go out as 4 + 4 + 2.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dir = tempfile::tempdir().unwrap();
    let sink = TestSink::new(dir.path());
    let gate = sink.gate.clone();
    let config = WriterConfig::default().batch_max(4, 1 << 20);
    let writer = metrics::with_local_recorder(&recorder, || Writer::start(sink, config).unwrap());
    hold_commit_and_queue(&writer.handle(), &gate, "counted", 10).await;
    gate.open();
    writer.shutdown(soon()).await;
    // start, first, 4, 4, 2, stop
    assert_eq!(batch_sizes(&snapshotter), [1.0, 1.0, 4.0, 4.0, 2.0, 1.0]);

    // Linger: ten Durable callers arriving within the linger time share one batch and one
    // fsync.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dir = tempfile::tempdir().unwrap();
    let config = WriterConfig::default().linger(Duration::from_millis(300));
    let writer = metrics::with_local_recorder(&recorder, || {
        Writer::open(dir.path(), signer(), config).unwrap()
    });
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let handle = writer.handle();
            tokio::spawn(async move {
                handle
                    .record(event(&format!("lingered-{i}")), Durability::Durable)
                    .await
                    .unwrap()
                    .index
                    .unwrap()
            })
        })
        .collect();
    let mut indexes = BTreeSet::new();
    for task in tasks {
        indexes.insert(task.await.unwrap());
    }
    assert_eq!(indexes, (1..11).collect());
    writer.shutdown(soon()).await;
    assert_eq!(batch_sizes(&snapshotter), [1.0, 10.0, 1.0]);
}

/// A sink whose commit panics after the start record (a bug in a sink, not an I/O error).
struct PanickingSink(TestSink);

impl veritrail_writer::Sink for PanickingSink {
    fn origin(&self) -> &str {
        self.0.origin()
    }
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn append(
        &mut self,
        batch: &veritrail_writer::Batch<'_>,
    ) -> Result<(), veritrail_writer::SinkError> {
        self.0.append(batch)
    }
    fn commit(&mut self) -> Result<(), veritrail_writer::SinkError> {
        assert!(self.0.size() <= 1, "sink bug");
        self.0.commit()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_writer_thread_fails_callers_instead_of_hanging_them() {
    let dir = tempfile::tempdir().unwrap();
    let sink = PanickingSink(TestSink::new(dir.path()));
    let writer = Writer::start(sink, WriterConfig::default()).unwrap();
    let handle = writer.handle();
    let outcome = handle.record(event("boom"), Durability::Durable).await;
    assert!(
        matches!(outcome, Err(RecordError::Failed(_))),
        "{outcome:?}"
    );
    until(|| handle.failure().is_some()).await;
    assert!(matches!(
        handle.record(event("later"), Durability::WriteAhead).await,
        Err(RecordError::Failed(_))
    ));
    let report = writer.shutdown(soon()).await;
    assert!(report.error.unwrap().contains("panicked"));
}

/// A file sink that counts its commits (each one write + fdatasync).
struct CountingSink {
    inner: veritrail_writer::FileSink,
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl veritrail_writer::Sink for CountingSink {
    fn origin(&self) -> &str {
        self.inner.origin()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn append(
        &mut self,
        batch: &veritrail_writer::Batch<'_>,
    ) -> Result<(), veritrail_writer::SinkError> {
        self.inner.append(batch)
    }
    fn commit(&mut self) -> Result<(), veritrail_writer::SinkError> {
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.commit()
    }
    fn checkpoint(&mut self) -> Result<Option<String>, veritrail_writer::SinkError> {
        self.inner.checkpoint()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_batches_are_fsynced_within_the_interval_and_durable_ones_at_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let commits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = CountingSink {
        inner: open_sink(dir.path()),
        commits: commits.clone(),
    };
    let config = WriterConfig::default().async_sync_interval(Duration::from_secs(2));
    let writer = Writer::start(sink, config).unwrap();
    let handle = writer.handle();
    let started = commits.load(SeqCst); // the `start` record was committed
    assert!(started >= 1);

    for i in 0..100 {
        handle
            .record(event(&format!("async-{i}")), Durability::Async)
            .await
            .unwrap();
    }
    until(|| handle.queued() == 0).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        commits.load(SeqCst),
        started,
        "async batches wait for the interval"
    );
    // Within the interval, one commit makes them all durable.
    until(|| commits.load(SeqCst) == started + 1).await;

    // A durable caller is answered only after its own commit, whatever the interval.
    handle
        .record(event("async-before-durable"), Durability::Async)
        .await
        .unwrap();
    let before = commits.load(SeqCst);
    let receipt = handle
        .record(event("durable"), Durability::Durable)
        .await
        .unwrap();
    assert!(receipt.index.is_some());
    assert!(commits.load(SeqCst) > before);

    let report = writer.shutdown(soon()).await;
    assert_eq!(report.dropped, 0);
    let logged = actions(&events(dir.path()));
    assert_eq!(logged.len(), 102, "every event is in the log");
    check_log(dir.path());
}
