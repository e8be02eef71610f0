//! Helpers for tests against real NATS servers: the shared JetStream at 127.0.0.1:4222 (each
//! test its own stream) and test-owned `nats-server` processes.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use veritrail_log::verify::{VerifyOptions, VerifyReport, verify_dir};
use veritrail_log::{Log, LogOptions, NoteSigner};
use veritrail_nats::sequencer::LogOpener;
use veritrail_nats::{
    IntegrationLog, NatsLocation, Sequencer, SequencerOptions, SequencerReport, StreamSettings,
    ensure_stream,
};
use veritrail_writer::FileSink;

/// The shared JetStream server every machine of the project runs.
pub const SHARED: &str = "127.0.0.1:4222";

/// Fails with a clear message if the shared server is not up.
pub fn require_shared() {
    if std::net::TcpStream::connect_timeout(&SHARED.parse().unwrap(), Duration::from_secs(2))
        .is_err()
    {
        panic!("these tests need NATS with JetStream at {SHARED} (run `nats-server -js -p 4222`)");
    }
}

/// A stream name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A location on `server` (HOST:PORT) for a fresh stream and origin.
pub fn location(server: &str, prefix: &str) -> NatsLocation {
    let stream = unique(prefix);
    format!("nats://{server}/{stream}?origin=test.veritrail/{stream}")
        .parse()
        .unwrap()
}

/// Settings for a single, non-clustered server, with a short lease.
pub fn test_settings() -> StreamSettings {
    StreamSettings::default()
        .replicas(1)
        .lease_ttl(Duration::from_millis(1500))
}

/// Creates the stream and lease bucket.
pub async fn init(at: &NatsLocation) {
    let client = veritrail_nats::connect(at, "test-init")
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    ensure_stream(&js, at, &test_settings())
        .await
        .expect("stream created");
}

/// Deletes the stream and lease bucket.
pub async fn cleanup(at: &NatsLocation) {
    if let Ok(client) = veritrail_nats::connect(at, "test-cleanup").await {
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_stream(at.stream()).await;
        let _ = js.delete_key_value(at.lease_bucket()).await;
    }
}

/// A fixed signing key per origin.
pub fn signer(origin: &str) -> NoteSigner {
    NoteSigner::generate(origin).expect("key")
}

/// Opens the directory log at `dir` with `key` (text form), for a sequencer.
pub fn dir_opener(dir: PathBuf, key: String, origin: String) -> LogOpener {
    Box::new(move || {
        let signer = NoteSigner::from_text(&key).expect("key");
        let options = LogOptions::default().origin(Some(origin.clone()));
        let sink = FileSink::open(&dir, signer, options)?;
        Ok(Box::new(sink) as Box<dyn IntegrationLog>)
    })
}

/// A sequencer running on its own thread.
pub struct Running {
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    pub thread: std::thread::JoinHandle<veritrail_nats::Result<SequencerReport>>,
}

impl Running {
    pub fn stop(self) -> SequencerReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("sequencer thread")
            .expect("sequencer ran")
    }
}

/// Starts a sequencer over the directory log `dir`.
pub fn start_sequencer(
    at: &NatsLocation,
    dir: &Path,
    key: &NoteSigner,
    options: SequencerOptions,
) -> Running {
    let opener = dir_opener(
        dir.to_owned(),
        key.to_text().to_string(),
        at.origin().to_owned(),
    );
    let sequencer = Sequencer::new(at.clone(), options, opener);
    let stop = sequencer.stop_flag();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        sequencer.run(runtime.handle())
    });
    Running { stop, thread }
}

/// Sequencer options for tests: settings as `test_settings`, quick checkpoints.
pub fn test_options() -> SequencerOptions {
    SequencerOptions::default()
        .checkpoint_interval(Duration::from_millis(50))
        .settings(test_settings())
}

/// Verifies the log in `dir`.
pub fn verify(dir: &Path, key: &NoteSigner) -> VerifyReport {
    verify_dir(dir, &key.verifier(), &VerifyOptions::default()).expect("the log verifies")
}

/// Every record of the log in `dir`.
pub fn records(dir: &Path) -> Vec<Vec<u8>> {
    let log = Log::open_read_only(dir).expect("open read-only");
    log.records(0).map(|r| r.expect("record").1).collect()
}

/// Waits until `cond` holds, failing after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < give_up, "{what}: not reached in {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `nats-server -js` this test owns: its own port and store directory; killed on drop.
pub struct OwnServer {
    pub port: u16,
    pub store: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnServer {
    pub fn start() -> OwnServer {
        let mut server = OwnServer {
            port: free_port(),
            store: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and store; waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests need the `nats-server` binary on PATH");
        self.child = Some(child);
        wait_until(
            Duration::from_secs(10),
            "nats-server accepts connections",
            || std::net::TcpStream::connect(self.addr()).is_ok(),
        );
    }

    /// Kills the server outright (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}
