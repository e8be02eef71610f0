//! [`OtelLayer`]: the HTTP server span of each request, correlated with its audit event.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{HeaderMap, Request, Response};
use opentelemetry::context::FutureExt as _;
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_semantic_conventions::attribute::{
    HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL, HTTP_ROUTE, URL_PATH, URL_SCHEME,
    USER_AGENT_ORIGINAL,
};
use tower_layer::Layer;
use tower_service::Service;
use veritrail_core::engine::TraceParent;
use veritrail_tower::{ExtensionReader, PeerAddr, RouteReader};

use crate::EnduserPolicy;
use crate::future::ResponseFuture;

/// The instrumentation scope name of veritrail's spans and log records.
pub const SCOPE_NAME: &str = "veritrail";

/// Starts (or continues, from the incoming W3C `traceparent`) an HTTP server span for every
/// request, and ties it to the request's audit event both ways.
///
/// Place it **outside** veritrail's `AuditLayer` (with axum, add it with `Router::layer`
/// *after* the audit layer). It puts the span's ids into the request for the audit layer,
/// which records them as the event's `request.trace_id` / `request.span_id`, and reads the
/// recorded event back from the response to set `audit.event.id` and `audit.log.origin` on
/// the span, and `audit.log.index` when the event's index is known by then (`Durable` and
/// `WriteAhead` routes; an `Async` event is still queued).
///
/// Span name `"{method} {route}"` (or `"{method}"` with no route template), kind `Server`,
/// the stable HTTP semantic-convention attributes (`http.request.method`, `http.route`,
/// `http.response.status_code`, `url.path`, `url.scheme`, `client.address`,
/// `user_agent.original`, `error.type`), error status for 5xx answers and inner errors only,
/// and the identity only as the [`EnduserPolicy`] says.
///
/// It uses the tracer provider the application installed globally (looked up per request, so
/// the layer may be built before the SDK is installed), or the one given with
/// [`tracer_provider`](Self::tracer_provider); it never installs one. With no SDK installed,
/// the incoming `traceparent` still passes through to the audit event.
#[derive(Clone, Debug)]
pub struct OtelLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
pub(crate) struct Config {
    tracer: TracerSource,
    propagator: PropagatorSource,
    pub(crate) route: RouteReader,
    pub(crate) peer: ExtensionReader<IpAddr>,
    pub(crate) scheme: &'static str,
    pub(crate) enduser: EnduserPolicy,
    pub(crate) origin: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("tracer", &self.tracer)
            .field("propagator", &self.propagator)
            .field("scheme", &self.scheme)
            .field("enduser", &self.enduser)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum TracerSource {
    Global(InstrumentationScope),
    Given(Arc<BoxedTracer>),
}

impl std::fmt::Debug for TracerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TracerSource::Global(_) => "Global",
            TracerSource::Given(_) => "Given",
        })
    }
}

#[derive(Clone, Debug)]
enum PropagatorSource {
    W3c(TraceContextPropagator),
    Global,
}

pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

