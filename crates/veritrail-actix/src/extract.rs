//! Extractors: the verified [`Identity`], typed [`Claims`], and the request's
//! [`AuditContext`]. `Option<Identity>` and `Option<Claims<T>>` work as usual in actix.

use std::future::{Ready, ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use veritrail_core::engine::{self, Rejection};

use crate::response::rejection_response;

/// Why an extractor could not run; renders like the middleware's refusals.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractRejection {
    /// The request has no authenticated caller (no token on an optional or public route).
    #[error("{0}")]
    Unauthenticated(Rejection),
    /// The token's claims do not have the shape the handler asks for.
    #[error("the token's claims do not match what this route expects: {0}")]
    InvalidClaims(String),
    /// No `AuditMiddleware` runs around this route.
    #[error(
        "no veritrail AuditMiddleware around this route: add `.wrap(AuditMiddleware::new(engine))`"
    )]
    MissingMiddleware,
}

impl ExtractRejection {
    /// The refusal as the middleware would render it.
    pub fn rejection(&self) -> Rejection {
        match self {
            ExtractRejection::Unauthenticated(r) => r.clone(),
            ExtractRejection::InvalidClaims(_) => Rejection::invalid_claims(),
            ExtractRejection::MissingMiddleware => Rejection::audit_layer_missing(self.to_string()),
        }
    }
}

impl ResponseError for ExtractRejection {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.rejection().status())
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        rejection_response(&self.rejection())
    }
}

fn context(req: &HttpRequest) -> Result<engine::AuditContext, ExtractRejection> {
    req.extensions()
        .get::<engine::AuditContext>()
        .cloned()
        .ok_or(ExtractRejection::MissingMiddleware)
}

fn identity(req: &HttpRequest) -> Result<engine::Identity, ExtractRejection> {
    let ctx = context(req)?;
    ctx.identity()
        .ok_or_else(|| ExtractRejection::Unauthenticated(ctx.unauthenticated()))
}

/// The request's audit context: name the action and target, add fields, state the outcome.
#[derive(Clone, Debug)]
pub struct AuditContext(pub engine::AuditContext);

impl Deref for AuditContext {
    type Target = engine::AuditContext;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for AuditContext {
    type Error = ExtractRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(context(req).map(AuditContext))
    }
}

/// The verified caller; 401 when the request has none.
#[derive(Clone, Debug)]
pub struct Identity(pub engine::Identity);

impl Deref for Identity {
    type Target = engine::Identity;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for Identity {
    type Error = ExtractRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(identity(req).map(Identity))
    }
}

/// The verified token's claims, deserialised into `T`.
#[derive(Clone, Debug)]
pub struct Claims<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Claims<T> {
    type Error = ExtractRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(identity(req).and_then(|id| {
            id.claims_as::<T>()
                .map(Claims)
                .map_err(|e| ExtractRejection::InvalidClaims(e.to_string()))
        }))
    }
}
