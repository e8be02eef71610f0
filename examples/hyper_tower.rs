//! veritrail with plain hyper and tower: the `AuditLayer` around a `service_fn`, the peer
//! address handed over per connection.
//!
//! `cargo run --example hyper_tower --features tower -- jwks.json`
use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tower::{ServiceBuilder, ServiceExt};
use veritrail::tower::{AuditContext, AuditLayer, Engine, PeerAddr, RoutePolicy};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(audit) = req.extensions().get::<AuditContext>() {
        audit.set_action("greeting.read");
    }
    Ok(Response::new(Full::from("hello\n")))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jwks = std::fs::read(std::env::args().nth(1).unwrap_or("jwks.json".into()))?;
    let auth = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.example")
                .keys(KeySet::from_jwks(&jwks)?.0)
                .audience("greeter"),
        )
        .build()?;
    let signer = NoteSigner::generate("audit.example/greeter")?;
    std::fs::write("audit-log.pub", signer.verifier().to_text())?;
    let writer = Writer::open("audit-log", signer, WriterConfig::default())?;
    let engine = Engine::builder(auth, writer.handle())
        .route("/health", RoutePolicy::public())
        .build();
    let layer = AuditLayer::new(engine);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let service = ServiceBuilder::new()
            .layer(layer.clone())
            .service_fn(handle);
        // hyper's service gets the peer address in each request's extensions.
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            service.clone().oneshot(req)
        });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                eprintln!("connection from {peer}: {e}");
            }
        });
    }
    // Drains the queue and signs the last checkpoint.
    writer
        .shutdown(std::time::Instant::now() + std::time::Duration::from_secs(5))
        .await;
    Ok(())
}
