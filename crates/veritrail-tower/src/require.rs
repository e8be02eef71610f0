//! [`RequireLayer`]: per-route requirements inside an [`AuditLayer`](crate::AuditLayer).
//!
//! Applied to one route (axum's `route_layer`, or any inner tower stack), it checks further
//! scopes and roles against the caller the outer layer authenticated, records the decision in
//! the request's event, can raise the route's durability, and for write-ahead routes makes the
//! intent record durable before the handler runs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;
use veritrail_core::engine::{AuditContext, Rejection, RouteRequirements};
use veritrail_core::recorder::Durability;

use crate::response::rejection_response;

/// Adds requirements to the routes it wraps (see the [module docs](self)).
#[derive(Clone, Debug, Default)]
pub struct RequireLayer {
    requirements: RouteRequirements,
}

/// Requires `scope` (RFC 6750 `insufficient_scope` with a 403 when missing).
pub fn require_scope(scope: impl Into<String>) -> RequireLayer {
    RequireLayer::default().scope(scope)
}

/// Requires `role` (403 when missing).
pub fn require_role(role: impl Into<String>) -> RequireLayer {
    RequireLayer::default().role(role)
}

/// Records the wrapped routes' events with `durability`.
pub fn durability(durability: Durability) -> RequireLayer {
    RequireLayer::default().durability(durability)
}

impl RequireLayer {
    /// Also requires `scope`.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        RequireLayer {
            requirements: self.requirements.scope(scope),
        }
    }

    /// Also requires `role`.
    pub fn role(self, role: impl Into<String>) -> Self {
        RequireLayer {
            requirements: self.requirements.role(role),
        }
    }

    /// Records the wrapped routes' events with `durability`.
    pub fn durability(self, durability: Durability) -> Self {
        RequireLayer {
            requirements: self.requirements.durability(durability),
        }
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of a [`RequireLayer`].
#[derive(Clone, Debug)]
pub struct RequireService<S> {
    inner: S,
    layer: RequireLayer,
}

impl<S> RequireService<S> {
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

/// The response future of a [`RequireService`].
pub type RequireFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<bytes::Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequireFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(ctx) = req.extensions().get::<AuditContext>().cloned() else {
            let rejection = Rejection::audit_layer_missing(
                "the route has veritrail requirements but no AuditLayer around it",
            );
            return Box::pin(async move { Ok(rejection_response(&rejection)) });
        };
        let write_ahead = match ctx.enforce(&self.layer.requirements) {
            Ok(write_ahead) => write_ahead,
            Err(rejection) => return Box::pin(async move { Ok(rejection_response(&rejection)) }),
        };
        Box::pin(async move {
            if let Err(rejection) = write_ahead.await {
                return Ok(rejection_response(&rejection));
            }
            inner.call(req).await
        })
    }
}
