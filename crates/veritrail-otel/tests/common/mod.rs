//! Shared by the tests: an engine over HMAC tokens, an axum app with both layers, in-memory
//! exporters, and attribute lookups.

#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::ServiceExt;
use veritrail_axum::AuditContext;
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::recorder::Recorder;
use veritrail_otel::OtelLayer;

pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "orders-api";
/// The HMAC secret: must never appear in any attribute or log body.
pub const SECRET: &[u8] = b"otel-test-secret-that-must-never-leak-0123";
/// A cookie value sent with requests: must never appear anywhere.
pub const COOKIE_SECRET: &str = "session-cookie-that-must-never-leak";
pub const ORIGIN: &str = "audit.test/orders";
pub const PEER: &str = "203.0.113.9";

pub fn authenticator() -> Authenticator {
    let keys = KeySet::from_hmac_secret(SECRET, Algorithm::HS256, Some("hs1".into())).unwrap();
    Authenticator::builder()
        .issuer(
            Issuer::new(ISSUER)
                .keys(keys)
                .allow_hmac()
                .audience(AUDIENCE),
        )
        .build()
        .unwrap()
}

/// A token for `sub` with these scopes, valid for five minutes.
pub fn token(sub: &str, scope: &str) -> String {
    // Under --all-features both jsonwebtoken backends are on: select ours before signing.
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub,
        "iat": now, "exp": now + 300, "scope": scope});
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs1".into());
    encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

pub fn engine(recorder: impl Recorder) -> Engine {
    Engine::builder(authenticator(), recorder)
        .route("/health", RoutePolicy::public())
        .route(
            "/orders/{id}",
            RoutePolicy::authenticated().scope("orders:read"),
        )
        .build()
}

/// The app: `/health` (public), `/orders/{id}` (scope `orders:read`; opens a child span
/// inside the handler), `/boom` (answers 500), under the audit layer and, outside it, `otel`.
pub fn app(engine: Engine, otel: OtelLayer, provider: Option<SdkTracerProvider>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/orders/{id}",
            get(move |audit: AuditContext| {
                let provider = provider.clone();
                async move {
                    audit.set_action("order.read");
                    if let Some(provider) = provider {
                        // A span the handler starts is a child of the server span.
                        let tracer = provider.tracer("handler");
                        tracer.in_span("load order", |_| ());
                    }
                    "order"
                }
            }),
        )
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(veritrail_axum::layer(engine))
        .layer(otel)
}

/// A request from [`PEER`] with a user agent and a cookie.
pub fn request(method: &str, uri: &str) -> axum::http::request::Builder {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("user-agent", "otel-test/1.0")
        .header("cookie", format!("session={COOKIE_SECRET}"));
    let peer: IpAddr = PEER.parse().unwrap();
    builder = builder.extension(veritrail_tower::PeerAddr(SocketAddr::new(peer, 40000)));
    builder
}

pub async fn send(app: &Router, req: Request<Body>) -> (Response<Body>, String) {
    let response = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

pub fn tracing() -> (SdkTracerProvider, InMemorySpanExporter) {
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    (provider, spans)
}

/// The server spans (kind Server), in the order they ended.
pub fn server_spans(spans: &InMemorySpanExporter) -> Vec<SpanData> {
    spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
        .collect()
}

pub fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

pub fn s(value: &str) -> Value {
    Value::from(value.to_owned())
}

/// Fails if any attribute value holds a secret.
pub fn assert_no_secret(what: &str, attributes: &[KeyValue], secrets: &[&str]) {
    for kv in attributes {
        let value = kv.value.to_string();
        for secret in secrets {
            assert!(
                !value.contains(secret),
                "{what}: attribute {} holds a secret: {value}",
                kv.key
            );
        }
    }
}
