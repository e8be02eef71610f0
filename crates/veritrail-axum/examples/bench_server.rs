//! The server `scripts/bench-http` drives with wrk: plain axum, or the same app behind the
//! veritrail layer (RS256 tokens, verified-token cache on, `Async` events into a file log).
//!
//! `bench_server plain|veritrail|veritrail-nolog PORT TOKEN_FILE LOG_DIR` — in the veritrail
//! modes it writes 1,000 distinct RS256 tokens to TOKEN_FILE (one per line) before it listens;
//! in `plain` mode it only listens. `veritrail-nolog` hands events to a recorder that drops
//! them (a diagnostic: the layer's cost without the log's).

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{Durability, Receipt, RecordFuture, Recorder};
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

async fn order(UrlPath(id): UrlPath<u64>) -> String {
    format!("{{\"order\":{id},\"state\":\"shipped\"}}")
}

/// A recorder that drops every event (the `veritrail-nolog` diagnostic).
struct Discard;

impl Recorder for Discard {
    fn record(&self, _: AuditEvent, _: Durability) -> RecordFuture {
        Box::pin(std::future::ready(Ok(Receipt { index: None })))
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    std::fs::read(dir.join(name)).expect("fixture")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, port, token_file, log_dir] = args.as_slice() else {
        return Err("usage: bench_server plain|veritrail PORT TOKEN_FILE LOG_DIR".into());
    };
    let app = Router::new().route("/orders/{id}", get(order));
    let mut writer = None;
    let app = match mode.as_str() {
        "plain" => app,
        "veritrail" | "veritrail-nolog" => {
            let key = EncodingKey::from_rsa_pem(&fixture("rsa.pem"))?;
            let now = jsonwebtoken::get_current_timestamp();
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("rsa1".into());
            let tokens = (0..1000)
                .map(|i| {
                    let claims = serde_json::json!({"iss": "https://idp.bench", "aud": "orders",
                        "sub": format!("user-{i}"), "jti": format!("t-{i}"), "iat": now,
                        "exp": now + 3600, "scope": "orders:read"});
                    encode(&header, &claims, &key)
                })
                .collect::<Result<Vec<_>, _>>()?;
            std::fs::write(token_file, tokens.join("\n") + "\n")?;
            let keys = KeySet::from_pem(
                &fixture("rsa.pub.pem"),
                Algorithm::RS256,
                Some("rsa1".into()),
            )?;
            let auth = Authenticator::builder()
                .issuer(
                    Issuer::new("https://idp.bench")
                        .keys(keys)
                        .audience("orders"),
                )
                .build()?;
            let engine = if mode == "veritrail" {
                let w = Writer::open(
                    log_dir,
                    NoteSigner::generate("bench/orders")?,
                    WriterConfig::default(),
                )?;
                let builder = Engine::builder(auth, w.handle());
                writer = Some(w);
                builder
            } else {
                Engine::builder(auth, Discard)
            }
            .route(
                "/orders/{id}",
                RoutePolicy::authenticated().scope("orders:read"),
            )
            .build();
            app.layer(veritrail_axum::layer(engine))
        }
        other => return Err(format!("unknown mode {other}").into()),
    };
    // One worker: the load generator and the writer thread share the other core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>()?)).await?;
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            term.recv().await;
        })
        .await?;
        if let Some(w) = writer {
            let report = w
                .shutdown(std::time::Instant::now() + std::time::Duration::from_secs(10))
                .await;
            eprintln!("log: {} records, {} dropped", report.size, report.dropped);
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
