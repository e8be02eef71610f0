//! `veritrail proxy`: the real binary in front of a small axum upstream started by the test.
//! Tokens valid and not, per-route policy from a config file, identity headers (spoofed ones
//! stripped), hop-by-hop headers, bodies streaming both ways, a dead and a slow upstream, and
//! SIGTERM with requests in flight; each time the log is verified with the library.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{any, get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use veritrail_log::NoteVerifier;
use veritrail_log::verify::{VerifyOptions, verify_dir_with};

use common::{Env, fixture, jwks, raw_exchange, stderr, stdout};

const ISSUER: &str = "https://idp.proxy.test";
const AUDIENCE: &str = "orders-api";
/// A chunk of the streamed bodies; several of them are far larger than any buffer.
const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 32;

fn token(scope: &str, exp_in: i64) -> String {
    signed(
        ISSUER,
        scope,
        exp_in,
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap(),
    )
}

fn signed(iss: &str, scope: &str, exp_in: i64, alg: Algorithm, key: &EncodingKey) -> String {
    // Under --all-features both jsonwebtoken backends are on: select ours before signing.
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({"iss": iss, "aud": AUDIENCE, "sub": "alice", "iat": now,
        "exp": now + exp_in, "scope": scope});
    let mut header = Header::new(alg);
    if alg == Algorithm::RS256 {
        header.kid = Some("rsa1".into());
    }
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

/// What the upstream saw and can be told.
#[derive(Default)]
struct Upstream {
    hits: AtomicUsize,
    slow_started: AtomicUsize,
    /// The upstream got the first chunk of an upload.
    first_chunk_in: Notify,
    /// The client got the first chunk of a download: the upstream may send the rest.
    release_download: Notify,
}

/// Answers the request headers it got as JSON, with hop-by-hop headers of its own.
async fn headers(
    State(up): State<Arc<Upstream>>,
    headers: HeaderMap,
) -> ([(&'static str, &'static str); 3], String) {
    up.hits.fetch_add(1, Ordering::SeqCst);
    let map: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    let hop = [
        ("connection", "x-upstream-hop"),
        ("x-upstream-hop", "1"),
        ("x-upstream-end-to-end", "kept"),
    ];
    (hop, json!(map).to_string())
}

async fn upload(State(up): State<Arc<Upstream>>, body: Body) -> String {
    let mut stream = body.into_data_stream();
    let (mut total, mut first) = (0usize, true);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.iter().all(|b| *b == b'u'));
        total += chunk.len();
        if first {
            first = false;
            up.first_chunk_in.notify_one();
        }
    }
    total.to_string()
}

async fn download(State(up): State<Arc<Upstream>>) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        tx.send(Ok(Bytes::from(vec![b'd'; CHUNK]))).await.unwrap();
        // The rest only once the client has the first chunk: a buffering proxy would hang here.
        up.release_download.notified().await;
        for _ in 1..CHUNKS {
            if tx.send(Ok(Bytes::from(vec![b'd'; CHUNK]))).await.is_err() {
                return;
            }
        }
    });
    Body::from_stream(tokio_stream(rx))
}

fn tokio_stream<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn slow(State(up): State<Arc<Upstream>>) -> &'static str {
    up.slow_started.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    "slow done"
}

async fn start_upstream() -> (SocketAddr, Arc<Upstream>) {
    let up = Arc::new(Upstream::default());
    let app = Router::new()
        .route("/headers", any(headers))
        .route("/public/headers", any(headers))
        .route("/admin/headers", any(headers))
        .route("/upload", post(upload))
        .route("/download", get(download))
        .route("/slow", get(slow));
    let app = common::identity_provider(app)
        .route(
            "/too-slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .with_state(Arc::clone(&up));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, up)
}

/// A running `veritrail proxy` and where its files are.
struct Proxy {
    child: KillOnDrop,
    addr: SocketAddr,
    env: Env,
    verifier: NoteVerifier,
}

/// The proxy process, killed if a failed test leaves it running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Proxy {
    /// Starts the proxy in front of `upstream` with a config file `config` (the key source,
    /// log and key are passed as flags) plus `extra` flags.
    fn start(upstream: &str, config: &str, extra: &[&str]) -> Proxy {
        Self::start_in(Env::new(), upstream, config, extra)
    }

    /// [`start`](Self::start) with the file `name` holding `contents` in its directory.
    fn start_with_file(upstream: &str, name: &str, contents: &str, extra: &[&str]) -> Proxy {
        let env = Env::new();
        env.write(name, contents);
        Self::start_in(env, upstream, "", extra)
    }

    fn start_in(env: Env, upstream: &str, config: &str, extra: &[&str]) -> Proxy {
        Self::spawn(env, upstream, config, extra, None)
    }

    /// [`start`](Self::start) with no file of the proxy allowed past `blocks` × 512 bytes
    /// (`RLIMIT_FSIZE`, with `SIGXFSZ` ignored): the log's writes past it fail with EFBIG, as
    /// writes to a full disk fail — a real I/O error from the kernel, no hook in the proxy.
    fn start_with_file_size_limit(upstream: &str, blocks: u64, extra: &[&str]) -> Proxy {
        Self::spawn(Env::new(), upstream, "", extra, Some(blocks))
    }

    fn spawn(
        env: Env,
        upstream: &str,
        config: &str,
        extra: &[&str],
        file_blocks: Option<u64>,
    ) -> Proxy {
        let verifier =
            NoteVerifier::from_text(&env.keygen_as("proxy.test/log", "audit.key")).unwrap();
        env.write("jwks.json", jwks());
        // The tests name their events by the X-Request-Id they send, so they trust it unless
        // the config says (`request_id_is_fresh_unless_trusted` tests the default).
        if config.contains("trust_request_id") {
            env.write("proxy.toml", config);
        } else {
            env.write("proxy.toml", format!("trust_request_id = true\n{config}"));
        }
        let mut args = vec![
            "proxy",
            "--config",
            "proxy.toml",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            upstream,
            "--audience",
            AUDIENCE,
            "--log",
            "log",
            "--key",
            "audit.key",
        ];
        // The fixture's JWKS file, unless the test names its own key source and issuer.
        if !extra
            .iter()
            .any(|a| ["--jwks", "--oidc", "--hs-secret-file"].contains(a))
        {
            args.extend_from_slice(&["--jwks", "jwks.json", "--issuer", ISSUER]);
        }
        args.extend_from_slice(extra);
        let mut command = match file_blocks {
            None => Command::new(env!("CARGO_BIN_EXE_veritrail")),
            Some(blocks) => {
                // An ignored signal stays ignored across exec; dash counts in 512-byte blocks.
                let mut sh = Command::new("/bin/sh");
                sh.arg("-c")
                    .arg(format!(
                        "trap '' XFSZ; ulimit -f {blocks} && exec \"$0\" \"$@\""
                    ))
                    .arg(env!("CARGO_BIN_EXE_veritrail"));
                sh
            }
        };
        let (child, addr) =
            common::start_server(command.args(&args).current_dir(env.path("")), "proxy");
        Proxy {
            child: KillOnDrop(child),
            addr,
            env,
            verifier,
        }
    }

    /// SIGTERM; asserts exit code 0.
    fn stop(self) -> (Env, NoteVerifier) {
        let (env, verifier, _) = self.stop_with_stderr();
        (env, verifier)
    }

    /// SIGTERM; asserts exit code 0; returns stderr too.
    fn stop_with_stderr(mut self) -> (Env, NoteVerifier, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.0.wait().unwrap();
        let err = stderr_of(&mut self.child.0);
        assert_eq!(code.code(), Some(0), "proxy exit; stderr: {err}");
        assert!(err.contains("stopped:"), "{err}");
        (self.env, self.verifier, err)
    }
}

