//! Path tricks through the actix middleware: refused with 400 and audited, the handler never
//! runs; other spellings get the policy of their canonical path.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpResponse, test, web};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use veritrail_actix::AuditMiddleware;
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::{AuthzDecision, Outcome};
use veritrail_core::recorder::MemoryRecorder;

const SECRET: &[u8] = b"actix-paths-test-secret-0123456789abc";

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
    let claims = serde_json::json!({"iss": "https://idp.test", "aud": "api", "sub": "frank",
        "exp": now + 60, "scope": scope});
    let t = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    );
    format!("Bearer {}", t.unwrap())
}

#[actix_web::test]
async fn ambiguous_paths_are_refused_audited_and_never_reach_the_handler() {
    let recorder = MemoryRecorder::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = test::init_service(
        App::new()
            .wrap(AuditMiddleware::new(engine(&recorder)))
            .default_service(web::to(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { HttpResponse::Ok().body("ran") }
            })),
    )
    .await;
    let admin = bearer("admin");
    let refused = [
        "/%2e%2e/admin/x",
        "/health/%2E%2E/admin/x",
        "/health/..%2fadmin/x",
        "/admin%5Cx",
        "/admin/x%00",
        "/../admin/x",
        "/admin;x=1/x",
        "/%C0%AE%C0%AE/admin/x",
        "/admin%20/x",
    ];
    for target in refused {
        let req = test::TestRequest::get()
            .uri(target)
            .insert_header(("authorization", admin.as_str()))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), 400, "{target}");
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "application/problem+json",
            "{target}"
        );
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["code"], "invalid_path", "{target}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never ran");
    let events = recorder.events();
    assert_eq!(events.len(), refused.len(), "every refusal is audited");
    for event in &events {
        let http = event.as_http().unwrap();
        assert_eq!(http.status, Some(400));
        assert_eq!(http.outcome, Some(Outcome::Denied));
        let authz = http.authz.as_ref().unwrap();
        assert_eq!(authz.decision, AuthzDecision::Denied);
        assert_eq!(authz.reason.as_deref(), Some("invalid_path"));
        assert_eq!(http.actor, None);
    }

    // Other spellings of /admin/x: its policy, its canonical path recorded with the raw one.
    let reader = bearer("read");
    for target in [
        "//admin/x",
        "/%61dmin/x",
        "/foo/../admin/x",
        "/health/../admin/x",
    ] {
        let req = test::TestRequest::get()
            .uri(target)
            .insert_header(("authorization", reader.as_str()))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), 403, "{target}");
        let event = recorder.events().pop().unwrap();
        let request = &event.as_http().unwrap().request;
        assert_eq!(request.path.as_plain(), Some("/admin/x"));
        assert_eq!(
            request.raw_path.as_ref().and_then(|p| p.as_plain()),
            Some(target)
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
