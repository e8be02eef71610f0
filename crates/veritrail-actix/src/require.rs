//! [`Require`]: per-resource requirements inside an [`AuditMiddleware`](crate::AuditMiddleware).

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};
use veritrail_core::engine::{AuditContext, Rejection, RouteRequirements};
use veritrail_core::recorder::Durability;

use crate::middleware::LocalBoxFuture;
use crate::response::rejection_response;

/// Adds requirements to the resources it wraps (`Resource::wrap`, `Scope::wrap`): further
/// scopes and roles (403 `insufficient_scope`), a durability, and for write-ahead the intent
/// record before the handler runs — the engine's [`RouteRequirements`], as
/// `veritrail_tower::RequireLayer` applies them.
#[derive(Clone, Debug, Default)]
pub struct Require {
    requirements: RouteRequirements,
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
    pub fn scope(self, scope: impl Into<String>) -> Self {
        Require {
            requirements: self.requirements.scope(scope),
        }
    }

    /// Also requires `role`.
    pub fn role(self, role: impl Into<String>) -> Self {
        Require {
            requirements: self.requirements.role(role),
        }
    }

    /// Records the wrapped resources' events with `durability`.
    pub fn durability(self, durability: Durability) -> Self {
        Require {
            requirements: self.requirements.durability(durability),
        }
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
            let rejection = Rejection::audit_layer_missing(
                "the resource has veritrail requirements but no AuditMiddleware around it",
            );
            return Box::pin(async move { refuse(req, &rejection) });
        };
        let write_ahead = match ctx.enforce(&self.require.requirements) {
            Ok(write_ahead) => write_ahead,
            Err(rejection) => return Box::pin(async move { refuse(req, &rejection) }),
        };
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
