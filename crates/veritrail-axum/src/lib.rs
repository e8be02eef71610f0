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
//! ```
//! use axum::{Router, body::Body, extract::Path, http::Request, routing::{get, post}};
//! use tower::ServiceExt;
//! use veritrail_axum::{AuditContext, Identity, RoutePolicy, require_scope};
//! use veritrail_core::auth::{Authenticator, Issuer, KeySet};
//! use veritrail_core::engine::Engine;
//! use veritrail_core::recorder::MemoryRecorder;
//!
//! async fn refund(Path(id): Path<u64>, who: Identity, audit: AuditContext) -> String {
//!     audit.set_action("order.refund");
//!     audit.set_target(format!("order:{id}"));
//!     format!("refunded {id} for {}", who.sub().unwrap_or("?"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let keys = KeySet::from_hmac_secret(&[7; 32], jsonwebtoken::Algorithm::HS256, None)?;
//! let authenticator = Authenticator::builder()
//!     .issuer(Issuer::new("https://idp.example").keys(keys).allow_hmac().audience("orders"))
//!     .build()?;
//! let recorder = MemoryRecorder::new(); // a veritrail_writer::Writer in production
//! let engine = Engine::builder(authenticator, recorder.clone())
//!     .route("/health", RoutePolicy::public())
//!     .build();
//!
//! let app = Router::new()
//!     .route("/orders/{id}/refund", post(refund).route_layer(require_scope("orders:refund")))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(veritrail_axum::layer(engine));
//!
//! let health = app.clone().oneshot(Request::get("/health").body(Body::empty())?).await?;
//! assert_eq!(health.status(), 200);
//! let refused = app.oneshot(Request::post("/orders/7/refund").body(Body::empty())?).await?;
//! assert_eq!(refused.status(), 401);
//! let event = recorder.events().pop().unwrap();
//! assert_eq!(event.as_http().unwrap().request.route.as_deref(), Some("/orders/{id}/refund"));
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
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
///
/// A request that carries neither `ConnectInfo<SocketAddr>` nor a
/// [`PeerAddr`](veritrail_tower::PeerAddr) is recorded without a client address, and the
/// first such request logs one warning naming the fix (with `tracing`, or on stderr when no
/// `tracing` subscriber is installed).
pub fn layer(engine: Engine) -> AuditLayer {
    AuditLayer::new(engine)
        .peer_addr_with(peer_addr)
        .route_with(matched_path)
}

fn peer_addr(ext: &Extensions) -> Option<IpAddr> {
    let peer = ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| ext.get::<veritrail_tower::PeerAddr>().map(|p| p.0.ip()));
    if peer.is_none() {
        warn_no_peer_once();
    }
    peer
}

/// Whether the missing-client-address warning was given (once per process).
static WARNED_NO_PEER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The warning given, once, for a request without a client address.
pub const NO_PEER_WARNING: &str = "veritrail: requests carry no client address, so audit events \
    record none: serve the app with \
    `axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())` \
    (or insert a veritrail_tower::PeerAddr extension per connection)";

#[cold]
fn warn_no_peer_once() {
    use std::sync::atomic::Ordering;
    if WARNED_NO_PEER.swap(true, Ordering::Relaxed) {
        return;
    }
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{NO_PEER_WARNING}");
    } else {
        eprintln!("warning: {NO_PEER_WARNING}");
    }
}

fn matched_path(ext: &Extensions) -> Option<&str> {
    ext.get::<MatchedPath>().map(MatchedPath::as_str)
}
