//! veritrail for actix-web 4: every request authenticated with a JWT and recorded in a
//! tamper-evident audit log.
//!
//! actix-web is not tower-based, so this crate drives veritrail-core's request
//! [`Engine`](veritrail_core::engine::Engine) through actix's `Transform` / `Service`,
//! translating requests and responses and nothing more: events have exactly the shape the
//! tower layer produces.
//!
//! - [`AuditMiddleware`]: mount with `App::wrap`.
//! - Extractors: [`Identity`], [`Claims<T>`](Claims), [`AuditContext`].
//! - Per-resource requirements with `Resource::wrap`: [`require_scope`], [`require_role`],
//!   [`durability`].
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use veritrail_actix::{AuditContext, AuditMiddleware, Identity, require_scope};
//! # fn engine() -> veritrail_core::engine::Engine { unimplemented!() }
//!
//! async fn refund(_who: Identity, audit: AuditContext) -> &'static str {
//!     audit.set_action("order.refund");
//!     audit.set_target("order:42");
//!     "refunded"
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let engine = engine();
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(AuditMiddleware::new(engine.clone()))
//!         .service(
//!             web::resource("/orders/{id}/refund")
//!                 .wrap(require_scope("orders:refund"))
//!                 .route(web::post().to(refund)),
//!         )
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```

#![deny(unsafe_code)]
#![deny(unreachable_pub)]

mod extract;
mod middleware;
mod require;
mod response;
mod view;

pub use extract::{AuditContext, Claims, ExtractRejection, Identity};
pub use middleware::{AuditMiddleware, AuditService, LocalBoxFuture};
pub use require::{Require, RequireService, durability, require_role, require_scope};
pub use response::rejection_response;
pub use veritrail_core::engine::{Engine, RoutePolicy};
pub use veritrail_core::recorder::Durability;
