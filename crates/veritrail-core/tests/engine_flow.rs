//! The request engine driven directly, as an adapter does, with the in-memory recorder.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use veritrail_core::auth::{Authenticator, Issuer, KeySet, TokenSource};
use veritrail_core::engine::{CaptureRules, Engine, RoutePolicy, SimpleRequest, TrustedProxies};
use veritrail_core::event::{AuditEvent, AuthnDecision, Outcome};
use veritrail_core::recorder::MemoryRecorder;

const SECRET: &[u8] = b"engine-flow-secret-0123456789abcdef";

fn engine(recorder: &MemoryRecorder) -> Engine {
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.test")
                .keys(KeySet::from_hmac_secret(SECRET, Algorithm::HS256, None).unwrap())
                .allow_hmac()
                .audience("api"),
        )
        .token_sources([
            TokenSource::AuthorizationBearer,
            TokenSource::Header("x-api-token".into()),
        ])
        .build()
        .unwrap();
    Engine::builder(auth, recorder.clone())
        .trusted_proxies(TrustedProxies::parse(["10.0.0.0/8"]).unwrap())
        .capture(CaptureRules::new().header("x-api-token").header("x-tenant"))
        .route("/public", RoutePolicy::public())
        .route("/optional", RoutePolicy::optional())
        .build()
}

fn token() -> String {
    // Under --all-features both jsonwebtoken backends are on: select ours before signing.
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"iss": "https://idp.test", "aud": "api", "sub": "bob",
        "exp": now + 60, "scope": "a b"});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn only(recorder: &MemoryRecorder) -> AuditEvent {
    let mut events = recorder.events();
    assert_eq!(events.len(), 1);
    events.pop().unwrap()
}

#[tokio::test]
async fn client_address_request_id_and_capture() {
    let recorder = MemoryRecorder::new();
    let engine = engine(&recorder);
    let t = token();
    let req = SimpleRequest::new("GET", "/x")
        .peer("10.1.2.3".parse().unwrap())
        .header("x-forwarded-for", "203.0.113.50, 10.9.9.9")
        .header("x-api-token", &t)
        .header("x-tenant", "acme");
    let exchange = engine.start(&req);
    let generated = exchange.request_id().to_owned();
    assert_eq!(
        generated.len(),
        36,
        "a fresh UUID when the request has none"
    );
    exchange.authenticate().await.unwrap();
    exchange.finish(204).await.unwrap();
    let event = only(&recorder);
    let h = event.as_http().unwrap();
    assert_eq!(
        h.request.client_address.as_ref().unwrap().as_plain(),
        Some("203.0.113.50")
    );
    assert_eq!(h.request.request_id.as_deref(), Some(generated.as_str()));
    // The token header is allow-listed but carries the token: never recorded.
    assert_eq!(h.request.headers.keys().collect::<Vec<_>>(), ["x-tenant"]);
    assert_eq!(h.actor.as_ref().unwrap().scopes, ["a", "b"]);
}

#[tokio::test]
async fn public_ignores_tokens_optional_checks_them() {
    let recorder = MemoryRecorder::new();
    let engine = engine(&recorder);
    let bad = SimpleRequest::new("GET", "/public").header("authorization", "Bearer not.a.jwt");
    let exchange = engine.start(&bad);
    exchange.authenticate().await.unwrap();
    exchange.finish(200).await.unwrap();
    let event = only(&recorder);
    assert_eq!(event.as_http().unwrap().authn, None);
    assert_eq!(event.as_http().unwrap().token, None);

    let recorder = MemoryRecorder::new();
    let engine = self::engine(&recorder);
    let bad = SimpleRequest::new("GET", "/optional").header("authorization", "Bearer not.a.jwt");
    let exchange = engine.start(&bad);
    let rejection = exchange.authenticate().await.unwrap_err();
    assert_eq!(
        (rejection.status(), rejection.code()),
        (401, "token_malformed")
    );
    exchange.reject(rejection).await;
    let event = only(&recorder);
    let h = event.as_http().unwrap();
    assert_eq!(h.authn.as_ref().unwrap().decision, AuthnDecision::Denied);
    assert_eq!(h.outcome, Some(Outcome::Denied));
}

