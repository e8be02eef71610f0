//! veritrail with actix-web: the same engine and the same events as the tower layer.
//!
//! ```sh
//! cargo run -p veritrail-cli -- dev-idp --dir /tmp/vt-dev --token alice=orders:read,orders:refund
//! cargo run --example actix_quickstart --features actix -- /tmp/vt-dev
//! curl -X POST -H "Authorization: Bearer $(cat /tmp/vt-dev/tokens/alice.jwt)" \
//!     http://127.0.0.1:3000/orders/7/refund
//! # Ctrl-C, then:
//! cargo run -p veritrail-cli -- verify /tmp/vt-dev/actix_quickstart/audit-log \
//!     --key /tmp/vt-dev/actix_quickstart/audit.key.pub --tokens
//! ```
//!
//! `VERITRAIL_EXAMPLE_CHECK=1` sends a few requests to itself and stops instead of serving
//! until Ctrl-C.
mod common;

use actix_web::{App, HttpServer, web};
use veritrail::actix::{AuditContext, Identity, require_scope};
use veritrail::{Audit, EvidenceMode, RoutePolicy};

async fn refund(id: web::Path<u64>, who: Identity, audit: AuditContext) -> String {
    audit.set_action("order.refund");
    audit.set_target(format!("order:{id}"));
    format!("order {id} refunded for {}\n", who.sub().unwrap_or("?"))
}

#[actix_web::main]
async fn main() -> Result<(), common::Error> {
    let idp = common::DevIdp::from_args("actix_quickstart")?;
    let work = idp.workdir("actix_quickstart");
    let audit = Audit::builder()
        .jwks_file(idp.jwks()?)
        .issuer(idp.issuer()?)
        .audience("orders-api")
        .route("/health", RoutePolicy::public())
        .log(work.join("audit-log").to_string_lossy())
        .signing_key(work.join("audit.key"))
        .evidence(EvidenceMode::Full)
        .start()
        .await?;

    let middleware = audit.middleware();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware.clone())
            .service(
                web::resource("/orders/{id}/refund")
                    .wrap(require_scope("orders:refund"))
                    .route(web::post().to(refund)),
            )
            .route("/health", web::get().to(|| async { "ok\n" }))
    })
    .workers(1)
    .bind(common::listen_addr())?;
    let addr = server.addrs()[0];
    println!(
        "listening on http://{addr}; the log is in {}",
        work.display()
    );
    let server = server.run();
    let mut checked = Ok(());
    if common::self_check() {
        let handle = server.handle();
        let serving = actix_web::rt::spawn(server);
        let token = idp.token("alice")?;
        checked = common::check(
            addr,
            &[
                ("GET", "/health", None, 200),
                ("POST", "/orders/7/refund", Some(&token), 200),
                ("POST", "/orders/8/refund", None, 401),
            ],
        )
        .await;
        handle.stop(true).await;
        serving.await??;
    } else {
        server.await?; // until Ctrl-C
    }
    audit.shutdown().await;
    checked
}