impl Proxy {
    /// SIGTERM; returns the exit code and stderr, whatever they are.
    fn stop_any(mut self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.0.wait().unwrap();
        (code.code(), stderr_of(&mut self.child.0))
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut text).unwrap();
    }
    text
}

/// Every `http` event of the proxy's log (verified with the library), by request id, and the
/// kinds of all records.
fn read_log(env: &Env, verifier: &NoteVerifier) -> (BTreeMap<String, Value>, Vec<String>) {
    let mut events = BTreeMap::new();
    let mut kinds = Vec::new();
    verify_dir_with(
        &env.path("log"),
        verifier,
        &VerifyOptions::default(),
        |_, record| {
            let v: Value = serde_json::from_slice(record).unwrap();
            kinds.push(v["kind"].as_str().unwrap().to_owned());
            if v["kind"] == "http" && v["phase"] == "complete" {
                events.insert(v["request"]["request_id"].as_str().unwrap().to_owned(), v);
            }
            Ok(())
        },
    )
    .expect("the proxy's log verifies");
    (events, kinds)
}

type ReqBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// One request over a fresh connection; returns status, headers and body.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: ReqBody,
) -> (u16, http::HeaderMap, Bytes) {
    let response = common::send_head(addr, method, path, headers, body).await;
    let (parts, body) = response.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// The status of a request without a body.
async fn status_of(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    send(addr, method, path, headers, empty()).await.0
}

fn empty() -> ReqBody {
    Full::<Bytes>::default()
        .map_err(|never| match never {})
        .boxed()
}

const CONFIG: &str = r#"
identity_headers = true

[[route]]
prefix = "/public/"
public = true

[[route]]
prefix = "/admin/"
scopes = ["admin"]
durability = "write-ahead"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_policies_and_identity_headers() {
    let (up_addr, up) = start_upstream().await;
    let proxy = Proxy::start(&format!("http://{up_addr}"), CONFIG, &[]);
    let addr = proxy.addr;
    let good = format!("Bearer {}", token("orders:read", 300));
    let expired = format!("Bearer {}", token("orders:read", -3600));

    // A valid token: forwarded, with the real identity; spoofed identity and hop-by-hop
    // headers never reach the upstream.
    let (status, headers, body) = send(
        addr,
        "GET",
        "/headers?x=1",
        &[
            ("authorization", &good),
            ("x-request-id", "valid"),
            ("x-auth-subject", "mallory"),
            ("x-auth-scopes", "admin"),
            ("connection", "x-hop-secret"),
            ("x-hop-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("x-forwarded-for", "192.0.2.7"),
        ],
        empty(),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(headers["via"], "1.1 veritrail");
    assert!(!headers.contains_key("x-upstream-hop"), "{headers:?}");
    assert_eq!(headers["x-upstream-end-to-end"], "kept");
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["x-auth-subject"], "alice");
    assert_eq!(seen["x-auth-scopes"], "orders:read");
    assert_eq!(seen["x-auth-issuer"], ISSUER);
    assert_eq!(seen["x-auth-request-id"], "valid");
    // The client is no trusted proxy: its own forwarding chain is replaced, not appended to.
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        seen["forwarded"],
        "for=127.0.0.1;host=\"shop.example\";proto=http"
    );
    assert_eq!(seen["x-forwarded-host"], "shop.example");
    assert_eq!(seen["host"], up_addr.to_string());
    assert_eq!(seen["via"], "1.1 veritrail");
    for hop in ["x-hop-secret", "keep-alive", "connection"] {
        assert!(
            seen.get(hop).is_none(),
            "{hop} reached the upstream: {seen}"
        );
    }
    assert!(
        seen["authorization"].is_string(),
        "the token goes on to the upstream"
    );

    // A public route: no token needed; spoofed identity stripped and none set.
    let (status, _, body) = send(
        addr,
        "GET",
        "/public/headers",
        &[("x-request-id", "public"), ("x-auth-subject", "mallory")],
        empty(),
    )
    .await;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert!(seen.get("x-auth-subject").is_none(), "{seen}");
    assert_eq!(seen["x-auth-request-id"], "public");

    let hits_before = up.hits.load(Ordering::SeqCst);
    for (id, auth, path, want) in [
        ("expired", Some(expired.as_str()), "/headers", 401),
        ("missing", None, "/headers", 401),
        ("garbage", Some("Bearer abc.def.ghi"), "/headers", 401),
        ("no-scope", Some(good.as_str()), "/admin/headers", 403),
    ] {
        let mut h = vec![("x-request-id", id), ("x-auth-subject", "alice")];
        if let Some(a) = auth {
            h.push(("authorization", a));
        }
        let (status, headers, _) = send(addr, "GET", path, &h, empty()).await;
        assert_eq!(status, want, "{id}");
        assert!(headers.contains_key("www-authenticate"), "{id}");
    }
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        hits_before,
        "refused requests never reach the upstream"
    );

    // The admin route with the scope: write-ahead, so an intent precedes the event.
    let admin = format!("Bearer {}", token("orders:read admin", 300));
    let status = status_of(
        addr,
        "POST",
        "/admin/headers",
        &[("authorization", &admin), ("x-request-id", "admin")],
    )
    .await;
    assert_eq!(status, 200);

    let (env, verifier) = proxy.stop();
    let (events, kinds) = read_log(&env, &verifier);
    let expect = [
        ("valid", 200, "success"),
        ("public", 200, "success"),
        ("expired", 401, "denied"),
        ("missing", 401, "denied"),
        ("garbage", 401, "denied"),
        ("no-scope", 403, "denied"),
        ("admin", 200, "success"),
    ];
    for (id, status, outcome) in expect {
        let e = &events[id];
        assert_eq!(e["status"], status, "{id}: {e}");
        assert_eq!(e["outcome"], outcome, "{id}");
    }
    assert_eq!(events["valid"]["actor"]["sub"], "alice");
    assert_eq!(events["valid"]["request"]["path"], "/headers");
    assert_eq!(events["public"]["request"]["route"], "/public/");
    assert_eq!(events["no-scope"]["authz"]["reason"], "missing_scope");
    assert_eq!(events["admin"]["request"]["route"], "/admin/");
    assert!(
        events["admin"]["intent_id"].is_string(),
        "write-ahead intent"
    );
    assert_eq!(events.len(), expect.len());
    // start, keyset, the 7 events, the admin intent, stop.
    let mut k = kinds.clone();
    k.sort();
    k.dedup();
    assert_eq!(k, ["http", "keyset", "start", "stop"]);
    assert_eq!(kinds.len(), 1 + 1 + expect.len() + 1 + 1, "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways() {
    let (up_addr, up) = start_upstream().await;
    let proxy = Proxy::start(&format!("http://{up_addr}"), "", &[]);
    let auth = format!("Bearer {}", token("orders:read", 300));

    // Upload: the client sends the rest only after the upstream got the first chunk.
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    let body = BodyExt::boxed(StreamBody::new(tokio_stream(rx)));
    let up2 = Arc::clone(&up);
    let feeder = tokio::spawn(async move {
        tx.send(Ok(Frame::data(Bytes::from(vec![b'u'; CHUNK]))))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), up2.first_chunk_in.notified())
            .await
            .expect("the first chunk reached the upstream before the body ended: streamed");
        for _ in 1..CHUNKS {
            tx.send(Ok(Frame::data(Bytes::from(vec![b'u'; CHUNK]))))
                .await
                .unwrap();
        }
    });
    let (status, _, body) = send(
        proxy.addr,
        "POST",
        "/upload",
        &[("authorization", &auth), ("x-request-id", "upload")],
        body,
    )
    .await;
    feeder.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, (CHUNK * CHUNKS).to_string());

    // Download: the upstream sends the rest only after the client got the first chunk.
    let response = common::send_head(
        proxy.addr,
        "GET",
        "/download",
        &[("authorization", &auth), ("x-request-id", "download")],
        empty(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        !response.headers().contains_key("content-length"),
        "chunked"
    );
    let mut body = response.into_body();
    let mut total = 0;
    let mut released = false;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first chunk arrived while the upstream was still sending: streamed")
    {
        if let Ok(data) = frame.unwrap().into_data() {
            assert!(data.iter().all(|b| *b == b'd'));
            total += data.len();
        }
        if !released {
            released = true;
            up.release_download.notify_one();
        }
    }
    assert_eq!(total, CHUNK * CHUNKS);

    let (env, verifier) = proxy.stop();
    let (events, _) = read_log(&env, &verifier);
    assert_eq!(events["upload"]["status"], 200);
    assert_eq!(events["download"]["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_502_and_a_slow_one_504_both_recorded_as_errors() {
    // A port with nothing behind it.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = Proxy::start(&format!("http://{dead}"), "", &[]);
    let auth = format!("Bearer {}", token("orders:read", 300));
    let (status, headers, body) = send(
        proxy.addr,
        "GET",
        "/anything",
        &[("authorization", &auth), ("x-request-id", "dead")],
        empty(),
    )
    .await;
    assert_eq!(status, 502, "{body:?}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        !String::from_utf8_lossy(&body).contains(&dead.to_string()),
        "no internals"
    );
    let (env, verifier) = proxy.stop();
    let (events, _) = read_log(&env, &verifier);
    assert_eq!(events["dead"]["status"], 502);
    assert_eq!(events["dead"]["outcome"], "error");
    assert_eq!(
        events["dead"]["extra"]["upstream_error"], "upstream_unreachable",
        "{}",
        events["dead"]
    );

    let (up_addr, _) = start_upstream().await;
    let proxy = Proxy::start(
        &format!("http://{up_addr}"),
        "",
        &["--upstream-timeout", "1"],
    );
    let status = status_of(
        proxy.addr,
        "GET",
        "/too-slow",
        &[("authorization", &auth), ("x-request-id", "slow")],
    )
    .await;
    assert_eq!(status, 504);
    let (env, verifier) = proxy.stop();
    let (events, _) = read_log(&env, &verifier);
    assert_eq!(events["slow"]["status"], 504);
    assert_eq!(events["slow"]["outcome"], "error");
    assert_eq!(
        events["slow"]["extra"]["upstream_error"],
        "upstream_timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish_and_logs_them() {
    let (up_addr, up) = start_upstream().await;
    let proxy = Proxy::start(
        &format!("http://{up_addr}"),
        "",
        &["--durability", "durable"],
    );
    let addr = proxy.addr;
    let auth = format!("Bearer {}", token("orders:read", 300));
    let mut in_flight = Vec::new();
    for i in 0..3 {
        let auth = auth.clone();
        in_flight.push(tokio::spawn(async move {
            let id = format!("inflight-{i}");
            send(
                addr,
                "GET",
                "/slow",
                &[("authorization", &auth), ("x-request-id", &id)],
                empty(),
            )
            .await
        }));
    }
    while up.slow_started.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = proxy.child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Shortly after SIGTERM the proxy accepts no new connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    for request in in_flight {
        let (status, _, body) = request.await.unwrap();
        assert_eq!((status, &body[..]), (200, &b"slow done"[..]));
    }
    // `stop` sends SIGTERM again, harmlessly, and checks the exit code.
    let (env, verifier) = proxy.stop();
    let (events, kinds) = read_log(&env, &verifier);
    for i in 0..3 {
        let e = &events[&format!("inflight-{i}")];
        assert_eq!(
            (e["status"].as_u64(), e["outcome"].as_str()),
            (Some(200), Some("success"))
        );
    }
    assert_eq!(kinds.last().map(String::as_str), Some("stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_a_jwks_url_oidc_discovery_and_an_hmac_secret_file() {
    let (up_addr, _) = start_upstream().await;
    let upstream = format!("http://{up_addr}");
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap();

    // A JWKS URL: fetched at start, recorded as a keyset record.
    let url = format!("{upstream}/jwks.json");
    let proxy = Proxy::start(&upstream, "", &["--jwks", &url, "--issuer", ISSUER]);
    let auth = format!("Bearer {}", token("orders:read", 300));
    let status = status_of(proxy.addr, "GET", "/headers", &[("authorization", &auth)]).await;
    assert_eq!(status, 200);
    let (env, verifier) = proxy.stop();
    let keyset = keyset_records(&env, &verifier);
    assert_eq!(keyset.len(), 1, "{keyset:?}");
    assert_eq!(keyset[0]["issuer"], ISSUER);
    let want: Value = serde_json::from_str(&jwks()).unwrap();
    assert_eq!(keyset[0]["jwks"]["keys"][0]["n"], want["keys"][0]["n"]);

    // OIDC discovery: the issuer is the discovery URL, the keys come from its jwks_uri.
    let proxy = Proxy::start(&upstream, "", &["--oidc", &upstream]);
    let good = format!(
        "Bearer {}",
        signed(&upstream, "", 300, Algorithm::RS256, &rsa)
    );
    let other_iss = format!("Bearer {}", token("", 300));
    let status = status_of(proxy.addr, "GET", "/headers", &[("authorization", &good)]).await;
    assert_eq!(status, 200);
    let status = status_of(
        proxy.addr,
        "GET",
        "/headers",
        &[("authorization", &other_iss)],
    )
    .await;
    assert_eq!(status, 401, "another issuer's token");
    let (env, verifier) = proxy.stop();
    assert_eq!(
        keyset_records(&env, &verifier)[0]["issuer"],
        upstream.as_str()
    );

    // An HMAC secret file: HS256 tokens; the secret never enters the log.
    let secret = "hs-secret-that-must-never-leak-0123456789abcdef";
    let proxy = Proxy::start_with_file(
        &upstream,
        "secret",
        &format!("{secret}\n"),
        &["--hs-secret-file", "secret", "--issuer", ISSUER],
    );
    let hs = |key: &[u8]| {
        format!(
            "Bearer {}",
            signed(
                ISSUER,
                "",
                300,
                Algorithm::HS256,
                &EncodingKey::from_secret(key)
            )
        )
    };
    let status = status_of(
        proxy.addr,
        "GET",
        "/headers",
        &[("authorization", &hs(secret.as_bytes()))],
    )
    .await;
    assert_eq!(status, 200);
    let status = status_of(
        proxy.addr,
        "GET",
        "/headers",
        &[("authorization", &hs(b"another-secret-0123456789abcdefghij"))],
    )
    .await;
    assert_eq!(status, 401);
    let (env, verifier) = proxy.stop();
    assert!(
        keyset_records(&env, &verifier).is_empty(),
        "no keyset for a shared secret"
    );
    for file in common::files_under(&env.path("log")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the secret",
            file.display()
        );
    }
}

/// The `keyset` records of a verified log.
fn keyset_records(env: &Env, verifier: &NoteVerifier) -> Vec<Value> {
    let mut found = Vec::new();
    verify_dir_with(
        &env.path("log"),
        verifier,
        &VerifyOptions::default(),
        |_, record| {
            let v: Value = serde_json::from_slice(record).unwrap();
            if v["kind"] == "keyset" {
                found.push(v);
            }
            Ok(())
        },
    )
    .unwrap();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_grace_period_are_cut_off_and_recorded_as_cancelled() {
    let (up_addr, _) = start_upstream().await;
    let proxy = Proxy::start(&format!("http://{up_addr}"), "", &["--shutdown-grace", "1"]);
    let (addr, pid) = (proxy.addr, proxy.child.0.id().to_string());
    let auth = format!("Bearer {}", token("orders:read", 300));
    let slow = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/too-slow")
            .header("host", "shop.example")
            .header("authorization", auth)
            .header("x-request-id", "cut-off")
            .body(empty())
            .unwrap();
        sender.send_request(req).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let answer = slow.await.unwrap();
    assert!(
        answer.is_err(),
        "the request past the grace period got {answer:?}"
    );
    let (env, verifier) = proxy.stop();
    let (events, kinds) = read_log(&env, &verifier);
    assert_eq!(
        events["cut-off"]["outcome"], "cancelled",
        "{}",
        events["cut-off"]
    );
    assert_eq!(kinds.last().map(String::as_str), Some("stop"));
}

/// Hole 4: with the log's storage failing (every file capped, so the log's writes fail with
/// EFBIG like a full disk), the proxy used to keep forwarding every request, lose answered
/// `async` events, print nothing and exit 0 saying "0 dropped". Now: the failure is printed
/// when it happens, every later request is refused with 503 and `Retry-After` before the
/// upstream is contacted, and the shutdown line says what was lost, with exit code 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_stops_forwarding_and_the_exit_says_so() {
    let (upstream, up) = start_upstream().await;
    let proxy = Proxy::start_with_file_size_limit(
        &format!("http://{upstream}"),
        128,
        &["--durability", "async"],
    );
    let auth = format!("Bearer {}", token("orders:read", 300));
    // Large events fill the log fast.
    let agent = "a".repeat(2000);
    let headers = [
        ("authorization", auth.as_str()),
        ("user-agent", agent.as_str()),
    ];
    let mut forwarded = 0;
    loop {
        let status = status_of(proxy.addr, "GET", "/headers", &headers).await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 200);
        forwarded += 1;
        assert!(forwarded < 5_000, "the log never failed");
    }
    // Requests that were running when the writer failed are done by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let hits = up.hits.load(Ordering::SeqCst);
    for _ in 0..5 {
        let (status, answer, body) = send(proxy.addr, "GET", "/headers", &headers, empty()).await;
        assert_eq!(status, 503);
        assert!(answer.contains_key("retry-after"), "{answer:?}");
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "audit_unavailable");
    }
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        hits,
        "the upstream was contacted after the log failed"
    );
    let (code, err) = proxy.stop_any();
    assert_eq!(
        code,
        Some(2),
        "a failed log is a failed exit; stderr: {err}"
    );
    assert_eq!(
        err.matches("FAILED and records nothing more").count(),
        1,
        "the failure is printed once, when it happens: {err}"
    );
    assert!(err.contains("File too large"), "the reason is given: {err}");
    let stop = err
        .lines()
        .find(|l| l.starts_with("stopped:"))
        .unwrap_or_else(|| panic!("no shutdown line: {err}"));
    assert!(stop.contains("the audit log FAILED"), "{stop}");
    assert!(stop.contains(" lost "), "{stop}");
    assert!(stop.contains("checkpoint"), "{stop}");
}

/// What the path-trick upstream was asked for, in order (path and query as received).
type Seen = Arc<std::sync::Mutex<Vec<String>>>;

/// An upstream that answers 200 to anything and notes the target it got.
async fn start_recording_upstream() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let noted = Arc::clone(&seen);
    let app = Router::new().fallback(move |uri: axum::http::Uri| {
        let noted = Arc::clone(&noted);
        async move {
            let target = uri.path_and_query().map_or("", |pq| pq.as_str()).to_owned();
            noted.lock().unwrap().push(target.clone());
            target
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// Sends `GET target` as raw bytes (no client library to normalise it) and returns the
/// status code and the body.
async fn raw_get(
    addr: SocketAddr,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let (status, _, body) = raw_exchange(None, addr, head.as_bytes()).await;
    (status, body)
}

/// Request id, target, Authorization, status, the target the upstream saw.
type PathCase<'a> = (&'a str, &'a str, Option<&'a str>, u16, Option<&'a str>);

const PATHS_CONFIG: &str = r#"
[[route]]
prefix = "/health"
public = true

[[route]]
prefix = "/admin/"
scopes = ["admin"]
"#;

/// The red team's requests (issue 12, hole 1), sent byte for byte: every spelling of an admin
/// path gets the admin policy, `/healthz-anything` is not `/health`, paths without a
/// canonical form are refused, and the upstream only ever sees the canonical path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_never_reach_the_upstream_under_another_routes_policy() {
    let (up_addr, seen) = start_recording_upstream().await;
    let proxy = Proxy::start(&format!("http://{up_addr}"), PATHS_CONFIG, &[]);
    let addr = proxy.addr;
    let reader = format!("Bearer {}", token("orders:read", 300));
    let admin = format!("Bearer {}", token("admin", 300));

    let cases: &[PathCase<'_>] = &[
        ("dotdot-public", "/health/../admin/x", None, 401, None),
        ("double-slash", "//admin/x", Some(&reader), 403, None),
        ("escaped", "/%61dmin/x", Some(&reader), 403, None),
        ("foo-dotdot", "/foo/../admin/x", Some(&reader), 403, None),
        ("dot", "/./admin/x", Some(&reader), 403, None),
        ("bare-admin", "/admin", Some(&reader), 403, None),
        ("healthz", "/healthz-anything", None, 401, None),
        (
            "health-slash",
            "/health//live/./x/..",
            None,
            200,
            Some("/health/live/"),
        ),
        (
            "healthz-token",
            "/healthz-anything?a=%2F",
            Some(&reader),
            200,
            Some("/healthz-anything?a=%2F"),
        ),
        (
            "admin-ok",
            "/admin/./x/../%79?q=1",
            Some(&admin),
            200,
            Some("/admin/y?q=1"),
        ),
        ("encoded-dots", "/health/%2e%2e/admin/x", None, 400, None),
        (
            "encoded-dot",
            "/health/.%2E/admin/x",
            Some(&admin),
            400,
            None,
        ),
        ("encoded-slash", "/health/..%2Fadmin/x", None, 400, None),
        ("encoded-backslash", "/health/..%5cadmin/x", None, 400, None),
        ("semicolon", "/health/..;/admin/x", None, 400, None),
        ("matrix", "/admin;x=1/x", Some(&admin), 400, None),
        ("nul", "/health%00", None, 400, None),
        ("above-root", "/../admin/x", None, 400, None),
        ("overlong", "/health/%C0%AE%C0%AE/admin/x", None, 400, None),
        ("trailing-dot", "/admin./x", Some(&reader), 400, None),
        (
            "absolute-other-host",
            "http://evil.example/health",
            None,
            400,
            None,
        ),
        (
            "absolute-dotdot",
            "http://shop.example/health/../admin/x",
            None,
            400,
            None,
        ),
        (
            "absolute-ok",
            "http://shop.example/health",
            None,
            200,
            Some("/health"),
        ),
    ];
    for (id, target, auth, want, _) in cases {
        let mut headers = vec![("x-request-id", *id)];
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        let (status, body) = raw_get(addr, target, "shop.example", &headers).await;
        assert_eq!(status, *want, "{id}: {target} → {body}");
        if *want == 400 {
            let problem: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(problem["code"], "invalid_path", "{id}");
        }
    }
    // A raw backslash: refused whoever parses it (hyper or the engine), never forwarded.
    let (status, _) = raw_get(addr, "/health/..\\admin/x", "shop.example", &[]).await;
    assert_eq!(status, 400);

    let forwarded: Vec<&str> = cases.iter().filter_map(|c| c.4).collect();
    assert_eq!(
        *seen.lock().unwrap(),
        forwarded,
        "the upstream got exactly the canonical targets of the requests allowed"
    );

    let (env, verifier) = proxy.stop();
    let (events, _) = read_log(&env, &verifier);
    for (id, _, _, want, _) in cases {
        let e = &events[*id];
        assert_eq!(e["status"], *want, "{id}: {e}");
        if *want == 400 {
            assert_eq!(e["authz"]["decision"], "denied", "{id}");
            assert_eq!(e["authz"]["reason"], "invalid_path", "{id}");
            assert!(e.get("authn").is_none(), "{id}: no token was looked at");
        }
    }
    let path = |id: &str| {
        let r = &events[id]["request"];
        (
            r["path"].clone(),
            r.get("raw_path").cloned(),
            r.get("route").cloned(),
        )
    };
    assert_eq!(
        path("dotdot-public"),
        (
            json!("/admin/x"),
            Some(json!("/health/../admin/x")),
            Some(json!("/admin/"))
        )
    );
    assert_eq!(
        path("double-slash"),
        (
            json!("/admin/x"),
            Some(json!("//admin/x")),
            Some(json!("/admin/"))
        )
    );
    assert_eq!(path("escaped").0, "/admin/x");
    assert_eq!(path("foo-dotdot").1, Some(json!("/foo/../admin/x")));
    assert_eq!(
        path("bare-admin"),
        (json!("/admin"), None, Some(json!("/admin/")))
    );
    assert_eq!(path("healthz"), (json!("/healthz-anything"), None, None));
    assert_eq!(
        path("admin-ok"),
        (
            json!("/admin/y"),
            Some(json!("/admin/./x/../%79")),
            Some(json!("/admin/"))
        )
    );
    assert_eq!(path("health-slash").2, Some(json!("/health")));
    assert_eq!(
        path("encoded-dots").0,
        "/health/%2e%2e/admin/x",
        "refused: as sent"
    );
    assert_eq!(
        path("absolute-ok"),
        (json!("/health"), None, Some(json!("/health")))
    );
}

/// A GET with these header lines (raw, as written), closing the connection.
fn raw_request(target: &str, lines: &[&[u8]]) -> Vec<u8> {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n")
        .into_bytes();
    for line in lines {
        req.extend_from_slice(line);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req
}

/// Hole 2: identity headers spelt with `_`, `.` or another case never reach the upstream;
/// header names with `_` are dropped unless `underscores_in_headers = "keep"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_header_look_alikes_never_reach_the_upstream() {
    let (up_addr, _) = start_upstream().await;
    let auth = format!("authorization: Bearer {}", token("orders:read", 300));
    let smuggled: [&[u8]; 8] = [
        b"X-Auth_Subject: admin",
        b"x_auth_subject: admin",
        b"X-AUTH-SUBJECT: admin",
        b"X-Auth.Scopes: admin",
        b"X_Auth_Roles: admin",
        b"X-Forwarded_For: 6.6.6.6",
        b"X_Request_Id: forged",
        b"X_Custom: 1",
    ];
    for (config, custom_kept) in [
        ("identity_headers = true\n", false),
        (
            "identity_headers = true\nunderscores_in_headers = \"keep\"\n",
            true,
        ),
    ] {
        let proxy = Proxy::start(&format!("http://{up_addr}"), config, &[]);
        let mut lines = vec![auth.as_bytes()];
        lines.extend(smuggled);
        let (status, _, body) =
            raw_exchange(None, proxy.addr, &raw_request("/headers", &lines)).await;
        assert_eq!(status, 200, "{body}");
        let seen: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(seen["x-auth-subject"], "alice", "{seen}");
        assert_eq!(seen["x-auth-scopes"], "orders:read", "{seen}");
        assert!(seen.get("x-auth-roles").is_none(), "{seen}");
        for name in seen.as_object().unwrap().keys() {
            let folded = name.replace(['_', '.'], "-");
            assert!(
                !name.contains('_') || (custom_kept && name == "x_custom"),
                "{name} reached the upstream ({config}): {seen}"
            );
            assert!(
                name == &folded || name == "x_custom",
                "{name} reached the upstream ({config})"
            );
        }
        assert_eq!(seen.get("x_custom").is_some(), custom_kept, "{seen}");
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
        proxy.stop();
    }
}

/// Hole 5: a second Authorization header (the first not UTF-8, or another scheme) is a 400
/// `invalid_request`, recorded and never forwarded; the upstream gets exactly the credential
/// that was verified, and none on a route where none was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_verified_authorization_reaches_the_upstream() {
    let (up_addr, up) = start_upstream().await;
    let proxy = Proxy::start(&format!("http://{up_addr}"), CONFIG, &[]);
    let bearer = format!("Authorization: Bearer {}", token("orders:read", 300));
    let hits = up.hits.load(Ordering::SeqCst);
    for (id, first) in [
        ("not-utf8", &b"Authorization: Basic \xff\xfe"[..]),
        ("basic-first", b"authorization: Basic YWRtaW46cHc="),
        ("bearer-twice", bearer.as_bytes()),
    ] {
        let id_line = format!("X-Request-Id: {id}");
        let req = raw_request("/headers", &[id_line.as_bytes(), first, bearer.as_bytes()]);
        let (status, head, _) = raw_exchange(None, proxy.addr, &req).await;
        assert_eq!(status, 400, "{id}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer error=\"invalid_request\""),
            "{id}: {head}"
        );
    }
    assert_eq!(up.hits.load(Ordering::SeqCst), hits, "nothing forwarded");

    // The verified one goes on, alone; Proxy-Authorization never does.
    let req = raw_request(
        "/headers",
        &[bearer.as_bytes(), b"Proxy-Authorization: Basic YTpi"],
    );
    let (status, _, body) = raw_exchange(None, proxy.addr, &req).await;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        Some(seen["authorization"].as_str().unwrap()),
        bearer.strip_prefix("Authorization: ")
    );
    assert!(seen.get("proxy-authorization").is_none(), "{seen}");
    // A public route verifies nothing, so it forwards no credentials.
    let req = raw_request("/public/headers", &[b"Authorization: Basic YWRtaW46cHc="]);
    let (status, _, body) = raw_exchange(None, proxy.addr, &req).await;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert!(seen.get("authorization").is_none(), "{seen}");

    let (env, verifier) = proxy.stop();
    let (events, _) = read_log(&env, &verifier);
    for id in ["not-utf8", "basic-first", "bearer-twice"] {
        let e = &events[id];
        assert_eq!(
            (e["status"].as_u64(), e["outcome"].as_str()),
            (Some(400), Some("denied"))
        );
        assert_eq!(e["authn"]["reason"], "duplicate_authorization", "{e}");
    }
}

