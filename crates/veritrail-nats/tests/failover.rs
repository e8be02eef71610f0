//! Many replicas, one log, under fire — against real brokers, with real processes:
//!
//! - `three_producers_two_sequencers_active_killed_three_times`: three producer processes
//!   publish through the sink to the shared JetStream; two sequencer processes integrate; the
//!   active one is SIGKILLed three times during the load (and replaced, so two always run).
//!   Every event whose publish was acknowledged is in the log exactly once, the log verifies,
//!   and every checkpoint published is one of the log's, all consistent.
//! - `the_broker_restarted_during_the_load`: the same with a test-owned `nats-server`, killed
//!   and restarted during the load; producers and the sequencer resume by themselves.
//!
//! This file has its own `main`: run with `VT_ROLE=producer|sequencer`, it is one of the
//! processes; otherwise it runs the scenarios. `VT_KILLS=N` changes the number of kills
//! (BENCHMARKS.md measures failover time over 10).

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{Durability, RecordError, Recorder};
use veritrail_log::{Checkpoint, Log, NoteSigner};
use veritrail_nats::{NatsLocation, NatsSink, Sequencer, SinkOptions};
use veritrail_writer::{Writer, WriterConfig};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set for a child process"))
}

fn main() {
    match std::env::var("VT_ROLE").as_deref() {
        Ok("producer") => producer(),
        Ok("sequencer") => sequencer(),
        Ok(other) => panic!("unknown VT_ROLE {other}"),
        Err(_) => {
            // A failed scenario must not leave its producer and sequencer processes behind.
            let default_hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                for pid in CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                default_hook(info);
            }));
            let scenarios: [(&str, fn()); 2] = [
                (
                    "three_producers_two_sequencers_active_killed_three_times",
                    three_producers_two_sequencers_active_killed_three_times,
                ),
                (
                    "the_broker_restarted_during_the_load",
                    the_broker_restarted_during_the_load,
                ),
            ];
            let filter: Vec<String> = std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .collect();
            for (name, scenario) in scenarios {
                if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
                    let started = Instant::now();
                    scenario();
                    println!(
                        "test {name} ... ok ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }
}

/// The pids of the processes the scenarios started.
static CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

// ---- the processes ----

/// Publishes through a writer and the sink for `VT_SECONDS`, from 4 tasks, Durable; appends
/// the id of every event acknowledged to `VT_OUT`, one per line.
fn producer() {
    let at: NatsLocation = env("VT_LOCATION").parse().unwrap();
    let seconds: u64 = env("VT_SECONDS").parse().unwrap();
    let out = PathBuf::from(env("VT_OUT"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let sink = NatsSink::connect(
            &at,
            SinkOptions::default().durable_timeout(Duration::from_secs(2)),
        )
        .await
        .expect("producer connects");
        let writer = Writer::start(sink, WriterConfig::default()).expect("writer");
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for task in 0..4 {
            let handle = writer.handle();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut timed_out = 0u64;
                let mut i = 0u64;
                while Instant::now() < until {
                    let event = AuditEvent::http("POST", format!("/orders/{task}/{i}"))
                        .route("/orders/{task}/{id}")
                        .status(201)
                        .build();
                    let id = event.id.to_string();
                    match handle.record(event, Durability::Durable).await {
                        Ok(_) => acked.push(id),
                        Err(RecordError::TimedOut(_)) => timed_out += 1,
                        Err(e) => panic!("producer: {e}"),
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (acked, timed_out)
            }));
        }
        let mut file = std::io::BufWriter::new(std::fs::File::create(&out).unwrap());
        let mut timed_out = 0;
        for task in tasks {
            let (acked, t) = task.await.unwrap();
            timed_out += t;
            for id in acked {
                writeln!(file, "{id}").unwrap();
            }
        }
        file.flush().unwrap();
        let report = writer
            .shutdown(Instant::now() + Duration::from_secs(30))
            .await;
        assert_eq!(report.error, None, "producer writer: {report:?}");
        eprintln!("producer: {timed_out} timed out");
    });
}

