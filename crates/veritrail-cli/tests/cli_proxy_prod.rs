//! `veritrail proxy` as it runs in production, driven by real clients: the operations address
//! (`/metrics` parsed by a Prometheus text parser, `/healthz`, `/readyz`), TLS (reqwest over
//! HTTP/1.1 and HTTP/2, certificates reloaded under load), HTTP/2 and gRPC (a tonic client
//! through the proxy to a tonic server), and a policy reload on SIGHUP.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use veritrail_log::NoteVerifier;
use veritrail_log::verify::{VerifyOptions, verify_dir_with};

use common::{Env, fixture, jwks};

/// Upgrades (WebSockets), response digests, malformed HTTP/2.
#[path = "cli_proxy_prod/upgrade.rs"]
mod upgrade;

const ISSUER: &str = "https://idp.proxy.test";
const AUDIENCE: &str = "orders-api";

fn token(scope: &str, exp_in: i64) -> String {
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now - 600,
        "exp": now + exp_in, "scope": scope});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa1".into());
    let key = EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// An upstream answering 200 to anything, with the size of the body it read.
async fn start_upstream() -> SocketAddr {
    let app = Router::new().fallback(|body: axum::body::Body| async move {
        use futures_util::StreamExt;
        let mut stream = body.into_data_stream();
        let mut n = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => n += chunk.len(),
                Err(_) => return "cut off".to_owned(),
            }
        }
        n.to_string()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A running proxy: its addresses and files; killed on drop.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    env: Env,
    verifier: NoteVerifier,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proxy {
    /// Starts the proxy in `env` (which may hold more files) with `config` as its config file
    /// and `extra` flags; `file_blocks` caps its file sizes (a real EFBIG for the log).
    fn start(
        env: Env,
        upstream: &str,
        config: &str,
        extra: &[&str],
        file_blocks: Option<u64>,
    ) -> Proxy {
        let verifier =
            NoteVerifier::from_text(&env.keygen_as("proxy.test/log", "audit.key")).unwrap();
        env.write("jwks.json", jwks());
        env.write("proxy.toml", format!("trust_request_id = true\n{config}"));
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
            "--jwks",
            "jwks.json",
            "--issuer",
            ISSUER,
        ];
        args.extend_from_slice(extra);
        let mut command = match file_blocks {
            None => Command::new(env!("CARGO_BIN_EXE_veritrail")),
            Some(blocks) => {
                let mut sh = Command::new("/bin/sh");
                sh.arg("-c")
                    .arg(format!(
                        "trap '' XFSZ; ulimit -f {blocks} && exec \"$0\" \"$@\""
                    ))
                    .arg(env!("CARGO_BIN_EXE_veritrail"));
                sh
            }
        };
        let mut child = command
            .args(&args)
            .current_dir(env.path(""))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(addr) = line
            .trim()
            .strip_prefix("veritrail proxy listening on ")
            .and_then(|u| u.split("://").nth(1))
        else {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("the proxy did not start: {line:?}; stderr: {err}");
        };
        let addr = addr.parse().unwrap();
        let metrics = extra.contains(&"--metrics-listen").then(|| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix("veritrail proxy metrics on http://")
                .unwrap_or_else(|| panic!("{line:?}"))
                .parse()
                .unwrap()
        });
        Proxy {
            child,
            addr,
            metrics,
            env,
            verifier,
        }
    }

    /// SIGTERM; returns the exit code and stderr.
    fn stop(&mut self) -> (Option<i32>, String) {
        signal(&self.child, "TERM");
        let code = self.child.wait().unwrap().code();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut err).unwrap();
        (code, err)
    }

    /// Every complete `http` event of the log (verified), by request id; follow-up events
    /// (an upgraded connection's close, a response digest) left out.
    fn events(&self) -> BTreeMap<String, Value> {
        self.events_where(|v| v["extra"].get("follow_up").is_none())
    }

    /// The follow-up events of the log (verified), by request id.
    fn follow_ups(&self) -> BTreeMap<String, Value> {
        self.events_where(|v| v["extra"].get("follow_up").is_some())
    }

    /// The complete `http` events of the log (verified) that `keep` keeps, by request id.
    fn events_where(&self, keep: impl Fn(&Value) -> bool) -> BTreeMap<String, Value> {
        let mut events = BTreeMap::new();
        verify_dir_with(
            &self.env.path("log"),
            &self.verifier,
            &VerifyOptions::default(),
            |_, record| {
                let v: Value = serde_json::from_slice(record).unwrap();
                if v["kind"] == "http" && v["phase"] == "complete" && keep(&v) {
                    let id = v["request"]["request_id"]
                        .as_str()
                        .unwrap_or("-")
                        .to_owned();
                    events.insert(id, v);
                }
                Ok(())
            },
        )
        .expect("the proxy's log verifies");
        events
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The samples of a `/metrics` scrape, parsed by a Prometheus text parser.
async fn scrape(metrics: SocketAddr) -> prometheus_parse::Scrape {
    let text = client()
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample `name` whose labels include `labels`, if any.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

const ROUTES: &str = r#"
[[route]]
prefix = "/public/"
public = true

[[route]]
prefix = "/admin/"
scopes = ["admin"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_requests_sent_and_health_endpoints_answer() {
    let upstream = start_upstream().await;
    let proxy = Proxy::start(
        Env::new(),
        &format!("http://{upstream}"),
        ROUTES,
        &["--metrics-listen", "127.0.0.1:0", "--durability", "durable"],
        None,
    );
    let metrics = proxy.metrics.unwrap();
    let http = client();
    let base = format!("http://{}", proxy.addr);
    let good = format!("Bearer {}", token("orders:read", 300));
    let expired = format!("Bearer {}", token("orders:read", -300));
    let mut sent = Vec::new();
    for (path, auth, n) in [
        ("/orders/1", Some(good.as_str()), 3),
        ("/orders/1", None, 2),
        ("/orders/1", Some(expired.as_str()), 1),
        ("/public/x", None, 4),
        ("/admin/x", Some(good.as_str()), 2),
    ] {
        for _ in 0..n {
            let mut req = http.get(format!("{base}{path}"));
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            sent.push(req.send().await.unwrap().status().as_u16());
        }
    }
    assert_eq!(
        sent,
        [200, 200, 200, 401, 401, 401, 200, 200, 200, 200, 403, 403]
    );

    let scrape = scrape(metrics).await;
    let requests = |route, class, decision| {
        sample(
            &scrape,
            "veritrail_proxy_requests_total",
            &[
                ("route", route),
                ("status_class", class),
                ("decision", decision),
            ],
        )
    };
    assert_eq!(requests("-", "2xx", "success"), Some(3.0));
    assert_eq!(requests("-", "4xx", "denied"), Some(3.0));
    assert_eq!(requests("/public/", "2xx", "success"), Some(4.0));
    assert_eq!(requests("/admin/", "4xx", "denied"), Some(2.0));
    let total: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "veritrail_proxy_requests_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => panic!("not a counter: {s:?}"),
        })
        .sum();
    assert_eq!(total, sent.len() as f64);
    let failures = |reason| {
        sample(
            &scrape,
            "veritrail_proxy_auth_failures_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(failures("token_missing"), Some(2.0));
    let all_failures: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "veritrail_proxy_auth_failures_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(all_failures, 3.0, "two missing tokens, one expired");
    // The writer's, through the same recorder: durable requests were committed and fsynced,
    // each commit timed in the histogram.
    let commits = scrape
        .samples
        .iter()
        .find(|s| s.metric == "veritrail_writer_commit_seconds")
        .expect("the commit latency histogram");
    match &commits.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let all = buckets.last().unwrap().count;
            assert!(all >= 1.0, "{buckets:?}");
        }
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(sample(&scrape, "veritrail_writer_events_written_total", &[]).unwrap() >= 12.0);
    assert_eq!(sample(&scrape, "veritrail_proxy_ready", &[]), Some(1.0));
    assert!(sample(&scrape, "veritrail_proxy_connections_open", &[]).is_some());
    assert!(sample(&scrape, "veritrail_writer_queue_depth", &[]).is_some());

    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/nothing", 404)] {
        let got = http
            .get(format!("http://{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status().as_u16(), status, "{path}");
    }
    let mut proxy = proxy;
    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    // The log holds one event per request counted.
    assert_eq!(proxy.events().len(), sent.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_log_shows_as_not_ready_before_any_request_is_refused() {
    let upstream = start_upstream().await;
    let proxy = Proxy::start(
        Env::new(),
        &format!("http://{upstream}"),
        "",
        &["--metrics-listen", "127.0.0.1:0", "--durability", "async"],
        Some(128),
    );
    let metrics = proxy.metrics.unwrap();
    let http = client();
    let ready = |http: &reqwest::Client| {
        let request = http.get(format!("http://{metrics}/readyz")).send();
        async move { request.await.unwrap().status().as_u16() }
    };
    assert_eq!(ready(&http).await, 200);
    let auth = format!("Bearer {}", token("orders:read", 300));
    let agent = "a".repeat(2000);
    let mut n = 0;
    loop {
        let status = http
            .get(format!("http://{}/orders", proxy.addr))
            .header("authorization", &auth)
            .header("user-agent", &agent)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 503 {
            break;
        }
        n += 1;
        assert!(n < 5_000, "the log never failed");
    }
    let not_ready = http
        .get(format!("http://{metrics}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_ready.status().as_u16(), 503);
    let why = not_ready.text().await.unwrap();
    assert!(why.contains("audit log"), "{why}");
    // Alive all the same: the process serves and says why it is not ready.
    let alive = http
        .get(format!("http://{metrics}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status().as_u16(), 200);
    let scrape = scrape(metrics).await;
    assert_eq!(sample(&scrape, "veritrail_proxy_ready", &[]), Some(0.0));
    assert_eq!(sample(&scrape, "veritrail_writer_failed", &[]), Some(1.0));
    let mut proxy = proxy;
    let (code, _) = proxy.stop();
    assert_eq!(code, Some(2));
}

/// A test CA and the certificates it issues.
struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "veritrail test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A server certificate for `localhost` and 127.0.0.1 named `cn`: (cert PEM, key PEM, DER).
    fn issue(&self, cn: &str) -> (String, String, Vec<u8>) {
        self.issue_for(cn, &["localhost", "127.0.0.1"])
    }

    /// A server certificate for `names`.
    fn issue_for(&self, cn: &str, names: &[&str]) -> (String, String, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    fn reqwest(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap()
    }
}

/// Writes `text` to `rel` in `env` at once (a rename), as a deployment tool would.
fn replace(env: &Env, rel: &str, text: &str) {
    let tmp = format!("{rel}.tmp");
    env.write(&tmp, text);
    std::fs::rename(env.path(&tmp), env.path(rel)).unwrap();
}

/// The DER of the certificate the server showed for `response`.
fn peer_cert(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http1_and_http2_and_reloads_certificates_under_load() {
    let upstream = start_upstream().await;
    let ca = Ca::new();
    let (cert, key, first_der) = ca.issue("first");
    let env = Env::new();
    env.write("cert.pem", &cert);
    env.write("key.pem", &key);
    let proxy = Proxy::start(
        env,
        &format!("http://{upstream}"),
        ROUTES,
        &[
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        None,
    );
    let url = format!("https://localhost:{}", proxy.addr.port());
    let auth = format!("Bearer {}", token("orders:read", 300));
    let tls_client = |http1: bool| {
        let builder = reqwest::Client::builder()
            .tls_certs_only([ca.reqwest()])
            .tls_info(true)
            .timeout(Duration::from_secs(10));
        if http1 { builder.http1_only() } else { builder }
            .build()
            .unwrap()
    };
    for (http1, version) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        let client = tls_client(http1);
        let id = format!("tls-{version:?}");
        let ok = client
            .get(format!("{url}/orders/1"))
            .header("authorization", &auth)
            .header("x-request-id", &id)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.version(), version, "ALPN chose the version");
        assert_eq!(ok.status(), 200);
        assert_eq!(peer_cert(&ok), first_der);
        // Issue 12's single-Authorization rule holds over TLS and HTTP/2 too.
        let twice = client
            .get(format!("{url}/orders/1"))
            .header("authorization", &auth)
            .header("authorization", "Basic YTpi")
            .send()
            .await
            .unwrap();
        assert_eq!(twice.status(), 400, "{version:?}");
        // An unauthenticated one is refused and recorded.
        let refused = client.get(format!("{url}/orders/1")).send().await.unwrap();
        assert_eq!(refused.status(), 401);
    }
    // Plain HTTP on the TLS port gets no answer that a client could take for one.
    let plain = client()
        .get(format!("http://{}/orders/1", proxy.addr))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // Load: several clients, each on a connection kept open across the reload, and new
    // connections (new handshakes) all the time. No request may fail.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, url, auth) = (stop.clone(), url.clone(), auth.clone());
        let kept = tls_client(worker % 2 == 0);
        let ca_pem = ca.pem.clone();
        load.push(tokio::spawn(async move {
            let (mut sent, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && sent < 2_000 {
                let fresh = reqwest::Client::builder()
                    .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                for client in [&kept, &fresh] {
                    let result = client
                        .get(format!("{url}/public/x"))
                        .header("authorization", &auth)
                        .send()
                        .await;
                    sent += 1;
                    match result {
                        Ok(r) if r.status() == 200 => {}
                        other => failed.push(format!("{other:?}")),
                    }
                }
            }
            (sent, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cert2, key2, second_der) = ca.issue("second");
    replace(&proxy.env, "key.pem", &key2);
    replace(&proxy.env, "cert.pem", &cert2);
    signal(&proxy.child, "HUP");
    // New handshakes get the new certificate soon (SIGHUP, or the file watch).
    let checker = tls_client(true);
    let mut tries = 0;
    loop {
        let fresh = tls_client(true);
        let r = fresh.get(format!("{url}/public/x")).send().await.unwrap();
        if peer_cert(&r) == second_der {
            break;
        }
        tries += 1;
        assert!(tries < 100, "the new certificate never came into force");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(checker);
    // A bad pair is refused; the second certificate stays in force.
    replace(&proxy.env, "cert.pem", "not a certificate");
    signal(&proxy.child, "HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = tls_client(true)
        .get(format!("{url}/public/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_cert(&r), second_der);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut total = 0;
    for worker in load {
        let (sent, failed) = worker.await.unwrap();
        assert!(
            failed.is_empty(),
            "failed requests under reload: {failed:?}"
        );
        total += sent;
    }
    assert!(total >= 20, "the load ran: {total} requests");
    let scrape = scrape(proxy.metrics.unwrap()).await;
    assert!(
        sample(
            &scrape,
            "veritrail_proxy_tls_reloads_total",
            &[("result", "ok")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &scrape,
            "veritrail_proxy_tls_reloads_total",
            &[("result", "refused")]
        )
        .unwrap()
            >= 1.0
    );
    let mut proxy = proxy;
    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("TLS certificate reloaded"), "{err}");
    assert!(err.contains("TLS certificate reload refused"), "{err}");
    let events = proxy.events();
    for id in ["tls-HTTP/1.1", "tls-HTTP/2.0"] {
        let e = &events[id];
        assert_eq!(e["outcome"], "success", "{e}");
    }
}

/// A tonic health service (`orders.Orders` serving) on plain HTTP/2, as gRPC servers run.
async fn start_grpc_upstream() -> SocketAddr {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders.Orders", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    addr
}

fn health_check(
    service: &str,
    auth: Option<&str>,
    id: &str,
) -> tonic::Request<tonic_health::pb::HealthCheckRequest> {
    let mut req = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    });
    if let Some(auth) = auth {
        req.metadata_mut()
            .insert("authorization", auth.parse().unwrap());
    }
    req.metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_client_through_the_proxy_to_a_tonic_server_over_h2c() {
    let upstream = start_grpc_upstream().await;
    let proxy = Proxy::start(
        Env::new(),
        &format!("http://{upstream}"),
        "",
        &["--upstream-h2c"],
        None,
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", proxy.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let refused = client
        .check(health_check("orders.Orders", None, "grpc-no-token"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let auth = format!("Bearer {}", token("orders:read", 300));
    let ok = client
        .check(health_check("orders.Orders", Some(&auth), "grpc-ok"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ok.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let missing = client
        .check(health_check(
            "nobody.Nowhere",
            Some(&auth),
            "grpc-not-found",
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    drop(client);
    let mut proxy = proxy;
    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    let events = proxy.events();
    let check = "/grpc.health.v1.Health/Check";
    for (id, status, outcome) in [
        ("grpc-no-token", 16, "denied"),
        ("grpc-ok", 0, "success"),
        ("grpc-not-found", 5, "failure"),
    ] {
        let e = &events[id];
        assert_eq!(e["request"]["path"], check, "{e}");
        assert_eq!(e["action"], check, "{e}");
        assert_eq!(e["extra"]["grpc_status"], status, "{e}");
        assert_eq!(e["outcome"], outcome, "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_route_policy_and_a_bad_file_is_refused() {
    let upstream = start_upstream().await;
    let proxy = Proxy::start(
        Env::new(),
        &format!("http://{upstream}"),
        ROUTES,
        &["--metrics-listen", "127.0.0.1:0"],
        None,
    );
    let http = client();
    let auth = format!("Bearer {}", token("orders:read", 300));
    let admin = |http: &reqwest::Client| {
        let request = http
            .get(format!("http://{}/admin/x", proxy.addr))
            .header("authorization", &auth)
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };
    assert_eq!(admin(&http).await, 403);
    // /admin/ opened to orders:read holders.
    replace(
        &proxy.env,
        "proxy.toml",
        "trust_request_id = true\n[[route]]\nprefix = \"/admin/\"\nscopes = [\"orders:read\"]\n",
    );
    signal(&proxy.child, "HUP");
    let mut tries = 0;
    while admin(&http).await != 200 {
        tries += 1;
        assert!(tries < 100, "the new policy never came into force");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A file that does not load (bad TOML, then a bad prefix): refused, the policy kept.
    for bad in ["[[route]\nprefix = 1", "[[route]]\nprefix = \"admin\"\n"] {
        replace(&proxy.env, "proxy.toml", bad);
        signal(&proxy.child, "HUP");
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..5 {
            assert_eq!(admin(&http).await, 200, "the old policy stays in force");
        }
        let public = http
            .get(format!("http://{}/public/x", proxy.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(public.status(), 401, "/public/ is no route any more");
    }
    let scrape = scrape(proxy.metrics.unwrap()).await;
    let reloads = |result| {
        sample(
            &scrape,
            "veritrail_proxy_config_reloads_total",
            &[("result", result)],
        )
    };
    assert_eq!(reloads("ok"), Some(1.0));
    assert_eq!(reloads("refused"), Some(2.0));
    let mut proxy = proxy;
    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        err.matches("route policy reload refused").count(),
        2,
        "{err}"
    );
    assert!(err.contains("route policy reloaded"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_checked_by_ca_and_name() {
    // The upstream: a TLS proxy in front of a plain service (it checks the token again).
    let service = start_upstream().await;
    let ca = Ca::new();
    let (cert, key, _) = ca.issue("upstream");
    let env = Env::new();
    env.write("cert.pem", &cert);
    env.write("key.pem", &key);
    let tls_upstream = Proxy::start(
        env,
        &format!("http://{service}"),
        "",
        &["--tls-cert", "cert.pem", "--tls-key", "key.pem"],
        None,
    );
    let port = tls_upstream.addr.port();
    let auth = format!("Bearer {}", token("orders:read", 300));
    let get = |proxy: &Proxy, id: &str| {
        let request = client()
            .get(format!("http://{}/orders/1", proxy.addr))
            .header("authorization", &auth)
            .header("x-request-id", id)
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };

    // Trusted CA, right name (localhost and 127.0.0.1 are on the certificate).
    for host in ["localhost", "127.0.0.1"] {
        let env = Env::new();
        env.write("ca.pem", &ca.pem);
        let front = Proxy::start(
            env,
            &format!("https://{host}:{port}"),
            "",
            &["--upstream-ca", "ca.pem"],
            None,
        );
        assert_eq!(get(&front, "through-tls").await, 200, "{host}");
    }

    // A certificate for another name, from the trusted CA: refused by the name check.
    let (cert, key, _) = ca.issue_for("elsewhere", &["other.example"]);
    let env = Env::new();
    env.write("cert.pem", &cert);
    env.write("key.pem", &key);
    let elsewhere = Proxy::start(
        env,
        &format!("http://{service}"),
        "",
        &["--tls-cert", "cert.pem", "--tls-key", "key.pem"],
        None,
    );
    let env = Env::new();
    env.write("ca.pem", &ca.pem);
    let mut wrong_name = Proxy::start(
        env,
        &format!("https://localhost:{}", elsewhere.addr.port()),
        "",
        &["--upstream-ca", "ca.pem"],
        None,
    );
    // Another CA: refused too.
    let env = Env::new();
    env.write("ca.pem", &Ca::new().pem);
    let mut wrong_ca = Proxy::start(
        env,
        &format!("https://localhost:{port}"),
        "",
        &["--upstream-ca", "ca.pem"],
        None,
    );
    for proxy in [&mut wrong_name, &mut wrong_ca] {
        assert_eq!(get(proxy, "unverified").await, 502);
        let (code, err) = proxy.stop();
        assert_eq!(code, Some(0), "{err}");
        let e = &proxy.events()["unverified"];
        assert_eq!(e["outcome"], "error", "{e}");
        assert_eq!(e["extra"]["upstream_error"], "upstream_tls_failed", "{e}");
    }

    // --upstream-insecure: explicit, and said loudly.
    let mut insecure = Proxy::start(
        Env::new(),
        &format!("https://localhost:{port}"),
        "",
        &["--upstream-insecure"],
        None,
    );
    assert_eq!(get(&insecure, "insecure").await, 200);
    let (code, err) = insecure.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("WARNING: --upstream-insecure"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_requires_a_client_certificate_from_the_given_cas() {
    let upstream = start_upstream().await;
    let ca = Ca::new();
    let (cert, key, _) = ca.issue("server");
    let clients = Ca::new();
    let (client_cert, client_key, _) = clients.issue_for("alice-laptop", &["alice.example"]);
    let env = Env::new();
    env.write("cert.pem", &cert);
    env.write("key.pem", &key);
    env.write("clients.pem", &clients.pem);
    let mut proxy = Proxy::start(
        env,
        &format!("http://{upstream}"),
        ROUTES,
        &[
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
            "--tls-client-ca",
            "clients.pem",
        ],
        None,
    );
    let url = format!("https://localhost:{}/public/x", proxy.addr.port());
    let builder = || {
        reqwest::Client::builder()
            .tls_certs_only([ca.reqwest()])
            .timeout(Duration::from_secs(10))
    };
    let anonymous = builder().build().unwrap().get(&url).send().await;
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    // A certificate from another CA (the server's own) is refused as well.
    let (other_cert, other_key, _) = ca.issue("mallory");
    let stranger =
        reqwest::Identity::from_pem(format!("{other_cert}{other_key}").as_bytes()).unwrap();
    let refused = builder()
        .identity(stranger)
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await;
    assert!(refused.is_err(), "a stranger's certificate: {refused:?}");
    let identity =
        reqwest::Identity::from_pem(format!("{client_cert}{client_key}").as_bytes()).unwrap();
    let verified = builder().identity(identity).build().unwrap();
    for (id, path) in [("mtls-ok", "/public/x"), ("mtls-refused", "/orders/1")] {
        let response = verified
            .get(url.replace("/public/x", path))
            .header("x-request-id", id)
            // A client cannot name its own certificate, in any spelling.
            .header("x-client-cert-subject", "CN=admin")
            .header("X-Client-Cert_Subject", "CN=admin")
            .send()
            .await
            .unwrap();
        let expected = if id == "mtls-ok" { 200 } else { 401 };
        assert_eq!(response.status(), expected, "{id}");
    }
    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    let events = proxy.events();
    for id in ["mtls-ok", "mtls-refused"] {
        let e = &events[id];
        assert_eq!(
            e["request"]["headers"]["x-client-cert-subject"], "CN=alice-laptop",
            "recorded for refusals too: {e}"
        );
    }
}

/// The resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// What `sha256sum` says of the file at `path`: its SHA-256, in hex.
fn sha256sum(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_owned()
}

/// `bytes` as a streamed request body (64 KiB chunks, no length: chunked on HTTP/1.1).
fn streamed(bytes: &[u8]) -> http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error> {
    use http_body_util::BodyExt;
    let chunks: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_are_413_and_a_10_mib_upload_digest_matches_sha256sum_with_flat_memory() {
    use http_body_util::BodyExt;
    let upstream = start_upstream().await;
    let config = r#"
[[route]]
prefix = "/upload/"
body_digest = true
max_body_bytes = 16777216

[[route]]
prefix = "/small/"
max_body_bytes = 1048576
"#;
    let mut proxy = Proxy::start(Env::new(), &format!("http://{upstream}"), config, &[], None);
    let auth = format!("Bearer {}", token("orders:write", 300));
    let post = |path: &'static str, id: &'static str, body| {
        let headers = [
            ("authorization", auth.clone()),
            ("x-request-id", id.to_owned()),
        ];
        let addr = proxy.addr;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let response = common::send_head(addr, "POST", path, &headers, body).await;
            let status = response.status().as_u16();
            let text = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&text).into_owned())
        }
    };
    // Warm up (the runtime, the writer, the pools), then measure.
    let (status, _) = post("/upload/warm", "warm", streamed(&[b'w'; 256 * 1024])).await;
    assert_eq!(status, 200);
    let before = rss(proxy.child.id());

    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    proxy.env.write("upload.bin", &data);
    let (status, read) = post("/upload/file", "upload", streamed(&data)).await;
    assert_eq!((status, read.as_str()), (200, "10485760"));
    let after = rss(proxy.child.id());
    let growth = after.saturating_sub(before);
    assert!(
        growth < 4 * 1024 * 1024,
        "the proxy's memory grew by {growth} bytes for a 10 MiB upload: buffered?"
    );
    eprintln!("RSS before {before}, after {after}: growth {growth} bytes for 10 MiB streamed");

    // Over the limit: declared (refused before the upstream) and streamed (cut off).
    let (status, _) = post("/small/declared", "declared", {
        let body = http_body_util::Full::new(bytes::Bytes::from(vec![b'x'; 2 * 1024 * 1024]));
        body.map_err(|never| match never {}).boxed()
    })
    .await;
    assert_eq!(status, 413);
    let (status, _) = post(
        "/small/streamed",
        "streamed",
        streamed(&[b'x'; 2 * 1024 * 1024]),
    )
    .await;
    assert_eq!(status, 413);
    let (status, read) = post("/small/fits", "fits", streamed(&[b'x'; 1024 * 1024])).await;
    assert_eq!((status, read.as_str()), (200, "1048576"));

    let (code, err) = proxy.stop();
    assert_eq!(code, Some(0), "{err}");
    let expected = sha256sum(&proxy.env.path("upload.bin"));
    let events = proxy.events();
    let upload = &events["upload"];
    assert_eq!(upload["extra"]["request_body_sha256"], expected, "{upload}");
    assert_eq!(
        upload["extra"]["request_body_bytes"],
        10 * 1024 * 1024,
        "{upload}"
    );
    for id in ["declared", "streamed"] {
        let e = &events[id];
        assert_eq!(e["status"], 413, "{e}");
        assert_eq!(e["extra"]["body_too_large"], 1024 * 1024, "{e}");
        assert_eq!(e["outcome"], "failure", "{e}");
    }
    assert!(events["fits"]["extra"].get("request_body_sha256").is_none());
}
