//! veritrail for tower: one [`Layer`](tower_layer::Layer) that authenticates every request with
//! a JWT and records it — who, what, from where, with what result — in a tamper-evident audit
//! log.
//!
//! [`AuditLayer`] drives veritrail-core's request [`Engine`](veritrail_core::engine::Engine):
//! for each request it finds the token, authenticates and authorises the caller against the
//! route's policy, puts the verified identity and an
//! [`AuditContext`](veritrail_core::engine::AuditContext) into the request extensions, calls
//! the inner service, and records exactly one `http` event when the response head is ready.
//! Inner errors record `error`; a response future dropped before completion records
//! `cancelled`. Refusals (400 / 401 / 403 / 503) carry an RFC 6750 `WWW-Authenticate`
//! challenge and an RFC 9457 problem body, and are recorded too.
//!
//! Works with any `Service<http::Request<B>, Response = http::Response<ResBody>>` whose
//! response body can be built from `Bytes` (axum, hyper with `Full<Bytes>`, …).
//!
//! ```
//! # use std::sync::Arc;
//! use veritrail_core::engine::{Engine, RoutePolicy};
//! use veritrail_core::recorder::MemoryRecorder;
//! use veritrail_tower::AuditLayer;
//!
//! # fn demo(authenticator: Arc<veritrail_core::engine::Authenticator>) {
//! let engine = Engine::builder(authenticator, MemoryRecorder::new())
//!     .route("/health", RoutePolicy::public())
//!     .build();
//! let layer = AuditLayer::new(engine);
//! let service = tower::ServiceBuilder::new().layer(layer).service(tower::service_fn(
//!     |_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
//!     },
//! ));
//! # let _ = service;
//! # }
//! ```

#![deny(unsafe_code)]
#![deny(unreachable_pub)]

mod future;
mod layer;
pub mod require;
mod response;
mod service;
mod view;

pub use future::ResponseFuture;
pub use layer::AuditLayer;
pub use require::{RequireLayer, durability, require_role, require_scope};
pub use response::rejection_response;
pub use service::AuditService;
pub use veritrail_core::engine::{AuditContext, Engine, Rejection, RoutePolicy};
pub use view::{ExtensionReader, PeerAddr, RouteReader};
