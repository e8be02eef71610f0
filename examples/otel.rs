//! veritrail with OpenTelemetry: each request's server span names its audit event (and the
//! event names the span), and every audit record and signed checkpoint is also exported as
//! an OTel log record, over OTLP/HTTP to a collector.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=orders-api \
//!   cargo run --example otel --features otel,axum -- jwks.json
//! ```
//!
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` switches the encoding. Without an endpoint nothing
//! is exported, and an incoming `traceparent` still reaches the audit events.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::{Router, extract::Path, routing::get};
use veritrail::axum::{AuditContext, Engine, Identity, RoutePolicy, require_scope};
use veritrail::otel::{OtelLayer, OtelLogSink, init_from_env};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_log::{LogOptions, NoteSigner};
use veritrail_writer::{FileSink, Sink, Writer, WriterConfig};

async fn order(Path(id): Path<u64>, who: Identity, audit: AuditContext) -> String {
    audit.set_action("order.read");
    audit.set_target(format!("order:{id}"));
    format!("order {id} for {}", who.sub().unwrap_or("?"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jwks = std::fs::read(std::env::args().nth(1).unwrap_or("jwks.json".into()))?;
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.example")
                .keys(KeySet::from_jwks(&jwks)?.0)
                .audience("orders-api"),
        )
        .build()?;

    // Telemetry from the standard OTEL_* variables; nothing is installed globally.
    let telemetry = init_from_env("veritrail-otel-example")?;
    if telemetry.is_none() {
        eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT is not set: no spans or logs are exported");
    }

    let signer = NoteSigner::generate("audit.example/orders")?;
    std::fs::write("audit-log.pub", signer.verifier().to_text())?;
    let file = FileSink::open("audit-log".as_ref(), signer, LogOptions::default())?;
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
        .route("/health", get(|| async { "ok" }))
        .layer(veritrail::axum::layer(engine))
        // Outside the audit layer, so the audit event records this span's ids.
        .layer(otel.log_origin(origin));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or_default() })
    .await?;

    // The writer first (its last records and checkpoint go through the logger), then the
    // telemetry, whose shutdown runs off the runtime's threads.
    writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    if let Some(guard) = telemetry {
        guard.shutdown().await?;
    }
    Ok(())
}
