//! Why a request was not authenticated: [`AuthError`], its stable reason codes, HTTP status
//! and RFC 6750 challenge.
//!
//! Descriptions are fixed texts or configuration-derived names (a claim name, a header name):
//! they never contain the token, any of its claim values or key material, so they are safe in
//! responses, logs and audit events.

use std::borrow::Cow;
use std::time::Duration;

/// An authentication failure. [`code`](Self::code) is a stable, machine-readable reason (the
/// same string goes into audit events); [`status`](Self::status) is the HTTP status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token in any configured source.
    #[error("no bearer token in the request")]
    TokenMissing,
    /// More than one token in one request (RFC 6750 §2).
    #[error("more than one token in the request")]
    MultipleTokens,
    /// More than one `Authorization` header: a request carries one set of credentials
    /// (RFC 9110 §11.6.2), and a server behind us could read another one than we verified.
    #[error("more than one Authorization header in the request")]
    DuplicateAuthorization,
    /// An `Authorization` header (or another header that may carry the token) that is not
    /// printable ASCII: it cannot be checked, so it is not passed over.
    #[error("a credentials header holds bytes that are not printable ASCII")]
    CredentialsNotAscii,
    /// An `Authorization: Bearer` header (or other source) with an empty or ill-formed token.
    #[error("the bearer token is empty or contains characters a JWT cannot contain")]
    BearerMalformed,
    /// The token is longer than the configured maximum.
    #[error("the token is longer than {max} bytes")]
    TokenTooLarge {
        /// The configured maximum.
        max: usize,
    },
    /// The JOSE header is longer than the configured maximum.
    #[error("the token header is longer than {max} bytes")]
    HeaderTooLarge {
        /// The configured maximum.
        max: usize,
    },
    /// The token is not a well-formed JWS compact serialization with a JSON object payload.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The JOSE header (`"header"`) or the claims (`"claims"`) repeat a member name, at any
    /// depth. RFC 7515 and RFC 7519 require unique names; parsers disagree on which of two
    /// equal names wins, so a token that has them means different things to different readers.
    #[error("a member name is repeated in the token's {0}")]
    DuplicateName(&'static str),
    /// `alg` is `none`: unsigned tokens are never accepted.
    #[error("unsigned tokens (alg none) are not accepted")]
    AlgNone,
    /// `alg` names an algorithm this crate does not verify.
    #[error("the token's algorithm is not supported")]
    AlgUnsupported,
    /// `alg` differs from the algorithm of the key the token selects (RFC 8725 §3.1).
    #[error("the token's algorithm does not match its key's algorithm")]
    AlgMismatch,
    /// The algorithm is not allowed for this issuer.
    #[error("the token's algorithm is not allowed for this issuer")]
    AlgNotAllowed,
    /// The header carries a key or a key location (`jwk`, `jku`, `x5u`, `x5c`).
    #[error("keys named in the token header ({0}) are never trusted")]
    EmbeddedKey(&'static str),
    /// The header lists `crit` extensions this crate does not understand (RFC 7515 §4.1.11).
    #[error("the token requires header extensions (crit) that are not supported")]
    CritUnsupported,
    /// `typ` is not the one the issuer requires.
    #[error("the token type (typ) is not the one required")]
    WrongTyp,
    /// No `iss` claim.
    #[error("the token has no issuer (iss)")]
    MissingIssuer,
    /// `iss` is not a configured issuer.
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    /// The header's `kid` is not in the issuer's key set (after a refresh, if dynamic).
    #[error("the token's key id (kid) is not among the issuer's keys")]
    UnknownKid,
    /// The token has no `kid`, and no key of the issuer fits its algorithm.
    #[error("no key of the issuer fits the token")]
    NoMatchingKey,
    /// An ECDSA signature with r or s equal to zero (CVE-2022-21449 class).
    #[error("invalid ECDSA signature (r or s is zero)")]
    EcdsaZeroSignature,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// No `exp` claim, and the issuer requires one.
    #[error("the token has no expiry (exp)")]
    MissingExp,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    /// No `iat` claim, but a maximum token age is configured.
    #[error("the token has no issue time (iat)")]
    MissingIat,
    /// The token is older than the configured maximum age.
    #[error("the token is older than the maximum age")]
    TooOld,
    /// No `aud` claim, but the issuer checks audiences.
    #[error("the token has no audience (aud)")]
    MissingAudience,
    /// None of the token's audiences is accepted.
    #[error("the token is not meant for this service (aud)")]
    WrongAudience,
    /// A required claim is missing.
    #[error("the token lacks the required claim {0:?}")]
    MissingClaim(String),
    /// A registered claim has the wrong JSON type (e.g. a string `exp`).
    #[error("the token's claim {0:?} has an invalid value")]
    InvalidClaim(&'static str),
    /// A custom check refused the token (revocation, `jti` replay, ...).
    #[error("{description}")]
    Rejected {
        /// The check's reason code (`snake_case`), e.g. `token_revoked`.
        code: Cow<'static, str>,
        /// A description without token content.
        description: Cow<'static, str>,
    },
    /// The token is valid but lacks the scopes or roles a route requires.
    #[error("the token lacks the required scope")]
    InsufficientScope {
        /// The scopes required (space-separated in the challenge).
        required: Vec<String>,
    },
    /// The issuer's keys cannot be loaded and none are cached: answer 503 with `Retry-After`.
    #[error("verification keys are unavailable; try again later")]
    KeysUnavailable {
        /// A hint for `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The configured key could not be used by the crypto backend (a configuration error).
    #[error("the verification key could not be used")]
    KeyUnusable,
}

/// The RFC 6750 error attribute of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerError {
    /// No error attribute: the request carried no credentials (RFC 6750 §3.1).
    None,
    /// `invalid_request` (400).
    InvalidRequest,
    /// `invalid_token` (401).
    InvalidToken,
    /// `insufficient_scope` (403).
    InsufficientScope,
}

impl BearerError {
    /// The attribute value, if any.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            BearerError::None => None,
            BearerError::InvalidRequest => Some("invalid_request"),
            BearerError::InvalidToken => Some("invalid_token"),
            BearerError::InsufficientScope => Some("insufficient_scope"),
        }
    }
}

