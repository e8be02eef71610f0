//! The demo's identity provider: signing keys made at run time (RS256, ES256, EdDSA), their
//! public JWKS, and JWTs signed with them. The private keys live only in this process.

use anyhow::{Context, Result, anyhow};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};

/// The demo identity provider's issuer (`iss`).
pub(crate) const ISSUER: &str = "https://idp.demo.veritrail.test";
/// The audience (`aud`) the demo service accepts.
pub(crate) const AUDIENCE: &str = "orders-api";

/// A JWS algorithm the demo signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// The JOSE name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

enum Private {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One signing key and its `kid`.
struct SigningKey {
    kid: String,
    alg: Alg,
    private: Private,
}

impl SigningKey {
    fn generate(alg: Alg, kid: &str) -> Result<Self> {
        let failed = || anyhow!("cannot generate the demo's {} key", alg.name());
        let private = match alg {
            Alg::Rs256 => {
                Private::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| failed())?)
            }
            Alg::Es256 => Private::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| failed())?,
            ),
            Alg::EdDsa => Private::Ed(Ed25519KeyPair::generate().map_err(|_| failed())?),
        };
        Ok(SigningKey {
            kid: kid.to_owned(),
            alg,
            private,
        })
    }

    /// The public JWK.
    fn jwk(&self) -> Value {
        let (kid, alg) = (&self.kid, self.alg.name());
        match &self.private {
            Private::Rsa(k) => {
                let public = k.public_key();
                json!({"kty": "RSA", "kid": kid, "alg": alg, "use": "sig",
                    "n": B64URL.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": B64URL.encode(public.exponent().big_endian_without_leading_zero())})
            }
            Private::Ec(k) => {
                // The uncompressed point: 0x04 ‖ x ‖ y.
                let point = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": alg, "use": "sig",
                    "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65])})
            }
            Private::Ed(k) => json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": alg,
                "use": "sig", "x": B64URL.encode(k.public_key().as_ref())}),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let failed = || anyhow!("cannot sign with the demo's {} key", self.alg.name());
        Ok(match &self.private {
            Private::Rsa(k) => {
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| failed())?;
                signature
            }
            Private::Ec(k) => k
                .sign(&SystemRandom::new(), message)
                .map_err(|_| failed())?
                .as_ref()
                .to_vec(),
            Private::Ed(k) => k.sign(message).as_ref().to_vec(),
        })
    }
}

/// The identity provider: one key per algorithm, plus a forger's key that claims the RS256
/// key's `kid` but is not in the JWKS.
pub(crate) struct IdentityProvider {
    keys: Vec<SigningKey>,
    forger: SigningKey,
}

impl IdentityProvider {
    /// Makes fresh keys.
    pub(crate) fn generate() -> Result<Self> {
        Ok(IdentityProvider {
            keys: vec![
                SigningKey::generate(Alg::Rs256, "demo-rsa-1")?,
                SigningKey::generate(Alg::Es256, "demo-ec-1")?,
                SigningKey::generate(Alg::EdDsa, "demo-ed-1")?,
            ],
            forger: SigningKey::generate(Alg::Rs256, "demo-rsa-1")?,
        })
    }

    /// The public keys as a JWKS document.
    pub(crate) fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(SigningKey::jwk).collect::<Vec<_>>()})
    }

    /// A token with `claims`, signed with this provider's `alg` key.
    pub(crate) fn token(&self, alg: Alg, claims: &TokenClaims<'_>) -> Result<String> {
        let key = self
            .keys
            .iter()
            .find(|k| k.alg == alg)
            .context("no demo key for that algorithm")?;
        sign(key, claims)
    }

    /// A token that looks like an RS256 one of this provider but is signed by someone else.
    pub(crate) fn forged_token(&self, claims: &TokenClaims<'_>) -> Result<String> {
        sign(&self.forger, claims)
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

fn sign(key: &SigningKey, claims: &TokenClaims<'_>) -> Result<String> {
    let header = json!({"alg": key.alg.name(), "typ": "JWT", "kid": key.kid});
    let payload = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": claims.sub,
        "scope": claims.scope, "iat": claims.iat, "exp": claims.exp, "jti": claims.jti});
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(payload.to_string())
    );
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", B64URL.encode(signature)))
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