#[tokio::test]
async fn a_token_with_a_repeated_claim_is_refused_and_audited() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    veritrail_core::auth::backend::install_default_provider();
    let exp = jsonwebtoken::get_current_timestamp() + 60;
    let message = format!(
        "{}.{}",
        b64(r#"{"alg":"HS256"}"#),
        b64(&format!(
            r#"{{"iss":"https://idp.test","aud":"api","sub":"admin","sub":"bob","exp":{exp}}}"#
        ))
    );
    let key = EncodingKey::from_secret(SECRET);
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    let recorder = MemoryRecorder::new();
    let engine = engine(&recorder);
    let req = SimpleRequest::new("GET", "/x")
        .header("authorization", &format!("Bearer {message}.{signature}"));
    let exchange = engine.start(&req);
    let rejection = exchange.authenticate().await.unwrap_err();
    assert_eq!(
        (rejection.status(), rejection.code()),
        (401, "duplicate_name")
    );
    exchange.reject(rejection).await;
    let event = only(&recorder);
    let h = event.as_http().unwrap();
    let authn = h.authn.as_ref().unwrap();
    assert_eq!(
        (authn.decision, authn.reason.as_deref()),
        (AuthnDecision::Denied, Some("duplicate_name"))
    );
    assert_eq!(h.outcome, Some(Outcome::Denied));
    assert_eq!(h.actor, None, "no subject from a refused token");
}

#[tokio::test]
async fn business_outcome_and_its_limits() {
    let recorder = MemoryRecorder::new();
    let engine = engine(&recorder);
    let t = format!("Bearer {}", token());
    for status in [200, 503] {
        let exchange =
            engine.start(&SimpleRequest::new("POST", "/pay").header("authorization", &t));
        exchange.authenticate().await.unwrap();
        exchange.context().set_outcome(Outcome::Failure);
        exchange.finish(status).await.unwrap();
    }
    let events = recorder.events();
    assert_eq!(events[0].as_http().unwrap().outcome, Some(Outcome::Failure));
    assert_eq!(
        events[1].as_http().unwrap().outcome,
        Some(Outcome::Error),
        "5xx wins"
    );
}

#[tokio::test]
async fn dropped_exchanges_record_cancelled_or_error() {
    let recorder = MemoryRecorder::new();
    let engine = engine(&recorder);
    drop(engine.start(&SimpleRequest::new("GET", "/public")));
    let exchange = engine.start(&SimpleRequest::new("GET", "/public"));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _held = exchange;
        panic!("handler bug");
    }));
    assert!(panicked.is_err());
    let events = recorder.events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].as_http().unwrap().outcome,
        Some(Outcome::Cancelled)
    );
    assert_eq!(events[1].as_http().unwrap().outcome, Some(Outcome::Error));
}

/// Two `Authorization` headers, whatever the first holds, are a 400 `invalid_request` with an
/// RFC 6750 challenge, and the event says why; one is verified and its source named.
#[tokio::test]
async fn two_authorization_headers_are_refused_and_recorded() {
    let t = token();
    let bearer = format!("Bearer {t}");
    for first in ["Basic YWRtaW46cHc=", "Bearer x.y.z", bearer.as_str()] {
        let recorder = MemoryRecorder::new();
        let engine = engine(&recorder);
        let req = SimpleRequest::new("GET", "/optional")
            .header("authorization", first)
            .header("Authorization", &bearer);
        let exchange = engine.start(&req);
        let rejection = exchange.authenticate().await.unwrap_err();
        assert_eq!(
            (rejection.status(), rejection.code()),
            (400, "duplicate_authorization"),
            "{first}"
        );
        let challenge = rejection.www_authenticate().unwrap();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_request\""),
            "{challenge}"
        );
        let rejection = exchange.reject(rejection).await;
        assert_eq!(rejection.status(), 400);
        let event = only(&recorder);
        let h = event.as_http().unwrap();
        assert_eq!(h.status, Some(400));
        assert_eq!(h.outcome, Some(Outcome::Denied));
        let authn = h.authn.as_ref().unwrap();
        assert_eq!(authn.decision, AuthnDecision::Denied);
        assert_eq!(authn.reason.as_deref(), Some("duplicate_authorization"));
    }

    let recorder = MemoryRecorder::new();
    let engine = engine(&recorder);
    let exchange = engine.start(&SimpleRequest::new("GET", "/x").header("x-api-token", &t));
    exchange.authenticate().await.unwrap();
    assert_eq!(
        exchange.context().token_source(),
        Some(TokenSource::Header("x-api-token".into()))
    );
    let exchange = engine.start(&SimpleRequest::new("GET", "/x").header("authorization", &bearer));
    exchange.authenticate().await.unwrap();
    assert_eq!(
        exchange.context().token_source(),
        Some(TokenSource::AuthorizationBearer)
    );
    let exchange = engine.start(&SimpleRequest::new("GET", "/optional"));
    exchange.authenticate().await.unwrap();
    assert_eq!(exchange.context().token_source(), None, "anonymous");
}