impl Default for OtelLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl OtelLayer {
    /// A layer over the global tracer provider, extracting W3C `traceparent` headers. No
    /// route template is known (see [`route_with`](Self::route_with)); the peer address is
    /// read from veritrail-tower's `PeerAddr` extension.
    pub fn new() -> Self {
        OtelLayer {
            config: Arc::new(Config {
                tracer: TracerSource::Global(scope()),
                propagator: PropagatorSource::W3c(TraceContextPropagator::new()),
                route: |_| None,
                peer: |ext| ext.get::<PeerAddr>().map(|p| p.0.ip()),
                scheme: "http",
                enduser: EnduserPolicy::Omit,
                origin: None,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Uses this tracer provider instead of the global one.
    pub fn tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        let tracer = BoxedTracer::new(Box::new(provider.tracer_with_scope(scope())));
        self.config_mut().tracer = TracerSource::Given(Arc::new(tracer));
        self
    }

    /// Extracts the parent context with the global text-map propagator (set with
    /// `opentelemetry::global::set_text_map_propagator`) instead of W3C Trace Context.
    pub fn global_propagator(mut self) -> Self {
        self.config_mut().propagator = PropagatorSource::Global;
        self
    }

    /// Reads the matched route template with `reader` (e.g. from axum's `MatchedPath`).
    pub fn route_with(mut self, reader: RouteReader) -> Self {
        self.config_mut().route = reader;
        self
    }

    /// Reads the connection's peer address with `reader`; `client.address` is the address the
    /// audit layer resolved through its trusted proxies, and this one only when that is
    /// unknown.
    pub fn peer_addr_with(mut self, reader: ExtensionReader<IpAddr>) -> Self {
        self.config_mut().peer = reader;
        self
    }

    /// The `url.scheme` of requests whose URI has none (default `http`; say `https` behind a
    /// TLS terminator).
    pub fn scheme(mut self, scheme: &'static str) -> Self {
        self.config_mut().scheme = scheme;
        self
    }

    /// Whether and how the caller's identity is reported (default: not at all).
    pub fn enduser(mut self, policy: EnduserPolicy) -> Self {
        self.config_mut().enduser = policy;
        self
    }

    /// The audit log's origin, reported as `audit.log.origin` on every span.
    pub fn log_origin(mut self, origin: impl Into<String>) -> Self {
        self.config_mut().origin = Some(origin.into());
        self
    }
}

impl<S> Layer<S> for OtelLayer {
    type Service = OtelService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OtelService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of an [`OtelLayer`].
#[derive(Clone, Debug)]
pub struct OtelService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> OtelService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OtelService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let parent = match &config.propagator {
            PropagatorSource::W3c(p) => p.extract(&Headers(req.headers())),
            PropagatorSource::Global => {
                global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())))
            }
        };
        let method = req.method().as_str();
        let route = (config.route)(req.extensions());
        let name: Cow<'static, str> = match route {
            Some(route) => format!("{method} {route}").into(),
            None => method.to_owned().into(),
        };
        let mut attributes = Vec::with_capacity(8);
        if let Some(known) = known_method(method) {
            attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, known));
        } else {
            attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, "_OTHER"));
            attributes.push(KeyValue::new(
                HTTP_REQUEST_METHOD_ORIGINAL,
                method.to_owned(),
            ));
        }
        if let Some(route) = route {
            attributes.push(KeyValue::new(HTTP_ROUTE, route.to_owned()));
        }
        attributes.push(KeyValue::new(URL_PATH, req.uri().path().to_owned()));
        let scheme = req.uri().scheme_str().unwrap_or(config.scheme).to_owned();
        attributes.push(KeyValue::new(URL_SCHEME, scheme));
        if let Some(ua) = req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            attributes.push(KeyValue::new(USER_AGENT_ORIGINAL, ua.to_owned()));
        }
        let peer = (config.peer)(req.extensions());
        if let Some(origin) = &config.origin {
            attributes.push(KeyValue::new(crate::AUDIT_LOG_ORIGIN, origin.clone()));
        }
        let builder = opentelemetry::trace::SpanBuilder::from_name(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes);
        let span = match &config.tracer {
            TracerSource::Global(scope) => {
                global::tracer_with_scope(scope.clone()).build_with_context(builder, &parent)
            }
            TracerSource::Given(tracer) => tracer.build_with_context(builder, &parent),
        };
        let cx = parent.with_span(span);
        if let Some(trace) = trace_parent(cx.span().span_context()) {
            req.extensions_mut().insert(trace);
        }
        let future = self.inner.call(req).with_context(cx.clone());
        ResponseFuture::new(future, cx, peer, config.clone())
    }
}

/// The ids the audit event records for a span, if it has valid ones.
pub(crate) fn trace_parent(span: &SpanContext) -> Option<TraceParent> {
    span.is_valid().then(|| TraceParent {
        trace_id: span.trace_id().to_string(),
        span_id: span.span_id().to_string(),
        flags: span.trace_flags().to_u8(),
    })
}

/// The methods `http.request.method` names as they are (semantic conventions: others are
/// `_OTHER`, with the original in `http.request.method_original`).
fn known_method(method: &str) -> Option<&'static str> {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|known| *known == method)
}

/// Request headers as a propagator's carrier.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
