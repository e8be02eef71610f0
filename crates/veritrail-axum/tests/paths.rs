//! Path tricks through an axum router and `veritrail_axum::layer`: refused with 400 and
//! audited, the handler never runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use tower::ServiceExt;
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::recorder::MemoryRecorder;

const SECRET: &[u8] = b"axum-paths-test-secret-0123456789abcd";

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
        .route("/health", RoutePolicy::public())
        .route("/admin/{page}", RoutePolicy::authenticated().scope("admin"))
        .build()
}

fn bearer(scope: &str) -> String {
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"iss": "https://idp.test", "aud": "api", "sub": "erin",
        "exp": now + 60, "scope": scope});
    let t = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    );
    format!("Bearer {}", t.unwrap())
}

#[tokio::test]
async fn ambiguous_paths_are_refused_before_any_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let recorder = MemoryRecorder::new();
    let (health, admin, fallback) = (calls.clone(), calls.clone(), calls.clone());
    let app = Router::new()
        .route(
            "/health",
            get(move || async move {
                health.fetch_add(1, Ordering::SeqCst);
                "ok"
            }),
        )
        .route(
            "/admin/{page}",
            get(move || async move {
                admin.fetch_add(1, Ordering::SeqCst);
                "secret"
            }),
        )
        .fallback(move || async move {
            fallback.fetch_add(1, Ordering::SeqCst);
            "fallback"
        })
        .layer(veritrail_axum::layer(engine(&recorder)));
    let reader = bearer("read");
    for (target, want) in [
        ("/health/%2e%2e/admin/x", StatusCode::BAD_REQUEST),
        ("/admin%2Fx", StatusCode::BAD_REQUEST),
        ("/admin;x/y", StatusCode::BAD_REQUEST),
        ("/%2E%2E/health", StatusCode::BAD_REQUEST),
        ("/admin/x%00", StatusCode::BAD_REQUEST),
        // No template matched: the canonical path is looked up, and refused without a token
        // of any kind (the default policy).
        ("/health/../admin/x", StatusCode::UNAUTHORIZED),
    ] {
        let req = Request::get(target).body(Body::empty()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), want, "{target}");
    }
    let req = Request::get("/admin/x/%2e%2e")
        .header("authorization", &reader)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no handler ran");
    let events = recorder.events();
    assert_eq!(events.len(), 7, "every refusal is audited");
    let reasons: Vec<_> = events
        .iter()
        .map(|e| {
            let http = e.as_http().unwrap();
            http.authz.as_ref().and_then(|a| a.reason.clone())
        })
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.as_deref() == Some("invalid_path"))
            .count(),
        6
    );
}
