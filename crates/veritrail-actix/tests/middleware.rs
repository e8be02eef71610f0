//! The actix middleware, `Require` and the extractors, through actix's test service.

use actix_web::{App, HttpResponse, test, web};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Deserialize;
use veritrail_actix::{AuditContext, AuditMiddleware, Claims, Identity, require_role};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::{Outcome, Phase};
use veritrail_core::recorder::{Durability, MemoryRecorder, MemoryRecorderState, Recorder};

const SECRET: &[u8] = b"actix-middleware-test-secret-0123456789";

fn engine(recorder: &MemoryRecorder) -> Engine {
    engine_with(recorder.clone())
}

fn engine_with(recorder: impl Recorder) -> Engine {
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.test")
                .keys(KeySet::from_hmac_secret(SECRET, Algorithm::HS256, None).unwrap())
                .allow_hmac()
                .audience("api"),
        )
        .build()
        .unwrap();
    Engine::builder(auth, recorder)
        .realm("api")
        .route("/maybe", RoutePolicy::optional())
        .route(
            "/ahead",
            RoutePolicy::authenticated().durability(Durability::WriteAhead),
        )
        .build()
}

fn bearer(extra: serde_json::Value) -> String {
    // Under --all-features both jsonwebtoken backends are on: select ours before signing.
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({"iss": "https://idp.test", "aud": "api", "sub": "dave",
        "exp": now + 60, "tenant": "acme", "roles": ["clerk"]});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let t = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    );
    format!("Bearer {}", t.unwrap())
}

#[derive(Deserialize)]
struct TenantClaims {
    tenant: String,
}

async fn tenant(claims: Claims<TenantClaims>, audit: AuditContext) -> String {
    audit.set_action("tenant.read");
    claims.0.tenant
}

async fn maybe(who: Option<Identity>) -> String {
    who.and_then(|w| w.sub().map(str::to_owned))
        .unwrap_or_else(|| "anonymous".into())
}

macro_rules! app {
    ($recorder:expr) => {
        test::init_service(
            App::new()
                .wrap(AuditMiddleware::new(engine($recorder)))
                .route("/tenant/{id}", web::get().to(tenant))
                .route("/maybe", web::get().to(maybe))
                .route(
                    "/ahead",
                    web::post().to(|| async { HttpResponse::Created().finish() }),
                )
                .service(
                    web::resource("/admin")
                        .wrap(require_role("admin"))
                        .route(web::get().to(|| async { "admin" })),
                ),
        )
        .await
    };
}

#[actix_web::test]
async fn claims_identity_and_route_template() {
    let recorder = MemoryRecorder::new();
    let app = app!(&recorder);
    let req = test::TestRequest::get()
        .uri("/tenant/3")
        .insert_header(("authorization", bearer(serde_json::json!({}))))
        .to_request();
    let body = test::call_and_read_body(&app, req).await;
    assert_eq!(body, "acme");
    let req = test::TestRequest::get().uri("/maybe").to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "anonymous");
    let events = recorder.events();
    let first = events[0].as_http().unwrap();
    assert_eq!(first.request.route.as_deref(), Some("/tenant/{id}"));
    assert_eq!(first.action.as_deref(), Some("tenant.read"));
    assert_eq!(first.outcome, Some(Outcome::Success));
}

#[actix_web::test]
async fn refusals_render_like_the_tower_layer() {
    let recorder = MemoryRecorder::new();
    let app = app!(&recorder);
    let res =
        test::call_service(&app, test::TestRequest::get().uri("/tenant/3").to_request()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"api\""
    );
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let req = test::TestRequest::get()
        .uri("/admin")
        .insert_header(("authorization", bearer(serde_json::json!({}))))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 403);
    let req = test::TestRequest::get()
        .uri("/tenant/3")
        .insert_header(("authorization", bearer(serde_json::json!({"tenant": 5}))))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["code"], "invalid_claims");
    assert_eq!(recorder.len(), 3);
}

#[actix_web::test]
async fn write_ahead_records_intent_first_and_refuses_when_it_cannot() {
    let recorder = MemoryRecorder::new();
    let app = app!(&recorder);
    let req = || {
        test::TestRequest::post()
            .uri("/ahead")
            .insert_header(("authorization", bearer(serde_json::json!({}))))
            .to_request()
    };
    assert_eq!(test::call_service(&app, req()).await.status(), 201);
    let entries = recorder.entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].0.as_http().unwrap().phase, Phase::Intent);
    assert_eq!(
        entries[1].0.as_http().unwrap().intent_id,
        Some(entries[0].0.id)
    );
    recorder.set_state(MemoryRecorderState::Failed("disk".into()));
    let res = test::call_service(&app, req()).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers().get("retry-after").unwrap(), "1");
}