/// Runs a sequencer on `VT_LOG` until SIGTERM; appends `pid elapsed_ms` to `VT_ACTIVE` each
/// time it becomes active.
fn sequencer() {
    let at: NatsLocation = env("VT_LOCATION").parse().unwrap();
    let key = env("VT_KEY");
    let active = PathBuf::from(env("VT_ACTIVE"));
    let opener = dir_opener(PathBuf::from(env("VT_LOG")), key, at.origin().to_owned());
    let sequencer = Sequencer::new(at, test_options(), opener).on_active(move || {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&active)
            .unwrap();
        writeln!(file, "{} {}", std::process::id(), unix_ms()).unwrap();
    });
    let stop = sequencer.stop_flag();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        term.recv().await;
        stop.store(true, Ordering::Relaxed);
    });
    let report = sequencer.run(runtime.handle()).expect("sequencer runs");
    eprintln!("sequencer {}: {report:?}", std::process::id());
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

// ---- the scenarios ----

struct Fleet {
    at: NatsLocation,
    dir: tempfile::TempDir,
    log: PathBuf,
    key: NoteSigner,
    active: PathBuf,
}

impl Fleet {
    fn new(at: NatsLocation) -> Fleet {
        // Kept when a scenario fails (the log is the evidence); removed when it passes.
        let dir = tempfile::Builder::new()
            .disable_cleanup(true)
            .tempdir()
            .unwrap();
        Fleet {
            log: dir.path().join("log"),
            active: dir.path().join("active"),
            key: signer(at.origin()),
            at,
            dir,
        }
    }

    fn child(&self, role: &str, extra: &[(&str, String)]) -> Child {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env("VT_ROLE", role)
            .env("VT_LOCATION", self.at.to_string())
            .env("VT_LOG", &self.log)
            .env("VT_KEY", self.key.to_text().as_str())
            .env("VT_ACTIVE", &self.active)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        CHILDREN.lock().unwrap().push(child.id());
        child
    }

    fn producer(&self, n: usize, seconds: u64) -> (Child, PathBuf) {
        let out = self.dir.path().join(format!("acked-{n}"));
        let child = self.child(
            "producer",
            &[
                ("VT_SECONDS", seconds.to_string()),
                ("VT_OUT", out.display().to_string()),
            ],
        );
        (child, out)
    }

    fn sequencer(&self) -> Child {
        self.child("sequencer", &[])
    }

    /// The (pid, when in unix ms) of each time a sequencer became active.
    fn activations(&self) -> Vec<(u32, u128)> {
        std::fs::read_to_string(&self.active)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (pid, at) = l.split_once(' ')?;
                Some((pid.parse().ok()?, at.parse().ok()?))
            })
            .collect()
    }

    /// Event ids in the log and how often.
    fn log_ids(&self) -> HashMap<String, u64> {
        let mut ids = HashMap::new();
        if let Ok(log) = Log::open_read_only(&self.log) {
            for record in log.records(0) {
                let (_, record) = record.expect("a readable record");
                if let Some(id) = veritrail_nats::record::event_id(&record) {
                    *ids.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
        ids
    }

    /// Waits for every acknowledged id to be in the log, then checks: exactly once, no id
    /// twice at all, each record at its index, the log verifies, and every published
    /// checkpoint is in its history.
    fn check(&self, acked: &[String], published: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ids = self.log_ids();
            let missing: Vec<&String> = acked.iter().filter(|id| !ids.contains_key(*id)).collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} acknowledged events not in the log after 60 s (log holds {} ids), e.g. {:?}; log kept in {}",
                missing.len(),
                acked.len(),
                ids.len(),
                &missing[..missing.len().min(3)],
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let ids = self.log_ids();
        for id in acked {
            assert_eq!(
                ids.get(id),
                Some(&1),
                "acknowledged event {id} exactly once"
            );
        }
        let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "ids integrated twice: {twice:?}");
        let report = verify(&self.log, &self.key);
        let log = Log::open_read_only(&self.log).unwrap();
        for record in log.records(0) {
            let (index, record) = record.unwrap();
            let event = AuditEvent::from_json(&record).expect("an audit event");
            assert_eq!(event.index, Some(index));
        }
        let history = log.checkpoint_history().unwrap();
        assert!(report.checkpoints_checked >= history.len().min(1));
        for note in published {
            Checkpoint::open(note, &self.key.verifier()).expect("signed by the log's key");
            assert!(
                history.contains(note),
                "a published checkpoint is in the log's history"
            );
        }
    }
}

fn read_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits for the producers; the ids they were told were durable.
fn acknowledged(producers: Vec<(Child, PathBuf)>) -> Vec<String> {
    let mut acked = Vec::new();
    for (mut child, out) in producers {
        assert!(child.wait().unwrap().success(), "a producer failed");
        acked.extend(read_ids(&out));
    }
    assert!(
        acked.len() > 1000,
        "the load was real: {} events",
        acked.len()
    );
    acked
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("a sequencer did not stop within 20 s of SIGTERM");
}

