//! The actix middleware, `Require` and the extractors, through actix's test service.

use actix_web::{App, HttpResponse, test, web};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Deserialize;
use veritrail_actix::{AuditContext, AuditMiddleware, Claims, Identity, require_role};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::{Outcome, Phase};
use veritrail_core::recorder::{Durability, MemoryRecorder, MemoryRecorderState};

const SECRET: &[u8] = b"actix-middleware-test-secret-0123456789";

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
