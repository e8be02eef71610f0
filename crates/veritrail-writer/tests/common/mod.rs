//! Helpers shared by the writer's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use veritrail_core::event::{Actor, AuditEvent, Kind};
use veritrail_log::store::StorageFault;
use veritrail_log::verify::{VerifyOptions, VerifyReport, verify_dir};
use veritrail_log::{Log, LogOptions, NoteSigner};
use veritrail_writer::{Batch, FileSink, Sink, SinkError};

const SCHEMA: &str = include_str!("../../../../schema/audit-event-v1.schema.json");

/// A fixed test key, so that a log can be reopened by a second process.
pub const KEY_NAME: &str = "writer.test/audit";

pub fn signer() -> NoteSigner {
    // Derived once per process; tests that reopen a log reuse the same text form.
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = KEY.get_or_init(|| {
        NoteSigner::generate(KEY_NAME)
            .expect("key")
            .to_text()
            .to_string()
    });
    NoteSigner::from_text(text).expect("key text")
}

/// A ~500-byte HTTP event whose `action` carries `tag`. Its actor is shared, as the engine
/// shares a cached token's actor between that token's events.
pub fn event(tag: &str) -> AuditEvent {
    static ACTOR: std::sync::LazyLock<Arc<Actor>> = std::sync::LazyLock::new(|| {
        Arc::new(Actor {
            sub: Some("user-7f3a9c".into()),
            iss: Some("https://idp.example.com/realms/main".into()),
            aud: vec!["orders-api".into()],
            jti: Some("6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b".into()),
            kid: Some("key-2026-11".into()),
            alg: Some("ES256".into()),
            scopes: vec!["orders:read".into(), "orders:write".into()],
            ..Actor::default()
        })
    });
    let actor = ACTOR.clone();
    AuditEvent::http("POST", "/orders/12345/items")
        .route("/orders/{id}/items")
        .client_address("203.0.113.9")
        .actor(actor)
        .authn_allowed()
        .action(tag)
        .target("order:12345")
        .status(201)
        .latency_us(830)
        .build()
}

/// The `action` of an HTTP event.
pub fn action(event: &AuditEvent) -> Option<String> {
    event.as_http()?.action.clone()
}

/// Every record of the log in `dir`, as raw bytes.
pub fn records(dir: &Path) -> Vec<Vec<u8>> {
    let log = Log::open_read_only(dir).expect("open read-only");
    log.records(0).map(|r| r.expect("record").1).collect()
}

/// Every record of the log in `dir`, parsed.
pub fn events(dir: &Path) -> Vec<AuditEvent> {
    records(dir)
        .iter()
        .map(|r| AuditEvent::from_json(r).expect("an audit event"))
        .collect()
}

pub fn kinds(events: &[AuditEvent]) -> Vec<Kind> {
    events.iter().map(AuditEvent::kind).collect()
}

/// Verifies the log in `dir` with the test key.
pub fn verify(dir: &Path) -> VerifyReport {
    verify_dir(dir, &signer().verifier(), &VerifyOptions::default()).expect("log verifies")
}

/// Checks every record of `dir` against the JSON Schema and that its `index` is its position.
pub fn assert_schema_valid(dir: &Path) {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");
    for (i, record) in records(dir).iter().enumerate() {
        let value: Value = serde_json::from_slice(record).expect("record is JSON");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "record {i} invalid: {errors:?}\n{value}");
        assert_eq!(value["index"].as_u64(), Some(i as u64), "record {i} index");
    }
}

/// The log in `dir` verifies and each of its records is a schema-valid event at its index.
pub fn check_log(dir: &Path) -> VerifyReport {
    assert_schema_valid(dir);
    verify(dir)
}

pub fn open_sink(dir: &Path) -> FileSink {
    FileSink::open(dir, signer(), LogOptions::default()).expect("open log")
}

/// A gate that commits wait at while it is closed; open and close it from any thread.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<(Mutex<GateState>, std::sync::Condvar)>);

#[derive(Debug, Default)]
pub struct GateState {
    closed: bool,
    waiting: usize,
}

impl Gate {
    pub fn close(&self) {
        self.0.0.lock().unwrap().closed = true;
    }
    pub fn open(&self) {
        self.0.0.lock().unwrap().closed = false;
        self.0.1.notify_all();
    }
    /// How many commits wait at the gate.
    pub fn waiting(&self) -> usize {
        self.0.0.lock().unwrap().waiting
    }
    fn pass(&self) {
        let mut state = self.0.0.lock().unwrap();
        state.waiting += 1;
        while state.closed {
            state = self.0.1.wait(state).unwrap();
        }
        state.waiting -= 1;
    }
}

/// A file sink whose commits take at least `delay` (a disk slower than the producers), and
/// that can be told to fail at the storage boundary.
pub struct TestSink {
    pub inner: FileSink,
    pub delay: Duration,
    /// Inject this fault into the log at the commit numbered `fault_at` (1 = first).
    pub fault: Option<(u64, StorageFault)>,
    /// While closed, commits wait at it.
    pub gate: Gate,
    commits: u64,
}

