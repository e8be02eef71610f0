//! veritrail with OpenTelemetry: each request's server span names its audit event (and the
//! event names the span), and every audit record and signed checkpoint is also exported as
//! an OTel log record, over OTLP/HTTP to a collector.
//!
//! ```sh
//! cargo run -p veritrail-cli -- dev-idp --dir /tmp/vt-dev --token alice=orders:read
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=orders-api \
//!   cargo run --example otel --features otel,axum -- /tmp/vt-dev
//! ```
//!
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` switches the encoding. Without an endpoint nothing
//! is exported, and an incoming `traceparent` still reaches the audit events. The log and its
//! key live in `/tmp/vt-dev/otel/`. `VERITRAIL_EXAMPLE_CHECK=1` sends a few requests to itself
//! and stops instead of serving until Ctrl-C.
mod common;

use std::time::{Duration, Instant};

use axum::{Router, extract::Path, routing::get};
use veritrail::axum::{AuditContext, Engine, Identity, RoutePolicy, require_scope};
use veritrail::core::auth::{Authenticator, Issuer, KeySet};
use veritrail::log::LogOptions;
use veritrail::otel::{OtelLayer, OtelLogSink, init_from_env};
use veritrail::writer::{FileSink, Sink, Writer, WriterConfig};

async fn order(Path(id): Path<u64>, who: Identity, audit: AuditContext) -> String {
    audit.set_action("order.read");
    audit.set_target(format!("order:{id}"));
    format!("order {id} for {}\n", who.sub().unwrap_or("?"))
}

#[tokio::main]
async fn main() -> Result<(), common::Error> {
    let idp = common::DevIdp::from_args("otel")?;
    let work = idp.workdir("otel");
    let (keys, _) = KeySet::from_jwks(common::read(&idp.jwks()?)?.as_bytes())?;
    let auth = Authenticator::builder()
        .issuer(Issuer::new(idp.issuer()?).keys(keys).audience("orders-api"))
        .build()?;

    // Telemetry from the standard OTEL_* variables; nothing is installed globally.
    let telemetry = init_from_env("veritrail-otel-example")?;
    if telemetry.is_none() {
        eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT is not set: no spans or logs are exported");
    }

    // The log's key: made on the first run, then reused (a new key would not match the log).
    let signer =
        veritrail::load_or_create_signing_key(&work.join("audit.key"), "audit.example/orders")?;
    let file = FileSink::open(&work.join("audit-log"), signer, LogOptions::default())?;
    let origin = file.origin().to_owned();
    let writer = match &telemetry {
        // Every committed record and every signed checkpoint also goes to the collector.
        Some(guard) => Writer::start(
            OtelLogSink::new(file, guard.logger_provider()),
            WriterConfig::default(),
        )?,
        None => Writer::start(file, WriterConfig::default())?,
    };
    let engine = Engine::builder(auth, writer.handle())
        .route("/health", RoutePolicy::public())
        .build();

    let otel: OtelLayer = match &telemetry {
        Some(guard) => veritrail::otel::axum::layer().tracer_provider(guard.tracer_provider()),
        None => veritrail::otel::axum::layer(),
    };
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(order).route_layer(require_scope("orders:read")),
        )
        .route("/health", get(|| async { "ok\n" }))
        .layer(veritrail::axum::layer(engine))
        // Outside the audit layer, so the audit event records this span's ids.
        .layer(otel.log_origin(origin));
    let listener = tokio::net::TcpListener::bind(common::listen_addr()).await?;
    let addr = listener.local_addr()?;
    println!(
        "listening on http://{addr}; the log is in {}",
        work.display()
    );
    let (stop, server) = common::serve_axum(listener, app);
    let token = if common::self_check() {
        Some(idp.token("alice")?)
    } else {
        None
    };
    let checked = common::until_done(common::check(
        addr,
        &[
            ("GET", "/health", None, 200),
            ("GET", "/orders/7", token.as_deref(), 200),
        ],
    ))
    .await;
    stop.send(()).ok();
    server.await??;

    // The writer first (its last records and checkpoint go through the logger), then the
    // telemetry, whose shutdown runs off the runtime's threads.
    writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    if let Some(guard) = telemetry {
        guard.shutdown().await?;
    }
    checked
}
