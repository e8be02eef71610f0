//! veritrail with actix-web: the same engine and the same events as the tower layer.
//!
//! `cargo run --example actix_quickstart --features actix -- jwks.json`
use actix_web::{App, HttpServer, web};
use veritrail::actix::{
    AuditContext, AuditMiddleware, Engine, Identity, RoutePolicy, require_scope,
};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

async fn refund(id: web::Path<u64>, who: Identity, audit: AuditContext) -> String {
    audit.set_action("order.refund");
    audit.set_target(format!("order:{id}"));
    format!("order {id} refunded for {}", who.sub().unwrap_or("?"))
}

#[actix_web::main]
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

    HttpServer::new(move || {
        App::new()
            .wrap(AuditMiddleware::new(engine.clone()))
            .service(
                web::resource("/orders/{id}/refund")
                    .wrap(require_scope("orders:refund"))
                    .route(web::post().to(refund)),
            )
            .route("/health", web::get().to(|| async { "ok" }))
    })
    .bind(("127.0.0.1", 3000))?
    .run()
    .await?;
    writer.shutdown_blocking(std::time::Instant::now() + std::time::Duration::from_secs(5));
    Ok(())
}