impl TestSink {
    pub fn new(dir: &Path) -> Self {
        TestSink {
            inner: open_sink(dir),
            delay: Duration::ZERO,
            fault: None,
            gate: Gate::default(),
            commits: 0,
        }
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn fault_at(mut self, commit: u64, fault: StorageFault) -> Self {
        self.fault = Some((commit, fault));
        self
    }
}

impl Sink for TestSink {
    fn origin(&self) -> &str {
        self.inner.origin()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        self.inner.append(batch)
    }
    fn commit(&mut self) -> Result<(), SinkError> {
        self.gate.pass();
        self.commits += 1;
        if let Some((at, fault)) = self.fault
            && at == self.commits
        {
            self.inner.log_mut().inject_fault(fault);
        }
        std::thread::sleep(self.delay);
        self.inner.commit()
    }
    fn checkpoint(&mut self) -> Result<Option<String>, SinkError> {
        self.inner.checkpoint()
    }
    fn recovered(&self) -> Option<veritrail_core::event::RecoveredRecord> {
        self.inner.recovered()
    }
}

/// A storage fault a [`FaultySink`] injects at the `Sink` boundary, as the OS would report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkFault {
    /// `append` fails with ENOSPC (`StorageFull`); nothing of the batch is taken.
    NoSpace,
    /// `append` fails with EIO; nothing of the batch is taken.
    WriteEio,
    /// `append` takes the batch, then `commit` (the fsync) fails with EIO: the records may or
    /// may not be on disk.
    SyncEio,
    /// `append` takes only the first half of the batch and fails with `WriteZero`, as a write
    /// that came up short and could not go on.
    ShortWrite,
    /// `append` takes only the first half of the batch and says `Ok`: a sink that lies.
    SilentShortWrite,
}

impl SinkFault {
    pub const ALL: [SinkFault; 5] = [
        SinkFault::NoSpace,
        SinkFault::WriteEio,
        SinkFault::SyncEio,
        SinkFault::ShortWrite,
        SinkFault::SilentShortWrite,
    ];

    /// The `stage` label the writer's failure metric gets.
    pub fn stage(self) -> &'static str {
        match self {
            SinkFault::SyncEio => "fsync",
            _ => "write",
        }
    }
}

/// What a [`FaultySink`] saw, shared with the test.
#[derive(Debug, Default)]
pub struct FaultLog {
    /// The fault fired.
    pub fired: std::sync::atomic::AtomicBool,
    /// Calls into the sink after the fault fired (the writer must make none).
    pub calls_after: std::sync::atomic::AtomicU64,
    /// The log size at the last successful commit: every acknowledged index is below it.
    pub committed_size: std::sync::atomic::AtomicU64,
}

/// A file sink that injects `fault` at batch number `at` (1 = the `start` record's batch)
/// and records whether the writer calls it again afterwards.
pub struct FaultySink {
    pub inner: FileSink,
    fault: SinkFault,
    at: u64,
    batches: u64,
    pub log: Arc<FaultLog>,
    /// While closed, appends wait at it (to fill the queue behind a held batch).
    pub gate: Gate,
}

impl FaultySink {
    pub fn new(dir: &Path, fault: SinkFault, at: u64) -> Self {
        FaultySink {
            inner: open_sink(dir),
            fault,
            at,
            batches: 0,
            log: Arc::default(),
            gate: Gate::default(),
        }
    }

    fn after_fault(&self) {
        if self.log.fired.load(std::sync::atomic::Ordering::SeqCst) {
            self.log
                .calls_after
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn fire(&self, error: std::io::Error) -> SinkError {
        self.log
            .fired
            .store(true, std::sync::atomic::Ordering::SeqCst);
        SinkError::Other(Box::new(error))
    }
}

impl Sink for FaultySink {
    fn origin(&self) -> &str {
        self.inner.origin()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        use std::io::{Error, ErrorKind};
        self.after_fault();
        self.gate.pass();
        self.batches += 1;
        if self.batches != self.at {
            return self.inner.append(batch);
        }
        match self.fault {
            SinkFault::NoSpace => Err(self.fire(Error::new(
                ErrorKind::StorageFull,
                "injected: no space left on device",
            ))),
            SinkFault::WriteEio => Err(self.fire(Error::other("injected: EIO on write"))),
            SinkFault::SyncEio => self.inner.append(batch),
            SinkFault::ShortWrite | SinkFault::SilentShortWrite => {
                let keep = batch.len() / 2;
                let mut bytes = Vec::new();
                let mut ends = Vec::new();
                for record in batch.records().take(keep) {
                    bytes.extend_from_slice(record);
                    ends.push(bytes.len());
                }
                let first = batch.indexes().start;
                self.inner.append(&Batch::new(first, &bytes, &ends))?;
                if self.fault == SinkFault::SilentShortWrite {
                    // Lies: the writer must notice by the size.
                    self.log
                        .fired
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    return Ok(());
                }
                Err(self.fire(Error::new(
                    ErrorKind::WriteZero,
                    format!(
                        "injected: short write, {keep} of {} records written",
                        batch.len()
                    ),
                )))
            }
        }
    }
    fn commit(&mut self) -> Result<(), SinkError> {
        self.after_fault();
        if self.fault == SinkFault::SyncEio
            && self.batches >= self.at
            && !self.log.fired.load(std::sync::atomic::Ordering::SeqCst)
        {
            // The first fsync covering batch `at` fails; a retried one would wrongly succeed
            // ("fsyncgate"): the writer must not retry.
            return Err(self.fire(std::io::Error::other("injected: EIO on fsync")));
        }
        self.inner.commit()?;
        self.log
            .committed_size
            .store(self.inner.size(), std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
    fn checkpoint(&mut self) -> Result<Option<String>, SinkError> {
        self.after_fault();
        self.inner.checkpoint()
    }
    fn recovered(&self) -> Option<veritrail_core::event::RecoveredRecord> {
        self.inner.recovered()
    }
}
