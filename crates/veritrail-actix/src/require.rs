//! [`Require`]: per-resource requirements inside an [`AuditMiddleware`](crate::AuditMiddleware).

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};
use veritrail_core::engine::{AuditContext, Rejection, RejectionKind, RoutePolicy};
use veritrail_core::recorder::Durability;

use crate::middleware::LocalBoxFuture;
use crate::response::rejection_response;

/// Adds requirements to the resources it wraps (`Resource::wrap`, `Scope::wrap`): further
/// scopes and roles (403 `insufficient_scope`), a durability, and for write-ahead the intent
/// record before the handler runs. The same checks as `veritrail_tower::RequireLayer`.
#[derive(Clone, Debug, Default)]
pub struct Require {
    policy: RoutePolicy,
    durability: Option<Durability>,
}

/// Requires `scope`.
pub fn require_scope(scope: impl Into<String>) -> Require {
    Require::default().scope(scope)
}

/// Requires `role`.
pub fn require_role(role: impl Into<String>) -> Require {
    Require::default().role(role)
}

/// Records the wrapped resources' events with `durability`.
pub fn durability(durability: Durability) -> Require {
    Require::default().durability(durability)
}

impl Require {
    /// Also requires `scope`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.policy.scopes.push(scope.into());
        self
    }

    /// Also requires `role`.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.policy.roles.push(role.into());
        self
    }

    /// Records the wrapped resources' events with `durability`.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for Require
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RequireService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireService {
            service: Rc::new(service),
            require: self.clone(),
        }))
    }
}

/// The service of a [`Require`].
#[derive(Debug)]
pub struct RequireService<S> {
    service: Rc<S>,
    require: Require,
}

impl<S, B> Service<ServiceRequest> for RequireService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let refuse = |req: ServiceRequest, rejection: &Rejection| {
            Ok(req
                .into_response(rejection_response(rejection))
                .map_into_right_body())
        };
        let Some(ctx) = req.extensions().get::<AuditContext>().cloned() else {
            let rejection = Rejection::new(
                RejectionKind::AuditUnavailable,
                500,
                "audit_layer_missing",
                "the resource has veritrail requirements but no AuditMiddleware around it",
            );
            return Box::pin(async move { refuse(req, &rejection) });
        };
        if let Err(rejection) = ctx.require(&self.require.policy) {
            return Box::pin(async move { refuse(req, &rejection) });
        }
        if let Some(durability) = self.require.durability {
            ctx.set_durability(durability);
        }
        let write_ahead = ctx.write_ahead();
        Box::pin(async move {
            if let Err(rejection) = write_ahead.await {
                return refuse(req, &rejection);
            }
            service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        })
    }
}
