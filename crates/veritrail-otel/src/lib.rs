//! veritrail for OpenTelemetry: each request's HTTP server span tied to its audit event, and
//! every audit event and signed checkpoint exported as an OpenTelemetry log record.
//!
//! - [`OtelLayer`] (a tower layer, outside veritrail's `AuditLayer`): starts or continues the
//!   request's server span with the stable HTTP semantic-convention attributes; the audit
//!   event records that span's trace and span ids, and the span gets `audit.event.id` — from
//!   an event to its trace and back — and `audit.log.index` on `Durable` and `WriteAhead`
//!   routes (an `Async` event has no index yet when the response leaves: find it from the id
//!   with `veritrail events LOG --id EVENT_ID`).
//! - [`OtelLogSink`]: a writer [`Sink`](veritrail_writer::Sink) around the file log that
//!   exports each committed record (the event JSON, key fields as attributes, the trace
//!   context set) and each signed checkpoint — a copy of the log's head kept where the
//!   writer cannot change it.
//! - [`init_from_env`] (feature `otlp`, on by default): OTLP/HTTP providers from the standard
//!   `OTEL_*` variables, with a shutdown that does not deadlock single-threaded runtimes.
//!
//! - [`TracingSpanLayer`] (feature `tracing`): the same correlation for applications whose
//!   server span is a `tracing` span exported through `tracing-opentelemetry`.
//!
//! Nothing here installs a global provider: the layer uses the application's global tracer
//! provider, or the one it is given.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use opentelemetry::Value;
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use veritrail_core::auth::{Authenticator, Issuer, KeySet};
//! use veritrail_core::engine::{Engine, RoutePolicy};
//! use veritrail_core::recorder::MemoryRecorder;
//! use veritrail_otel::OtelLayer;
//! use veritrail_tower::AuditLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let keys = KeySet::from_hmac_secret(&[7u8; 32], jsonwebtoken::Algorithm::HS256, None)?;
//! let authenticator = Authenticator::builder()
//!     .issuer(Issuer::new("https://idp.example").keys(keys).allow_hmac().audience("orders-api"))
//!     .build()?;
//! let recorder = MemoryRecorder::new();
//! let engine = Engine::builder(authenticator, recorder.clone())
//!     .route("/health", RoutePolicy::public())
//!     .build();
//! let spans = InMemorySpanExporter::default();
//! let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
//!
//! let service = ServiceBuilder::new()
//!     .layer(OtelLayer::new().tracer_provider(&provider)) // outside
//!     .layer(AuditLayer::new(engine))
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::from("ok")))
//!     }));
//! service.oneshot(Request::get("/health").body(Full::<Bytes>::default())?).await?;
//!
//! let span = spans.get_finished_spans()?.pop().unwrap();
//! let event = recorder.events().pop().unwrap();
//! let request = &event.as_http().unwrap().request;
//! // The event names the span ...
//! assert_eq!(request.trace_id, Some(span.span_context.trace_id().to_string()));
//! assert_eq!(request.span_id, Some(span.span_context.span_id().to_string()));
//! // ... and the span names the event.
//! let event_id = span.attributes.iter().find(|kv| kv.key.as_str() == "audit.event.id");
//! assert_eq!(event_id.unwrap().value, Value::from(event.id.to_string()));
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![deny(unreachable_pub)]

#[cfg(feature = "axum")]
pub mod axum;
mod enduser;
mod future;
#[cfg(feature = "otlp")]
mod init;
mod layer;
mod sink;
#[cfg(feature = "tracing")]
mod tracing_span;

pub use enduser::EnduserPolicy;
pub use future::ResponseFuture;
#[cfg(feature = "otlp")]
pub use init::{
    DEFAULT_SHUTDOWN_TIMEOUT, InitError, OtelGuard, OtlpConfig, OtlpProtocol, ShutdownError,
    init_from_env,
};
pub use layer::{OtelLayer, OtelService, SCOPE_NAME};
pub use sink::OtelLogSink;
#[cfg(feature = "tracing")]
pub use tracing_span::{TracingSpanFuture, TracingSpanLayer, TracingSpanService};

/// The OpenTelemetry API crate this crate is built against (use it to name its types).
pub use opentelemetry;
/// The OpenTelemetry SDK crate this crate is built against.
pub use opentelemetry_sdk;

/// Span and log attribute: the audit event's id (a UUID v7).
pub const AUDIT_EVENT_ID: &str = "audit.event.id";
/// Log attribute: the audit event's kind (`http`, `start`, `stop`, `gap`, …).
pub const AUDIT_EVENT_KIND: &str = "audit.event.kind";
/// Span and log attribute: the audit event's outcome (`success`, `denied`, …).
pub const AUDIT_EVENT_OUTCOME: &str = "audit.event.outcome";
/// Log attribute: the action the handler named (`order.refund`).
pub const AUDIT_ACTION: &str = "audit.action";
/// Span and log attribute: the audit log's origin (its checkpoint origin line).
pub const AUDIT_LOG_ORIGIN: &str = "audit.log.origin";
/// Span and log attribute: the event's index in the audit log, when known: always on the
/// exported log records, and on spans of `Durable` and `WriteAhead` routes only (an `Async`
/// event is queued, not yet in the log, when its response leaves).
pub const AUDIT_LOG_INDEX: &str = "audit.log.index";
/// Log attribute: the tree size a checkpoint commits to.
pub const AUDIT_CHECKPOINT_SIZE: &str = "audit.checkpoint.size";
/// Log attribute: a checkpoint's root hash (base64, as in the note).
pub const AUDIT_CHECKPOINT_ROOT_HASH: &str = "audit.checkpoint.root_hash";
/// Log attribute, `true` when the body is not the stored record verbatim (a full token in
/// clear was cut down to its fingerprint).
pub const AUDIT_BODY_REDACTED: &str = "audit.body.redacted";
/// The event name of an audit record's log record.
pub const EVENT_NAME_AUDIT: &str = "veritrail.audit.event";
/// The event name of a signed checkpoint's log record.
pub const EVENT_NAME_CHECKPOINT: &str = "veritrail.audit.checkpoint";
