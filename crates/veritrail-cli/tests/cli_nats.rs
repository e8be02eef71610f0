//! Many replicas, one log, with the real binary: two `veritrail proxy --log nats://…` replicas
//! (no local log, no key) publish to one stream on the shared JetStream; one
//! `veritrail sequencer --init` integrates it; `veritrail verify` and `veritrail reconcile`
//! pass, and every request sent through either replica is in the log exactly once.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use common::{Env, fixture, jwks};

const ISSUER: &str = "https://idp.nats.test";
const AUDIENCE: &str = "orders-api";

fn token() -> String {
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now,
        "exp": now + 300, "scope": "orders:read"});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa1".into());
    let key = EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// Killed if a failed test leaves it running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn terminate(child: &mut KillOnDrop) -> String {
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).unwrap();
    }
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    err
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("cli_nats_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxy_replicas_one_stream_one_sequencer_one_log() {
    replicas_into("log").await;
}

/// The same with the sequencer's log in PostgreSQL (127.0.0.1:5432, database `test`, a schema
/// of its own, dropped afterwards).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequencer_integrates_into_a_postgresql_log() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("vt_cli_nats_{}_{nanos}", std::process::id());
    replicas_into(&format!(
        "postgres://postgres@127.0.0.1:5432/test?schema={schema}"
    ))
    .await;
    let dropped = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-X",
            "-q",
            "-c",
        ])
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .stderr(Stdio::null())
        .status()
        .expect("this test needs psql and PostgreSQL on 127.0.0.1:5432");
    assert!(dropped.success());
}

/// Two proxy replicas, one stream, one sequencer process writing `log` (a directory in the
/// test's folder, or a `postgres://` location); then `verify`, `events` and `reconcile` on it.
async fn replicas_into(log: &str) {
    assert!(
        std::net::TcpStream::connect("127.0.0.1:4222").is_ok(),
        "this test needs NATS with JetStream at 127.0.0.1:4222"
    );
    let env = Env::new();
    let stream = unique();
    // The events subject follows the origin: each run its own.
    let origin = format!("nats.test/{stream}");
    let verifier = env.keygen_as(&origin, "audit.key");
    env.write("jwks.json", jwks());
    let from = format!("nats://127.0.0.1:4222/{stream}");
    let location = format!("{from}?origin=nats.test%2F{stream}");
    // The sequencer's log, and the same log as the read commands take it.
    let (seq_log, read_log) = if log.starts_with("postgres://") {
        (log.to_owned(), format!("{log}&origin=nats.test%2F{stream}"))
    } else {
        (log.to_owned(), log.to_owned())
    };

    // A directory log is also cosigned by a witness (`sequencer --witness`).
    let witness = (!log.starts_with("postgres://"))
        .then(|| common::start_witness(&env, "w1", "audit.key.pub", "127.0.0.1:0"));
    let witness_args: Vec<String> = witness
        .iter()
        .flat_map(|w| ["--witness".to_owned(), format!("{}=w1.key.pub", w.url)])
        .collect();
    let mut sequencer = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args([
                "sequencer",
                "--from",
                &from,
                "--origin",
                &origin,
                "--log",
                &seq_log,
            ])
            .args(["--key", "audit.key", "--init", "--replicas", "1", "--json"])
            .args(&witness_args)
            .current_dir(env.path(""))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The replicas need the stream, which --init creates.
    let ready = Instant::now() + Duration::from_secs(20);
    let stream_exists = || {
        // Succeeds once the stream and the log both exist: the sequencer is active.
        Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(["reconcile", &location, "--log", &read_log, "--json"])
            .current_dir(env.path(""))
            .output()
            .unwrap()
            .status
            .success()
    };
    while !stream_exists() {
        if Instant::now() > ready || sequencer.0.try_wait().unwrap().is_some() {
            let _ = sequencer.0.kill();
            let mut err = String::new();
            if let Some(mut e) = sequencer.0.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            panic!("the sequencer did not become active: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        let app = Router::new().route("/orders/{id}", get(|| async { "ok" }));
        axum::serve(upstream, app).await.unwrap();
    });
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut command = Command::new(env!("CARGO_BIN_EXE_veritrail"));
        command
            .args(["proxy", "--listen", "127.0.0.1:0", "--upstream"])
            .arg(format!("http://{up_addr}"))
            .args([
                "--jwks",
                "jwks.json",
                "--issuer",
                ISSUER,
                "--audience",
                AUDIENCE,
            ])
            .args([
                "--log",
                &location,
                "--durability",
                "durable",
                "--trust-request-id",
            ])
            .current_dir(env.path(""));
        let (child, addr) = common::start_server(&mut command, "proxy");
        replicas.push((KillOnDrop(child), addr));
    }

    let bearer = format!("Bearer {}", token());
    let mut sent = Vec::new();
    for i in 0..40 {
        let (_, addr) = &replicas[i % 2];
        let id = format!("req-{i}");
        let response = common::send_head(
            *addr,
            "GET",
            &format!("/orders/{i}"),
            &[
                ("authorization", bearer.as_str()),
                ("x-request-id", id.as_str()),
            ],
            Empty::<bytes::Bytes>::new(),
        )
        .await;
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
        sent.push(id);
    }
    for (child, _) in &mut replicas {
        terminate(child);
    }
    // Durable through a replica means acknowledged by JetStream; the sequencer integrates
    // within its checkpoint interval.
    std::thread::sleep(Duration::from_millis(1500));
    terminate(&mut sequencer);

    let out = env.ok(&["verify", &read_log, "--key", &verifier, "--json"], b"");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    if witness.is_some() {
        // A checkpoint over the integrated events carries the witness's cosignature.
        let out = env.ok(
            &[
                "verify",
                &read_log,
                "--key",
                &verifier,
                "--witness",
                "w1.key.pub",
            ],
            b"",
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("1/1 cosigned") && !text.contains("has size 0;"),
            "{text}"
        );
    }
    let out = env.ok(&["events", &read_log, "--json"], b"");
    let mut by_request: BTreeMap<String, u64> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "http" && v["phase"] == "complete" {
            let id = v["request"]["request_id"].as_str().unwrap().to_owned();
            *by_request.entry(id).or_default() += 1;
        }
    }
    for id in &sent {
        assert_eq!(by_request.get(id), Some(&1), "request {id} once in the log");
    }
    let out = env.ok(&["reconcile", &location, "--log", &read_log, "--json"], b"");
    let reconciled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reconciled["ok"], true, "{reconciled}");
    assert_eq!(reconciled["missing"], json!([]));
    assert!(
        reconciled["exactly_once"].as_u64().unwrap() >= 40,
        "{reconciled}"
    );
}
