//! Extractors: the verified [`Identity`], typed [`Claims`], and the request's
//! [`AuditContext`].

use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use veritrail_core::engine::{self, Rejection};

/// Why an extractor could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractRejection {
    /// The request has no authenticated caller (no token on an optional or public route).
    #[error("{0}")]
    Unauthenticated(Rejection),
    /// The token's claims do not have the shape the handler asks for.
    #[error("the token's claims do not match what this route expects: {0}")]
    InvalidClaims(String),
    /// No `AuditLayer` runs around this route.
    #[error(
        "no veritrail AuditLayer around this route: add `.layer(veritrail_axum::layer(engine))`"
    )]
    MissingLayer,
}

impl ExtractRejection {
    /// The refusal as the layer would render it.
    pub fn rejection(&self) -> Rejection {
        match self {
            ExtractRejection::Unauthenticated(r) => r.clone(),
            ExtractRejection::InvalidClaims(_) => Rejection::invalid_claims(),
            ExtractRejection::MissingLayer => Rejection::audit_layer_missing(self.to_string()),
        }
    }
}

impl IntoResponse for ExtractRejection {
    fn into_response(self) -> Response {
        veritrail_tower::rejection_response(&self.rejection())
    }
}

/// The request's audit context: name the action and target, add fields, state the outcome.
///
/// ```
/// use veritrail_axum::AuditContext;
///
/// async fn refund(audit: AuditContext) -> &'static str {
///     audit.set_action("order.refund");
///     audit.set_target("order:42");
///     "refunded"
/// }
/// ```
#[derive(Clone, Debug)]
pub struct AuditContext(pub engine::AuditContext);

impl Deref for AuditContext {
    type Target = engine::AuditContext;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

fn context(parts: &Parts) -> Result<&engine::AuditContext, ExtractRejection> {
    parts
        .extensions
        .get::<engine::AuditContext>()
        .ok_or(ExtractRejection::MissingLayer)
}

impl<S: Send + Sync> FromRequestParts<S> for AuditContext {
    type Rejection = ExtractRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        context(parts).cloned().map(AuditContext)
    }
}

/// The verified caller. Refuses with 401 when the request has none (use `Option<Identity>` on
/// routes where a token is optional).
#[derive(Clone, Debug)]
pub struct Identity(pub engine::Identity);

impl Deref for Identity {
    type Target = engine::Identity;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

fn identity(parts: &Parts) -> Result<Option<engine::Identity>, ExtractRejection> {
    Ok(context(parts)?.identity())
}

fn unauthenticated(parts: &Parts) -> ExtractRejection {
    match context(parts) {
        Ok(ctx) => ExtractRejection::Unauthenticated(ctx.unauthenticated()),
        Err(e) => e,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ExtractRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        identity(parts)?
            .map(Identity)
            .ok_or_else(|| unauthenticated(parts))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = ExtractRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(identity(parts)?.map(Identity))
    }
}

/// The verified token's claims, deserialised into `T`.
///
/// ```
/// use serde::Deserialize;
/// use veritrail_axum::Claims;
///
/// #[derive(Deserialize)]
/// struct OrderClaims { sub: String, tenant: String }
///
/// async fn whoami(Claims(claims): Claims<OrderClaims>) -> String {
///     format!("{} of {}", claims.sub, claims.tenant)
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Claims<T>(pub T);

fn claims<T: DeserializeOwned>(identity: &engine::Identity) -> Result<T, ExtractRejection> {
    identity
        .claims_as::<T>()
        .map_err(|e| ExtractRejection::InvalidClaims(e.to_string()))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = ExtractRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let identity = identity(parts)?.ok_or_else(|| unauthenticated(parts))?;
        claims(&identity).map(Claims)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequestParts<S> for Claims<T> {
    type Rejection = ExtractRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        match identity(parts)? {
            Some(identity) => claims(&identity).map(|c| Some(Claims(c))),
            None => Ok(None),
        }
    }
}
