//! Crash test: a child process (this test binary, re-executed) writes events with `Durable`
//! acknowledgements and prints each acknowledged index; the parent SIGKILLs it at random
//! moments. After each kill the log verifies, the reopened writer records `recovered`, and
//! every event ever acknowledged is in the log at its index, with its content.
//!
//! `VERITRAIL_CRASH_KILLS` sets the number of kills (default 50; `scripts/crash-soak` runs
//! 1,000), `VERITRAIL_CRASH_SEED` replays a run (the seed is printed on failure).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{event, signer};
use veritrail_core::event::{AuditEvent, Kind};
use veritrail_core::recorder::{Durability, Recorder};
use veritrail_log::verify::{VerifyOptions, verify_dir};
use veritrail_log::{Log, LogOptions, NoteSigner};
use veritrail_writer::{FileSink, Sink, Writer, WriterConfig};

const TEST_NAME: &str = "sigkill_at_random_moments_loses_no_acknowledged_event";
const CHILD_DIR: &str = "VERITRAIL_CRASH_CHILD_DIR";
const CHILD_KEY: &str = "VERITRAIL_CRASH_CHILD_KEY";
/// Kills per log directory: a fresh log every ten kills keeps verifying after each kill fast
/// (the whole log is re-hashed each time, in a debug build).
const KILLS_PER_LOG: usize = 10;

fn log_options() -> LogOptions {
    // Small segments, so that kills also land around segment rotation.
    LogOptions::default().segment_bytes(256 << 10)
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    match std::env::var(CHILD_DIR) {
        Ok(dir) => child(Path::new(&dir)),
        Err(_) => parent(),
    }
}

/// Writes events from 16 concurrent producers until killed; prints `ACK index id tag` for
/// each durable acknowledgement.
fn child(dir: &Path) {
    let key = std::env::var(CHILD_KEY).expect("key");
    let signer = NoteSigner::from_text(&key).expect("key text");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sink = FileSink::open(dir, signer, log_options()).expect("open log");
        let config = WriterConfig::default().checkpoint_every(Some(400));
        let writer = Writer::start(sink, config).expect("start writer");
        let pid = std::process::id();
        let mut producers = Vec::new();
        for p in 0..16 {
            let handle = writer.handle();
            producers.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let tag = format!("{pid}-{p}-{n}");
                    let event = event(&tag);
                    let id = event.id;
                    // Every fourth event is fire-and-forget: mixed batches, no ack printed.
                    let durability = if n % 4 == 3 {
                        Durability::Async
                    } else {
                        Durability::Durable
                    };
                    let receipt = handle.record(event, durability).await.expect("recorded");
                    if let Some(index) = receipt.index {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {index} {id} {tag}").unwrap();
                        out.flush().unwrap();
                    }
                }
            }));
        }
        for producer in producers {
            producer.await.unwrap();
        }
    });
}

/// xorshift64*: enough randomness for kill timing, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

struct Ack {
    id: String,
    tag: String,
}

fn parent() {
    let kills: usize = std::env::var("VERITRAIL_CRASH_KILLS")
        .ok()
        .map(|v| v.parse().expect("VERITRAIL_CRASH_KILLS is a number"))
        .unwrap_or(50);
    let seed: u64 = std::env::var("VERITRAIL_CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("VERITRAIL_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {kills} kills, VERITRAIL_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut total_acks = 0usize;
    let mut torn = 0usize;
    let mut done = 0usize;
    while done < kills {
        let dir = tempfile::tempdir().unwrap();
        let mut acked: BTreeMap<u64, Ack> = BTreeMap::new();
        for _ in 0..KILLS_PER_LOG.min(kills - done) {
            let outcome = kill_once(dir.path(), &mut rng, &mut acked);
            torn += usize::from(outcome);
            done += 1;
        }
        total_acks += acked.len();
    }
    eprintln!(
        "crash test: {done} kills, {total_acks} acknowledged events all present, \
         {torn} torn tails cut, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(total_acks > 0, "the children acknowledged events");
}

/// One child run, killed at a random moment, then the checks. Returns whether the kill left
/// a torn tail.
fn kill_once(dir: &Path, rng: &mut Rng, acked: &mut BTreeMap<u64, Ack>) -> bool {
    let size_before = Log::open_read_only(dir).map_or(0, |log| log.size());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_KEY, signer().to_text().as_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut received = Vec::new();
    // One kill in five at a random moment from the spawn (it may land while the child opens
    // and repairs the log); the others a random time after the first acknowledgement.
    if rng.below(5) == 0 {
        std::thread::sleep(Duration::from_micros(rng.below(40_000)));
    } else {
        let give_up = Instant::now() + Duration::from_secs(20);
        loop {
            match lines.recv_timeout(Duration::from_millis(10)) {
                Ok(line) => {
                    let first = line.starts_with("ACK ");
                    received.push(line);
                    if first {
                        break;
                    }
                }
                Err(_) => {
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!("child exited before being killed: {status}");
                    }
                    assert!(Instant::now() < give_up, "child never acknowledged");
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed: {status}");
    reader.join().unwrap();
    received.extend(lines.try_iter());
    for line in received {
        let Some(rest) = line.strip_prefix("ACK ") else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let index: u64 = parts.next().unwrap().parse().unwrap();
        let id = parts.next().unwrap().to_owned();
        let tag = parts.next().unwrap().to_owned();
        let earlier = acked.insert(index, Ack { id, tag });
        assert!(earlier.is_none(), "index {index} acknowledged twice");
    }

    // The log as the kill left it verifies (a torn tail is reported, not an error).
    let verifier = signer().verifier();
    let options = VerifyOptions::default().threads(1);
    // (A child killed before it created the log leaves nothing to verify.)
    let torn = dir.join("LOG").exists()
        && verify_dir(dir, &verifier, &options)
            .expect("log verifies after the kill")
            .tail
            .is_some();
    let size_after_kill = Log::open_read_only(dir).map_or(0, |log| log.size());

    // Reopen: the writer cuts the torn tail and records the unclean stop.
    let sink = FileSink::open(dir, signer(), log_options()).expect("reopen");
    let reopened_at = sink.size();
    let writer = Writer::start(sink, WriterConfig::default()).expect("restart");
    let report = writer.shutdown_blocking(Instant::now() + Duration::from_secs(10));
    assert_eq!(report.error, None);
    let after = verify_dir(dir, &verifier, &options).expect("log verifies after reopening");
    assert!(after.tail.is_none());

    // `recovered` follows `start` whenever the child got as far as writing anything (it never
    // writes `stop`); a child killed before its first record left the log cleanly stopped.
    let log = Log::open_read_only(dir).unwrap();
    let kinds: Vec<Kind> = (reopened_at..log.size())
        .map(|i| AuditEvent::from_json(&log.read(i).unwrap()).unwrap().kind())
        .collect();
    if torn || size_after_kill > size_before {
        assert_eq!(kinds, [Kind::Start, Kind::Recovered, Kind::Stop]);
    } else {
        assert_eq!(kinds, [Kind::Start, Kind::Stop]);
    }
    for (index, ack) in acked.iter() {
        let record = log
            .read(*index)
            .unwrap_or_else(|e| panic!("acknowledged {index}: {e}"));
        let event = AuditEvent::from_json(&record).unwrap();
        assert_eq!(event.index, Some(*index));
        assert_eq!(
            event.id.to_string(),
            ack.id,
            "record {index} is another event"
        );
        assert_eq!(
            event.as_http().and_then(|h| h.action.as_deref()),
            Some(ack.tag.as_str())
        );
    }
    torn
}
