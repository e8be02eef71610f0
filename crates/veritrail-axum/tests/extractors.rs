//! The axum extractors and route helpers, through a router and the layer (no socket).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Deserialize;
use tower::ServiceExt;
use veritrail_axum::{AuditContext, Claims, Identity, require_role};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::recorder::MemoryRecorder;

const SECRET: &[u8] = b"axum-extractor-test-secret-0123456789";

fn engine(recorder: &MemoryRecorder) -> Engine {
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.test")
                .keys(KeySet::from_hmac_secret(SECRET, Algorithm::HS256, None).unwrap())
                .allow_hmac()
                .audience("api"),
        )
        .build()
        .unwrap();
    Engine::builder(auth, recorder.clone())
        .realm("api")
        .route("/maybe", RoutePolicy::optional())
        .build()
}

fn token(extra: serde_json::Value) -> String {
    // Under --all-features both jsonwebtoken backends are on: select ours before signing.
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({"iss": "https://idp.test", "aud": "api", "sub": "carol",
        "exp": now + 60, "tenant": "acme", "roles": ["clerk"]});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

#[derive(Deserialize)]
struct TenantClaims {
    sub: String,
    tenant: String,
}

async fn tenant(Claims(c): Claims<TenantClaims>, audit: AuditContext) -> String {
    audit.set_action("tenant.read");
    format!("{}@{}", c.sub, c.tenant)
}

async fn maybe(who: Option<Identity>) -> String {
    who.and_then(|w| w.sub().map(str::to_owned))
        .unwrap_or_else(|| "anonymous".into())
}

fn app(recorder: &MemoryRecorder) -> Router {
    Router::new()
        .route("/tenant/{id}", get(tenant))
        .route("/maybe", get(maybe))
        .route(
            "/maybe-strict",
            get(|who: Identity| async move { who.sub().unwrap_or("").to_owned() }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(require_role("admin")),
        )
        .layer(veritrail_axum::layer(engine(recorder)))
}

async fn call(
    app: Router,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, String, Option<String>) {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), challenge)
}

#[tokio::test]
async fn typed_claims_and_the_route_template() {
    let recorder = MemoryRecorder::new();
    let (status, body, _) = call(
        app(&recorder),
        "/tenant/9",
        Some(&token(serde_json::json!({}))),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "carol@acme"));
    let event = recorder.events().pop().unwrap();
    let http = event.as_http().unwrap();
    assert_eq!(http.request.route.as_deref(), Some("/tenant/{id}"));
    assert_eq!(http.action.as_deref(), Some("tenant.read"));
}

#[tokio::test]
async fn claims_of_the_wrong_shape_are_refused() {
    let recorder = MemoryRecorder::new();
    let t = token(serde_json::json!({"tenant": 42}));
    let (status, body, _) = call(app(&recorder), "/tenant/9", Some(&t)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], "invalid_claims");
    assert_eq!(recorder.len(), 1, "the refusal is recorded");
}

#[tokio::test]
async fn optional_identity() {
    let recorder = MemoryRecorder::new();
    let (_, body, _) = call(app(&recorder), "/maybe", None).await;
    assert_eq!(body, "anonymous");
    let (_, body, _) = call(
        app(&recorder),
        "/maybe",
        Some(&token(serde_json::json!({}))),
    )
    .await;
    assert_eq!(body, "carol");
}

#[tokio::test]
async fn required_identity_and_roles() {
    let recorder = MemoryRecorder::new();
    // `/maybe-strict` is not in the table: the layer itself asks for a token.
    let (status, _, challenge) = call(app(&recorder), "/maybe-strict", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"api\""));
    let (status, _, challenge) = call(
        app(&recorder),
        "/admin",
        Some(&token(serde_json::json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.unwrap().contains("insufficient_scope"));
    let (status, body, _) = call(
        app(&recorder),
        "/admin",
        Some(&token(serde_json::json!({"roles": ["admin"]}))),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "admin"));
}

#[tokio::test]
async fn extractors_without_the_layer_refuse() {
    let app = Router::new().route("/x", get(|_: AuditContext| async { "unreachable" }));
    let (status, body, _) = call(app, "/x", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("audit_layer_missing"));
}
