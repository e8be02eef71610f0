//! [`TracingSpanLayer`]: for `tracing` users, the current `tracing` span (exported through
//! `tracing-opentelemetry`) is the one the audit event records and names.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use http::{Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use veritrail_core::engine::AuditRecordInfo;

use crate::future::audit_attributes;
use crate::layer::trace_parent;
use crate::{AUDIT_LOG_ORIGIN, EnduserPolicy};

/// Enriches the request's `tracing` span instead of starting a span of its own: for
/// applications whose server span comes from `tracing` (tower-http's `TraceLayer`, or their
/// own `info_span!`) and reaches OpenTelemetry through `tracing-opentelemetry`.
///
/// Place it inside the layer that creates that span (its `call` runs with the span entered,
/// as tower-http's does) and outside veritrail's `AuditLayer`. The audit event records the
/// span's trace and span ids; the span gets `audit.event.id`, `audit.log.index` (on `Durable`
/// and `WriteAhead` routes: an `Async` event has no index yet), `audit.event.outcome`,
/// `audit.log.origin` when configured, and the identity only as the
/// [`EnduserPolicy`] says. The HTTP attributes stay the creating layer's business.
#[derive(Clone, Debug, Default)]
pub struct TracingSpanLayer {
    enduser: EnduserPolicy,
    origin: Option<String>,
}

impl TracingSpanLayer {
    /// A layer that reports no identity and no origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether and how the caller's identity is reported (default: not at all).
    pub fn enduser(mut self, policy: EnduserPolicy) -> Self {
        self.enduser = policy;
        self
    }

    /// The audit log's origin, reported as `audit.log.origin`.
    pub fn log_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }
}

impl<S> Layer<S> for TracingSpanLayer {
    type Service = TracingSpanService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TracingSpanService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of a [`TracingSpanLayer`].
#[derive(Clone, Debug)]
pub struct TracingSpanService<S> {
    inner: S,
    layer: TracingSpanLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TracingSpanService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = TracingSpanFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let span = tracing::Span::current();
        if let Some(trace) = trace_parent(span.context().span().span_context()) {
            req.extensions_mut().insert(trace);
        }
        TracingSpanFuture {
            inner: self.inner.call(req),
            span,
            layer: self.layer.clone(),
        }
    }
}

pin_project! {
    /// The response future of a [`TracingSpanService`].
    pub struct TracingSpanFuture<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        layer: TracingSpanLayer,
    }
}

impl<F, ResBody, E> Future for TracingSpanFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result
            && let Some(record) = response.extensions().get::<AuditRecordInfo>()
        {
            let mut attributes = audit_attributes(record, &this.layer.enduser);
            if let Some(origin) = &this.layer.origin {
                attributes.push(KeyValue::new(AUDIT_LOG_ORIGIN, origin.clone()));
            }
            for kv in attributes {
                this.span.set_attribute(kv.key, kv.value);
            }
        }
        Poll::Ready(result)
    }
}