/// Hole 6: a trusted nginx appends to X-Forwarded-For; a client-sent `Forwarded: for=6.6.6.6`
/// does not become the audited client, and the upstream does not get it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_comes_from_the_header_the_trusted_proxy_writes() {
    let (up_addr, _) = start_upstream().await;
    let auth = format!("authorization: Bearer {}", token("orders:read", 300));
    let cases: [(&str, &str, &str, &str); 2] = [
        // (config, audited client, upstream Forwarded, upstream X-Forwarded-For)
        (
            "trusted_proxies = [\"127.0.0.0/8\"]\n",
            "203.0.113.9",
            "for=203.0.113.9, for=127.0.0.1;host=\"shop.example\";proto=http",
            "6.6.6.7, 203.0.113.9, 127.0.0.1",
        ),
        (
            "trusted_proxies = [\"127.0.0.0/8\"]\nforwarded_header = \"forwarded\"\n",
            "6.6.6.6",
            "for=6.6.6.6, for=127.0.0.1;host=\"shop.example\";proto=http",
            "6.6.6.6, 127.0.0.1",
        ),
    ];
    for (config, client, forwarded, xff) in cases {
        let proxy = Proxy::start(&format!("http://{up_addr}"), config, &[]);
        let req = raw_request(
            "/headers",
            &[
                auth.as_bytes(),
                b"X-Request-Id: chain",
                b"Forwarded: for=6.6.6.6",
                b"X-Forwarded-For: 6.6.6.7, 203.0.113.9",
            ],
        );
        let (status, _, body) = raw_exchange(None, proxy.addr, &req).await;
        assert_eq!(status, 200, "{body}");
        let seen: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(seen["forwarded"], forwarded, "{config}");
        assert_eq!(seen["x-forwarded-for"], xff, "{config}");
        let (env, verifier) = proxy.stop();
        let (events, _) = read_log(&env, &verifier);
        assert_eq!(
            events["chain"]["request"]["client_address"], client,
            "{config}"
        );
    }
}