/// An in-memory sink whose disk fills up: the append of batch `fail_at` (1 = the writer's
/// `start` record) and every later one fail with ENOSPC.
struct DiskFillsUp {
    size: u64,
    batches: u64,
    fail_at: u64,
}

impl veritrail_writer::Sink for DiskFillsUp {
    fn origin(&self) -> &str {
        "actix.test/audit"
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn append(
        &mut self,
        batch: &veritrail_writer::Batch<'_>,
    ) -> Result<(), veritrail_writer::SinkError> {
        self.batches += 1;
        if self.batches >= self.fail_at {
            let full =
                std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
            return Err(veritrail_writer::SinkError::Other(Box::new(full)));
        }
        self.size += batch.len() as u64;
        Ok(())
    }
    fn commit(&mut self) -> Result<(), veritrail_writer::SinkError> {
        Ok(())
    }
}

/// Hole 4: once the writer has failed, no route runs its handler — `Async` ones included
/// (they used to run and lose their event) — and each answers 503 with `Retry-After`.
#[actix_web::test]
async fn a_failed_writer_refuses_every_route_before_the_handler_runs() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use veritrail_writer::{Writer, WriterConfig};

    let sink = DiskFillsUp {
        size: 0,
        batches: 0,
        fail_at: 3,
    };
    let writer = Writer::start(sink, WriterConfig::default()).unwrap();
    let handle = writer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = test::init_service(
        App::new()
            .wrap(AuditMiddleware::new(engine_with(writer.handle())))
            .default_service(web::to(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { HttpResponse::Ok().body("ran") }
            })),
    )
    .await;
    let req = |method: actix_web::http::Method, path: &str| {
        test::TestRequest::default()
            .method(method)
            .uri(path)
            .insert_header(("authorization", bearer(serde_json::json!({}))))
            .to_request()
    };
    // Async requests run until the disk fills up under their events.
    for _ in 0..500 {
        if handle.health().is_err() {
            break;
        }
        let _ = test::call_service(&app, req(actix_web::http::Method::GET, "/x")).await;
        actix_web::rt::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(handle.health().is_err(), "the writer failed");
    let ran = calls.load(Ordering::SeqCst);
    for (method, path) in [
        (actix_web::http::Method::GET, "/x"),
        (actix_web::http::Method::GET, "/maybe"),
        (actix_web::http::Method::POST, "/ahead"),
    ] {
        let res = test::call_service(&app, req(method, path)).await;
        assert_eq!(res.status(), 503, "{path}");
        assert_eq!(res.headers().get("retry-after").unwrap(), "1", "{path}");
        let body = test::read_body(res).await;
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "audit_unavailable", "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("space"));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        ran,
        "the handler ran after the writer had failed"
    );
    let report = writer
        .shutdown(std::time::Instant::now() + Duration::from_secs(5))
        .await;
    assert!(report.error.unwrap().contains("no space"));
    assert!(report.lost >= 1, "the failed batch's events are counted");
}

/// The same refusal as the tower layer for a second `Authorization` header, whatever the
/// first holds (another scheme, bytes that are not UTF-8).
#[actix_web::test]
async fn a_second_authorization_header_is_refused() {
    use actix_web::http::header::{AUTHORIZATION, HeaderValue};
    let firsts = [
        HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        HeaderValue::from_static("Basic YWRtaW46cHc="),
    ];
    for first in firsts {
        let recorder = MemoryRecorder::new();
        let app = app!(&recorder);
        let mut req = test::TestRequest::get().uri("/maybe").to_request();
        req.headers_mut().append(AUTHORIZATION, first.clone());
        req.headers_mut().append(
            AUTHORIZATION,
            HeaderValue::from_str(&bearer(serde_json::json!({}))).unwrap(),
        );
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), 400, "{first:?}");
        let challenge = res.headers().get("www-authenticate").unwrap();
        assert!(
            challenge
                .to_str()
                .unwrap()
                .contains("error=\"invalid_request\""),
            "{challenge:?}"
        );
        let events = recorder.events();
        assert_eq!(
            events[0]
                .as_http()
                .unwrap()
                .authn
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("duplicate_authorization")
        );
    }
}
