//! The JWKS store against a real HTTP server on 127.0.0.1 (axum), counting fetches.
//!
//! Most tests run on tokio's paused clock: timers (refresh schedule, cooldown, stale window,
//! timeouts) jump forward deterministically while the sockets are real. The concurrency test
//! runs on a real multi-thread runtime.
#![cfg(feature = "remote")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::{Instant, sleep, sleep_until};
use veritrail_core::auth::keyset::KeySet;
use veritrail_core::auth::remote::{
    JwksConfig, JwksError, JwksStore, KeysUnavailable, UnavailableReason,
};

/// Real Ed25519 public keys (generated with `openssl genpkey -algorithm ed25519`).
const X: [&str; 4] = [
    "tgkgmJDUOm2CxgN5OAVoyl_8parjbvxbaXcaWurLKRA",
    "X5xfOU8jUOejuIgom1Zf-1YG-D2N_VjgOwWue8-4B2g",
    "BYh6jYGNYJDRIvdUa_FMZ8jPnAKo_hDA37CaIIYVfvc",
    "Bqrisuz_T-QWt96jHbyvsRyiCRizQYyzhkYBpy0WAz4",
];

fn jwk(kid: &str, x: &str) -> String {
    format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"{kid}","alg":"EdDSA","use":"sig"}}"#)
}

