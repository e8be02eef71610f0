//! The writer into PostgreSQL: batches under load while the sink's connections are
//! terminated, and an outage during which `Durable` callers get a bounded error and `Async`
//! events wait, then writing resumes — every acknowledged event stored exactly once, and the
//! log verifies.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::TestSchema;
use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{Durability, RecordError, Recorder};
use veritrail_log::NoteSigner;
use veritrail_log::source::LogSource;
use veritrail_log::verify::VerifyOptions;
use veritrail_postgres::{PgLocation, PgLogOptions, PgSink, PgStore, grants_sql, verify};
use veritrail_writer::{OverflowPolicy, Writer, WriterConfig};

/// How many times each action occurs in the log.
fn actions(loc: &PgLocation) -> HashMap<String, u32> {
    let store = PgStore::open(loc).unwrap();
    let mut seen = HashMap::new();
    for item in store.records(0) {
        let item = item.unwrap();
        let event = AuditEvent::from_json(&item.record).unwrap();
        if let Some(action) = event.as_http().and_then(|h| h.action.clone()) {
            *seen.entry(action).or_insert(0) += 1;
        }
    }
    seen
}

fn event(action: String) -> AuditEvent {
    AuditEvent::http("POST", "/orders")
        .route("/orders")
        .action(action)
        .status(201)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_terminated_connections_exactly_once() {
    let schema = TestSchema::new("kill");
    let app = format!("{}_sink", schema.name);
    let url = format!(
        "{}&application_name={app}",
        schema.url(Some("orders-api/pod-1"))
    );
    let loc: PgLocation = url.parse().unwrap();
    let signer = NoteSigner::generate("orders-api/pod-1").unwrap();
    let sink = PgSink::open(&loc, signer.clone(), PgLogOptions::default()).unwrap();
    let writer = Writer::start(sink, WriterConfig::default()).unwrap();

    // Terminate the sink's connections again and again while the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let base = support::server_url();
        let app = app.clone();
        std::thread::spawn(move || {
            let mut terminated = 0;
            let kill = TestSchema::raw(&base);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(120));
                terminated += kill.count(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = '{app}'"
                ));
            }
            terminated
        })
    };
    let mut tasks = Vec::new();
    for task in 0..8 {
        let recorder = writer.handle();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..150 {
                let action = format!("t{task}-{i}");
                let durability = if i % 3 == 0 {
                    Durability::Async
                } else {
                    Durability::Durable
                };
                match recorder.record(event(action.clone()), durability).await {
                    Ok(receipt) if durability == Durability::Durable => {
                        acked.push((action, receipt.index.unwrap()));
                    }
                    Ok(_) | Err(RecordError::TimedOut(_)) => {}
                    Err(e) => panic!("{action}: {e}"),
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let terminated = killer.join().unwrap();
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(30))
        .await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert!(
        terminated >= 3,
        "only {terminated} connections were terminated"
    );
    assert!(
        acked.len() > 500,
        "only {} durable events acknowledged",
        acked.len()
    );

    let store = PgStore::open(&loc).unwrap();
    let report = verify(&store, &signer.verifier(), &VerifyOptions::default()).unwrap();
    assert_eq!(report.records, store.size());
    let seen = actions(&loc);
    for (action, index) in &acked {
        assert_eq!(
            seen.get(action),
            Some(&1),
            "{action} is stored {:?} times",
            seen.get(action)
        );
        let stored = AuditEvent::from_json(&store.read(*index).unwrap()).unwrap();
        assert_eq!(
            stored.as_http().unwrap().action.as_deref(),
            Some(action.as_str())
        );
    }
    // Nothing is stored twice, acknowledged or not.
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_gives_durable_callers_a_bounded_error_and_writing_resumes() {
    let schema = TestSchema::new("outage");
    let role = ServiceRole::new(&schema);
    let loc = role.loc("pod-2");
    let signer = NoteSigner::generate("pod-2").unwrap();
    let policy = OverflowPolicy::Block {
        timeout: Duration::from_millis(50),
    };
    let (writer, recorder) = start_writer(&loc, &signer, policy, 64).await;

    role.outage();
    let started = Instant::now();
    let err = recorder
        .record(event("during-durable".into()), Durability::Durable)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, RecordError::TimedOut(_)), "{err}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    // Async events wait in the queue; past its capacity the overflow policy answers.
    let mut queued = Vec::new();
    let mut overflowed = 0;
    for i in 0..100 {
        match recorder
            .record(event(format!("during-async-{i}")), Durability::Async)
            .await
        {
            Ok(_) => queued.push(format!("during-async-{i}")),
            Err(RecordError::Overflow) => overflowed += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        !queued.is_empty() && overflowed > 0,
        "{} queued, {overflowed} refused",
        queued.len()
    );

    role.back();
    // Writing resumes on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        match recorder
            .record(event("after".into()), Durability::Durable)
            .await
        {
            Ok(receipt) => break receipt.index.unwrap(),
            Err(RecordError::TimedOut(_) | RecordError::Overflow) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("writing did not resume: {e}"),
        }
    };
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(10))
        .await;
    assert!(report.error.is_none(), "{:?}", report.error);

    let owner_loc = schema.loc(Some("pod-2"));
    let store = PgStore::open(&owner_loc).unwrap();
    verify(&store, &signer.verifier(), &VerifyOptions::default()).unwrap();
    assert!(store.read(after).is_ok());
    let seen = actions(&owner_loc);
    for action in queued.iter().map(String::as_str).chain(["before", "after"]) {
        assert_eq!(seen.get(action), Some(&1), "{action}");
    }
    // The timed-out event was kept and written when the database came back (at most once).
    assert!(seen.get("during-durable").is_none_or(|&n| n == 1));
}