/// The proxy keeps no client's X-Request-Id unless told to: each event gets a fresh id, which
/// the upstream and the client see too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_fresh_unless_trusted() {
    let (up_addr, _) = start_upstream().await;
    let auth = format!("Bearer {}", token("orders:read", 300));
    // The default (a config that does not set it).
    let proxy = Proxy::start(
        &format!("http://{up_addr}"),
        "# trust_request_id is left at its default\n",
        &[],
    );
    let (status, headers, body) = send(
        proxy.addr,
        "GET",
        "/headers",
        &[("authorization", &auth), ("x-request-id", "forged-id")],
        empty(),
    )
    .await;
    assert_eq!(status, 200);
    let given = headers["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(given, "forged-id");
    assert_eq!(given.len(), 36, "a UUID");
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        seen["x-request-id"],
        given.as_str(),
        "the upstream sees the proxy's id"
    );
    let (env, verifier) = proxy.stop();
    let (events, _) = read_log(&env, &verifier);
    assert!(!events.contains_key("forged-id"));
    assert!(events.contains_key(&given));

    let proxy = Proxy::start(&format!("http://{up_addr}"), "", &["--trust-request-id"]);
    let (_, headers, _) = send(
        proxy.addr,
        "GET",
        "/headers",
        &[("authorization", &auth), ("x-request-id", "kept-id")],
        empty(),
    )
    .await;
    assert_eq!(headers["x-request-id"], "kept-id");
    let (env, verifier) = proxy.stop();
    assert!(read_log(&env, &verifier).0.contains_key("kept-id"));
}

