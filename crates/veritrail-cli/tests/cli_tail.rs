//! `veritrail tail`: a running follower sees records appended after it started, by a writer
//! that has the log open at the same time.

mod common;
#[path = "cli_events_fixture/mod.rs"]
mod fixture;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::Env;
use fixture::AuditLog;
use veritrail_core::event::{Actor, AuditEvent};

/// Long enough for a loaded CI machine; a passing run waits a fraction of it.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running `veritrail tail` with its stdout lines arriving on a channel.
struct Tail {
    child: Child,
    lines: Receiver<String>,
}

impl Tail {
    fn start(log: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .arg("tail")
            .arg(log)
            .args(["--interval", "50"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn veritrail tail");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Tail { child, lines }
    }

    /// The next line, or a panic after [`PATIENCE`].
    fn next(&self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("tail printed nothing for {PATIENCE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("tail exited"),
        }
    }

    /// Asserts that nothing more arrives for a while.
    fn quiet_for(&self, wait: Duration) {
        if let Ok(line) = self.lines.recv_timeout(wait) {
            panic!("unexpected line: {line}");
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(sub: &str, n: u32) -> AuditEvent {
    AuditEvent::http("GET", format!("/orders/{n}"))
        .route("/orders/{id}")
        .actor(Actor {
            sub: Some(sub.into()),
            ..Actor::default()
        })
        .authn_allowed()
        .status(200)
        .build()
}

fn index_of(row: &str) -> u64 {
    row.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn tail_prints_rows_for_records_appended_after_it_started() {
    let env = Env::new();
    let mut log = AuditLog::create(&env.path("log"));
    for n in 0..3 {
        log.append(&request("alice", n));
    }
    log.commit();

    let tail = Tail::start(&env.path("log"), &[]);
    // The header is printed once the log is open: from here on, appends are new.
    assert!(tail.next().starts_with("TIME"));
    tail.quiet_for(Duration::from_millis(300));
    log.append(&request("bob", 3));
    log.commit();
    let row = tail.next();
    assert_eq!(index_of(&row), 3, "{row}");
    assert!(
        row.contains("bob") && row.contains("GET /orders/{id}"),
        "{row}"
    );
    log.append(&request("carol", 4));
    log.append(&request("dave", 5));
    log.commit();
    assert_eq!(index_of(&tail.next()), 4);
    assert_eq!(index_of(&tail.next()), 5);
}

#[test]
fn rows_show_control_and_bidi_characters_escaped() {
    let env = Env::new();
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&request("eve\u{1b}[2J\u{202e}\nFAKE", 0));
    log.commit();
    let tail = Tail::start(&env.path("log"), &["--from-start"]);
    assert!(tail.next().starts_with("TIME"));
    let row = tail.next();
    assert!(row.contains(r"eve\x1b[2J\u{202e}\x0aFAKE"), "{row:?}");
    assert!(!row.contains(['\u{1b}', '\u{202e}']), "{row:?}");
    log.append(&request("bob", 1));
    log.commit();
    assert_eq!(index_of(&tail.next()), 1, "no fake row in between");
}

#[test]
fn json_from_the_start_prints_stored_bytes_then_follows_with_filters() {
    let env = Env::new();
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&request("alice", 0));
    log.append(&request("bob", 1));
    log.commit();

    let tail = Tail::start(
        &env.path("log"),
        &["--json", "--from-start", "--sub", "alice"],
    );
    assert_eq!(tail.next(), log.text(0));
    log.append(&request("bob", 2));
    log.append(&request("alice", 3));
    log.commit();
    assert_eq!(tail.next(), log.text(3));

    let last = Tail::start(&env.path("log"), &["--json", "-n", "2"]);
    assert_eq!(last.next(), log.text(2));
    assert_eq!(last.next(), log.text(3));
    log.append(&request("erin", 4));
    log.commit();
    assert_eq!(last.next(), log.text(4));
}

#[test]
fn tail_ends_with_success_when_its_reader_goes_away() {
    let env = Env::new();
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&request("alice", 0));
    log.commit();
    let mut child = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(["tail", env.path("log").to_str().unwrap()])
        .args(["--interval", "50", "--from-start"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("TIME"), "{line}");
    drop(reader);
    // The next write finds the pipe closed.
    let deadline = Instant::now() + PATIENCE;
    let mut n = 1;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tail kept running with no reader"
        );
        log.append(&request("bob", n));
        log.commit();
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_log_replaced_by_a_shorter_one_stops_tail_with_exit_1() {
    let env = Env::new();
    let mut log = AuditLog::create(&env.path("log"));
    for n in 0..3 {
        log.append(&request("alice", n));
    }
    log.commit();
    drop(log);
    let mut tail = Tail::start(&env.path("log"), &[]);
    assert!(tail.next().starts_with("TIME"));
    std::fs::remove_dir_all(env.path("log")).unwrap();
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&request("mallory", 0));
    log.commit();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = tail.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tail did not notice");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    tail.quiet_for(Duration::from_millis(100));
}
