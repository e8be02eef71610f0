//! veritrail with axum: every request authenticated and written to a verifiable audit log.
//!
//! ```sh
//! cargo run -p veritrail-cli -- dev-idp --dir /tmp/vt-dev --token alice=orders:read,orders:refund
//! cargo run --example axum_quickstart --features axum -- /tmp/vt-dev
//! curl -X POST -H "Authorization: Bearer $(cat /tmp/vt-dev/tokens/alice.jwt)" \
//!     http://127.0.0.1:3000/orders/7/refund
//! # Ctrl-C, then verify the log and re-check its stored tokens against the recorded keys:
//! cargo run -p veritrail-cli -- verify /tmp/vt-dev/axum_quickstart/audit-log \
//!     --key /tmp/vt-dev/axum_quickstart/audit.key.pub --tokens
//! ```
//!
//! The log and its signing key live in `/tmp/vt-dev/axum_quickstart/`: run it again and the
//! same log grows, signed with the same key. `VERITRAIL_EXAMPLE_CHECK=1` sends a few requests
//! to itself and stops instead of serving until Ctrl-C.
mod common;

use axum::{
    Router,
    extract::Path,
    routing::{get, post},
};
use veritrail::axum::{AuditContext, Identity, require_scope};
use veritrail::{Audit, EvidenceMode, RoutePolicy};

async fn refund(Path(id): Path<u64>, who: Identity, audit: AuditContext) -> String {
    audit.set_action("order.refund");
    audit.set_target(format!("order:{id}"));
    format!("order {id} refunded for {}\n", who.sub().unwrap_or("?"))
}

#[tokio::main]
async fn main() -> Result<(), common::Error> {
    let idp = common::DevIdp::from_args("axum_quickstart")?;
    let work = idp.workdir("axum_quickstart");
    let audit = Audit::builder()
        .jwks_file(idp.jwks()?)
        .issuer(idp.issuer()?)
        .audience("orders-api")
        .route("/health", RoutePolicy::public())
        .log(work.join("audit-log").to_string_lossy())
        .signing_key(work.join("audit.key")) // made on the first run, then reused
        .evidence(EvidenceMode::Full) // keeps the tokens, for `verify --tokens`
        .start()
        .await?;

    let app = Router::new()
        .route(
            "/orders/{id}/refund",
            post(refund).route_layer(require_scope("orders:refund")),
        )
        .route("/health", get(|| async { "ok\n" }))
        .layer(audit.layer());
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
            ("POST", "/orders/7/refund", token.as_deref(), 200),
            ("POST", "/orders/8/refund", None, 401),
        ],
    ))
    .await;
    stop.send(()).ok();
    server.await??;
    audit.shutdown().await; // drains the queue, writes `stop` and the last checkpoint
    checked
}
