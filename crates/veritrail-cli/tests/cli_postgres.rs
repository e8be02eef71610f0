//! Logs in PostgreSQL through the real binary: the read commands give the same answers as
//! for the directory the log was copied from, `copy` both ways keeps the checkpoints byte for
//! byte, `verify` without an origin checks every origin (three written at once), tampering as
//! the owner is reported with origin and index, and `proxy --log postgres://…` writes there.
//! Each test uses a schema of its own on 127.0.0.1:5432 (database `test`), dropped after.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, KEY_NAME, events, stdout};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs SQL with `psql` as the owner; `{s}` stands for the schema.
fn psql(schema: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-X",
            "-q",
            "-t",
            "-A",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-c", &sql.replace("{s}", schema)])
        .output()
        .unwrap_or_else(|e| panic!("these tests need psql and PostgreSQL on 127.0.0.1:5432: {e}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A schema of its own, dropped when this is.
struct Schema(String);

impl Schema {
    fn new(tag: &str) -> Schema {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("vt_cli_{tag}_{}_{nanos}", std::process::id());
        psql(&name, "SELECT 1").unwrap_or_else(|e| {
            panic!("these tests need PostgreSQL on 127.0.0.1:5432 (database test): {e}")
        });
        Schema(name)
    }

    fn url(&self, origin: Option<&str>) -> String {
        match origin {
            Some(o) => format!("{SERVER}?schema={}&origin={o}", self.0),
            None => format!("{SERVER}?schema={}", self.0),
        }
    }

    /// Runs SQL as the owner with the append-only triggers off, as an attacker with the
    /// owner's password would.
    fn tamper(&self, sql: &str) {
        psql(
            &self.0,
            &format!("SET session_replication_role = replica; {sql}"),
        )
        .unwrap();
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = psql(&self.0, "DROP SCHEMA IF EXISTS {s} CASCADE");
    }
}

#[test]
fn a_log_copied_into_postgres_and_back_gives_the_same_answers() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..200));
    let held = env.checkpoint(); // an auditor's copy of a checkpoint
    env.write("held.checkpoint", &held);
    env.append(&events(200..333));
    let schema = Schema::new("copy");
    let pg = schema.url(Some(KEY_NAME));

    let out = env.ok(&["copy", "log", &schema.url(None), "--key", "key"], b"");
    let err = common::stderr(&out);
    assert!(err.contains("copied 333 records"), "{err}");
    assert!(
        err.contains("3/3 of the source's checkpoints re-signed byte for byte"),
        "{err}"
    );

    // The same answers from either store.
    for args in [
        vec!["checkpoint"],
        vec!["prove", "123"],
        vec!["prove", "332"],
        vec!["consistency", "--from", "held.checkpoint"],
        vec!["events", "--json"],
        vec!["events", "--route", "/orders/{id}"],
        vec!["export", "--format", "ocsf"],
    ] {
        let run = |log: &str| {
            let mut full = vec![args[0], log];
            full.extend_from_slice(&args[1..]);
            stdout(&env.ok(&full, b""))
        };
        assert_eq!(run(&pg), run("log"), "{args:?}");
    }
    let out = env.ok(
        &[
            "verify",
            &pg,
            "--key",
            &vkey,
            "--against",
            "held.checkpoint",
        ],
        b"",
    );
    let text = stdout(&out);
    assert!(
        text.contains("is valid") && text.contains("1/1 proven"),
        "{text}"
    );
    // A proof from the database verifies offline like any other.
    let proof = stdout(&env.ok(&["prove", &pg, "7"], b""));
    env.write("7.tlog-proof", proof);
    env.ok(&["verify-proof", "7.tlog-proof", "--key", &vkey], b"");

    // And back into a directory: the same checkpoints, byte for byte.
    env.ok(&["copy", &pg, "back", "--key", "key"], b"");
    assert_eq!(env.read("back/checkpoints"), env.read("log/checkpoints"));
    env.ok(
        &[
            "verify",
            "back",
            "--key",
            &vkey,
            "--against",
            "held.checkpoint",
        ],
        b"",
    );
    // A copy never lands on an existing log.
    let out = env.expect(2, &["copy", "log", &schema.url(None), "--key", "key"], b"");
    assert!(common::stderr(&out).contains("already holds a log"));

    // A source that does not verify is not copied at all.
    schema.tamper("DELETE FROM {s}.checkpoints WHERE size = 333");
    let out = env.expect(1, &["copy", &pg, "again", "--key", "key"], b"");
    let err = common::stderr(&out);
    assert!(
        err.contains("does not verify") && err.contains("nothing was copied"),
        "{err}"
    );
    assert!(!env.path("again").exists());
}

