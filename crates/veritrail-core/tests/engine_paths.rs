//! Route policy against path tricks: the engine matches, records and refuses on the canonical
//! path, whatever spelling the client sends.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{
    AuthMode, Engine, RejectionKind, RoutePolicy, SimpleRequest, canonical_path,
};
use veritrail_core::event::{AuditEvent, AuthzDecision, Outcome};
use veritrail_core::recorder::MemoryRecorder;

const SECRET: &[u8] = b"engine-paths-secret-0123456789abcdef";

/// `/health` public, `/admin/x` needs scope `admin`, everything else a valid token.
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
        .route("/admin/x", RoutePolicy::authenticated().scope("admin"))
        .build()
}

fn bearer(scope: &str) -> String {
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"iss": "https://idp.test", "aud": "api", "sub": "reader",
        "exp": now + 60, "scope": scope});
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    format!("Bearer {token}")
}

/// Drives one request as an adapter does; returns the status answered and the event.
async fn run(engine: &Engine, recorder: &MemoryRecorder, req: &SimpleRequest) -> (u16, AuditEvent) {
    let before = recorder.len();
    let exchange = engine.start(req);
    let status = match exchange.authenticate().await {
        Ok(()) => {
            exchange.finish(200).await.unwrap();
            200
        }
        Err(rejection) => exchange.reject(rejection).await.status(),
    };
    let mut events = recorder.events();
    assert_eq!(events.len(), before + 1);
    (status, events.pop().unwrap())
}

#[tokio::test]
async fn the_red_team_spellings_get_the_policy_of_the_path_they_reach() {
    let recorder = MemoryRecorder::new();
    let engine = engine(&recorder);
    let reader = bearer("read");

    // Without a token, through the public route's name: the admin policy applies.
    let (status, event) = run(
        &engine,
        &recorder,
        &SimpleRequest::new("GET", "/health/../admin/x"),
    )
    .await;
    assert_eq!(status, 401);
    let request = &event.as_http().unwrap().request;
    assert_eq!(request.path.as_plain(), Some("/admin/x"));
    assert_eq!(
        request.raw_path.as_ref().unwrap().as_plain(),
        Some("/health/../admin/x")
    );

    // With a token that lacks the scope, every other spelling of /admin/x.
    for raw in [
        "//admin/x",
        "/%61dmin/x",
        "/%61%64%6D%69%6E/%78",
        "/foo/../admin/x",
        "/./admin/x",
        "/admin/./x",
        "/admin//x",
        "/health/./../admin/x",
        "/health/a/../../admin/x",
    ] {
        let req = SimpleRequest::new("GET", raw).header("authorization", &reader);
        let (status, event) = run(&engine, &recorder, &req).await;
        assert_eq!(status, 403, "{raw}");
        let http = event.as_http().unwrap();
        assert_eq!(http.request.path.as_plain(), Some("/admin/x"), "{raw}");
        assert_eq!(
            http.request.raw_path.as_ref().unwrap().as_plain(),
            Some(raw)
        );
        assert_eq!(http.authz.as_ref().unwrap().decision, AuthzDecision::Denied);
        assert_eq!(http.outcome, Some(Outcome::Denied));
    }

    // The canonical spelling is recorded once, without a raw path.
    let (status, event) = run(&engine, &recorder, &SimpleRequest::new("GET", "/health")).await;
    assert_eq!(status, 200);
    let request = &event.as_http().unwrap().request;
    assert_eq!(request.path.as_plain(), Some("/health"));
    assert_eq!(request.raw_path, None);
    let mut record = Vec::new();
    event.write_json(0, &mut record);
    assert!(!String::from_utf8(record).unwrap().contains("raw_path"));

    // A prefix-looking literal is not the route; case stays significant.
    for other in ["/healthz", "/health/x", "/HEALTH", "/ADMIN/x"] {
        let (status, _) = run(&engine, &recorder, &SimpleRequest::new("GET", other)).await;
        assert_eq!(status, 401, "{other} gets the default policy");
    }
}

