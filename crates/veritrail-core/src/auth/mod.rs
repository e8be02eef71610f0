//! JWT authentication.
//!
//! Module ownership during the first build-out (remove this note when done):
//! - `keyset` (key sets from JWK/JWKS/PEM/HMAC) and everything else in `auth/`: the auth helper.
//! - `remote` (JWKS URL store, OIDC discovery; feature `remote`): the JWKS-store helper.

pub mod keyset;
pub mod source;
#[cfg(feature = "remote")]
pub mod remote;
