//! The seam between the engine and [`crate::auth`]: finding the token through the engine's
//! request view, verifying it, and turning an [`AuthError`] into a [`Rejection`].

use std::sync::Arc;

use crate::auth::{AuthError, FoundToken, TokenRequest};
use crate::event::Actor;

pub use crate::auth::{Authenticator, Identity};

use super::rejection::{Rejection, RejectionKind};
use super::view::RequestView;

/// The engine's request view as the authenticator's token request.
struct Tokens<'a>(&'a dyn RequestView);

impl TokenRequest for Tokens<'_> {
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str)) {
        self.0.for_each_header(name, visit)
    }
    fn for_each_header_bytes(&self, name: &str, visit: &mut dyn FnMut(&[u8])) {
        self.0.for_each_header_bytes(name, visit)
    }
    fn query(&self) -> Option<&str> {
        self.0.query()
    }
}

/// The request's token, if any; two tokens or a malformed one are a 400.
pub(super) fn find_token(
    auth: &Authenticator,
    req: &dyn RequestView,
    realm: Option<&str>,
) -> Result<Option<FoundToken>, Rejection> {
    auth.find_token(&Tokens(req))
        .map_err(|e| rejection(&e, realm))
}

/// The event's actor, with the allow-listed custom claims.
pub(super) fn actor(identity: &Identity, claims: &[String]) -> Arc<Actor> {
    identity.shared_actor(claims)
}

/// The refusal for an authentication failure: the authenticator's status, reason code,
/// RFC 6750 challenge and `Retry-After`.
pub(super) fn rejection(err: &AuthError, realm: Option<&str>) -> Rejection {
    let kind = match err {
        AuthError::InsufficientScope { .. } => RejectionKind::Authorization,
        _ => RejectionKind::Authentication,
    };
    let mut rejection = Rejection::new(kind, err.status(), err.code(), err.to_string());
    if let Some(challenge) = err.www_authenticate(realm) {
        rejection = rejection.with_challenge(challenge);
    }
    if let Some(seconds) = err.retry_after_secs() {
        rejection = rejection.with_retry_after(u32::try_from(seconds).unwrap_or(u32::MAX));
    }
    rejection
}

/// Headers that may carry a token: never recorded.
pub(super) fn token_headers(auth: &Authenticator) -> Vec<String> {
    auth.token_headers()
}

/// Query parameters that may carry a token: never recorded.
pub(super) fn token_query_params(auth: &Authenticator) -> Vec<String> {
    auth.token_query_params()
}
