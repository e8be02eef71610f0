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

/// An upstream answering 200 `ok` to anything.
async fn start_upstream() -> SocketAddr {
    let app = Router::new().fallback(|| async { "ok" });
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

    /// Every complete `http` event of the log (verified), by request id.
    fn events(&self) -> BTreeMap<String, Value> {
        let mut events = BTreeMap::new();
        verify_dir_with(
            &self.env.path("log"),
            &self.verifier,
            &VerifyOptions::default(),
            |_, record| {
                let v: Value = serde_json::from_slice(record).unwrap();
                if v["kind"] == "http" && v["phase"] == "complete" {
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
