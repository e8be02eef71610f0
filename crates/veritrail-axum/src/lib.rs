//! veritrail for axum 0.8: every request authenticated with a JWT and recorded in a
//! tamper-evident audit log, with extractors for the caller and per-route requirements.
//!
//! - [`layer`]: the tower [`AuditLayer`] set up for axum (peer address from `ConnectInfo`,
//!   route template from `MatchedPath`). Add it with `Router::layer`.
//! - Extractors: [`Identity`], [`Claims<T>`](Claims) (both also as `Option<_>`), and
//!   [`AuditContext`] for naming the action and its target.
//! - Per-route requirements with `route_layer`: [`require_scope`], [`require_role`],
//!   [`durability`].
//!
//! ```no_run
//! use axum::{Router, routing::{get, post}};
//! use veritrail_axum::{AuditContext, Identity, require_scope};
//! # fn engine() -> veritrail_core::engine::Engine { unimplemented!() }
//!
//! async fn refund(identity: Identity, audit: AuditContext) -> &'static str {
//!     audit.set_action("order.refund");
//!     audit.set_target("order:42");
//!     "refunded"
//! }
//!
//! # async fn run() {
//! let app: Router = Router::new()
//!     .route("/orders/{id}/refund", post(refund).route_layer(require_scope("orders:refund")))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(veritrail_axum::layer(engine()));
//! # }
//! ```

#![deny(unsafe_code)]
#![deny(unreachable_pub)]

mod extract;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::Extensions;

pub use extract::{AuditContext, Claims, ExtractRejection, Identity};
pub use veritrail_core::engine::{Engine, RoutePolicy};
pub use veritrail_core::recorder::Durability;
pub use veritrail_tower::{
    AuditLayer, AuditService, RequireLayer, durability, require_role, require_scope,
};

/// The [`AuditLayer`] for axum: reads the peer address from `ConnectInfo<SocketAddr>` (serve
/// with `into_make_service_with_connect_info::<SocketAddr>()`) and the route template from
/// `MatchedPath`.
pub fn layer(engine: Engine) -> AuditLayer {
    AuditLayer::new(engine)
        .peer_addr_with(peer_addr)
        .route_with(matched_path)
}

fn peer_addr(ext: &Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| ext.get::<veritrail_tower::PeerAddr>().map(|p| p.0.ip()))
}

fn matched_path(ext: &Extensions) -> Option<&str> {
    ext.get::<MatchedPath>().map(MatchedPath::as_str)
}