/// A writer that ended without its `stop` record (killed between two batches) is noticed by
/// the next one, which records a `recovered` record after its `start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_before_its_stop_record_is_recorded_as_recovered() {
    let schema = TestSchema::new("killed");
    let loc = schema.loc(Some("pod-3"));
    let signer = NoteSigner::generate("pod-3").unwrap();
    // What a killed writer leaves: its `start` and an event, committed, and no `stop`.
    let mut log =
        veritrail_postgres::PgLog::open(&loc, signer.clone(), Default::default()).unwrap();
    let (mut start, mut http) = (Vec::new(), Vec::new());
    AuditEvent::start("pod-3").write_json(0, &mut start);
    event("before the kill".into()).write_json(1, &mut http);
    log.append_batch([start.as_slice(), http.as_slice()])
        .unwrap();
    log.commit().unwrap();
    drop(log);

    let sink = PgSink::open(&loc, signer.clone(), PgLogOptions::default()).unwrap();
    let writer = Writer::start(sink, WriterConfig::default()).unwrap();
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(10))
        .await;
    assert!(report.error.is_none());
    let store = PgStore::open(&loc).unwrap();
    let kinds: Vec<String> = store
        .records(0)
        .map(|r| {
            let event = AuditEvent::from_json(&r.unwrap().record).unwrap();
            event.kind().as_str().to_owned()
        })
        .collect();
    assert_eq!(kinds, ["start", "http", "start", "recovered", "stop"]);
    verify(&store, &signer.verifier(), &VerifyOptions::default()).unwrap();
}

/// A writer into `loc` with a 1 s commit timeout, the overflow `policy` and a queue of
/// `capacity` events, which has made an event `before` durable.
async fn start_writer(
    loc: &PgLocation,
    signer: &NoteSigner,
    policy: OverflowPolicy,
    capacity: usize,
) -> (Writer, veritrail_writer::WriterHandle) {
    let opts = PgLogOptions::default().commit_timeout(Duration::from_secs(1));
    let sink = PgSink::open(loc, signer.clone(), opts).unwrap();
    let config = WriterConfig::default()
        .overflow(policy)
        .queue_capacity(capacity, 1 << 20);
    let writer = Writer::start(sink, config).unwrap();
    let recorder = writer.handle();
    recorder
        .record(event("before".into()), Durability::Durable)
        .await
        .unwrap();
    (writer, recorder)
}

/// A schema created by the owner, and a role of the service's own that writes into it and
/// can be refused logins (its sessions ended) to make an outage.
struct ServiceRole<'a> {
    schema: &'a TestSchema,
    name: String,
    _cleanup: support::RoleCleanup<'a>,
}

impl<'a> ServiceRole<'a> {
    fn new(schema: &'a TestSchema) -> Self {
        drop(
            veritrail_postgres::PgLog::open(
                &schema.loc(Some("setup")),
                NoteSigner::generate("setup").unwrap(),
                Default::default(),
            )
            .unwrap(),
        );
        let name = format!("{}_w", schema.name);
        schema.sql(&format!(
            "CREATE ROLE {name} LOGIN;\n{}",
            grants_sql(&schema.name, &name, &name)
        ));
        ServiceRole {
            schema,
            _cleanup: support::RoleCleanup::new(schema, &name),
            name,
        }
    }

    fn loc(&self, origin: &str) -> PgLocation {
        format!(
            "postgres://{}@127.0.0.1:5432/test?schema={}&origin={origin}&connect_timeout=1",
            self.name, self.schema.name
        )
        .parse()
        .unwrap()
    }

    fn outage(&self) {
        self.schema.sql(&format!(
            "ALTER ROLE {0} NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE usename = '{0}'",
            self.name
        ));
    }

    fn back(&self) {
        self.schema.sql(&format!("ALTER ROLE {} LOGIN", self.name));
    }
}

/// Under `DropNewest`, what does not fit in the queue during an outage is dropped and counted
/// in a `gap` record, written once the database is back; the log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_dropped_during_an_outage_are_counted_in_a_gap_record() {
    let schema = TestSchema::new("gap");
    let role = ServiceRole::new(&schema);
    let loc = role.loc("pod-4");
    let signer = NoteSigner::generate("pod-4").unwrap();
    let (writer, recorder) = start_writer(&loc, &signer, OverflowPolicy::DropNewest, 16).await;
    role.outage();
    // A Durable event the writer takes and keeps retrying, so that the queue fills behind it.
    let stuck = tokio::spawn({
        let recorder = recorder.clone();
        async move {
            recorder
                .record(event("stuck".into()), Durability::Durable)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut queued, mut dropped) = (Vec::new(), 0u64);
    for i in 0..100 {
        match recorder
            .record(event(format!("async-{i}")), Durability::Async)
            .await
        {
            Ok(_) => queued.push(format!("async-{i}")),
            Err(RecordError::Overflow) => dropped += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        dropped > 0 && !queued.is_empty(),
        "{} queued, {dropped} dropped",
        queued.len()
    );
    role.back();
    let _ = stuck.await.unwrap();
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(20))
        .await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.dropped, dropped);

    let owner = schema.loc(Some("pod-4"));
    let store = PgStore::open(&owner).unwrap();
    verify(&store, &signer.verifier(), &VerifyOptions::default()).unwrap();
    let seen = actions(&owner);
    for action in &queued {
        assert_eq!(seen.get(action), Some(&1), "{action}");
    }
    let gaps: u64 = store
        .records(0)
        .filter_map(|r| {
            let event = AuditEvent::from_json(&r.unwrap().record).unwrap();
            match event.body {
                veritrail_core::event::EventBody::Gap(gap) => Some(gap.dropped),
                _ => None,
            }
        })
        .sum();
    assert_eq!(gaps, dropped);
}
