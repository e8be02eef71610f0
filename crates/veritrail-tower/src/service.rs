//! [`AuditService`]: the middleware itself.

use std::task::{Context, Poll};

use http::header::HeaderValue;
use http::{HeaderName, Request, Response};
use tower_service::Service;
use veritrail_core::engine::TraceParent;

use crate::future::ResponseFuture;
use crate::layer::AuditLayer;
use crate::view::{HttpView, canonicalise_uri};

/// Authenticates, authorises and audits each request before and after calling `inner`.
#[derive(Clone, Debug)]
pub struct AuditService<S> {
    inner: S,
    layer: AuditLayer,
    request_id_header: HeaderName,
}

impl<S> AuditService<S> {
    /// Wraps `inner` with the configuration of `layer`.
    pub fn new(inner: S, layer: AuditLayer) -> Self {
        let request_id_header = HeaderName::from_bytes(layer.engine.request_id_header().as_bytes())
            .unwrap_or(HeaderName::from_static("x-request-id"));
        AuditService {
            inner,
            layer,
            request_id_header,
        }
    }

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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuditService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<bytes::Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let (exchange, templated) = {
            let view = HttpView {
                req: &req,
                peer: (self.layer.peer)(req.extensions()),
                route: (self.layer.route)(req.extensions()),
            };
            (self.layer.engine.start(&view), view.route.is_some())
        };
        // Without a route template the policy was chosen by the canonical path: the inner
        // service (a router, a file server) gets that path too, so that what runs is what was
        // authorised. With one, the framework has already routed the request.
        if !templated {
            canonicalise_uri(&mut req);
        }
        // An outer layer that started the request's server span names it here.
        if let Some(trace) = req.extensions().get::<TraceParent>() {
            exchange.set_trace(trace);
        }
        let request_id = HeaderValue::from_str(exchange.request_id())
            .ok()
            .map(|id| (self.request_id_header.clone(), id));
        if let Some((name, id)) = &request_id {
            req.headers_mut().insert(name.clone(), id.clone());
        }
        let grpc = crate::grpc::is_grpc(&req);
        if grpc {
            crate::grpc::started(exchange.context(), req.uri().path());
        }
        req.extensions_mut().insert(exchange.context().clone());
        // The service that was driven to readiness is the one to call; keep a clone here.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(exchange, req, inner, request_id, grpc)
    }
}
