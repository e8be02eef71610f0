//! veritrail for actix-web 4: every request authenticated with a JWT and recorded in a
//! tamper-evident audit log.
//!
//! actix-web is not tower-based, so this crate drives veritrail-core's request
//! [`Engine`] through actix's `Transform` / `Service`,
//! translating requests and responses and nothing more: events have exactly the shape the
//! tower layer produces.
//!
//! - [`AuditMiddleware`]: mount with `App::wrap`.
//! - Extractors: [`Identity`], [`Claims<T>`](Claims), [`AuditContext`].
//! - Per-resource requirements with `Resource::wrap`: [`require_scope`], [`require_role`],
//!   [`durability`].
//!
//! ```
//! use actix_web::{App, test, web};
//! use veritrail_actix::{AuditContext, AuditMiddleware, Identity, RoutePolicy, require_scope};
//! use veritrail_core::auth::{Authenticator, Issuer, KeySet};
//! use veritrail_core::engine::Engine;
//! use veritrail_core::recorder::MemoryRecorder;
//!
//! async fn refund(id: web::Path<u64>, _who: Identity, audit: AuditContext) -> String {
//!     audit.set_action("order.refund");
//!     audit.set_target(format!("order:{id}"));
//!     "refunded".to_owned()
//! }
//!
//! # #[actix_web::main]
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
//! let app = test::init_service(
//!     App::new()
//!         .wrap(AuditMiddleware::new(engine))
//!         .service(
//!             web::resource("/orders/{id}/refund")
//!                 .wrap(require_scope("orders:refund"))
//!                 .route(web::post().to(refund)),
//!         )
//!         .route("/health", web::get().to(|| async { "ok" })),
//! )
//! .await;
//! let health = test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await;
//! assert_eq!(health.status(), 200);
//! let refused =
//!     test::call_service(&app, test::TestRequest::post().uri("/orders/7/refund").to_request())
//!         .await;
//! assert_eq!(refused.status(), 401);
//! assert_eq!(recorder.len(), 2);
//! let event = recorder.events().pop().unwrap();
//! assert_eq!(event.as_http().unwrap().request.route.as_deref(), Some("/orders/{id}/refund"));
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
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
