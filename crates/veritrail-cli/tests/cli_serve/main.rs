//! `veritrail serve`: the real binary over logs made by `veritrail demo` and `veritrail append`,
//! asked over HTTP (this file) and driven in headless Chromium ([`browser`]).

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod driver;

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use veritrail_log::proof::{ConsistencyBody, InclusionProofFile};
use veritrail_log::{Checkpoint, NoteVerifier};

use common::{Env, fixture, jwks, stdout};

pub(crate) const ISSUER: &str = "https://idp.serve.test";
pub(crate) const AUDIENCE: &str = "audit-view";

/// A token of `sub` from the fixture's RSA key with `scope`, valid for ten minutes.
pub(crate) fn token(sub: &str, scope: &str) -> String {
    token_with_roles(sub, scope, &[])
}

/// [`token`] with a `roles` claim.
pub(crate) fn token_with_roles(sub: &str, scope: &str, roles: &[&str]) -> String {
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now,
        "exp": now + 600, "scope": scope, "roles": roles});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa1".into());
    let key = EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// A log made by `veritrail demo` in `env` at `demo/log` (verifier key `demo/log.pub`).
pub(crate) fn demo_log(env: &Env) {
    env.ok(&["demo", "--dir", "demo"], b"");
}

/// A running `veritrail serve`, stopped (SIGTERM) when dropped.
pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Serve {
    /// `veritrail serve LOG --listen 127.0.0.1:0 ARGS…` in `env`'s directory.
    pub(crate) fn start(env: &Env, log: &str, args: &[&str]) -> Serve {
        let (child, addr) = common::start_server(
            Command::new(env!("CARGO_BIN_EXE_veritrail"))
                .args(["serve", log, "--listen", "127.0.0.1:0"])
                .args(args)
                .current_dir(env.path("")),
            "serve",
        );
        Serve { child, addr }
    }

    /// The view with the fixture's JWKS, scope `audit:read` required, the access log in
    /// `access` (key `access.key`, made here).
    pub(crate) fn start_with_auth(env: &Env, log: &str) -> Serve {
        env.write("jwks.json", jwks());
        env.keygen_as("access.serve.test/view", "access.key");
        Serve::start(
            env,
            log,
            &[
                ["--jwks", "jwks.json", "--issuer", ISSUER].as_slice(),
                &["--audience", AUDIENCE, "--access-log", "access"],
                &["--access-key", "access.key"],
            ]
            .concat(),
        )
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM; asserts exit 0; returns stderr.
    pub(crate) fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut err).unwrap();
        }
        assert_eq!(code.code(), Some(0), "serve exit; stderr: {err}");
        err
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One request; returns status, headers and body.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, http::HeaderMap, Bytes) {
    let body = Full::new(Bytes::from(body.to_owned()));
    let response = common::send_head(addr, method, path, headers, body).await;
    let (parts, body) = response.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

pub(crate) async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, Bytes) {
    let (status, _, body) = request(addr, "GET", path, headers, "").await;
    (status, body)
}

/// The records `veritrail events LOG FILTERS --json` prints, as (index, record line).
pub(crate) fn cli_events(env: &Env, log: &str, filters: &[&str]) -> Vec<(u64, String)> {
    let mut args = vec!["events", log, "--json"];
    args.extend_from_slice(filters);
    stdout(&env.ok(&args, b""))
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (v["index"].as_u64().unwrap(), line.to_owned())
        })
        .collect()
}