/// A JWKS of Ed25519 keys named `kids`, the i-th with the i-th public key.
fn jwks(kids: &[&str]) -> String {
    let keys: Vec<String> = kids.iter().zip(X).map(|(kid, x)| jwk(kid, x)).collect();
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

fn kids(keys: &KeySet) -> Vec<String> {
    let mut kids: Vec<String> = keys.keys().iter().filter_map(|k| k.kid.clone()).collect();
    kids.sort();
    kids
}

/// A tiny identity provider whose answers the test changes as it goes.
struct Idp {
    addr: SocketAddr,
    jwks: Mutex<String>,
    status: AtomicU16,
    cache_control: Mutex<Option<String>>,
    age: Mutex<Option<String>>,
    delay: Mutex<Duration>,
    issuer: Mutex<Option<String>>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

impl Idp {
    async fn start(jwks: String) -> Arc<Idp> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = Arc::new(Idp {
            addr: listener.local_addr().unwrap(),
            jwks: Mutex::new(jwks),
            status: AtomicU16::new(200),
            cache_control: Mutex::new(None),
            age: Mutex::new(None),
            delay: Mutex::new(Duration::ZERO),
            issuer: Mutex::new(None),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .route(
                "/realms/test/.well-known/openid-configuration",
                get(serve_discovery),
            )
            .route("/big.json", get(serve_big))
            .route("/elsewhere", get(redirect_elsewhere))
            .route("/same-origin", get(redirect_same_origin))
            .with_state(Arc::clone(&idp));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        idp
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn issuer(&self) -> String {
        format!("http://{}/realms/test", self.addr)
    }

    fn set_jwks(&self, jwks: String) {
        *self.jwks.lock().unwrap() = jwks;
    }

    fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn set_cache_control(&self, value: Option<&str>) {
        *self.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State(idp): State<Arc<Idp>>) -> Response {
    idp.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let delay = *idp.delay.lock().unwrap();
    if !delay.is_zero() {
        sleep(delay).await;
    }
    let status = StatusCode::from_u16(idp.status.load(Ordering::SeqCst)).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(cc) = idp.cache_control.lock().unwrap().clone() {
        headers.insert(header::CACHE_CONTROL, cc.parse().unwrap());
    }
    if let Some(age) = idp.age.lock().unwrap().clone() {
        headers.insert(header::AGE, age.parse().unwrap());
    }
    let body = if status.is_success() {
        idp.jwks.lock().unwrap().clone()
    } else {
        format!("upstream exploded\n{}", "stack frame\n".repeat(1000))
    };
    (status, headers, body).into_response()
}

async fn serve_discovery(State(idp): State<Arc<Idp>>) -> Response {
    idp.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let issuer = idp
        .issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| idp.issuer());
    let body = format!(
        r#"{{"issuer":"{issuer}","jwks_uri":"{}","id_token_signing_alg_values_supported":["EdDSA"]}}"#,
        idp.url("/jwks.json")
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn serve_big() -> String {
    format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(64 * 1024))
}

async fn redirect_elsewhere(State(idp): State<Arc<Idp>>) -> Response {
    // Same port, other host name: another origin.
    let to = format!("http://localhost:{}/jwks.json", idp.addr.port());
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn redirect_same_origin() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "/jwks.json")]).into_response()
}

/// A config for `url` on loopback with bounds and cooldowns short enough for tests.
fn config(url: String) -> JwksConfig {
    JwksConfig::jwks_url(url)
        .allow_insecure_http(true)
        .default_refresh(Duration::from_secs(300))
        .refresh_bounds(Duration::from_secs(10), Duration::from_secs(3600))
        .unknown_kid_cooldown(Duration::from_secs(30))
        .stale_if_error(Duration::from_secs(300))
        .retry_backoff(Duration::from_secs(1), Duration::from_secs(30))
        .request_timeout(Duration::from_secs(5))
}

/// A store on `idp`'s JWKS with [`config`], its first key set loaded.
async fn connect(idp: &Idp) -> JwksStore {
    JwksStore::connect(config(idp.url("/jwks.json")))
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn rotation_is_picked_up_on_schedule_and_on_unknown_kid() {
    let idp = Idp::start(jwks(&["k1"])).await;
    idp.set_cache_control(Some("max-age=60"));
    // The callback records each new set and what readers saw at that moment.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store_slot = Arc::new(std::sync::OnceLock::<JwksStore>::new());
    let (record, slot) = (Arc::clone(&seen), Arc::clone(&store_slot));
    let store = JwksStore::connect(config(idp.url("/jwks.json")).on_change(move |keys| {
        let in_force = slot.get().and_then(|s| s.current().ok());
        record
            .lock()
            .unwrap()
            .push((kids(keys), in_force.map(|k| kids(&k))));
    }))
    .await
    .unwrap();
    store_slot.set(store.clone()).unwrap();
    let mut changes = store.subscribe();
    assert_eq!(kids(&store.current().unwrap()), ["k1"]);
    assert_eq!(idp.fetches(), 1);

    // The IdP rotates; the store keeps the fresh set until max-age runs out.
    idp.set_jwks(jwks(&["k1", "k2"]));
    sleep(Duration::from_secs(59)).await;
    assert_eq!(kids(&store.current().unwrap()), ["k1"]);
    assert_eq!(idp.fetches(), 1);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(kids(&store.current().unwrap()), ["k1", "k2"]);
    assert_eq!(idp.fetches(), 2);
    changes.changed().await.unwrap();
    assert_eq!(kids(&changes.borrow_and_update()), ["k1", "k2"]);

    // Next rotation: a token with the new kid arrives before the schedule (outside cooldown).
    idp.set_jwks(jwks(&["k2", "k3"]));
    sleep(Duration::from_secs(31)).await;
    let keys = store.refresh_for_unknown_kid("k3").await.unwrap();
    assert_eq!(kids(&keys), ["k2", "k3"]);
    assert_eq!(kids(&store.current().unwrap()), ["k2", "k3"]);
    assert_eq!(idp.fetches(), 3);
    assert!(changes.has_changed().unwrap());

    // An unchanged set is a refresh, not a change.
    sleep(Duration::from_secs(61)).await;
    assert_eq!(idp.fetches(), 4);
    // Each set was announced before it came into force.
    let strings = |kids: &[&str]| kids.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (strings(&["k1"]), None),
            (strings(&["k1", "k2"]), Some(strings(&["k1"]))),
            (strings(&["k2", "k3"]), Some(strings(&["k1", "k2"]))),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_kid_refetch_honours_the_cooldown() {
    let idp = Idp::start(jwks(&["k1"])).await;
    idp.set_cache_control(Some("max-age=3600"));
    let store = connect(&idp).await;
    assert_eq!(idp.fetches(), 1);

    // A known kid never fetches.
    assert!(store.refresh_for_unknown_kid("k1").await.is_ok());
    // Within the cooldown after the last fetch: no fetch, however often asked.
    for _ in 0..50 {
        let keys = store.refresh_for_unknown_kid("forged").await.unwrap();
        assert!(keys.by_kid("forged").is_none());
    }
    assert_eq!(idp.fetches(), 1);

    sleep(Duration::from_secs(29)).await;
    store.refresh_for_unknown_kid("forged").await.unwrap();
    assert_eq!(idp.fetches(), 1);
    sleep(Duration::from_secs(2)).await;
    store.refresh_for_unknown_kid("forged").await.unwrap();
    assert_eq!(idp.fetches(), 2, "one refetch once the cooldown is over");
    for _ in 0..50 {
        store.refresh_for_unknown_kid("forged-again").await.unwrap();
    }
    assert_eq!(idp.fetches(), 2, "and the cooldown starts again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_cause_one_fetch() {
    let idp = Idp::start(jwks(&["k1"])).await;
    // No cooldown at all: only single-flight stands between 100 misses and 100 fetches.
    let store =
        JwksStore::connect(config(idp.url("/jwks.json")).unknown_kid_cooldown(Duration::ZERO))
            .await
            .unwrap();
    assert_eq!(idp.fetches(), 1);
    idp.set_jwks(jwks(&["k1", "k2"]));
    // Slow enough that every request misses while the one fetch is in flight.
    idp.set_delay(Duration::from_millis(300));

    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store.refresh_for_unknown_kid("k2").await
            })
        })
        .collect();
    for task in tasks {
        let keys = task.await.unwrap().unwrap();
        assert!(keys.by_kid("k2").is_some());
    }
    assert_eq!(idp.fetches(), 2, "100 misses, one fetch");
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_serves_stale_keys_then_reports_unavailable() {
    let idp = Idp::start(jwks(&["k1"])).await;
    idp.set_cache_control(Some("max-age=60"));
    let store = connect(&idp).await;
    idp.set_status(500);

    // Past freshness: refreshes fail, the old keys keep serving.
    sleep(Duration::from_secs(61)).await;
    assert_eq!(kids(&store.current().unwrap()), ["k1"]);
    let status = store.status();
    assert!(status.stale && status.available);
    assert!(status.consecutive_failures >= 1);
    let error = status.last_error.unwrap();
    assert_eq!(error.code(), "http_status");
    let message = error.to_string();
    assert!(
        message.contains("500") && message.contains("upstream exploded"),
        "{message}"
    );
    assert!(
        message.len() < 200,
        "the body must not be copied whole: {message}"
    );

    // Until the stale-if-error window (300 s after freshness ended) runs out.
    sleep(Duration::from_secs(297)).await;
    assert!(store.current().is_ok());
    sleep(Duration::from_secs(3)).await;
    let unavailable: KeysUnavailable = store.current().unwrap_err();
    assert_eq!(unavailable.reason, UnavailableReason::Expired);
    assert!(unavailable.retry_after <= Duration::from_secs(30));
    assert!(unavailable.retry_after >= Duration::from_secs(1));
    assert!(store.refresh_for_unknown_kid("k1").await.is_err());

    // Backoff 1, 2, 4, 8, 16, then every 30 s: not a fetch per second for five minutes.
    let fetches = idp.fetches();
    assert!((10..=20).contains(&fetches), "{fetches} fetches");

    // The IdP recovers: keys come back at the next retry.
    idp.set_status(200);
    sleep(Duration::from_secs(31)).await;
    assert_eq!(kids(&store.current().unwrap()), ["k1"]);
    assert_eq!(store.status().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_store_spawned_while_the_idp_is_down_is_unavailable_until_it_is_up() {
    let idp = Idp::start(jwks(&["k1"])).await;
    idp.set_status(503);
    let store = JwksStore::spawn(config(idp.url("/jwks.json"))).unwrap();
    let err = store.current().unwrap_err();
    assert_eq!(err.reason, UnavailableReason::NotLoaded);
    // A request waits for the first fetch (running in the background), which fails.
    assert!(store.refresh_for_unknown_kid("k1").await.is_err());
    assert_eq!(idp.fetches(), 1);
    assert_eq!(store.refresh_now().await.unwrap_err().code(), "http_status");

    idp.set_status(200);
    sleep(Duration::from_secs(3)).await;
    assert_eq!(kids(&store.current().unwrap()), ["k1"]);

    // `connect` reports the failure instead.
    idp.set_status(503);
    let err = JwksStore::connect(config(idp.url("/jwks.json")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, JwksError::Status { status: 503, .. }),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_endpoint_times_out_without_pile_up() {
    let idp = Idp::start(jwks(&["k1"])).await;
    let store = JwksStore::connect(
        config(idp.url("/jwks.json"))
            .unknown_kid_cooldown(Duration::ZERO)
            .request_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    idp.set_delay(Duration::from_secs(600));

    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.refresh_for_unknown_kid("k2").await })
        })
        .collect();
    for task in tasks {
        // Stale keys keep serving; the miss stays a miss.
        let keys = task.await.unwrap().unwrap();
        assert!(keys.by_kid("k2").is_none());
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(idp.fetches(), 2, "one slow fetch for 20 misses");
    assert_eq!(store.status().last_error.unwrap().code(), "timeout");

    let err =
        JwksStore::connect(config(idp.url("/jwks.json")).request_timeout(Duration::from_secs(2)))
            .await
            .unwrap_err();
    assert!(matches!(err, JwksError::Timeout { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn cache_control_max_age_is_honoured_and_clamped() {
    let idp = Idp::start(jwks(&["k1"])).await;
    // Bounds 10 s ..= 3600 s, default 300 s.
    idp.set_cache_control(Some("public, max-age=120"));
    let store = connect(&idp).await;
    let mut last_fetch = Instant::now();
    let mut expect_refresh_after = async |secs: u64| {
        let before = idp.fetches();
        let due = last_fetch + Duration::from_secs(secs);
        sleep_until(due - Duration::from_millis(500)).await;
        assert_eq!(idp.fetches(), before, "refreshed before {secs} s");
        sleep_until(due + Duration::from_millis(500)).await;
        assert_eq!(idp.fetches(), before + 1, "not refreshed after {secs} s");
        assert!(store.current().is_ok());
        last_fetch = due;
    };
    // max-age=120 honoured; the next answer says max-age=2, clamped up to 10.
    idp.set_cache_control(Some("max-age=2"));
    expect_refresh_after(120).await;
    // Then a day, clamped down to an hour.
    idp.set_cache_control(Some("max-age=86400"));
    expect_refresh_after(10).await;
    // Then no header: the default; then no-store: the minimum.
    idp.set_cache_control(None);
    expect_refresh_after(3600).await;
    idp.set_cache_control(Some("no-store"));
    expect_refresh_after(300).await;
    // `Age` counts against max-age: 100 - 40.
    idp.set_cache_control(Some("max-age=100"));
    *idp.age.lock().unwrap() = Some("40".into());
    expect_refresh_after(10).await;
    expect_refresh_after(60).await;
}

#[tokio::test(start_paused = true)]
async fn an_unparseable_key_beside_good_ones_is_skipped() {
    let bad_ec = r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"bad-point","alg":"ES256"}"#;
    let odd_kty = r#"{"kty":"PQ","kid":"post-quantum"}"#;
    let secret = r#"{"kty":"oct","k":"c2VjcmV0","kid":"shared-secret"}"#;
    let mixed = format!(
        r#"{{"keys":[{},{bad_ec},{odd_kty},{secret},{},"not even an object"]}}"#,
        jwk("good-1", X[0]),
        jwk("good-2", X[1]),
    );
    let idp = Idp::start(mixed).await;
    let store = connect(&idp).await;
    assert_eq!(kids(&store.current().unwrap()), ["good-1", "good-2"]);
    let skipped = store.status().skipped;
    let mut skipped_kids: Vec<_> = skipped.iter().map(|s| s.kid.clone()).collect();
    skipped_kids.sort();
    assert_eq!(
        skipped_kids,
        [
            None,
            Some("bad-point".to_owned()),
            Some("post-quantum".to_owned()),
            Some("shared-secret".to_owned())
        ]
    );
    assert!(
        skipped
            .iter()
            .all(|s| !s.reason.is_empty() && !s.reason.contains("c2VjcmV0"))
    );

    // A document with nothing usable is a failed refresh: the good keys stay in force.
    idp.set_jwks(format!(r#"{{"keys":[{bad_ec},{odd_kty}]}}"#));
    let err = store.refresh_now().await.unwrap_err();
    assert!(
        matches!(err, JwksError::NoUsableKeys { skipped: 2, .. }),
        "{err}"
    );
    assert_eq!(kids(&store.current().unwrap()), ["good-1", "good-2"]);
    // And one that is not a JWKS at all.
    idp.set_jwks("<html>login</html>".into());
    assert_eq!(
        store.refresh_now().await.unwrap_err().code(),
        "invalid_jwks"
    );
    assert_eq!(kids(&store.current().unwrap()), ["good-1", "good-2"]);
}

#[tokio::test(start_paused = true)]
async fn oidc_discovery_finds_the_jwks_uri() {
    let idp = Idp::start(jwks(&["k1"])).await;
    idp.set_cache_control(Some("max-age=60"));
    let store = JwksStore::connect(
        JwksConfig::oidc_issuer(idp.issuer())
            .allow_insecure_http(true)
            .refresh_bounds(Duration::from_secs(10), Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    assert_eq!(kids(&store.current().unwrap()), ["k1"]);
    assert_eq!(idp.discovery_fetches.load(Ordering::SeqCst), 1);
    assert_eq!(idp.fetches(), 1);

    // Refreshes reuse the discovered jwks_uri...
    sleep(Duration::from_secs(61)).await;
    assert_eq!(idp.fetches(), 2);
    assert_eq!(idp.discovery_fetches.load(Ordering::SeqCst), 1);
    // ...until one fails: then the issuer is asked again.
    idp.set_status(500);
    sleep(Duration::from_secs(61)).await;
    idp.set_status(200);
    sleep(Duration::from_secs(2)).await;
    assert!(idp.discovery_fetches.load(Ordering::SeqCst) >= 2);
    assert_eq!(store.status().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn oidc_discovery_refuses_a_mismatched_issuer() {
    let idp = Idp::start(jwks(&["k1"])).await;
    *idp.issuer.lock().unwrap() = Some("https://evil.example/realms/test".into());
    let err = JwksStore::connect(JwksConfig::oidc_issuer(idp.issuer()).allow_insecure_http(true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "issuer_mismatch");
    assert!(
        err.to_string().contains("https://evil.example/realms/test"),
        "{err}"
    );
    assert_eq!(
        idp.fetches(),
        0,
        "no keys fetched from an unverified issuer"
    );

    // A trailing slash is a different issuer string, too.
    *idp.issuer.lock().unwrap() = Some(format!("{}/", idp.issuer()));
    let err = JwksStore::connect(JwksConfig::oidc_issuer(idp.issuer()).allow_insecure_http(true))
        .await
        .unwrap_err();
    assert!(matches!(err, JwksError::IssuerMismatch { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_store_stops_its_task() {
    let idp = Idp::start(jwks(&["k1"])).await;
    idp.set_cache_control(Some("max-age=10"));
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let store = connect(&idp).await;
    sleep(Duration::from_secs(25)).await;
    assert_eq!(idp.fetches(), 3);
    assert!(metrics.num_alive_tasks() > baseline);

    drop(store);
    sleep(Duration::from_secs(3600)).await;
    assert_eq!(idp.fetches(), 3, "no fetch after the store is gone");
    assert_eq!(
        metrics.num_alive_tasks(),
        baseline,
        "the refresh task ended"
    );
}

#[tokio::test(start_paused = true)]
async fn responses_are_bounded_and_redirects_stay_on_the_origin() {
    let idp = Idp::start(jwks(&["k1"])).await;
    let err = JwksStore::connect(config(idp.url("/big.json")).max_response_bytes(16 * 1024))
        .await
        .unwrap_err();
    assert!(
        matches!(err, JwksError::TooLarge { limit: 16384, .. }),
        "{err}"
    );

    let err = JwksStore::connect(config(idp.url("/elsewhere")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "redirect_refused");
    assert_eq!(idp.fetches(), 0);

    let store = JwksStore::connect(config(idp.url("/same-origin")))
        .await
        .unwrap();
    assert_eq!(kids(&store.current().unwrap()), ["k1"]);
}

#[tokio::test]
async fn plain_http_needs_an_explicit_opt_in() {
    let err = JwksStore::spawn(JwksConfig::jwks_url("http://127.0.0.1:1/jwks.json")).unwrap_err();
    assert_eq!(err.code(), "insecure_url");
    let err = JwksStore::spawn(JwksConfig::oidc_issuer("http://127.0.0.1:1")).unwrap_err();
    assert_eq!(err.code(), "insecure_url");
    let err = JwksStore::spawn(JwksConfig::jwks_url("ftp://idp.example/jwks")).unwrap_err();
    assert_eq!(err.code(), "invalid_url");
    let err =
        JwksStore::spawn(JwksConfig::oidc_issuer("https://idp.example/?tenant=1")).unwrap_err();
    assert_eq!(err.code(), "invalid_url");
    assert!(JwksStore::spawn(JwksConfig::oidc_issuer("https://idp.example/")).is_ok());
}

/// Ed25519 private keys of `X[0]` and `X[1]` (test keys, PKCS#8 PEM).
const PRIVATE: [&str; 3] = [
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFAXcmYUNzlYv5Y3+4gWmj93UDhr7V5rtuWDHEQWyGo6\n-----END PRIVATE KEY-----\n",
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJpTxM7rn5ADTg2CAFJJ6YY8AaWzWaXpBbNRKsdZHaFR\n-----END PRIVATE KEY-----\n",
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ3Cx37YZk1ge+x/21KhLQ2hYZgJpPG86XHA7WE32zyq\n-----END PRIVATE KEY-----\n",
];

/// A token for `iss`, audience `api`, signed with `PRIVATE[key]` under `kid`.
fn token(iss: &str, kid: &str, key: usize) -> String {
    // Under --all-features both jsonwebtoken backends are on: select ours before signing.
    veritrail_core::auth::backend::install_default_provider();
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"iss": iss, "aud": "api", "sub": "alice", "exp": now + 3600});
    let key = EncodingKey::from_ed_pem(PRIVATE[key].as_bytes()).unwrap();
    encode(&header, &claims, &key).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_authenticator_follows_rotation_and_answers_503_when_keys_are_gone() {
    use veritrail_core::auth::{Authenticator, Issuer};

    let idp = Idp::start(jwks(&["k1"])).await;
    idp.set_cache_control(Some("max-age=60"));
    let store = JwksStore::connect(
        JwksConfig::oidc_issuer(idp.issuer())
            .allow_insecure_http(true)
            .refresh_bounds(Duration::from_secs(10), Duration::from_secs(3600))
            .unknown_kid_cooldown(Duration::from_secs(30))
            .stale_if_error(Duration::from_secs(120)),
    )
    .await
    .unwrap();
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .key_source(Arc::new(store.clone()))
                .audience("api"),
        )
        .cache_capacity(0)
        .build()
        .unwrap();
    let iss = idp.issuer();
    assert_eq!(
        auth.verify(&token(&iss, "k1", 0)).await.unwrap().sub(),
        Some("alice")
    );
    assert_eq!(idp.fetches(), 1);

    // The IdP adds k2 and signs with it before our schedule says refresh.
    idp.set_jwks(jwks(&["k1", "k2"]));
    sleep(Duration::from_secs(31)).await;
    assert!(auth.verify(&token(&iss, "k2", 1)).await.is_ok());
    assert_eq!(idp.fetches(), 2, "one refetch for the new kid");

    // A forged kid (a key the IdP never published): refused, and no fetch in the cooldown.
    let err = auth.verify(&token(&iss, "k3", 2)).await.unwrap_err();
    assert_eq!((err.code(), err.status()), ("unknown_kid", 401));
    // The right kid with the wrong key is a bad signature, not a reason to refetch.
    let err = auth.verify(&token(&iss, "k2", 2)).await.unwrap_err();
    assert_eq!(err.code(), "bad_signature");
    assert_eq!(idp.fetches(), 2);

    // The IdP goes down; after the stale-if-error window tokens get 503 with Retry-After.
    idp.set_status(502);
    sleep(Duration::from_secs(60 + 119)).await;
    assert!(auth.verify(&token(&iss, "k1", 0)).await.is_ok());
    sleep(Duration::from_secs(2)).await;
    let err = auth.verify(&token(&iss, "k1", 0)).await.unwrap_err();
    assert_eq!((err.code(), err.status()), ("keys_unavailable", 503));
    assert!(
        err.retry_after_secs()
            .is_some_and(|s| (1..=60).contains(&s))
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_change_callback_does_not_stop_refreshes() {
    let idp = Idp::start(jwks(&["k1"])).await;
    idp.set_cache_control(Some("max-age=10"));
    let store = JwksStore::connect(
        config(idp.url("/jwks.json")).on_change(|_| panic!("audit sink exploded")),
    )
    .await
    .unwrap();
    assert_eq!(kids(&store.current().unwrap()), ["k1"]);
    idp.set_jwks(jwks(&["k1", "k2"]));
    sleep(Duration::from_secs(11)).await;
    assert_eq!(kids(&store.current().unwrap()), ["k1", "k2"]);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(idp.fetches(), 3, "the background task lives on");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_caller_does_not_cancel_the_fetch() {
    let idp = Idp::start(jwks(&["k1"])).await;
    idp.set_cache_control(Some("max-age=3600"));
    let store =
        JwksStore::connect(config(idp.url("/jwks.json")).unknown_kid_cooldown(Duration::ZERO))
            .await
            .unwrap();
    idp.set_jwks(jwks(&["k1", "k2"]));
    idp.set_delay(Duration::from_secs(2));
    // A request timeout of 100 ms in front of the authenticator gives up on the slow fetch...
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        store.refresh_for_unknown_kid("k2"),
    )
    .await;
    assert!(gave_up.is_err());
    assert!(store.current().unwrap().by_kid("k2").is_none());
    // ...but the fetch goes on and lands for the next request.
    sleep(Duration::from_secs(2)).await;
    assert_eq!(kids(&store.current().unwrap()), ["k1", "k2"]);
    assert_eq!(idp.fetches(), 2);
}

/// What a misbehaving identity provider does to the JWKS requests of a running service.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Never answers (the request times out).
    Hangs,
    /// Answers 500 with a stack trace.
    Errors,
    /// Answers 200 with something that is not a JWKS.
    NotJson,
    /// Answers 200 with a JWKS whose only key is broken.
    BrokenKeys,
    /// Answers 200 with an empty key set.
    NoKeys,
}

/// A `MakeWriter` that keeps what the log lines say.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Fault injection at the key source: while the service runs, its JWKS endpoint hangs,
/// errors or answers garbage. The authenticator keeps verifying with the last good keys,
/// refuses a `kid` it cannot learn (no fail-open), and the failure is visible: in the store's
/// status (for health checks and metrics) and in a warning log line. On the real clock: a
/// paused one would jump past the request timeout while a real socket answers.
#[tokio::test]
async fn an_endpoint_that_hangs_errors_or_answers_garbage_keeps_the_last_good_keys() {
    use veritrail_core::auth::{Authenticator, Issuer};

    // Process-wide: a thread-local subscriber misses events whose call site another test's
    // thread registered first. Lines are told apart by the IdP's address.
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    });
    const ISS: &str = "https://idp.fault.test";

    for misbehaviour in [
        Misbehaviour::Hangs,
        Misbehaviour::Errors,
        Misbehaviour::NotJson,
        Misbehaviour::BrokenKeys,
        Misbehaviour::NoKeys,
    ] {
        let idp = Idp::start(jwks(&["k1"])).await;
        let store = JwksStore::connect(
            config(idp.url("/jwks.json"))
                .unknown_kid_cooldown(Duration::ZERO)
                .request_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap();
        let auth = Authenticator::builder()
            .issuer(
                Issuer::new(ISS)
                    .key_source(Arc::new(store.clone()))
                    .audience("api"),
            )
            .cache_capacity(0)
            .build()
            .unwrap();
        assert!(auth.verify(&token(ISS, "k1", 0)).await.is_ok());

        // The IdP rotates in k2 — and its endpoint breaks.
        idp.set_jwks(jwks(&["k1", "k2"]));
        let expected = match misbehaviour {
            Misbehaviour::Hangs => {
                idp.set_delay(Duration::from_secs(600));
                "timeout"
            }
            Misbehaviour::Errors => {
                idp.set_status(500);
                "http_status"
            }
            Misbehaviour::NotJson => {
                idp.set_jwks("<html>maintenance</html>".into());
                "invalid_jwks"
            }
            Misbehaviour::BrokenKeys => {
                idp.set_jwks(
                    r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"!!","kid":"k2"}]}"#.into(),
                );
                "no_usable_keys"
            }
            Misbehaviour::NoKeys => {
                idp.set_jwks(r#"{"keys":[]}"#.into());
                "no_usable_keys"
            }
        };

        // A kid it cannot learn is refused, however many times it is tried.
        for _ in 0..3 {
            let err = auth.verify(&token(ISS, "k2", 1)).await.unwrap_err();
            assert_eq!(
                (err.code(), err.status()),
                ("unknown_kid", 401),
                "{misbehaviour:?}"
            );
        }
        // The last good keys keep serving, through a forced refresh failing too.
        let refresh = store.refresh_now().await.unwrap_err();
        assert_eq!(refresh.code(), expected, "{misbehaviour:?}: {refresh}");
        assert!(
            auth.verify(&token(ISS, "k1", 0)).await.is_ok(),
            "{misbehaviour:?}"
        );
        assert_eq!(kids(&store.current().unwrap()), ["k1"]);

        // The failure is visible.
        let status = store.status();
        assert!(status.available && status.keys == 1, "{misbehaviour:?}");
        assert!(status.consecutive_failures >= 1, "{misbehaviour:?}");
        let code = status.last_error.as_ref().map(JwksError::code);
        assert_eq!(code, Some(expected), "{misbehaviour:?}");
        let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let url = idp.url("/jwks.json");
        assert!(
            logged
                .lines()
                .any(|line| line.contains("key set refresh failed")
                    && line.contains(&url)
                    && line.contains(&format!("code=\"{expected}\""))),
            "{misbehaviour:?}: {logged}"
        );
        assert!(
            !logged.contains("stack frame\nstack frame"),
            "the IdP's body is not copied into the logs"
        );
    }
}
