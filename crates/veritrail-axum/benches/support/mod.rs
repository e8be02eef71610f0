//! What the HTTP benchmarks share: the orders app, its RS256 issuer and tokens, and a recorder
//! that drops events. Used by `benches/layer.rs` and `examples/bench_server.rs`.

use std::path::Path;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{Durability, Receipt, RecordFuture, Recorder};

async fn order(UrlPath(id): UrlPath<u64>) -> String {
    format!("{{\"order\":{id},\"state\":\"shipped\"}}")
}

/// The app both sides serve: `GET /orders/{id}` answering a 29-byte body.
pub(crate) fn app() -> Router {
    Router::new().route("/orders/{id}", get(order))
}

/// A recorder that drops every event (the layer's cost without the log's).
pub(crate) struct Discard;

impl Recorder for Discard {
    fn record(&self, _: AuditEvent, _: Durability) -> RecordFuture {
        Box::pin(std::future::ready(Ok(Receipt { index: None })))
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    std::fs::read(dir.join(name)).expect("fixture")
}

/// 1,000 distinct RS256 tokens (sub `user-N`, scope `orders:read`, valid for an hour).
pub(crate) fn tokens() -> Vec<String> {
    let key = EncodingKey::from_rsa_pem(&fixture("rsa.pem")).expect("RSA key");
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa1".into());
    (0..1000)
        .map(|i| {
            let claims = serde_json::json!({"iss": "https://idp.bench", "aud": "orders",
                "sub": format!("user-{i}"), "jti": format!("t-{i}"), "iat": now,
                "exp": now + 3600, "scope": "orders:read"});
            encode(&header, &claims, &key).expect("token")
        })
        .collect()
}

/// The engine of the veritrail side: the RS256 issuer, the verified-token cache on (default
/// capacity), `/orders/{id}` requiring scope `orders:read`, events to `recorder`.
pub(crate) fn engine(recorder: impl Recorder) -> Engine {
    let keys = KeySet::from_pem(
        &fixture("rsa.pub.pem"),
        Algorithm::RS256,
        Some("rsa1".into()),
    )
    .expect("RSA public key");
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.bench")
                .keys(keys)
                .audience("orders"),
        )
        .build()
        .expect("authenticator");
    Engine::builder(auth, recorder)
        .route(
            "/orders/{id}",
            RoutePolicy::authenticated().scope("orders:read"),
        )
        .build()
}
