//! The servers of `scripts/bench-peers`: one app, `GET /orders/{id}` answering a 29-byte body,
//! served by axum on a tokio runtime with one worker thread, behind each setup a user would
//! otherwise choose.
//!
//! ```text
//! peer tokens FILE            1,000 RS256 tokens (one per line), valid for two hours
//! peer jwks FILE              the JWKS of their key (for veritrail proxy)
//! peer MODE PORT LOG_DIR      serve until SIGTERM
//! ```
//!
//! MODE is `plain`, `trace` (tower-http TraceLayer, one JSON line per response through
//! tracing-appender into LOG_DIR/access.log), `jwt-authorizer` (0.15, axum 0.7),
//! `oauth2` (tower-oauth2-resource-server 0.12), `vt-async`, `vt-nocache` (token cache off)
//! or `vt-durable` (the veritrail layer; events into the log LOG_DIR, whose verifier key is
//! written to LOG_DIR.vkey). Every setup with auth requires issuer `https://idp.bench`,
//! audience `orders`, RS256; jwt-authorizer and veritrail also require scope `orders:read`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::Value;

const ISSUER: &str = "https://idp.bench";
const AUDIENCE: &str = "orders";
const SCOPE: &str = "orders:read";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn fixture(name: &str) -> Result<Vec<u8>, Error> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    Ok(std::fs::read(dir.join(name))?)
}

fn tokens() -> Result<Vec<String>, Error> {
    let key = EncodingKey::from_rsa_pem(&fixture("rsa.pem")?)?;
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa1".into());
    (0..1000)
        .map(|i| {
            let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE,
                "sub": format!("user-{i}"), "jti": format!("t-{i}"), "iat": now, "nbf": now - 60,
                "exp": now + 7200, "scope": SCOPE});
            Ok(encode(&header, &claims, &key)?)
        })
        .collect()
}

fn keys() -> Result<veritrail_core::auth::KeySet, Error> {
    Ok(veritrail_core::auth::KeySet::from_pem(
        &fixture("rsa.pub.pem")?,
        Algorithm::RS256,
        Some("rsa1".into()),
    )?)
}

fn jwks() -> Result<String, Error> {
    let mut jwks = keys()?.to_public_jwks();
    for key in jwks["keys"].as_array_mut().into_iter().flatten() {
        key["use"] = "sig".into();
    }
    Ok(jwks.to_string())
}

async fn order(axum::extract::Path(id): axum::extract::Path<u64>) -> String {
    format!("{{\"order\":{id},\"state\":\"shipped\"}}")
}

async fn order07(axum07::extract::Path(id): axum07::extract::Path<u64>) -> String {
    format!("{{\"order\":{id},\"state\":\"shipped\"}}")
}

fn app() -> axum::Router {
    axum::Router::new().route("/orders/{id}", axum::routing::get(order))
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, file] if cmd == "tokens" => {
            std::fs::write(file, tokens()?.join("\n") + "\n")?;
            Ok(())
        }
        [cmd, file] if cmd == "jwks" => Ok(std::fs::write(file, jwks()?)?),
        [mode, port, log_dir] => {
            // One worker: wrk has the other core.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            runtime.block_on(serve(mode, port.parse()?, Path::new(log_dir)))
        }
        _ => Err("usage: peer tokens FILE | peer jwks FILE | peer MODE PORT LOG_DIR".into()),
    }
}

async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    term.recv().await;
}

async fn serve08(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(terminated())
    .await
}

async fn serve(mode: &str, port: u16, log_dir: &Path) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    match mode {
        "plain" => serve08(listener, app()).await?,
        "trace" => {
            use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
            use tracing::Level;
            std::fs::create_dir_all(log_dir)?;
            let (writer, _guard) = tracing_appender::non_blocking(
                tracing_appender::rolling::never(log_dir, "access.log"),
            );
            tracing_subscriber::fmt()
                .json()
                .with_max_level(Level::INFO)
                .with_current_span(true)
                .with_writer(writer)
                .init();
            let trace = TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO));
            serve08(listener, app().layer(trace)).await?;
        }
        "oauth2" => {
            use tower_oauth2_resource_server::server::OAuth2ResourceServer;
            use tower_oauth2_resource_server::tenant::TenantConfiguration;
            let tenant = TenantConfiguration::static_builder(jwks()?)
                .identifier(ISSUER)
                .audiences(&[AUDIENCE])
                .allowed_algorithms(&[Algorithm::RS256])
                .build()?;
            let server = <OAuth2ResourceServer>::builder()
                .add_tenant(tenant)
                .build()
                .await?;
            serve08(listener, app().layer(server.into_layer())).await?;
        }
        "jwt-authorizer" => {
            use jwt_authorizer::{IntoLayer, JwtAuthorizer, Validation};
            let pem = String::from_utf8(fixture("rsa.pub.pem")?)?;
            let auth = JwtAuthorizer::<Value>::from_rsa_pem_text(&pem)
                .validation(Validation::new().iss(&[ISSUER]).aud(&[AUDIENCE]))
                .check(|claims: &Value| {
                    claims["scope"]
                        .as_str()
                        .is_some_and(|s| s.split(' ').any(|s| s == SCOPE))
                })
                .build()
                .await?;
            let app = axum07::Router::new()
                .route("/orders/:id", axum07::routing::get(order07))
                .layer(auth.into_layer());
            axum07::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(terminated())
            .await?;
        }
        "vt-async" | "vt-nocache" | "vt-durable" => {
            use veritrail_core::auth::{Authenticator, Issuer};
            use veritrail_core::engine::{Engine, RoutePolicy};
            use veritrail_core::recorder::Durability;
            use veritrail_writer::{Writer, WriterConfig};
            let signer = veritrail_log::NoteSigner::generate("bench/orders")?;
            let mut vkey = log_dir.as_os_str().to_owned();
            vkey.push(".vkey");
            std::fs::write(&vkey, signer.verifier().to_string() + "\n")?;
            let writer = Writer::open(log_dir, signer, WriterConfig::default())?;
            let mut auth = Authenticator::builder()
                .issuer(Issuer::new(ISSUER).keys(keys()?).audience(AUDIENCE));
            if mode == "vt-nocache" {
                auth = auth.cache_capacity(0);
            }
            let durability = if mode == "vt-durable" {
                Durability::Durable
            } else {
                Durability::Async
            };
            let engine = Engine::builder(auth.build()?, writer.handle())
                .route(
                    "/orders/{id}",
                    RoutePolicy::authenticated()
                        .scope(SCOPE)
                        .durability(durability),
                )
                .build();
            serve08(listener, app().layer(veritrail_axum::layer(engine))).await?;
            let report = writer
                .shutdown(Instant::now() + Duration::from_secs(30))
                .await;
            eprintln!("log: {} records, {} dropped", report.size, report.dropped);
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    Ok(())
}
