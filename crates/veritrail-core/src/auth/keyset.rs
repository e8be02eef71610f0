//! Verification key sets (JWK / JWKS / PEM / HMAC).
//!
//! CONTRACT (owned by the auth helper; the JWKS-store helper codes against it):
//!
//! ```ignore
//! /// One verification key. The algorithm comes from the key (JWK `alg`) or the configuration,
//! /// never from a token.
//! pub struct VerificationKey {
//!     pub kid: Option<String>,
//!     pub alg: jsonwebtoken::Algorithm,
//!     pub key: jsonwebtoken::DecodingKey,
//!     /// RFC 7638 JWK thumbprint (base64url) — stable identity for caches and keyset records.
//!     pub thumbprint: String,
//!     /// The public JWK as published (None for HMAC: secrets are never archived).
//!     pub public_jwk: Option<serde_json::Value>,
//! }  // Debug must not print HMAC material
//!
//! /// An immutable set of keys; cheap to share (`Arc<KeySet>`), swapped atomically on refresh.
//! pub struct KeySet { .. }
//! impl KeySet {
//!     pub fn empty() -> Self;
//!     /// Parses a JWKS document. Keys it cannot use (unknown kty/crv/alg, `use` != "sig",
//!     /// malformed) are skipped and reported, not fatal; an empty usable set is still Ok.
//!     pub fn from_jwks(json: &[u8]) -> Result<(KeySet, Vec<SkippedKey>), KeyError>;
//!     pub fn from_jwk(json: &[u8], default_alg: Option<Algorithm>) -> Result<KeySet, KeyError>;
//!     pub fn from_pem(pem: &[u8], alg: Algorithm, kid: Option<String>) -> Result<KeySet, KeyError>;
//!     pub fn from_hmac_secret(secret: &[u8], alg: Algorithm, kid: Option<String>) -> Result<KeySet, KeyError>;
//!     pub fn merge(sets: impl IntoIterator<Item = KeySet>) -> KeySet;
//!     pub fn len(&self) -> usize;
//!     pub fn is_empty(&self) -> bool;
//!     pub fn keys(&self) -> &[std::sync::Arc<VerificationKey>];
//!     /// The key with this kid, if any.
//!     pub fn by_kid(&self, kid: &str) -> Option<&std::sync::Arc<VerificationKey>>;
//!     /// SHA-256 over the sorted thumbprints: equal sets have equal ids.
//!     pub fn id(&self) -> [u8; 32];
//!     /// `{"keys":[...public JWKs...]}` for the log's `keyset` record (no secrets).
//!     pub fn to_public_jwks(&self) -> serde_json::Value;
//! }
//! pub struct SkippedKey { pub kid: Option<String>, pub reason: String }
//! pub enum KeyError { .. }  // thiserror, no key material in messages
//! ```