/// A connection from `ip` (any 127/8 address is this host).
async fn connect_from(ip: &str, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Connection caps, in all and per address: a connection over one is answered 503 and closed
/// at once, and a place given back is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_turned_away() {
    let (up_addr, _) = start_upstream().await;
    let proxy = Proxy::start(
        &format!("http://{up_addr}"),
        "",
        &["--max-connections", "3", "--max-connections-per-ip", "2"],
    );
    let addr = proxy.addr;
    let auth = format!("authorization: Bearer {}", token("orders:read", 300));
    let get = raw_request("/headers", &[auth.as_bytes()]);
    // Two idle connections from 127.0.0.1: its cap.
    let a1 = connect_from("127.0.0.1", addr).await;
    let _a2 = connect_from("127.0.0.1", addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, head, _) = raw_exchange(connect_from("127.0.0.1", addr).await, addr, &get).await;
    assert_eq!(status, 503, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    // Another address still gets in, up to the cap in all.
    let _b = connect_from("127.0.0.2", addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, _) = raw_exchange(connect_from("127.0.0.3", addr).await, addr, &get).await;
    assert_eq!(status, 503, "over the cap in all");
    // A connection closed gives its place back.
    drop(a1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, _) = raw_exchange(connect_from("127.0.0.1", addr).await, addr, &get).await;
    assert_eq!(status, 200);
    let (_, _, stderr) = proxy.stop_with_stderr();
    assert!(
        stderr.contains("turned away (503): over max_connections_per_ip 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 connections were turned away"),
        "{stderr}"
    );
}

/// Heads hyper refuses itself (400, 414, 431) and `CONNECT` (405) are recorded as denied
/// events with the reason; none reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_heads_and_connect_are_recorded() {
    let (up_addr, up) = start_upstream().await;
    let proxy = Proxy::start(&format!("http://{up_addr}"), "", &[]);
    let addr = proxy.addr;
    let long = format!("/{}", "a".repeat(70_000));
    let many: Vec<String> = (0..150).map(|i| format!("X-Filler-{i}: {i}")).collect();
    let many: Vec<&[u8]> = many.iter().map(|l| l.as_bytes()).collect();
    let cases: [(Vec<u8>, u16, &str, &str, &str); 5] = [
        (
            b"GET /bad HTTX/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
            "malformed_request",
            "GET",
            "/bad",
        ),
        (
            b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\n\r\n".to_vec(),
            400,
            "malformed_request",
            "GET",
            "/x",
        ),
        (raw_request(&long, &[]), 414, "uri_too_long", "GET", "/aaaa"),
        (
            raw_request("/many", &many),
            431,
            "request_head_too_large",
            "GET",
            "/many",
        ),
        (
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n"
                .to_vec(),
            405,
            "method_not_allowed",
            "CONNECT",
            "example.com:443",
        ),
    ];
    for (request, status, ..) in &cases {
        let (got, head, _) = raw_exchange(None, addr, request).await;
        assert_eq!(got, *status, "{head}");
        if *status == 405 {
            assert!(head.to_ascii_lowercase().contains("allow: get"), "{head}");
        }
    }
    assert_eq!(up.hits.load(Ordering::SeqCst), 0, "nothing forwarded");
    // The refused heads are recorded once their connection has ended.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (env, verifier) = proxy.stop();
    let (events, _) = read_log(&env, &verifier);
    assert_eq!(events.len(), cases.len(), "{events:?}");
    for (_, status, reason, method, path) in &cases {
        let e = events
            .values()
            .find(|e| {
                e["authz"]["reason"] == *reason
                    && e["status"] == *status
                    && e["request"]["path"].as_str().unwrap().starts_with(path)
            })
            .unwrap_or_else(|| panic!("no event for {status} {reason} {path}: {events:?}"));
        assert_eq!(e["outcome"], "denied", "{e}");
        assert_eq!(e["request"]["method"], *method, "{e}");
        assert_eq!(e["request"]["client_address"], "127.0.0.1", "{e}");
    }
}

