//! End to end over real sockets: an axum server with the veritrail layer and a real writer;
//! every request class; then the log is verified and each event checked field by field.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, post};
use common::*;
use serde::Deserialize;
use tower_http::catch_panic::CatchPanicLayer;
use veritrail_axum::{AuditContext, Claims, Identity, require_scope};
use veritrail_core::engine::Engine;
use veritrail_core::event::EvidenceMode;
use veritrail_core::recorder::{Durability, MemoryRecorder, MemoryRecorderState};
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

#[derive(Deserialize)]
struct RefundClaims {
    sub: String,
    tenant: String,
}

async fn read_order(Path(id): Path<u64>, audit: AuditContext, _who: Identity) -> String {
    audit.set_action("order.read");
    audit.set_target(format!("order:{id}"));
    format!("order {id}")
}

async fn refund(
    Path(id): Path<u64>,
    Claims(claims): Claims<RefundClaims>,
    audit: AuditContext,
) -> String {
    audit.set_action("order.refund");
    audit.set_target(format!("order:{id}"));
    format!("refunded {id} for {} of {}", claims.sub, claims.tenant)
}

async fn me(who: Option<Identity>, audit: AuditContext) -> String {
    match who {
        Some(who) => {
            audit.set_action("me.known");
            audit.set_target(format!("user:{}", who.sub().unwrap_or("?")));
            who.sub().unwrap_or("?").to_owned()
        }
        None => {
            audit.set_action("me.anonymous");
            "anonymous".to_owned()
        }
    }
}

async fn stream(audit: AuditContext) -> Body {
    audit.set_action("report.stream");
    Body::from_stream(chunks())
}

async fn panics() -> &'static str {
    panic!("handler bug")
}

/// The application: the same routes and policies the actix test serves.
fn app(engine: Engine, transfers_run: Arc<AtomicUsize>, probe: Arc<SlowProbe>) -> Router {
    Router::new()
        .route(
            "/orders/{id}",
            get(read_order).route_layer(require_scope("orders:read")),
        )
        .route(
            "/orders/{id}/refund",
            post(refund)
                .route_layer(require_scope("orders:refund").durability(Durability::Durable)),
        )
        .route(
            "/transfers",
            post(move |audit: AuditContext| async move {
                transfers_run.fetch_add(1, Ordering::SeqCst);
                audit.set_action("transfer.create");
                "created"
            }),
        )
        .route("/me", get(me))
        .route("/health", get(|| async { "ok" }))
        .route("/stream", get(stream))
        .route(
            "/slow",
            get(move |audit: AuditContext| async move {
                audit.set_action("slow.started");
                probe.run().await;
                "late"
            }),
        )
        .route("/panic", get(panics))
        .layer(CatchPanicLayer::new())
        .layer(veritrail_axum::layer(engine))
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Runs `cases` (and the cancelled request) against a fresh server writing to `dir`; returns
/// the log's verifier key.
async fn run(
    dir: &std::path::Path,
    evidence: EvidenceMode,
    cases: &[Case],
) -> (veritrail_log::NoteVerifier, Vec<Answer>) {
    let signer = NoteSigner::generate("audit.test/orders").unwrap();
    let verifier = signer.verifier();
    let writer = Writer::open(dir, signer, WriterConfig::default()).unwrap();
    let watch = WatchCancelled::new(writer.handle());
    let engine = common::engine(watch.clone(), evidence);
    let probe = Arc::new(SlowProbe::default());
    let addr = serve(app(engine, Arc::default(), probe.clone())).await;
    let mut answers = Vec::new();
    for case in cases {
        let answer = send(addr, case.request()).await;
        check_answer(case, &answer);
        answers.push(answer);
    }
    let cancelled = cancelled_case();
    send_and_hang_up(addr, cancelled.request(), &probe).await;
    // The server notices the hang-up and drops the request's future (the handler's first,
    // then the layer's, in the same drop).
    probe.wait_dropped().await;
    watch.wait().await;
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    assert_eq!(report.dropped, 0);
    (verifier, answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_answered_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cases = scenario();
    let (verifier, answers) = run(dir.path(), EvidenceMode::Fingerprint, &cases).await;
    let (events, records) = read_log(dir.path(), &verifier);
    for case in cases.iter().chain([&cancelled_case()]) {
        let got = events
            .get(case.id)
            .unwrap_or_else(|| panic!("no event for {}", case.id));
        check_events(case, got, EvidenceMode::Fingerprint);
    }
    assert_eq!(
        events.len(),
        cases.len() + 1,
        "exactly one request's events per id"
    );

    // Secrets: no cookie, HMAC secret, private key or token anywhere in the log files, and
    // no token in any answer.
    let mut forbidden = vec![
        COOKIE_SECRET.to_owned(),
        String::from_utf8(HMAC_SECRET.to_vec()).unwrap(),
        pem_body("rsa.pem"),
        pem_body("ec256.pem"),
        pem_body("ed25519.pem"),
    ];
    forbidden.extend(cases.iter().filter_map(|c| c.token.clone()));
    let mut files = Vec::new();
    collect_files(dir.path(), &mut files);
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for secret in &forbidden {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{} contains a secret",
                file.display()
            );
        }
    }
    for record in &records {
        assert!(!contains(record, b"Bearer "));
    }
    for answer in &answers {
        for secret in &forbidden {
            assert!(!contains(&answer.body, secret.as_bytes()));
            for v in answer.headers.values() {
                assert!(!contains(v.as_bytes(), secret.as_bytes()));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_evidence_keeps_signed_tokens_but_never_hmac_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Case> = scenario()
        .into_iter()
        .filter(|c| ["rs256", "es256", "hs256"].contains(&c.id))
        .collect();
    let (verifier, _) = run(dir.path(), EvidenceMode::Full, &cases).await;
    let (events, records) = read_log(dir.path(), &verifier);
    for case in &cases {
        check_events(case, &events[case.id], EvidenceMode::Full);
    }
    let all: Vec<u8> = records.concat();
    for case in &cases {
        let token = case.token.as_ref().unwrap();
        assert_eq!(
            contains(&all, token.as_bytes()),
            case.id != "hs256",
            "{}",
            case.id
        );
    }
    assert!(!contains(&all, HMAC_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_refuses_write_ahead_and_withholds_durable_answers() {
    let recorder = MemoryRecorder::new();
    recorder.set_state(MemoryRecorderState::Failed("injected fsync error".into()));
    let transfers_run = Arc::new(AtomicUsize::new(0));
    let engine = common::engine(recorder.clone(), EvidenceMode::Fingerprint);
    let addr = serve(app(engine, transfers_run.clone(), Arc::default())).await;
    let cases = scenario();
    for id in ["transfer-write-ahead", "refund-durable"] {
        let case = cases.iter().find(|c| c.id == id).unwrap();
        let answer = send(addr, case.request()).await;
        assert_eq!(answer.status, 503, "{id}");
        assert_eq!(answer.header("retry-after"), Some("1"));
        let problem: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(problem["code"], "audit_unavailable");
        assert!(
            !String::from_utf8_lossy(&answer.body).contains("injected"),
            "no internals"
        );
    }
    assert_eq!(
        transfers_run.load(Ordering::SeqCst),
        0,
        "the handler never ran"
    );
    assert!(recorder.is_empty());
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
