//! The layer's cost per request, in process (no sockets): the same axum router called with
//! `oneshot`, plain and behind `veritrail_axum::layer` (RS256 tokens from a pool of 1,000,
//! the verified-token cache warm), with events dropped (`discard`) or recorded `Async` into a
//! file log by a real writer (`writer`). A diagnostic for `scripts/bench-http`, which
//! measures the same over loopback: this one isolates the request thread's work.
//!
//! Run: `cargo bench -p veritrail-axum --bench layer`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use tower::ServiceExt;
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{Durability, Receipt, RecordFuture, Recorder};
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

async fn order(UrlPath(id): UrlPath<u64>) -> String {
    format!("{{\"order\":{id},\"state\":\"shipped\"}}")
}

struct Discard;

impl Recorder for Discard {
    fn record(&self, _: AuditEvent, _: Durability) -> RecordFuture {
        Box::pin(std::future::ready(Ok(Receipt { index: None })))
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    std::fs::read(dir.join(name)).expect("fixture")
}

fn tokens() -> Vec<String> {
    let key = EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap();
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa1".into());
    (0..1000)
        .map(|i| {
            let claims = serde_json::json!({"iss": "https://idp.bench", "aud": "orders",
                "sub": format!("user-{i}"), "jti": format!("t-{i}"), "iat": now,
                "exp": now + 3600, "scope": "orders:read"});
            format!("Bearer {}", encode(&header, &claims, &key).unwrap())
        })
        .collect()
}

fn app() -> Router {
    Router::new().route("/orders/{id}", get(order))
}

fn layered(recorder: impl Recorder) -> Router {
    let keys = KeySet::from_pem(
        &fixture("rsa.pub.pem"),
        Algorithm::RS256,
        Some("rsa1".into()),
    )
    .unwrap();
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.bench")
                .keys(keys)
                .audience("orders"),
        )
        .build()
        .unwrap();
    let engine = Engine::builder(auth, recorder)
        .route(
            "/orders/{id}",
            RoutePolicy::authenticated().scope("orders:read"),
        )
        .build();
    app().layer(veritrail_axum::layer(engine))
}

fn bench(c: &mut Criterion) {
    let tokens = tokens();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(
        dir.path(),
        NoteSigner::generate("bench/orders").unwrap(),
        WriterConfig::default(),
    )
    .unwrap();
    let routers = [
        ("plain", app()),
        ("discard", layered(Discard)),
        ("writer", layered(writer.handle())),
    ];
    let mut g = c.benchmark_group("layer");
    for (name, router) in routers {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                let request = http::Request::get(format!("/orders/{i}"))
                    .header("authorization", &tokens[i])
                    .body(Body::empty())
                    .unwrap();
                let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
                assert!(response.status().is_success());
                black_box(response)
            })
        });
    }
    g.finish();
    runtime.block_on(writer.shutdown(Instant::now() + Duration::from_secs(30)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
