//! veritrail with axum: every request authenticated and written to a verifiable audit log.
//!
//! `cargo run --example axum_quickstart --features axum -- jwks.json`, then
//! `veritrail verify audit-log --key "$(cat audit-log.pub)"` after Ctrl-C.
use std::net::SocketAddr;

use axum::{
    Router,
    extract::Path,
    routing::{get, post},
};
use veritrail::axum::{AuditContext, Engine, Identity, RoutePolicy, require_scope};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

async fn refund(Path(id): Path<u64>, who: Identity, audit: AuditContext) -> String {
    audit.set_action("order.refund");
    audit.set_target(format!("order:{id}"));
    format!("order {id} refunded for {}", who.sub().unwrap_or("?"))
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
    let signer = NoteSigner::generate("audit.example/orders")?;
    std::fs::write("audit-log.pub", signer.verifier().to_text())?;
    let writer = Writer::open("audit-log", signer, WriterConfig::default())?;
    let engine = Engine::builder(auth, writer.handle())
        .route("/health", RoutePolicy::public())
        .build();

    let app = Router::new()
        .route(
            "/orders/{id}/refund",
            post(refund).route_layer(require_scope("orders:refund")),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(veritrail::axum::layer(engine));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or_default() })
    .await?;
    writer
        .shutdown(std::time::Instant::now() + std::time::Duration::from_secs(5))
        .await;
    Ok(())
}
