//! veritrail for tower: one [`Layer`](tower_layer::Layer) that authenticates every request with
//! a JWT and records it — who, what, from where, with what result — in a tamper-evident audit
//! log.
//!
//! [`AuditLayer`] drives veritrail-core's request [`Engine`]:
//! for each request it finds the token, authenticates and authorises the caller against the
//! route's policy, puts the verified identity and an
//! [`AuditContext`] into the request extensions, calls
//! the inner service, and records exactly one `http` event when the response head is ready.
//! Inner errors record `error`; a response future dropped before completion records
//! `cancelled`. Refusals (400 / 401 / 403 / 503) carry an RFC 6750 `WWW-Authenticate`
//! challenge and an RFC 9457 problem body, and are recorded too.
//!
//! Policy is chosen by the route template when a reader gives one (axum's `MatchedPath`),
//! else by the request's canonical path
//! ([`canonical_path`](veritrail_core::engine::canonical_path)); in that case the inner
//! service gets the canonical path too, so that it runs what was authorised. A path without a
//! canonical form (`/%2e%2e/admin`, `/a%2Fb`, `/admin;x`, ...) is refused with
//! `400 invalid_path` before the inner service runs, and recorded.
//!
//! gRPC calls (`content-type: application/grpc`) are refused with gRPC errors
//! (`UNAUTHENTICATED`, `PERMISSION_DENIED`) a gRPC client understands, and recorded with the
//! RPC and its final `grpc-status`: use [`AuditLayer::grpc`] in front of a tonic server (see
//! [`grpc`]).
//!
//! Works with any `Service<http::Request<B>, Response = http::Response<ResBody>>` whose
//! response body can be built from `Bytes` (axum, hyper with `Full<Bytes>`, …).
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use veritrail_core::auth::{Authenticator, Issuer, KeySet};
//! use veritrail_core::engine::{AuditContext, Engine, RoutePolicy};
//! use veritrail_core::recorder::MemoryRecorder;
//! use veritrail_tower::AuditLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let secret = [7u8; 32];
//! # let keys = KeySet::from_hmac_secret(&secret, jsonwebtoken::Algorithm::HS256, None)?;
//! let authenticator = Authenticator::builder()
//!     .issuer(Issuer::new("https://idp.example").keys(keys).allow_hmac().audience("orders-api"))
//!     .build()?;
//! let recorder = MemoryRecorder::new(); // a veritrail_writer::Writer in production
//! let engine = Engine::builder(authenticator, recorder.clone())
//!     .route("/health", RoutePolicy::public())
//!     .build();
//!
//! let service = ServiceBuilder::new()
//!     .layer(AuditLayer::new(engine))
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         if let Some(audit) = req.extensions().get::<AuditContext>() {
//!             audit.set_action("health.check");
//!         }
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::from("ok")))
//!     }));
//!
//! let response = service.clone().oneshot(Request::get("/health").body(Full::<Bytes>::default())?).await?;
//! assert_eq!(response.status(), 200);
//! let refused = service.oneshot(Request::get("/orders").body(Full::<Bytes>::default())?).await?;
//! assert_eq!(refused.status(), 401);
//! assert_eq!(refused.headers()["www-authenticate"], "Bearer");
//! assert_eq!(recorder.len(), 2); // both requests are in the log
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![deny(unreachable_pub)]

mod future;
pub mod grpc;
mod layer;
pub mod require;
mod response;
mod service;
mod view;

pub use future::ResponseFuture;
pub use grpc::{GrpcAuditLayer, GrpcBody};
pub use layer::AuditLayer;
pub use require::{RequireLayer, durability, require_role, require_scope};
pub use response::rejection_response;
pub use service::AuditService;
pub use veritrail_core::engine::{AuditContext, Engine, Rejection, RoutePolicy};
pub use view::{ExtensionReader, PeerAddr, RouteReader};