#[test]
fn three_writers_three_origins_one_schema_then_tampering_is_named() {
    let env = Env::new();
    let vkey = env.keygen();
    let other = env.keygen_as("pods.example/other", "other.key");
    env.write("jwks.json", common::jwks());
    let schema = Schema::new("three");
    // Three replicas at once, each writing its own origin into the one schema (two share a
    // key, one has its own).
    let origins = ["orders-api/pod-0", "orders-api/pod-1", "orders-api/pod-2"];
    let proxies: Vec<Proxy> = origins
        .iter()
        .enumerate()
        .map(|(i, origin)| {
            Proxy::start(
                &env,
                &schema.url(Some(origin)),
                if i == 2 { "other.key" } else { "key" },
            )
        })
        .collect();
    std::thread::scope(|s| {
        for proxy in &proxies {
            s.spawn(|| proxy.requests(30));
        }
    });
    for proxy in proxies {
        proxy.stop();
    }
    let out = env.ok(
        &["verify", &schema.url(None), "--key", &vkey, "--key", &other],
        b"",
    );
    let text = stdout(&out);
    assert!(text.contains("3/3 logs valid"), "{text}");
    for origin in origins {
        let line = text.lines().find(|l| l.starts_with(origin)).unwrap();
        assert!(line.contains("  valid  "), "{line}");
    }
    // With one key only, the third log is refused.
    let out = env.expect(1, &["verify", &schema.url(None), "--key", &vkey], b"");
    assert!(stdout(&out).contains("2/3 logs valid"), "{}", stdout(&out));

    // Tampering as the owner, one kind per origin: each reported with its origin and index.
    schema.tamper(
        "UPDATE {s}.records SET record = overlay(record placing 'X'::bytea from 5 for 1) \
         WHERE origin = 'orders-api/pod-0' AND idx = 12",
    );
    schema.tamper("DELETE FROM {s}.records WHERE origin = 'orders-api/pod-1' AND idx = 17");
    let latest: u64 = psql(
        &schema.0,
        "SELECT max(size) FROM {s}.checkpoints WHERE origin = 'orders-api/pod-2'",
    )
    .unwrap()
    .parse()
    .unwrap();
    schema.tamper(
        "UPDATE {s}.checkpoints SET note = (SELECT note FROM {s}.checkpoints \
         WHERE origin = 'orders-api/pod-2' ORDER BY size DESC OFFSET 1 LIMIT 1) \
         WHERE origin = 'orders-api/pod-2' AND size = (SELECT max(size) FROM {s}.checkpoints \
         WHERE origin = 'orders-api/pod-2')",
    );
    let out = env.expect(
        1,
        &["verify", &schema.url(None), "--key", &vkey, "--key", &other],
        b"",
    );
    let text = stdout(&out);
    assert!(text.contains("0/3 logs valid"), "{text}");
    for (origin, index) in [
        ("orders-api/pod-0", 12),
        ("orders-api/pod-1", 17),
        ("orders-api/pod-2", latest),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(origin))
            .unwrap_or_else(|| panic!("{origin}: {text}"));
        assert!(line.contains("INVALID"), "{line}");
        assert!(line.contains(&format!("(index {index})")), "{line}");
        assert!(line.contains(&format!("origin={origin}")), "{line}");
    }
    // One origin alone, as JSON.
    let out = env.expect(
        1,
        &[
            "verify",
            &schema.url(Some("orders-api/pod-1")),
            "--key",
            &vkey,
            "--json",
        ],
        b"",
    );
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(value["valid"], false);
    assert_eq!(value["index"], 17);
}

/// `veritrail proxy` in front of nothing, writing its log to `log` with the key file `key`.
fn proxy_args<'a>(log: &'a str, key: &'a str) -> [&'a str; 17] {
    [
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:9",
        "--jwks",
        "jwks.json",
        "--issuer",
        "https://idp.test",
        "--audience",
        "api",
        "--log",
        log,
        "--key",
        key,
        "--durability",
        "durable",
    ]
}

/// A running `veritrail proxy` writing into PostgreSQL, in front of nothing (every request
/// without a token is refused with 401, and recorded).
struct Proxy {
    child: std::process::Child,
    addr: String,
}