#[tokio::test]
async fn paths_without_a_canonical_form_are_refused_and_audited() {
    let recorder = MemoryRecorder::new();
    let engine = engine(&recorder);
    let admin = bearer("admin");
    for raw in [
        "/%2e%2e/admin/x",
        "/health/%2E%2E/admin/x",
        "/health/.%2E/admin/x",
        "/health/%2e/../admin/x",
        "/admin%2Fx",
        "/admin%2fx",
        "/health/..%2Fadmin/x",
        "/admin%5Cx",
        "/health\\..\\admin\\x",
        "/admin/x%00",
        "/admin/x\0",
        "/admin/x%0D%0A",
        "/..",
        "/../admin/x",
        "/health/../../admin/x",
        "/admin;x=1/x",
        "/health/..;/admin/x",
        "/admin%3bx/x",
        "/%C0%AE%C0%AE/admin/x",
        "/admin/x%",
        "/admin./x",
        "/admin%20/x",
        "*",
        "",
        "admin/x",
    ] {
        // Even a token that would pass is never looked at.
        let req = SimpleRequest::new("GET", raw).header("authorization", &admin);
        let exchange = engine.start(&req);
        let rejection = exchange.authenticate().await.unwrap_err();
        assert_eq!(rejection.kind(), RejectionKind::InvalidPath, "{raw:?}");
        assert_eq!(
            (rejection.status(), rejection.code()),
            (400, "invalid_path")
        );
        assert_eq!(rejection.www_authenticate(), None);
        let body: serde_json::Value = serde_json::from_slice(&rejection.body()).unwrap();
        assert_eq!(body["status"], 400);
        assert_eq!(body["title"], "Bad Request");
        assert_eq!(body["code"], "invalid_path");
        assert!(body["detail"].as_str().unwrap().contains("path"), "{body}");
        exchange.reject(rejection).await;

        let event = recorder.events().pop().unwrap();
        let http = event.as_http().unwrap();
        assert_eq!(http.status, Some(400));
        assert_eq!(http.outcome, Some(Outcome::Denied));
        let authz = http.authz.as_ref().unwrap();
        assert_eq!(authz.decision, AuthzDecision::Denied);
        assert_eq!(authz.reason.as_deref(), Some("invalid_path"));
        assert_eq!(http.authn, None, "{raw:?}: authentication never ran");
        assert_eq!(http.actor, None);
        assert_eq!(http.token, None);
        assert_eq!(http.request.path.as_plain(), Some(raw), "recorded as sent");
        assert_eq!(http.request.raw_path, None);
    }
}

#[tokio::test]
async fn absolute_form_targets_must_be_canonical_and_match_host() {
    let recorder = MemoryRecorder::new();
    let engine = engine(&recorder);
    let req = SimpleRequest::new("GET", "http://api.test/health").header("host", "API.test");
    assert_eq!(run(&engine, &recorder, &req).await.0, 200);
    let req = SimpleRequest::new("GET", "http://api.test/health");
    assert_eq!(run(&engine, &recorder, &req).await.0, 200, "no Host at all");
    for (target, host) in [
        ("http://api.test/health", "other.test"),
        ("http://evil.test/health", "api.test"),
        ("http://api.test//health", "api.test"),
        ("http://api.test/x/../health", "api.test"),
        ("http://api.test/%68ealth", "api.test"),
    ] {
        let req = SimpleRequest::new("GET", target).header("host", host);
        let (status, event) = run(&engine, &recorder, &req).await;
        assert_eq!(status, 400, "{target} {host}");
        let authz = event.as_http().unwrap().authz.clone().unwrap();
        assert_eq!(authz.reason.as_deref(), Some("invalid_path"));
    }
}

#[test]
fn the_route_table_looks_literal_paths_up_canonically() {
    let engine = engine(&MemoryRecorder::new());
    for raw in ["/admin/x", "//admin/x", "/health/../admin/x", "/%61dmin/x"] {
        assert_eq!(
            engine.policy_for(&SimpleRequest::new("GET", raw)).scopes,
            ["admin"],
            "{raw}"
        );
    }
    assert_eq!(
        engine
            .policy_for(&SimpleRequest::new("GET", "/x/../health"))
            .auth,
        AuthMode::Public
    );
    // A route template wins over the path, canonical or not.
    let templated = SimpleRequest::new("GET", "/health/../admin/x").route("/health");
    assert_eq!(engine.policy_for(&templated).auth, AuthMode::Public);
    // A path without a canonical form gets the default policy (and is refused by the engine).
    assert_eq!(
        engine
            .policy_for(&SimpleRequest::new("GET", "/%2e%2e/health"))
            .auth,
        AuthMode::Required
    );
    assert_eq!(canonical_path("/health/../admin/x").unwrap(), "/admin/x");
}