/// `--witness`: the proxy submits its checkpoints to a witness off the request path and stores
/// the cosignatures in its log; a witness that is not up yet only delays them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_cosigned_by_a_witness_off_the_request_path() {
    let (upstream, _) = start_upstream().await;
    let env = Env::new();
    env.ok(&["keygen", "w1", "--witness", "--out", "w1.key"], b"");
    // The witness comes up after the proxy, on a port chosen now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("http://127.0.0.1:{port}=w1.key.pub");
    let proxy = Proxy::spawn(
        env,
        &format!("http://{upstream}"),
        CONFIG,
        &["--witness", &target],
        None,
    );
    let addr = proxy.addr;
    let good = format!("Bearer {}", token("orders:read", 300));
    for _ in 0..3 {
        assert_eq!(
            status_of(addr, "GET", "/headers", &[("authorization", &good)]).await,
            200
        );
    }
    let witness = common::start_witness(
        &proxy.env,
        "w1",
        "audit.key.pub",
        &format!("127.0.0.1:{port}"),
    );
    // The writer signs a checkpoint every 10 s; traffic lets it store what the witness sent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let verify = [
        "verify",
        "log",
        "--key",
        "audit.key.pub",
        "--witness",
        "w1.key.pub",
    ];
    loop {
        assert_eq!(
            status_of(addr, "GET", "/headers", &[("authorization", &good)]).await,
            200
        );
        let out = proxy.env.run(&verify, b"");
        let text = stdout(&out);
        // Done when the latest checkpoint covers records and is itself the cosigned one.
        let latest = stdout(&proxy.env.run(&["checkpoint", "log"], b""));
        let size: u64 = latest.lines().nth(1).unwrap_or("0").parse().unwrap_or(0);
        if out.status.success() && size > 0 && !text.contains("newest checkpoint so cosigned") {
            assert!(text.contains("1/1 cosigned"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never cosigned: {text}{}",
            stderr(&out)
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    drop(witness);
    let (env, _) = proxy.stop();
    env.ok(&verify, b"");
}