impl Proxy {
    fn start(env: &Env, log: &str, key: &str) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(proxy_args(log, key))
            .current_dir(env.path(""))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let mut pipe = child.stdout.take().unwrap();
        let started = Instant::now();
        let mut byte = [0u8; 1];
        while !first.ends_with('\n') && started.elapsed() < Duration::from_secs(30) {
            if pipe.read(&mut byte).unwrap() == 0 {
                break;
            }
            first.push(byte[0] as char);
        }
        let Some(addr) = first
            .trim()
            .strip_prefix("veritrail proxy listening on http://")
            .map(str::to_owned)
        else {
            let _ = child.kill();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("unexpected first line {first:?}: {err}")
        };
        Proxy { child, addr }
    }

    fn requests(&self, n: u32) {
        for i in 0..n {
            let mut conn = TcpStream::connect(&self.addr).unwrap();
            write!(
                conn,
                "GET /orders/{i} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut response = String::new();
            conn.read_to_string(&mut response).unwrap();
            assert!(response.starts_with("HTTP/1.1 401"), "{response}");
        }
    }

    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.wait().unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(code.code(), Some(0), "{err}");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn proxy_writes_its_log_into_postgres_and_one_writer_per_origin() {
    let env = Env::new();
    let vkey = env.keygen();
    env.write("jwks.json", common::jwks());
    let schema = Schema::new("proxy");
    let url = schema.url(Some("proxy.test/pod-1"));
    let proxy = Proxy::start(&env, &url, "key");
    // A second replica configured with the same origin is refused.
    let out = env.expect(2, &proxy_args(&url, "key"), b"");
    assert!(
        common::stderr(&out).contains("one writer per origin"),
        "{}",
        common::stderr(&out)
    );
    proxy.requests(5);
    proxy.stop();

    let out = env.ok(&["verify", &url, "--key", &vkey], b"");
    assert!(stdout(&out).contains("is valid"), "{}", stdout(&out));
    let listed = stdout(&env.ok(&["events", &url], b""));
    assert_eq!(listed.matches("/orders/").count(), 5, "{listed}");
    assert!(listed.contains("denied"), "{listed}");
    let json = stdout(&env.ok(&["events", &url, "--json", "--outcome", "denied"], b""));
    assert_eq!(json.lines().count(), 5, "{json}");

    // `tail` follows the log in the database: what it prints first is what `events` lists.
    let all = stdout(&env.ok(&["events", &url, "--json"], b""));
    let mut tail = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(["tail", &url, "--from-start", "--json", "--interval", "50"])
        .current_dir(env.path(""))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, printed) = std::sync::mpsc::channel();
    let out = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
            if lines.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || {
        printed
            .recv_timeout(Duration::from_secs(20))
            .expect("tail printed")
    };
    for expected in all.lines() {
        assert_eq!(next(), expected);
    }
    // And what a writer appends afterwards.
    let proxy = Proxy::start(&env, &url, "key");
    proxy.requests(1);
    let followed = loop {
        let line = next();
        if line.contains("\"kind\":\"http\"") {
            break line;
        }
    };
    assert!(followed.contains("/orders/0"), "{followed}");
    proxy.stop();
    let _ = tail.kill();
    let _ = tail.wait();

    // The filters `events` passes to the database's search columns give the answers the
    // directory gives for the same log.
    env.ok(&["copy", &url, "copied", "--key", "key"], b"");
    for filter in [
        vec![],
        vec!["--outcome", "denied"],
        vec!["--outcome", "success"],
        vec!["--status", "4xx"],
        vec!["--status", "401"],
        vec!["--status", "200"],
        vec!["--sub", "nobody"],
        vec!["--action", "x"],
        vec!["--route", "/orders/3"],
        vec!["--since", "1h"],
        vec!["--until", "2000-01-01"],
        vec!["--since", "1h", "--outcome", "denied", "--status", "4xx"],
    ] {
        for json in [false, true] {
            let run = |log: &str| {
                let mut args = vec!["events", log];
                args.extend_from_slice(&filter);
                if json {
                    args.push("--json");
                }
                stdout(&env.ok(&args, b""))
            };
            assert_eq!(run(&url), run("copied"), "{filter:?} json={json}");
        }
        let mut args = vec!["export", "--format", "ocsf"];
        args.extend_from_slice(&filter);
        let export = |log: &str| {
            let mut args = args.clone();
            args.insert(1, log);
            stdout(&env.ok(&args, b""))
        };
        assert_eq!(export(&url), export("copied"), "export {filter:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_shows_a_log_in_postgres_as_it_shows_the_directory() {
    use http_body_util::{BodyExt, Empty};
    let env = Env::new();
    env.keygen();
    env.append(&events(0..40));
    let schema = Schema::new("serve");
    env.ok(&["copy", "log", &schema.url(None), "--key", "key"], b"");
    let start = |log: &str| {
        common::start_server(
            Command::new(env!("CARGO_BIN_EXE_veritrail"))
                .args(["serve", log, "--no-auth", "--listen", "127.0.0.1:0"])
                .current_dir(env.path("")),
            "serve",
        )
    };
    let (mut dir, dir_addr) = start("log");
    let (mut pg, pg_addr) = start(&schema.url(Some(KEY_NAME)));
    let get = |addr, path: &'static str| async move {
        let response =
            common::send_head(addr, "GET", path, &[], Empty::<bytes::Bytes>::new()).await;
        let status = response.status().as_u16();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    };
    for path in [
        "/api/v1/events?limit=1000",
        "/api/v1/events?before=20&limit=7",
        "/api/v1/events/17",
        "/api/v1/proof/17",
        "/api/v1/checkpoint",
    ] {
        let (a, b) = (get(dir_addr, path).await, get(pg_addr, path).await);
        assert_eq!(a.0, 200, "{path}");
        assert_eq!(a, b, "{path}: the same answer from either store");
    }
    assert_eq!(get(pg_addr, "/events/17").await.0, 200);
    assert_eq!(get(pg_addr, "/").await.0, 200);
    for child in [&mut dir, &mut pg] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
