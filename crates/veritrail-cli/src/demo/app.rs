//! The demo's service: an axum app behind the veritrail layer, served on a loopback port.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use veritrail_axum::{AuditContext, Durability, Engine, Identity, require_scope};

async fn read_order(Path(id): Path<u64>, audit: AuditContext) -> String {
    audit.set_action("order.read");
    audit.set_target(format!("order:{id}"));
    format!("order {id}\n")
}

async fn refund(Path(id): Path<u64>, who: Identity, audit: AuditContext) -> String {
    audit.set_action("order.refund");
    audit.set_target(format!("order:{id}"));
    format!("order {id} refunded for {}\n", who.sub().unwrap_or("?"))
}

/// The routes: `/health` (public), `GET /orders/{id}` (scope `orders:read`) and
/// `POST /orders/{id}/refund` (scope `orders:refund`, recorded durably before the answer).
/// With `otel`, each request's server span is tied to its audit event.
pub(crate) fn router(engine: Engine, otel: Option<veritrail_otel::OtelLayer>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/orders/{id}",
            get(read_order).route_layer(require_scope("orders:read")),
        )
        .route(
            "/orders/{id}/refund",
            post(refund)
                .route_layer(require_scope("orders:refund").durability(Durability::Durable)),
        )
        .layer(veritrail_axum::layer(engine))
        // Outside the audit layer, so that the event records the span's ids.
        .layer(tower::util::option_layer(otel))
}

/// A running server: its address, and how to stop it.
pub(crate) struct Server {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `app` on 127.0.0.1 at a free port.
    pub(crate) async fn start(app: Router) -> Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on a loopback port")?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Server { addr, stop, task })
    }

    /// Stops accepting, waits for the requests in flight, and returns.
    pub(crate) async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .context("the demo server panicked")?
            .context("the demo server failed")
    }
}
