//! Shared by the end-to-end tests: keys and tokens, a real HTTP client, the request scenario
//! both frameworks serve, and reading the log back through the verifier.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{CaptureRules, Engine, RoutePolicy, TrustedProxies};
use veritrail_core::event::{AuditEvent, EvidenceMode};
use veritrail_core::recorder::{Durability, Recorder};

pub const ISSUER: &str = "https://idp.test";
pub const HS_ISSUER: &str = "https://hs.test";
pub const AUDIENCE: &str = "orders-api";
pub const REALM: &str = "orders";
/// The HMAC secret: must never appear in the log or in any answer.
pub const HMAC_SECRET: &[u8] = b"hmac-secret-that-must-never-leak-0123456789";
/// A cookie value sent with requests: must never appear in the log.
pub const COOKIE_SECRET: &str = "session-cookie-that-must-never-leak";

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// The base64 body of a PEM private key (what a leak would contain).
pub fn pem_body(name: &str) -> String {
    String::from_utf8(fixture(name))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

pub fn authenticator() -> Authenticator {
    let keys = KeySet::merge([
        KeySet::from_pem(
            &fixture("rsa.pub.pem"),
            Algorithm::RS256,
            Some("rsa1".into()),
        )
        .unwrap(),
        KeySet::from_pem(
            &fixture("ec256.pub.pem"),
            Algorithm::ES256,
            Some("ec1".into()),
        )
        .unwrap(),
        KeySet::from_pem(
            &fixture("ed25519.pub.pem"),
            Algorithm::EdDSA,
            Some("ed1".into()),
        )
        .unwrap(),
    ]);
    let hmac = KeySet::from_hmac_secret(HMAC_SECRET, Algorithm::HS256, Some("hs1".into())).unwrap();
    Authenticator::builder()
        .issuer(Issuer::new(ISSUER).keys(keys).audience(AUDIENCE))
        .issuer(
            Issuer::new(HS_ISSUER)
                .keys(hmac)
                .allow_hmac()
                .audience(AUDIENCE),
        )
        .build()
        .unwrap()
}

/// The engine both frameworks use: the same routes, policies and capture rules.
pub fn engine(recorder: impl Recorder, evidence: EvidenceMode) -> Engine {
    Engine::builder(authenticator(), recorder)
        .realm(REALM)
        .evidence(evidence)
        .trusted_proxies(TrustedProxies::parse(["127.0.0.0/8"]).unwrap())
        .capture(
            CaptureRules::new()
                .header("x-tenant")
                .header("cookie")
                .header("authorization")
                .query_param("page")
                .query_param("access_token"),
        )
        .actor_claim("tenant")
        .route("/health", RoutePolicy::public())
        .route("/me", RoutePolicy::optional())
        .route(
            "/transfers",
            RoutePolicy::authenticated()
                .scope("transfers:write")
                .durability(Durability::WriteAhead),
        )
        .build()
}

/// Signs a token with `alg` (RS256, ES256, EdDSA or HS256); `extra` overrides claims.
pub fn token(alg: Algorithm, scopes: &str, extra: Value) -> String {
    // Under --all-features both jsonwebtoken backends are on: pick ours before signing.
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "iss": if alg == Algorithm::HS256 { HS_ISSUER } else { ISSUER },
        "aud": AUDIENCE, "sub": "alice", "exp": now + 600, "iat": now,
        "jti": format!("jti-{now}-{scopes}"), "scope": scopes, "tenant": "acme",
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let (key, kid) = match alg {
        Algorithm::RS256 => (
            EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap(),
            "rsa1",
        ),
        Algorithm::ES256 => (
            EncodingKey::from_ec_pem(&fixture("ec256.pem")).unwrap(),
            "ec1",
        ),
        Algorithm::EdDSA => (
            EncodingKey::from_ed_pem(&fixture("ed25519.pem")).unwrap(),
            "ed1",
        ),
        Algorithm::HS256 => (EncodingKey::from_secret(HMAC_SECRET), "hs1"),
        other => panic!("no test key for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    encode(&header, &claims, &key).unwrap()
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One request over a fresh TCP connection.
pub async fn send(addr: SocketAddr, req: http::Request<Full<Bytes>>) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Watches the `/slow` handler: whether it started, and whether its future was dropped.
#[derive(Debug, Default)]
pub struct SlowProbe {
    started: std::sync::atomic::AtomicBool,
    dropped: std::sync::atomic::AtomicBool,
}

struct DroppedFlag(std::sync::Arc<SlowProbe>);

impl Drop for DroppedFlag {
    fn drop(&mut self) {
        self.0
            .dropped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl SlowProbe {
    /// The slow handler's body: marks the start, then waits far longer than any test.
    pub async fn run(self: std::sync::Arc<Self>) {
        let _flag = DroppedFlag(self.clone());
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
    }

    async fn wait(flag: &std::sync::atomic::AtomicBool, what: &str) {
        for _ in 0..1000 {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the slow handler never {what}");
    }

    /// Waits until the handler runs.
    pub async fn wait_started(&self) {
        Self::wait(&self.started, "started").await;
    }

    /// Waits until the server dropped the handler's future.
    pub async fn wait_dropped(&self) {
        Self::wait(&self.dropped, "was dropped").await;
    }
}

/// Sends a request to the slow route and hangs up once its handler runs, before the answer.
pub async fn send_and_hang_up(
    addr: SocketAddr,
    req: http::Request<Full<Bytes>>,
    probe: &SlowProbe,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let request = tokio::spawn(async move { sender.send_request(req).await });
    probe.wait_started().await;
    request.abort();
    conn.abort();
    let _ = request.await;
    let _ = conn.await;
}

/// What one request must produce: the answer and the event.
#[derive(Clone, Debug)]
pub struct Case {
    pub id: &'static str,
    pub method: &'static str,
    pub target: String,
    pub token: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    pub status: u16,
    /// The route template, when the router matched one.
    pub route: Option<&'static str>,
    pub outcome: &'static str,
    pub authn: Option<(&'static str, Option<&'static str>)>,
    pub authz: Option<(&'static str, Option<&'static str>)>,
    pub action: Option<&'static str>,
    pub target_name: Option<String>,
    pub alg: Option<&'static str>,
    /// A substring of the `WWW-Authenticate` answer (None: no header).
    pub challenge: Option<&'static str>,
    pub write_ahead: bool,
}

impl Case {
    fn new(id: &'static str, method: &'static str, target: &str) -> Self {
        Case {
            id,
            method,
            target: target.to_owned(),
            token: None,
            headers: Vec::new(),
            status: 200,
            route: None,
            outcome: "success",
            authn: None,
            authz: None,
            action: None,
            target_name: None,
            alg: None,
            challenge: None,
            write_ahead: false,
        }
    }

    pub fn request(&self) -> http::Request<Full<Bytes>> {
        let mut b = http::Request::builder()
            .method(self.method)
            .uri(&self.target)
            .header("host", "localhost")
            .header("x-request-id", self.id)
            .header("user-agent", "veritrail-e2e/1")
            .header("x-tenant", "acme")
            .header("cookie", format!("session={COOKIE_SECRET}"))
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            );
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in &self.headers {
            b = b.header(*k, v);
        }
        b.body(Full::default()).unwrap()
    }
}

/// Every request of the scenario, in order (the same for axum and actix).
pub fn scenario() -> Vec<Case> {
    use Algorithm::*;
    let read = "orders:read";
    let ok = |id, alg, label| Case {
        token: Some(token(alg, read, json!({}))),
        route: Some("/orders/{id}"),
        authn: Some(("allowed", None)),
        authz: Some(("allowed", None)),
        action: Some("order.read"),
        target_name: Some("order:7".into()),
        alg: Some(label),
        ..Case::new(id, "GET", "/orders/7?page=2&access_token=nope&sort=asc")
    };
    let refused = |id, token: Option<String>, status, reason, challenge| Case {
        token,
        status,
        route: Some("/orders/{id}"),
        outcome: "denied",
        authn: Some(("denied", Some(reason))),
        challenge: Some(challenge),
        ..Case::new(id, "GET", "/orders/7")
    };
    let now = jsonwebtoken::get_current_timestamp();
    vec![
        ok("rs256", RS256, "RS256"),
        ok("es256", ES256, "ES256"),
        ok("eddsa", EdDSA, "EdDSA"),
        ok("hs256", HS256, "HS256"),
        refused(
            "no-token",
            None,
            401,
            "token_missing",
            "Bearer realm=\"orders\"",
        ),
        refused(
            "garbage",
            Some("abc.def.ghi".into()),
            401,
            "token_malformed",
            "error=\"invalid_token\"",
        ),
        refused(
            "expired",
            Some(token(
                RS256,
                read,
                json!({"exp": now - 3600, "iat": now - 7200}),
            )),
            401,
            "expired",
            "error=\"invalid_token\"",
        ),
        refused(
            "wrong-aud",
            Some(token(ES256, read, json!({"aud": "someone-else"}))),
            401,
            "wrong_audience",
            "error=\"invalid_token\"",
        ),
        refused(
            "bad-signature",
            Some({
                let t = token(RS256, read, json!({}));
                let other = token(RS256, "orders:admin", json!({}));
                let mut parts: Vec<&str> = t.split('.').collect();
                parts[2] = other.split('.').nth(2).unwrap();
                parts.join(".")
            }),
            401,
            "bad_signature",
            "error=\"invalid_token\"",
        ),
        Case {
            headers: vec![(
                "authorization",
                format!("Bearer {}", token(RS256, read, json!({}))),
            )],
            ..refused(
                "two-tokens",
                Some(token(RS256, read, json!({}))),
                400,
                "duplicate_authorization",
                "error=\"invalid_request\"",
            )
        },
        Case {
            token: Some(token(RS256, "orders:write", json!({}))),
            status: 403,
            route: Some("/orders/{id}"),
            outcome: "denied",
            authn: Some(("allowed", None)),
            authz: Some(("denied", Some("missing_scope"))),
            alg: Some("RS256"),
            challenge: Some("error=\"insufficient_scope\""),
            ..Case::new("no-scope", "GET", "/orders/7")
        },
        Case {
            route: Some("/health"),
            ..Case::new("health", "GET", "/health")
        },
        Case {
            route: Some("/me"),
            authn: Some(("anonymous", None)),
            action: Some("me.anonymous"),
            ..Case::new("me-anonymous", "GET", "/me")
        },
        Case {
            token: Some(token(EdDSA, "", json!({}))),
            route: Some("/me"),
            authn: Some(("allowed", None)),
            action: Some("me.known"),
            target_name: Some("user:alice".into()),
            alg: Some("EdDSA"),
            ..Case::new("me-known", "GET", "/me")
        },
        Case {
            token: Some(token(RS256, "orders:refund", json!({}))),
            route: Some("/orders/{id}/refund"),
            authn: Some(("allowed", None)),
            authz: Some(("allowed", None)),
            action: Some("order.refund"),
            target_name: Some("order:42".into()),
            alg: Some("RS256"),
            ..Case::new("refund-durable", "POST", "/orders/42/refund")
        },
        Case {
            token: Some(token(ES256, "transfers:write", json!({}))),
            route: Some("/transfers"),
            authn: Some(("allowed", None)),
            authz: Some(("allowed", None)),
            action: Some("transfer.create"),
            alg: Some("ES256"),
            write_ahead: true,
            ..Case::new("transfer-write-ahead", "POST", "/transfers")
        },
        Case {
            token: Some(token(RS256, read, json!({}))),
            route: Some("/stream"),
            authn: Some(("allowed", None)),
            action: Some("report.stream"),
            alg: Some("RS256"),
            ..Case::new("stream", "GET", "/stream")
        },
        Case {
            token: Some(token(RS256, read, json!({}))),
            status: 500,
            route: Some("/panic"),
            outcome: "error",
            authn: Some(("allowed", None)),
            alg: Some("RS256"),
            ..Case::new("panic", "GET", "/panic")
        },
        Case {
            token: Some(token(RS256, read, json!({}))),
            status: 404,
            outcome: "failure",
            authn: Some(("allowed", None)),
            alg: Some("RS256"),
            ..Case::new("not-found", "GET", "/nowhere")
        },
    ]
}

/// The cancelled request: sent to `/slow`, the client hangs up.
pub fn cancelled_case() -> Case {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    Case {
        token: Some(
            TOKEN
                .get_or_init(|| token(Algorithm::RS256, "orders:read", json!({})))
                .clone(),
        ),
        status: 0,
        route: Some("/slow"),
        outcome: "cancelled",
        authn: Some(("allowed", None)),
        action: Some("slow.started"),
        alg: Some("RS256"),
        ..Case::new("cancelled", "GET", "/slow")
    }
}

/// The streamed body the `/stream` route sends, chunk by chunk.
pub const STREAM_CHUNKS: [&str; 3] = ["alpha,", "beta,", "gamma"];

/// Checks an answer against its case.
pub fn check_answer(case: &Case, answer: &Answer) {
    assert_eq!(
        answer.status, case.status,
        "{}: status; body {:?}",
        case.id, answer.body
    );
    assert_eq!(
        answer.header("x-request-id"),
        Some(case.id),
        "{}: request id echoed",
        case.id
    );
    match case.challenge {
        Some(c) => {
            let got = answer.header("www-authenticate").unwrap_or_default();
            assert!(got.starts_with("Bearer"), "{}: {got}", case.id);
            assert!(
                got.contains(c),
                "{}: challenge {got:?} lacks {c:?}",
                case.id
            );
            assert_eq!(
                answer.header("content-type"),
                Some("application/problem+json")
            );
            let problem: Value = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(problem["status"], case.status);
            assert_eq!(problem["type"], "about:blank");
            let code = case.authz.and_then(|a| a.1).map(|_| "insufficient_scope");
            let code = code.or(case.authn.and_then(|a| a.1)).unwrap();
            assert_eq!(problem["code"], code, "{}", case.id);
        }
        None => assert_eq!(answer.header("www-authenticate"), None, "{}", case.id),
    }
    if case.id == "stream" {
        assert_eq!(answer.body, STREAM_CHUNKS.concat(), "streamed body");
    }
}

/// Reads every record through the library's verifier (which must pass) and returns the
/// `http` events by request id, plus all raw record bytes.
pub fn read_log(
    dir: &Path,
    verifier: &veritrail_log::NoteVerifier,
) -> (BTreeMap<String, Vec<AuditEvent>>, Vec<Vec<u8>>) {
    let mut records = Vec::new();
    let report = veritrail_log::verify::verify_dir_with(
        dir,
        verifier,
        &veritrail_log::verify::VerifyOptions::default(),
        |_, record| {
            records.push(record.to_vec());
            Ok(())
        },
    )
    .expect("the log verifies");
    assert_eq!(report.records as usize, records.len());
    let mut by_id: BTreeMap<String, Vec<AuditEvent>> = BTreeMap::new();
    for record in &records {
        let event = AuditEvent::from_json(record).unwrap();
        if let Some(http) = event.as_http() {
            let id = http.request.request_id.clone().unwrap();
            by_id.entry(id).or_default().push(event);
        }
    }
    (by_id, records)
}

fn text(t: &Option<veritrail_core::event::Text>) -> Option<&str> {
    t.as_ref().and_then(|t| t.as_plain())
}

/// Checks the event(s) of one case field by field.
pub fn check_events(case: &Case, events: &[AuditEvent], token_mode: EvidenceMode) {
    let expected = if case.write_ahead { 2 } else { 1 };
    assert_eq!(events.len(), expected, "{}: events {events:#?}", case.id);
    let event = events.last().unwrap();
    let h = event.as_http().unwrap();
    let v = serde_json::to_value(event).unwrap();
    let id = case.id;
    assert_eq!(v["v"], 1);
    assert_eq!(v["kind"], "http");
    assert_eq!(v["phase"], "complete", "{id}");
    assert_eq!(v["outcome"], case.outcome, "{id}");
    if case.status == 0 {
        assert_eq!(h.status, None, "{id}");
    } else {
        assert_eq!(h.status, Some(case.status), "{id}");
    }
    assert!(h.latency_us.is_some(), "{id}: latency");
    let r = &h.request;
    assert_eq!(r.method, case.method, "{id}");
    assert_eq!(r.route.as_deref(), case.route, "{id}: route");
    assert_eq!(
        Some(r.path.as_plain().unwrap()),
        case.target.split('?').next(),
        "{id}"
    );
    assert_eq!(r.request_id.as_deref(), Some(id));
    assert_eq!(text(&r.client_address), Some("127.0.0.1"), "{id}");
    assert_eq!(text(&r.user_agent), Some("veritrail-e2e/1"));
    assert_eq!(
        r.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(r.span_id.as_deref(), Some("00f067aa0ba902b7"));
    // Allow-listed: x-tenant and page; never cookie, authorization or access_token.
    assert_eq!(
        r.headers.keys().map(String::as_str).collect::<Vec<_>>(),
        ["x-tenant"],
        "{id}"
    );
    if case.target.contains("page=") {
        assert_eq!(
            r.query.keys().map(String::as_str).collect::<Vec<_>>(),
            ["page"]
        );
        assert_eq!(r.query["page"].as_plain(), Some("2"));
    } else {
        assert!(r.query.is_empty());
    }
    let authn = h.authn.as_ref().map(|a| {
        let v = serde_json::to_value(a).unwrap();
        (v["decision"].as_str().unwrap().to_owned(), a.reason.clone())
    });
    assert_eq!(
        authn,
        case.authn
            .map(|(d, r)| (d.to_owned(), r.map(str::to_owned))),
        "{id}: authn"
    );
    let authz = h.authz.as_ref().map(|a| {
        let v = serde_json::to_value(a).unwrap();
        (v["decision"].as_str().unwrap().to_owned(), a.reason.clone())
    });
    assert_eq!(
        authz,
        case.authz
            .map(|(d, r)| (d.to_owned(), r.map(str::to_owned))),
        "{id}: authz"
    );
    assert_eq!(h.action.as_deref(), case.action, "{id}: action");
    assert_eq!(
        h.target.as_ref().and_then(|t| t.as_plain()),
        case.target_name.as_deref(),
        "{id}: target"
    );
    match (&h.actor, case.alg) {
        (Some(actor), Some(alg)) => {
            assert_eq!(text(&actor.sub), Some("alice"));
            assert_eq!(actor.alg.as_deref(), Some(alg), "{id}");
            let iss = if alg == "HS256" { HS_ISSUER } else { ISSUER };
            assert_eq!(actor.iss.as_deref(), Some(iss));
            assert_eq!(actor.aud, [AUDIENCE]);
            assert!(actor.kid.is_some() && actor.exp.is_some() && actor.iat.is_some());
            assert_eq!(actor.claims.get("tenant"), Some(&json!("acme")), "{id}");
        }
        (None, None) => {}
        (actor, alg) => panic!("{id}: actor {actor:?}, expected alg {alg:?}"),
    }
    // Token evidence: a fingerprint of the very token sent, or the token itself in full mode
    // (never for HMAC), or nothing.
    match (&case.token, &h.token) {
        (Some(t), Some(evidence)) if case.id != "two-tokens" => {
            let sha = veritrail_core::event::TokenEvidence::fingerprint(t);
            assert_eq!(evidence.sha256(), sha.sha256(), "{id}");
            let full = serde_json::to_value(evidence).unwrap();
            match token_mode {
                EvidenceMode::Full if case.alg != Some("HS256") && case.alg.is_some() => {
                    assert_eq!(full["mode"], "full", "{id}");
                    assert_eq!(full["jwt"], t.as_str());
                }
                EvidenceMode::Full if case.alg == Some("HS256") => {
                    assert_eq!(full["mode"], "fingerprint");
                    assert_eq!(full["full_refused"], "hmac_alg");
                }
                _ => assert_eq!(full["mode"], "fingerprint", "{id}"),
            }
        }
        (None, None) => {}
        (Some(_), None) if case.id == "two-tokens" => {}
        (t, e) => panic!("{id}: token {t:?} evidence {e:?}"),
    }
    if case.write_ahead {
        let intent = events[0].as_http().unwrap();
        let iv = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(iv["phase"], "intent");
        assert_eq!(intent.outcome, None);
        assert_eq!(intent.status, None);
        assert_eq!(
            h.intent_id,
            Some(events[0].id),
            "{id}: complete names its intent"
        );
        assert!(events[0].index < event.index, "intent first");
    }
}

/// The `/stream` body: [`STREAM_CHUNKS`] with a pause before each.
pub fn chunks() -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
{
    use futures_util::StreamExt;
    futures_util::stream::iter(STREAM_CHUNKS).then(|c| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Bytes::from_static(c.as_bytes()))
    })
}

/// A recorder that passes every event on and notes when a `cancelled` event was handed over,
/// so a test can wait for the layer's drop guard instead of sleeping.
#[derive(Clone)]
pub struct WatchCancelled<R> {
    inner: R,
    seen: std::sync::Arc<tokio::sync::Notify>,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<R: Recorder> WatchCancelled<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        WatchCancelled {
            inner,
            seen: Default::default(),
            count: Default::default(),
        }
    }

    /// Waits (up to 10 s) until a `cancelled` event has been recorded.
    pub async fn wait(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            let notified = self.seen.notified();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("no cancelled event was recorded within 10 s");
            }
        }
    }
}

impl<R: Recorder> Recorder for WatchCancelled<R> {
    fn record(
        &self,
        event: AuditEvent,
        durability: Durability,
    ) -> veritrail_core::recorder::RecordFuture {
        let cancelled = event.as_http().and_then(|http| http.outcome)
            == Some(veritrail_core::event::Outcome::Cancelled);
        let future = self.inner.record(event, durability);
        if cancelled {
            self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.seen.notify_waiters();
        }
        future
    }
}