impl AuthError {
    /// The stable machine-readable reason code (`snake_case`).
    pub fn code(&self) -> &str {
        match self {
            AuthError::TokenMissing => "token_missing",
            AuthError::MultipleTokens => "multiple_tokens",
            AuthError::DuplicateAuthorization => "duplicate_authorization",
            AuthError::CredentialsNotAscii => "credentials_not_ascii",
            AuthError::BearerMalformed => "bearer_malformed",
            AuthError::TokenTooLarge { .. } => "token_too_large",
            AuthError::HeaderTooLarge { .. } => "header_too_large",
            AuthError::Malformed(_) => "token_malformed",
            AuthError::DuplicateName(_) => "duplicate_name",
            AuthError::AlgNone => "alg_none",
            AuthError::AlgUnsupported => "alg_unsupported",
            AuthError::AlgMismatch => "alg_mismatch",
            AuthError::AlgNotAllowed => "alg_not_allowed",
            AuthError::EmbeddedKey(_) => "embedded_key",
            AuthError::CritUnsupported => "crit_unsupported",
            AuthError::WrongTyp => "wrong_typ",
            AuthError::MissingIssuer => "missing_iss",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::NoMatchingKey => "no_matching_key",
            AuthError::EcdsaZeroSignature => "ecdsa_zero_signature",
            AuthError::BadSignature => "bad_signature",
            AuthError::MissingExp => "missing_exp",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "iat_in_future",
            AuthError::MissingIat => "missing_iat",
            AuthError::TooOld => "token_too_old",
            AuthError::MissingAudience => "missing_aud",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaim(_) => "invalid_claim",
            AuthError::Rejected { code, .. } => code,
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::KeysUnavailable { .. } => "keys_unavailable",
            AuthError::KeyUnusable => "key_unusable",
        }
    }

