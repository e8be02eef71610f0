//! JWT authentication: an [`Authenticator`] that verifies JWS-compact JWTs for several issuers,
//! framework-neutral (the tower and actix adapters drive it through [`TokenRequest`]).
//!
//! ```
//! use std::time::Duration;
//! use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
//! use veritrail_core::auth::{Authenticator, HeaderPairs, Issuer, keyset::KeySet};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = [7u8; 32]; // from a secret store in real life
//! let auth = Authenticator::builder()
//!     .issuer(
//!         Issuer::new("https://idp.example")
//!             .keys(KeySet::from_hmac_secret(&secret, Algorithm::HS256, None)?)
//!             .allow_hmac() // shared secrets are opt-in
//!             .audience("orders-api")
//!             .leeway(Duration::from_secs(30)),
//!     )
//!     .build()?;
//!
//! let now = jsonwebtoken::get_current_timestamp();
//! let claims = serde_json::json!({
//!     "iss": "https://idp.example", "aud": "orders-api", "sub": "alice",
//!     "exp": now + 300, "scope": "orders:read orders:write",
//! });
//! let token = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&secret))?;
//!
//! let bearer = format!("Bearer {token}");
//! let request = HeaderPairs { headers: &[("authorization", &bearer)], query: None };
//! let identity = auth.authenticate(&request).await?;
//! assert_eq!(identity.sub(), Some("alice"));
//! assert!(identity.has_scope("orders:write"));
//!
//! let err = auth.verify("not.a.token").await.unwrap_err();
//! assert_eq!((err.code(), err.status()), ("token_malformed", 401));
//! assert!(err.www_authenticate(Some("orders")).unwrap().contains(r#"error="invalid_token""#));
//! # Ok(())
//! # }
//! ```
//!
//! # What is checked
//!
//! RFC 8725 hardening: the algorithm comes from the key (the JWK's `alg`, the curve, or the
//! configuration), never from the token; `alg: none` is refused; keys named in the token
//! (`jwk`, `jku`, `x5u`, `x5c`) are never trusted; any `crit` is refused (no extension is
//! supported); `kid` is only a map key; ECDSA signatures with r or s zero are refused before
//! the backend sees them. A token is checked only against the keys of the issuer its `iss`
//! names. Claims: `exp` (required by default), `nbf`, `iat` not in the future, leeway, maximum
//! age, `aud` (checked by default), `typ`, required claims, token and header size limits; then
//! custom checks, sync and async.
//!
//! # Verified-token cache
//!
//! Verified tokens are kept, keyed by their SHA-256 (the token itself is not stored), until
//! their `exp`, and dropped as soon as the key that verified them leaves their issuer's key
//! set. Trade-off: a hit skips parsing and the signature (RS256: 17.7 µs → 0.45 µs of CPU in
//! `benches/auth.rs`), but not the time checks against the current clock, the
//! key-still-present check, or the custom checks, so revocation lists and `jti` replay checks
//! still see every request. It costs memory bounded by the capacity (default
//! [`DEFAULT_CACHE_CAPACITY`] tokens), and a compromised key is only forgotten when its key
//! source drops it. Failed verifications are never cached. Turn it off with
//! [`AuthenticatorBuilder::cache_capacity`]`(0)`.
//!
//! # Errors
//!
//! [`AuthError::code`] gives the stable reason (`token_missing`, `multiple_tokens`,
//! `bearer_malformed`, `token_too_large`, `header_too_large`, `token_malformed`, `alg_none`,
//! `alg_unsupported`, `alg_mismatch`, `alg_not_allowed`, `embedded_key`, `crit_unsupported`,
//! `wrong_typ`, `missing_iss`, `wrong_issuer`, `unknown_kid`, `no_matching_key`,
//! `ecdsa_zero_signature`, `bad_signature`, `missing_exp`, `expired`, `not_yet_valid`,
//! `iat_in_future`, `missing_iat`, `token_too_old`, `missing_aud`, `wrong_audience`,
//! `missing_claim`, `invalid_claim`, `insufficient_scope`, `keys_unavailable`,
//! `key_unusable`, or a custom check's own code); [`AuthError::status`] the HTTP status;
//! [`AuthError::www_authenticate`] the RFC 6750 challenge.
//!
//! # Crypto backend
//!
//! See [`backend`]: `aws-lc-rs` (default) or `rust-crypto`, chosen by crate features.

mod authenticator;
pub mod backend;
mod cache;
pub mod clock;
mod error;
mod explain;
mod extract;
mod identity;
mod issuer;
mod jws;
pub mod keyset;
#[cfg(feature = "remote")]
pub mod remote;
pub mod source;

pub use authenticator::{
    AsyncTokenCheck, Authenticator, AuthenticatorBuilder, CheckFuture, ConfigError,
    DEFAULT_CACHE_CAPACITY, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_TOKEN_BYTES, TokenCheck,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{AuthError, BearerError, bearer_challenge};
pub use explain::{Explanation, explain};
pub use extract::{FoundToken, HeaderPairs, TokenRequest, TokenSource, find_token};
pub use identity::Identity;
pub use issuer::{DEFAULT_LEEWAY, Issuer};
pub use keyset::{KeyError, KeySet, SkippedKey, VerificationKey};
pub use source::{KeySetFuture, KeySetListener, KeySource, SourceUnavailable, StaticKeys};