/// Collects the checkpoints the sequencers publish, on a thread of its own.
fn collect_checkpoints(
    at: &NatsLocation,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<String>>) {
    let done = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn({
        let (at, done) = (at.clone(), done.clone());
        move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let client = veritrail_nats::connect(&at, "test-checkpoints")
                    .await
                    .unwrap();
                let mut sub = client.subscribe(at.checkpoints_subject()).await.unwrap();
                client.flush().await.unwrap();
                ready_tx.send(()).unwrap();
                let mut notes = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    if let Ok(Some(m)) =
                        tokio::time::timeout(Duration::from_millis(100), sub.next()).await
                    {
                        notes.push(String::from_utf8(m.payload.to_vec()).unwrap());
                    }
                }
                notes
            })
        }
    });
    ready_rx.recv().unwrap();
    (done, thread)
}

fn three_producers_two_sequencers_active_killed_three_times() {
    require_shared();
    let at = location(SHARED, "vt_failover");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(init(&at));
    let fleet = Fleet::new(at.clone());
    let (done, collector) = collect_checkpoints(&at);
    let kills: usize = std::env::var("VT_KILLS").map_or(3, |k| k.parse().unwrap());
    let seconds = 4 + 4 * kills as u64;

    let mut sequencers = vec![fleet.sequencer(), fleet.sequencer()];
    let producers: Vec<_> = (0..3).map(|n| fleet.producer(n, seconds)).collect();
    let mut takeovers = Vec::new();
    for _ in 0..kills {
        wait_until(Duration::from_secs(20), "a sequencer is active", || {
            !fleet.activations().is_empty()
        });
        std::thread::sleep(Duration::from_millis(1500));
        let (pid, _) = *fleet.activations().last().unwrap();
        let at = sequencers
            .iter()
            .position(|c| c.id() == pid)
            .expect("the active one is ours");
        let mut victim = sequencers.remove(at);
        let killed_at = unix_ms();
        victim.kill().unwrap(); // SIGKILL
        victim.wait().unwrap();
        sequencers.push(fleet.sequencer());
        wait_until(Duration::from_secs(20), "a standby takes over", || {
            fleet.activations().last().is_some_and(|(p, _)| *p != pid)
        });
        let (_, active_at) = *fleet.activations().last().unwrap();
        takeovers.push(active_at.saturating_sub(killed_at) as u64);
    }
    let acked = acknowledged(producers);
    std::thread::sleep(Duration::from_millis(500));
    let published_before = {
        fleet.check(&acked, &[]); // waits for every event; published checked below
        for child in &mut sequencers {
            terminate(child);
        }
        done.store(true, Ordering::Relaxed);
        collector.join().unwrap()
    };
    assert!(!published_before.is_empty(), "checkpoints were published");
    fleet.check(&acked, &published_before);
    let mut sorted = takeovers.clone();
    sorted.sort_unstable();
    println!(
        "{} events acknowledged; takeover after SIGKILL over {} kills: median {} ms, worst {} ms ({takeovers:?})",
        acked.len(),
        kills,
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    assert!(
        sorted[sorted.len() - 1] <= 5000,
        "a standby takes over within 5 s: {takeovers:?}"
    );
    runtime.block_on(cleanup(&at));
    let _ = std::fs::remove_dir_all(fleet.dir.path());
}

fn the_broker_restarted_during_the_load() {
    let mut server = OwnServer::start();
    let at = location(&server.addr(), "vt_restart");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(init(&at));
    let fleet = Fleet::new(at.clone());
    let mut sequencer = fleet.sequencer();
    let producers: Vec<_> = (0..3).map(|n| fleet.producer(n, 10)).collect();
    wait_until(Duration::from_secs(20), "the sequencer is active", || {
        !fleet.activations().is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    server.kill();
    std::thread::sleep(Duration::from_secs(2));
    server.restart();
    let (done, collector) = collect_checkpoints(&at);
    let acked = acknowledged(producers);
    fleet.check(&acked, &[]);
    terminate(&mut sequencer);
    done.store(true, Ordering::Relaxed);
    let published = collector.join().unwrap();
    assert!(!published.is_empty(), "checkpoints were published");
    fleet.check(&acked, &published);
    println!(
        "{} events acknowledged across a broker restart; sequencer active {} time(s)",
        acked.len(),
        fleet.activations().len()
    );
    let _ = std::fs::remove_dir_all(fleet.dir.path());
}
