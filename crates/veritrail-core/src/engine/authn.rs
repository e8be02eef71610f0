//! The seam between the engine and the authenticator.
//!
//! TEMPORARY stand-in until `crate::auth::Authenticator` lands: everything the engine needs
//! from authentication goes through these few functions.

use std::sync::Arc;

use serde_json::Value;

use crate::event::Actor;

use super::exchange::EngineFuture;
use super::rejection::{Rejection, RejectionKind, bearer_challenge};
use super::view::RequestView;

/// Verifies tokens (stand-in).
pub struct Authenticator {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

impl Authenticator {
    /// Stand-in constructor.
    pub fn new(key: jsonwebtoken::DecodingKey, validation: jsonwebtoken::Validation) -> Self {
        Authenticator { key, validation }
    }
}

/// A verified caller (stand-in).
#[derive(Clone, Debug)]
pub struct Identity {
    /// The claims.
    pub claims: Arc<Value>,
    /// Header alg.
    pub alg: String,
    /// Header kid.
    pub kid: Option<String>,
}

impl Identity {
    /// The claims (stand-in).
    pub fn claims(&self) -> &Value {
        &self.claims
    }
}

/// A failed verification (stand-in).
#[derive(Debug)]
pub struct AuthError(String);

pub(super) fn find_token(
    _auth: &Authenticator,
    req: &dyn RequestView,
    realm: Option<&str>,
) -> Result<Option<String>, Rejection> {
    let mut found = Vec::new();
    req.for_each_header("authorization", &mut |v| {
        if let Some((scheme, token)) = v.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            found.push(token.trim().to_owned());
        }
    });
    if found.len() > 1 {
        return Err(Rejection::new(
            RejectionKind::Authentication,
            400,
            "multiple_tokens",
            "more than one token",
        )
        .with_challenge(bearer_challenge(
            realm,
            Some(("invalid_request", "more than one token")),
            None,
        )));
    }
    Ok(found.pop())
}

pub(super) fn verify(
    auth: &Arc<Authenticator>,
    token: String,
) -> EngineFuture<Result<Identity, AuthError>> {
    let r = (|| {
        let header = jsonwebtoken::decode_header(&token).map_err(|e| AuthError(e.to_string()))?;
        let data = jsonwebtoken::decode::<Value>(&token, &auth.key, &auth.validation)
            .map_err(|e| AuthError(e.to_string()))?;
        Ok(Identity {
            claims: Arc::new(data.claims),
            alg: format!("{:?}", header.alg),
            kid: header.kid,
        })
    })();
    Box::pin(std::future::ready(r))
}

pub(super) fn actor(identity: &Identity, claims: &[String]) -> Actor {
    let c = &identity.claims;
    let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
    Actor {
        sub: s("sub").map(Into::into),
        iss: s("iss"),
        scopes: s("scope")
            .map(|s| s.split(' ').map(str::to_owned).collect())
            .unwrap_or_default(),
        exp: c.get("exp").and_then(Value::as_i64),
        alg: Some(identity.alg.clone()),
        kid: identity.kid.clone(),
        claims: claims
            .iter()
            .filter_map(|k| Some((k.clone(), c.get(k)?.clone())))
            .collect(),
        ..Actor::default()
    }
}

pub(super) fn rejection(_err: &AuthError, realm: Option<&str>) -> Rejection {
    Rejection::new(
        RejectionKind::Authentication,
        401,
        "invalid_token",
        "the token is invalid",
    )
    .with_challenge(bearer_challenge(
        realm,
        Some(("invalid_token", "the token is invalid")),
        None,
    ))
}

pub(super) fn token_headers(_auth: &Authenticator) -> Vec<String> {
    Vec::new()
}

pub(super) fn token_query_params(_auth: &Authenticator) -> Vec<String> {
    Vec::new()
}
