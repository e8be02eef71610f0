//! `veritrail demo` end to end: the real binary in a temporary directory; then the log, the
//! proof and the printed tamper command are checked with the library, not with the demo's word.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{Env, stderr, stdout};
use veritrail_core::event::AuditEvent;
use veritrail_log::NoteVerifier;
use veritrail_log::proof::InclusionProofFile;
use veritrail_log::verify::{VerifyOptions, verify_dir, verify_dir_with};

fn verifier(dir: &Path) -> NoteVerifier {
    let text = std::fs::read_to_string(dir.join("log.pub")).unwrap();
    NoteVerifier::from_text(text.trim()).unwrap()
}

/// Every record, through the library verifier (which must pass).
fn records(dir: &Path) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    verify_dir_with(
        &dir.join("log"),
        &verifier(dir),
        &VerifyOptions::default(),
        |_, r| {
            records.push(r.to_vec());
            Ok(())
        },
    )
    .expect("the demo log verifies");
    records
}

#[test]
fn demo_runs_end_to_end_and_its_log_verifies() {
    let env = Env::new();
    let out = env.ok(&["demo", "--dir", "demo"], b"");
    let text = stdout(&out);
    let dir = env.path("demo");
    assert!(text.contains("demo passed"), "{text}");

    // Requests plus start, keyset and stop; each request's event by its request id.
    let records = records(&dir);
    assert_eq!(records.len(), 9 + 3, "{text}");
    let mut kinds = BTreeMap::new();
    let mut by_id = BTreeMap::new();
    for record in &records {
        let event = AuditEvent::from_json(record).unwrap();
        *kinds.entry(event.kind().as_str().to_owned()).or_insert(0) += 1;
        if let Some(http) = event.as_http() {
            let v = serde_json::to_value(&event).unwrap();
            let id = http.request.request_id.clone().unwrap();
            by_id.insert(id, (http.status, v["outcome"].clone(), v));
        }
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("http".to_owned(), 9),
            ("keyset".to_owned(), 1),
            ("start".to_owned(), 1),
            ("stop".to_owned(), 1)
        ])
    );
    let expect = [
        ("health", 200, "success"),
        ("read-rs256", 200, "success"),
        ("read-es256", 200, "success"),
        ("read-eddsa", 200, "success"),
        ("expired", 401, "denied"),
        ("forged", 401, "denied"),
        ("no-token", 401, "denied"),
        ("no-scope", 403, "denied"),
        ("refund", 200, "success"),
    ];
    for (id, status, outcome) in expect {
        let (got_status, got_outcome, _) = &by_id[id];
        assert_eq!(*got_status, Some(status), "{id}");
        assert_eq!(got_outcome, outcome, "{id}");
    }
    let algs: Vec<_> = ["read-rs256", "read-es256", "read-eddsa"]
        .iter()
        .map(|id| by_id[*id].2["actor"]["alg"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(algs, ["RS256", "ES256", "EdDSA"]);
    assert_eq!(by_id["refund"].2["action"], "order.refund");
    assert_eq!(by_id["forged"].2["authn"]["reason"], "bad_signature");

    // The proof file verifies on its own and carries the refund event.
    let proof =
        InclusionProofFile::parse(&std::fs::read_to_string(dir.join("refund.tlog-proof")).unwrap())
            .unwrap();
    proof.verify(&verifier(&dir)).unwrap();
    let event = AuditEvent::from_json(&proof.record).unwrap();
    assert_eq!(
        event.as_http().unwrap().action.as_deref(),
        Some("order.refund")
    );

    // No private key anywhere: the JWKS is public only.
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("jwks.json")).unwrap()).unwrap();
    for key in jwks["keys"].as_array().unwrap() {
        assert!(key.get("d").is_none() && key.get("p").is_none(), "{key}");
    }

    // The printed tamper command, run as printed, makes the log fail at the refund record.
    let dd = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("printf X | dd "))
        .expect("a tamper command");
    let dd = dd.split("  #").next().unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(dd)
        .current_dir(env.path(""))
        .status()
        .unwrap();
    assert!(status.success());
    let err = verify_dir(&dir.join("log"), &verifier(&dir), &VerifyOptions::default())
        .expect_err("the changed log must fail");
    assert_eq!(err.index(), Some(proof.index), "{err}");
}

#[test]
fn demo_reuses_its_own_directory_and_refuses_others() {
    let env = Env::new();
    env.ok(&["demo", "--dir", "demo"], b"");
    let first = std::fs::read_to_string(env.path("demo/log.pub")).unwrap();
    env.ok(&["demo", "--dir", "demo"], b"");
    assert_ne!(
        std::fs::read_to_string(env.path("demo/log.pub")).unwrap(),
        first,
        "a fresh log with a fresh key"
    );
    assert_eq!(
        records(&env.path("demo")).len(),
        12,
        "the old log was cleared"
    );

    std::fs::create_dir(env.path("mine")).unwrap();
    env.write("mine/notes.txt", "keep me");
    let out = env.expect(2, &["demo", "--dir", "mine"], b"");
    assert!(
        stderr(&out).contains("not made by `veritrail demo`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.read("mine/notes.txt"), "keep me");
}

/// With the OTLP variables set, the demo's spans and records reach a collector (here a small
/// HTTP server of the test's, speaking OTLP/JSON), and each request's span is the one its
/// audit event names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exports_spans_tied_to_events_over_otlp() {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::routing::post;

    type Posts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    async fn collect(State(posts): State<Posts>, uri: axum::http::Uri, body: bytes::Bytes) {
        posts
            .lock()
            .unwrap()
            .push((uri.path().to_owned(), body.to_vec()));
    }
    let posts: Posts = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(collect))
        .route("/v1/logs", post(collect))
        .with_state(Arc::clone(&posts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let env = Env::new();
    let dir = env.path("demo");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_veritrail"))
            .args(["demo", "--dir"])
            .arg(&dir)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let mut span_traces = Vec::new();
    let mut log_bodies = Vec::new();
    for (path, body) in posts.lock().unwrap().iter() {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        if path == "/v1/traces" {
            for rs in v["resourceSpans"].as_array().unwrap() {
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for span in ss["spans"].as_array().unwrap() {
                        span_traces.push(span["traceId"].as_str().unwrap().to_lowercase());
                    }
                }
            }
        } else {
            for rl in v["resourceLogs"].as_array().unwrap() {
                for sl in rl["scopeLogs"].as_array().unwrap() {
                    for record in sl["logRecords"].as_array().unwrap() {
                        log_bodies.push(record["body"].to_string());
                    }
                }
            }
        }
    }
    let records = records(&env.path("demo"));
    let mut http = 0;
    for record in &records {
        let event = AuditEvent::from_json(record).unwrap();
        let id = event.id.to_string();
        assert!(
            log_bodies.iter().any(|b| b.contains(&id)),
            "record {id} was not exported as a log record"
        );
        if let Some(h) = event.as_http() {
            http += 1;
            let trace = h
                .request
                .trace_id
                .clone()
                .expect("the event names its span");
            assert!(span_traces.contains(&trace), "no span for trace {trace}");
        }
    }
    assert_eq!(http, 9);
    assert_eq!(span_traces.len(), 9, "one server span per request");
}