/// The access log's records (verified with its key first).
fn access_records(env: &Env) -> Vec<Value> {
    let vkey = env.read("access.key.pub");
    env.ok(&["verify", "access", "--key", vkey.trim()], b"");
    cli_events(env, "access", &[])
        .into_iter()
        .map(|(_, line)| serde_json::from_str(&line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scopes_and_every_use_in_the_access_log() {
    let env = Env::new();
    demo_log(&env);
    let serve = Serve::start_with_auth(&env, "demo/log");
    let addr = serve.addr;
    let reader = token("auditor", "audit:read");
    let bearer = format!("Bearer {reader}");
    let auth = [("authorization", bearer.as_str())];

    // No token: 401 with the RFC 6750 challenge; a browser is shown the way to the login page.
    let (status, headers, _) = request(addr, "GET", "/api/v1/events", &[], "").await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (status, headers, body) =
        request(addr, "GET", "/events", &[("accept", "text/html")], "").await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    assert!(String::from_utf8_lossy(&body).contains("href=\"/login\""));
    // A token without the scope: 403.
    let other = format!("Bearer {}", token("intruder", "orders:read"));
    let (status, _) = get(addr, "/api/v1/events", &[("authorization", &other)]).await;
    assert_eq!(status, 403);
    // The assets and the login page need no token; the login sets an HttpOnly cookie that
    // then reads the pages.
    assert_eq!(get(addr, "/assets/view.js", &[]).await.0, 200);
    let (status, headers, _) = request(
        addr,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("token={reader}"),
    )
    .await;
    assert_eq!(status, 303);
    let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let jar = cookie.split(';').next().unwrap().to_owned();
    // The same form sent from another site's page is refused (login CSRF), and recorded.
    for origin in [("origin", "http://evil.example"), ("origin", "null")] {
        let form = [
            ("content-type", "application/x-www-form-urlencoded"),
            origin,
        ];
        let (status, headers, _) =
            request(addr, "POST", "/login", &form, &format!("token={reader}")).await;
        assert_eq!(status, 403, "{origin:?}");
        assert!(!headers.contains_key("set-cookie"));
    }
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("sec-fetch-site", "cross-site"),
    ];
    let (status, _, _) = request(addr, "POST", "/logout", &form, "").await;
    assert_eq!(status, 403);
    let (status, body) = get(addr, "/events?sub=alice", &[("cookie", &jar)]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // With the token: the search answers what `veritrail events` answers.
    let (status, body) = get(addr, "/api/v1/events?sub=alice&outcome=denied", &auth).await;
    assert_eq!(status, 200);
    let page: Value = serde_json::from_slice(&body).unwrap();
    let got = page_indexes(&page);
    let want = newest_first(&env, "demo/log", &["--sub", "alice", "--outcome", "denied"]);
    assert!(!want.is_empty());
    assert_eq!(got, want);
    // A proof downloaded from the view verifies offline with the log's key.
    let (status, proof) = get(addr, "/api/v1/proof/3", &auth).await;
    assert_eq!(status, 200);
    env.write("three.tlog-proof", &proof);
    let vkey = env.read("demo/log.pub");
    env.ok(
        &["verify-proof", "three.tlog-proof", "--key", vkey.trim()],
        b"",
    );

    let err = serve.stop();
    assert!(err.contains("uses recorded in the access log"), "{err}");
    let records = access_records(&env);
    let http: Vec<&Value> = records.iter().filter(|r| r["kind"] == "http").collect();
    assert!(
        records.iter().any(|r| r["kind"] == "keyset"),
        "the keys in force are recorded"
    );
    let denied: Vec<_> = http.iter().filter(|r| r["outcome"] == "denied").collect();
    assert_eq!(
        denied.len(),
        6,
        "two without a token, one without the scope, three cross-site forms"
    );
    assert!(
        denied
            .iter()
            .any(|r| r["request"]["path"] == "/login" && r["status"] == 403)
    );
    assert!(
        denied
            .iter()
            .any(|r| r["actor"]["sub"] == "intruder" && r["status"] == 403)
    );
    let search = http
        .iter()
        .find(|r| r["action"] == "trail.search" && r["request"]["query"]["outcome"] == "denied")
        .expect("the search is recorded with its filters");
    assert_eq!(search["actor"]["sub"], "auditor");
    assert_eq!(search["request"]["query"]["sub"], "alice");
    let download = http
        .iter()
        .find(|r| r["action"] == "trail.proof.download")
        .expect("the download is recorded");
    assert_eq!(download["target"], "record:3");
    assert_eq!(download["actor"]["sub"], "auditor");
    // The token itself never reaches the access log.
    assert!(!records.iter().any(|r| r.to_string().contains(&reader)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_are_shown_escaped_under_a_strict_policy() {
    let env = Env::new();
    env.keygen();
    // A right-to-left override as the character itself, an escape sequence, markup.
    let hostile = [
        format!(
            r#"{{"v":1,"id":"00000000-0000-7000-8000-000000000001","index":0,"time":"2026-11-27T12:00:00.000000Z","kind":"http","phase":"complete","actor":{{"sub":"admin{}nimda<script>alert(1)</script>"}},"request":{{"method":"GET","path":"/x\u001b[2J\"><img src=x onerror=alert(2)>"}},"status":200,"outcome":"success"}}"#,
            '\u{202e}'
        ),
        r#"{"not":"an event","html":"</pre><script>alert(3)</script>"}"#.to_owned(),
    ];
    env.append(&hostile);
    let serve = Serve::start(&env, "log", &["--no-auth"]);
    for path in ["/events", "/events/0", "/events/1", "/", "/checkpoints"] {
        let (status, headers, body) = request(serve.addr, "GET", path, &[], "").await;
        assert_eq!(status, 200, "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let page = String::from_utf8(body.to_vec()).unwrap();
        for raw in ["<script>alert", "<img src", "\u{202e}", "\u{1b}"] {
            assert!(!page.contains(raw), "{path} shows {raw:?} unescaped");
        }
        // The only scripts are the view's own.
        assert_eq!(page.matches("<script").count(), 1, "{path}");
    }
    let (_, event) = get(serve.addr, "/events/0", &[]).await;
    let event = String::from_utf8_lossy(&event);
    assert!(
        event.contains(r"admin\u{202e}nimda&lt;script&gt;"),
        "{event}"
    );
    assert!(event.contains(r"/x\x1b[2J"), "{event}");
    // The API gives the records exactly as stored.
    let lines = cli_events(&env, "log", &[]);
    let (status, body) = get(serve.addr, "/api/v1/events/0", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), lines[0].1);
    let (_, body) = get(serve.addr, "/api/v1/events/1", &[]).await;
    assert_eq!(body.as_ref(), hostile[1].as_bytes());
    assert_eq!(get(serve.addr, "/api/v1/events/2", &[]).await.0, 404);
    assert_eq!(get(serve.addr, "/api/v1/events/x", &[]).await.0, 400);
    assert_eq!(
        get(serve.addr, "/api/v1/events?outcome=maybe", &[]).await.0,
        400
    );
    assert_eq!(get(serve.addr, "/assets/../Cargo.toml", &[]).await.0, 404);
    let err = serve.stop();
    assert!(err.contains("warning: --no-auth"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_proofs_consistency_and_the_openapi_document() {
    let env = Env::new();
    let vkey = NoteVerifier::from_text(&env.keygen()).unwrap();
    env.append(&common::events(0..7));
    let first = env.checkpoint();
    env.append(&common::events(7..23));
    let serve = Serve::start(&env, "log", &["--no-auth"]);
    let addr = serve.addr;

    // Paging by position, newest first, every record once.
    let mut seen = Vec::new();
    let mut next = Some(23);
    while let Some(before) = next {
        let (status, body) = get(
            addr,
            &format!("/api/v1/events?limit=5&before={before}"),
            &[],
        )
        .await;
        assert_eq!(status, 200);
        let page: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(page["size"], 23);
        for e in page["events"].as_array().unwrap() {
            seen.push(e["index"].as_u64().unwrap());
        }
        next = page["older"].as_u64();
    }
    assert_eq!(seen, (0..23).rev().collect::<Vec<_>>());

    // Every proof verifies with the library against the log's key.
    for index in [0, 6, 22] {
        let (status, body) = get(addr, &format!("/api/v1/proof/{index}"), &[]).await;
        assert_eq!(status, 200);
        let file = InclusionProofFile::parse(std::str::from_utf8(&body).unwrap()).unwrap();
        assert_eq!(file.index, index);
        assert_eq!(file.verify(&vkey).unwrap().size, 23);
    }
    assert_eq!(get(addr, "/api/v1/proof/23", &[]).await.0, 404);
    // The consistency proof from the first checkpoint to the latest.
    let old = Checkpoint::open(&first, &vkey).unwrap();
    let (status, body) = get(addr, &format!("/api/v1/consistency?from={}", old.size), &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let proof = ConsistencyBody::parse(std::str::from_utf8(&body).unwrap()).unwrap();
    assert_eq!(proof.verify(&old, &vkey).unwrap().size, 23);
    // A size the log never signed has no proof to give.
    assert_eq!(get(addr, "/api/v1/consistency?from=5", &[]).await.0, 404);
    assert_eq!(
        get(addr, "/api/v1/consistency?from=7&to=9", &[]).await.0,
        404
    );
    assert_eq!(get(addr, "/api/v1/consistency?from=x", &[]).await.0, 400);
    let (_, latest) = get(addr, "/api/v1/checkpoint", &[]).await;
    assert_eq!(latest.as_ref(), env.checkpoint().as_bytes());
    // The checkpoints page links each consistency proof.
    let (_, page) = get(addr, "/checkpoints", &[]).await;
    assert!(
        String::from_utf8_lossy(&page)
            .contains(&format!("/api/v1/consistency?from={}&amp;to=23", old.size))
    );
    // The OpenAPI document names every API path the router serves.
    let (status, body) = get(addr, "/api/v1/openapi.json", &[]).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    for path in [
        "/api/v1/events",
        "/api/v1/events/{index}",
        "/api/v1/events/stream",
        "/api/v1/proof/{index}",
        "/api/v1/checkpoint",
        "/api/v1/consistency",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_sends_records_as_they_are_appended() {
    let env = Env::new();
    env.keygen();
    env.append(&common::events(0..3));
    let serve = Serve::start(&env, "log", &["--no-auth"]);
    let stream = tokio::net::TcpStream::connect(serve.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/api/v1/events/stream")
        .header("host", serve.addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    env.append(&common::events(3..5));
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(seen.contains("data-index=\\\"3\\\"") && seen.contains("data-index=\\\"4\\\"")) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no new records streamed; got {seen:?}"))
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(seen.contains("event: record"), "{seen}");
    assert!(!seen.contains("\"index\":2"), "only new records: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_runs_a_full_verification_and_shows_its_result() {
    let env = Env::new();
    env.keygen();
    env.append(&common::events(0..23));
    let serve = Serve::start(&env, "log", &["--no-auth", "--verify-key", "key.pub"]);
    let (_, page) = get(serve.addr, "/", &[]).await;
    let page = String::from_utf8_lossy(&page).into_owned();
    assert!(page.contains("No full verification has run"), "{page}");
    assert!(page.contains("with the key given to the view"), "{page}");
    let (status, headers, _) = request(serve.addr, "POST", "/verify", &[], "").await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = get(serve.addr, "/", &[]).await;
        let page = String::from_utf8_lossy(&page).into_owned();
        if page.contains("data-state=\"verified\"") {
            assert!(
                page.contains("valid: 23 records and 3 checkpoints checked"),
                "{page}"
            );
            break;
        }
        assert!(!page.contains("FAILED"), "{page}");
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Without --verify-key the page says whose key it would use.
    let other = Serve::start(&env, "log", &["--no-auth"]);
    let (_, page) = get(other.addr, "/", &[]).await;
    assert!(String::from_utf8_lossy(&page).contains("with the key stored in the log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_with_an_access_log_still_records_each_use() {
    let env = Env::new();
    env.keygen();
    env.append(&common::events(0..3));
    env.keygen_as("access.serve.test/view", "access.key");
    let serve = Serve::start(
        &env,
        "log",
        &[
            "--no-auth",
            "--access-log",
            "access",
            "--access-key",
            "access.key",
        ],
    );
    assert_eq!(get(serve.addr, "/api/v1/proof/1", &[]).await.0, 200);
    assert_eq!(get(serve.addr, "/events?status=4xx", &[]).await.0, 200);
    let err = serve.stop();
    assert!(err.contains("their use is recorded in access"), "{err}");
    let records = access_records(&env);
    assert!(records.iter().any(|r| r["action"] == "trail.proof.download"
        && r["target"] == "record:1"
        && r["actor"].is_null()));
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "trail.search" && r["request"]["query"]["status"] == "4xx")
    );
}

/// `12 events`.
fn plural(n: usize) -> String {
    format!("{n} event{}", if n == 1 { "" } else { "s" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_bounds_and_the_overview_count_what_the_cli_counts() {
    let env = Env::new();
    demo_log(&env);
    let serve = Serve::start(&env, "demo/log", &["--no-auth"]);
    let all = cli_events(&env, "demo/log", &[]);
    // The overview counts the demo's events of the last hour, and its refusals by route and
    // by reason (three 401s and one 403 on `/orders/{id}…`).
    let (status, page) = get(serve.addr, "/?window=1h", &[]).await;
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page).into_owned();
    assert!(
        page.contains(&format!("{} in the last 1h", plural(all.len()))),
        "{page}"
    );
    assert!(page.contains("<svg id=\"chart-minutes\""), "{page}");
    let routes = &page[page
        .find("id=\"refusals-route\"")
        .expect("refusals by route")..];
    assert!(routes.contains("/orders/{id}</th>"), "{routes}");
    assert!(page.contains("id=\"refusals-reason\""), "{page}");
    assert_eq!(get(serve.addr, "/?window=2y", &[]).await.0, 400);
    let time = |i: usize| {
        let v: Value = serde_json::from_str(&all[i].1).unwrap();
        v["time"].as_str().unwrap().to_owned()
    };
    for (since, until) in [(None, Some(6)), (Some(3), Some(9)), (Some(8), None)] {
        let mut query = Vec::new();
        let mut flags = Vec::new();
        let (s, u) = (since.map(time), until.map(time));
        if let Some(s) = &s {
            query.push(format!("since={s}"));
            flags.extend(["--since", s.as_str()]);
        }
        if let Some(u) = &u {
            query.push(format!("until={u}"));
            flags.extend(["--until", u.as_str()]);
        }
        let (status, body) = get(
            serve.addr,
            &format!("/api/v1/events?{}", query.join("&")),
            &[],
        )
        .await;
        assert_eq!(status, 200);
        let page: Value = serde_json::from_slice(&body).unwrap();
        let got = page_indexes(&page);
        let want = newest_first(&env, "demo/log", &flags);
        assert!(!want.is_empty());
        assert_eq!(got, want, "{flags:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_required_scope_and_role_are_configurable() {
    let env = Env::new();
    env.keygen();
    env.append(&common::events(0..3));
    env.write("jwks.json", jwks());
    env.keygen_as("access.serve.test/view", "access.key");
    let flags = [
        ["--jwks", "jwks.json", "--issuer", ISSUER].as_slice(),
        &["--audience", AUDIENCE, "--access-log", "access"],
        &["--access-key", "access.key", "--role", "auditor"],
    ]
    .concat();
    let serve = Serve::start(&env, "log", &flags);
    let status = |token: String| checkpoint_status(serve.addr, token);
    // --role alone: the role is required and `audit:read` no longer is.
    assert_eq!(status(token("a", "audit:read")).await, 403);
    assert_eq!(status(token_with_roles("b", "", &["auditor"])).await, 200);
    drop(serve);
    let flags = [flags.as_slice(), &["--scope", "trail:read"]].concat();
    let serve = Serve::start(&env, "log", &flags);
    let status = |token: String| checkpoint_status(serve.addr, token);
    // Both given: both required.
    assert_eq!(status(token_with_roles("c", "", &["auditor"])).await, 403);
    assert_eq!(
        status(token_with_roles("d", "trail:read", &["auditor"])).await,
        200
    );
}

/// The status of `GET /api/v1/checkpoint` with `token`.
async fn checkpoint_status(addr: SocketAddr, token: String) -> u16 {
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    get(addr, "/api/v1/checkpoint", &headers).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_reads_only_the_records_its_time_bounds_allow() {
    let env = Env::new();
    env.keygen();
    let lines: Vec<String> = (0..12_000).map(common::http_event).collect();
    env.append(&lines);
    let serve = Serve::start(&env, "log", &["--no-auth"]);
    let time = |i: u64| {
        let v: Value = serde_json::from_str(&common::http_event(i)).unwrap();
        v["time"].as_str().unwrap().to_owned()
    };
    // A window in the middle: the scan starts at `until` and stops at `since`, each with 4,096
    // records to spare, and the page says there is nothing older to look at.
    let (since, until) = (time(6_000), time(6_100));
    let (status, body) = get(
        serve.addr,
        &format!("/api/v1/events?sub=user-42&since={since}&until={until}"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let page: Value = serde_json::from_slice(&body).unwrap();
    let got = page_indexes(&page);
    let want = newest_first(
        &env,
        "log",
        &["--sub", "user-42", "--since", &since, "--until", &until],
    );
    assert_eq!(got, want);
    assert_eq!(got, [6_042]);
    assert_eq!(page["searched"]["from"], 6_000 - 4_096);
    assert_eq!(page["searched"]["to"], 6_100 + 4_096);
    assert!(page["older"].is_null(), "{page}");
}

/// The indexes of an `/api/v1/events` page, in its order.
fn page_indexes(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["index"].as_u64().expect("index"))
        .collect()
}

/// The indexes `veritrail events LOG FILTERS` selects, newest first (as the view lists them).
pub(crate) fn newest_first(env: &Env, log: &str, filters: &[&str]) -> Vec<u64> {
    let mut indexes: Vec<u64> = cli_events(env, log, filters)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    indexes.reverse();
    indexes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_capped_and_a_closed_one_frees_its_place() {
    let env = Env::new();
    env.keygen();
    env.append(&common::events(0..3));
    let serve = Serve::start(&env, "log", &["--no-auth"]);
    let open = || {
        common::send_head(
            serve.addr,
            "GET",
            "/api/v1/events/stream",
            &[],
            Full::new(Bytes::new()),
        )
    };
    let mut streams = Vec::new();
    for _ in 0..64 {
        let response = open().await;
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    let refused = open().await;
    assert_eq!(refused.status(), 503);
    // A reader that goes away frees its place, though no record was appended since.
    drop(streams.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = open().await;
        if response.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
