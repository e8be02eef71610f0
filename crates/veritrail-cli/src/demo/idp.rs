//! The demo's identity provider: the development identity provider's keys (RS256, ES256,
//! EdDSA) made at run time, their public JWKS, and JWTs signed with them. The private keys
//! live only in this process.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use veritrail_core::dev::DevIdp;
pub(crate) use veritrail_core::dev::{Alg, DEV_ISSUER as ISSUER};

/// The audience (`aud`) the demo service accepts.
pub(crate) const AUDIENCE: &str = "orders-api";

/// The identity provider (`veritrail dev-idp`'s, with keys that stay in this process), plus
/// a forger: another provider whose keys carry the same `kid`s but are not in the JWKS.
pub(crate) struct IdentityProvider {
    keys: DevIdp,
    forger: DevIdp,
}

impl IdentityProvider {
    /// Makes fresh keys.
    pub(crate) fn generate() -> Result<Self> {
        let make = || DevIdp::generate(ISSUER).context("cannot generate the demo's keys");
        Ok(IdentityProvider {
            keys: make()?,
            forger: make()?,
        })
    }

    /// The public keys as a JWKS document.
    pub(crate) fn jwks(&self) -> Value {
        self.keys.jwks()
    }

    /// A token with `claims`, signed with this provider's `alg` key.
    pub(crate) fn token(&self, alg: Alg, claims: &TokenClaims<'_>) -> Result<String> {
        Ok(self.keys.token(alg, &claims.to_json())?)
    }

    /// A token that looks like an RS256 one of this provider but is signed by someone else.
    pub(crate) fn forged_token(&self, claims: &TokenClaims<'_>) -> Result<String> {
        Ok(self.forger.token(Alg::Rs256, &claims.to_json())?)
    }
}

/// The claims of a demo token.
pub(crate) struct TokenClaims<'a> {
    /// The subject.
    pub(crate) sub: &'a str,
    /// Space-separated scopes.
    pub(crate) scope: &'a str,
    /// Issued at (Unix seconds).
    pub(crate) iat: i64,
    /// Expires at (Unix seconds).
    pub(crate) exp: i64,
    /// A unique token id.
    pub(crate) jti: &'a str,
}

impl TokenClaims<'_> {
    fn to_json(&self) -> Value {
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": self.sub, "scope": self.scope,
            "iat": self.iat, "exp": self.exp, "jti": self.jti})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veritrail_core::auth::{Authenticator, Issuer, KeySet};

    #[tokio::test]
    async fn the_jwks_verifies_every_algorithm_and_refuses_the_forger() {
        let idp = IdentityProvider::generate().unwrap();
        let (keys, skipped) = KeySet::from_jwks(idp.jwks().to_string().as_bytes()).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(keys.len(), 3);
        let auth = Authenticator::builder()
            .issuer(Issuer::new(ISSUER).keys(keys).audience(AUDIENCE))
            .build()
            .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = TokenClaims {
            sub: "alice",
            scope: "orders:read",
            iat: now,
            exp: now + 60,
            jti: "t1",
        };
        for alg in [Alg::Rs256, Alg::Es256, Alg::EdDsa] {
            let identity = auth
                .verify(&idp.token(alg, &claims).unwrap())
                .await
                .unwrap();
            assert_eq!(identity.sub(), Some("alice"));
            assert_eq!(
                veritrail_core::auth::keyset::alg_name(identity.alg()),
                alg.name()
            );
        }
        let forged = idp.forged_token(&claims).unwrap();
        let err = auth.verify(&forged).await.unwrap_err();
        assert_eq!(err.code(), "bad_signature");
    }
}