    /// The RFC 6750 error class.
    pub fn bearer_error(&self) -> BearerError {
        match self {
            AuthError::TokenMissing => BearerError::None,
            AuthError::MultipleTokens
            | AuthError::DuplicateAuthorization
            | AuthError::CredentialsNotAscii
            | AuthError::BearerMalformed => BearerError::InvalidRequest,
            AuthError::InsufficientScope { .. } => BearerError::InsufficientScope,
            _ => BearerError::InvalidToken,
        }
    }

    /// The HTTP status to answer with: 400 for a malformed request, 401 for a missing or
    /// invalid token, 403 for insufficient scope, 503 when no keys are available, 500 when a
    /// configured key is unusable (with a body and reason code, never an empty 500).
    pub fn status(&self) -> u16 {
        match self {
            AuthError::KeysUnavailable { .. } => 503,
            AuthError::KeyUnusable => 500,
            _ => match self.bearer_error() {
                BearerError::InvalidRequest => 400,
                BearerError::InsufficientScope => 403,
                BearerError::None | BearerError::InvalidToken => 401,
            },
        }
    }

    /// `Retry-After` in whole seconds (at least 1) for 503 answers.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::KeysUnavailable { retry_after } => Some(
                retry_after
                    .map_or(5, |d| d.as_secs_f64().ceil() as u64)
                    .max(1),
            ),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), e.g.
    /// `Bearer realm="api", error="invalid_token", error_description="the token has expired"`.
    /// `None` for 5xx answers, which are not authentication challenges.
    pub fn www_authenticate(&self, realm: Option<&str>) -> Option<String> {
        if self.status() >= 500 {
            return None;
        }
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(realm) = realm {
            params.push(("realm", realm.to_owned()));
        }
        if let Some(error) = self.bearer_error().as_str() {
            params.push(("error", error.to_owned()));
            params.push(("error_description", self.to_string()));
        }
        if let AuthError::InsufficientScope { required } = self {
            params.push(("scope", required.join(" ")));
        }
        Some(bearer_challenge(&params))
    }

    /// An RFC 9457 `application/problem+json` body.
    pub fn problem_json(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "about:blank",
            "title": self.bearer_error().as_str().unwrap_or("unauthorized"),
            "status": self.status(),
            "detail": self.to_string(),
            "code": self.code(),
        })
    }
}

/// Formats `Bearer k="v", ...`; values are quoted strings with `"` and `\` escaped and control
/// characters dropped (RFC 7235 quoted-string).
pub fn bearer_challenge(params: &[(&str, String)]) -> String {
    let mut out = String::from("Bearer");
    for (i, (name, value)) in params.iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars().filter(|c| !c.is_control()) {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc6750() {
        assert_eq!(
            AuthError::TokenMissing
                .www_authenticate(Some("api"))
                .unwrap(),
            r#"Bearer realm="api""#
        );
        assert_eq!(
            AuthError::Expired.www_authenticate(Some("api")).unwrap(),
            r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#
        );
        assert_eq!(AuthError::MultipleTokens.status(), 400);
        let scope = AuthError::InsufficientScope {
            required: vec!["a".into(), "b".into()],
        };
        assert_eq!(scope.status(), 403);
        assert!(
            scope
                .www_authenticate(None)
                .unwrap()
                .ends_with(r#"scope="a b""#)
        );
        let down = AuthError::KeysUnavailable {
            retry_after: Some(Duration::from_millis(2500)),
        };
        assert_eq!(
            (
                down.status(),
                down.retry_after_secs(),
                down.www_authenticate(None)
            ),
            (503, Some(3), None)
        );
        assert_eq!(down.problem_json()["code"], "keys_unavailable");
    }

    #[test]
    fn quoted_strings_are_escaped() {
        let c = bearer_challenge(&[("realm", "a\"b\\c\nd".into())]);
        assert_eq!(c, r#"Bearer realm="a\"b\\cd""#);
    }
}
