//! veritrail with plain hyper and tower: the `AuditLayer` around a `service_fn`, the peer
//! address handed over per connection.
//!
//! ```sh
//! cargo run -p veritrail-cli -- dev-idp --dir /tmp/vt-dev --token alice=orders:read
//! cargo run --example hyper_tower --features tower -- /tmp/vt-dev
//! curl -H "Authorization: Bearer $(cat /tmp/vt-dev/tokens/alice.jwt)" http://127.0.0.1:3000/
//! ```
//!
//! `VERITRAIL_EXAMPLE_CHECK=1` sends a few requests to itself and stops instead of serving
//! until Ctrl-C.
mod common;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tower::{ServiceBuilder, ServiceExt};
use veritrail::tower::{AuditContext, PeerAddr};
use veritrail::{Audit, RoutePolicy};

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(audit) = req.extensions().get::<AuditContext>() {
        audit.set_action("greeting.read");
    }
    Ok(Response::new(Full::from("hello\n")))
}

#[tokio::main]
async fn main() -> Result<(), common::Error> {
    let idp = common::DevIdp::from_args("hyper_tower")?;
    let work = idp.workdir("hyper_tower");
    let audit = Audit::builder()
        .jwks_file(idp.jwks()?)
        .issuer(idp.issuer()?)
        .audience("orders-api")
        .route("/health", RoutePolicy::public())
        .log(work.join("audit-log").to_string_lossy())
        .signing_key(work.join("audit.key"))
        .start()
        .await?;
    let layer = audit.tower_layer();

    let listener = tokio::net::TcpListener::bind(common::listen_addr()).await?;
    let addr = listener.local_addr()?;
    println!(
        "listening on http://{addr}; the log is in {}",
        work.display()
    );
    let accept = async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => return Err::<(), std::io::Error>(e),
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
    };
    let token = if common::self_check() {
        Some(idp.token("alice")?)
    } else {
        None
    };
    let requests = [
        ("GET", "/health", None, 200),
        ("GET", "/", token.as_deref(), 200),
        ("GET", "/", None, 401),
    ];
    let checks = common::until_done(common::check(addr, &requests));
    let checked = tokio::select! {
        accepted = accept => accepted.map_err(Into::into),
        checked = checks => checked,
    };
    // Drains the queue and signs the last checkpoint.
    audit.shutdown().await;
    checked
}
