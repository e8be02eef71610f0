//! A development identity provider (feature `dev-idp`): signing keys (RS256, ES256, EdDSA)
//! kept in a directory, their public JWKS, an issuer name, and tokens for chosen subjects and
//! scopes — what `veritrail dev-idp`, the demo and the examples use, so that a service can be
//! tried without a real identity provider.
//!
//! [`DevIdp::open`] makes the keys on first use and reuses them afterwards, so tokens minted
//! by one run verify in the next. The private keys sit unencrypted in `idp-keys.json` (mode
//! 0600 on Unix): for development only.
//!
//! ```
//! use veritrail_core::auth::{Authenticator, Issuer, KeySet};
//! use veritrail_core::dev::DevIdp;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! let idp = DevIdp::open(tmp.path())?; // writes jwks.json and issuer.txt there
//! let token = idp.mint("alice", "orders-api", "orders:read", 300)?;
//!
//! let (keys, _) = KeySet::from_jwks(&std::fs::read(tmp.path().join("jwks.json"))?)?;
//! let auth = Authenticator::builder()
//!     .issuer(Issuer::new(idp.issuer()).keys(keys).audience("orders-api"))
//!     .build()?;
//! assert_eq!(auth.verify(&token).await?.sub(), Some("alice"));
//! // The same directory, the same keys: the token still verifies.
//! assert_eq!(DevIdp::open(tmp.path())?.jwks(), idp.jwks());
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::{Value, json};

/// The issuer (`iss`) of a development identity provider unless told otherwise.
pub const DEV_ISSUER: &str = "https://idp.dev.veritrail.test";

/// The private keys (mode 0600).
pub const KEYS_FILE: &str = "idp-keys.json";
/// The public keys, for the service (`Issuer::keys(KeySet::from_jwks(..))`, `--jwks`).
pub const JWKS_FILE: &str = "jwks.json";
/// The issuer name, on one line.
pub const ISSUER_FILE: &str = "issuer.txt";

/// A JWS algorithm the development identity provider signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    const ALL: [Alg; 3] = [Alg::Rs256, Alg::Es256, Alg::EdDsa];

    fn kid(self) -> &'static str {
        match self {
            Alg::Rs256 => "dev-rsa-1",
            Alg::Es256 => "dev-ec-1",
            Alg::EdDsa => "dev-ed-1",
        }
    }
}

/// Why the development identity provider could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevIdpError {
    /// A file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `idp-keys.json` is not what this module writes.
    #[error("{}: not a development identity provider's keys ({reason})", .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Key generation or signing failed in the crypto library.
    #[error("the crypto library failed to {0}")]
    Crypto(&'static str),
}

enum Private {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct SigningKey {
    alg: Alg,
    private: Private,
}

impl SigningKey {
    fn generate(alg: Alg) -> Result<Self, DevIdpError> {
        let failed = || DevIdpError::Crypto("generate a key");
        let private = match alg {
            Alg::Rs256 => {
                Private::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| failed())?)
            }
            Alg::Es256 => Private::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| failed())?,
            ),
            Alg::EdDsa => Private::Ed(Ed25519KeyPair::generate().map_err(|_| failed())?),
        };
        Ok(SigningKey { alg, private })
    }

    fn from_pkcs8(alg: Alg, der: &[u8]) -> Option<Self> {
        let private = match alg {
            Alg::Rs256 => Private::Rsa(RsaKeyPair::from_pkcs8(der).ok()?),
            Alg::Es256 => {
                Private::Ec(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok()?)
            }
            Alg::EdDsa => Private::Ed(Ed25519KeyPair::from_pkcs8(der).ok()?),
        };
        Some(SigningKey { alg, private })
    }

    fn pkcs8(&self) -> Result<Vec<u8>, DevIdpError> {
        let failed = |_| DevIdpError::Crypto("encode a key");
        Ok(match &self.private {
            Private::Rsa(k) => k.as_der().map_err(failed)?.as_ref().to_vec(),
            Private::Ec(k) => k.to_pkcs8v1().map_err(failed)?.as_ref().to_vec(),
            Private::Ed(k) => k.to_pkcs8v1().map_err(failed)?.as_ref().to_vec(),
        })
    }

    /// The public JWK.
    fn jwk(&self) -> Value {
        let (kid, alg) = (self.alg.kid(), self.alg.name());
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

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DevIdpError> {
        let failed = |_| DevIdpError::Crypto("sign");
        Ok(match &self.private {
            Private::Rsa(k) => {
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(failed)?;
                signature
            }
            Private::Ec(k) => k
                .sign(&SystemRandom::new(), message)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Private::Ed(k) => k.sign(message).as_ref().to_vec(),
        })
    }
}

/// A development identity provider: one signing key per [`Alg`], each with a fixed `kid`
/// (`dev-rsa-1`, `dev-ec-1`, `dev-ed-1`).
pub struct DevIdp {
    issuer: String,
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl DevIdp {
    /// Fresh keys, in memory only, for tokens of `issuer`.
    pub fn generate(issuer: impl Into<String>) -> Result<Self, DevIdpError> {
        Ok(DevIdp {
            issuer: issuer.into(),
            keys: Alg::ALL
                .into_iter()
                .map(SigningKey::generate)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The provider kept in `dir` (created if missing): its keys are loaded from
    /// [`KEYS_FILE`], or made with the issuer [`DEV_ISSUER`] and written there (mode 0600) on
    /// first use. [`JWKS_FILE`] and [`ISSUER_FILE`] are (re)written each time.
    pub fn open(dir: &Path) -> Result<Self, DevIdpError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DevIdpError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let keys_path = dir.join(KEYS_FILE);
        let idp = match std::fs::read(&keys_path) {
            Ok(bytes) => Self::from_keys_file(&keys_path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let idp = Self::generate(DEV_ISSUER)?;
                let mut keys = Vec::new();
                for key in &idp.keys {
                    keys.push(json!({"alg": key.alg.name(), "pkcs8": B64.encode(key.pkcs8()?)}));
                }
                let text = json!({"issuer": idp.issuer, "keys": keys}).to_string();
                write_private(&keys_path, text.as_bytes()).map_err(io(&keys_path))?;
                idp
            }
            Err(e) => return Err(io(&keys_path)(e)),
        };
        let jwks = dir.join(JWKS_FILE);
        std::fs::write(&jwks, format!("{:#}\n", idp.jwks())).map_err(io(&jwks))?;
        let issuer = dir.join(ISSUER_FILE);
        std::fs::write(&issuer, format!("{}\n", idp.issuer)).map_err(io(&issuer))?;
        Ok(idp)
    }

    fn from_keys_file(path: &Path, bytes: &[u8]) -> Result<Self, DevIdpError> {
        let bad = |reason: &str| DevIdpError::Format {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        let issuer = doc["issuer"].as_str().ok_or_else(|| bad("no issuer"))?;
        let mut keys = Vec::new();
        for alg in Alg::ALL {
            let entry = doc["keys"]
                .as_array()
                .and_then(|keys| keys.iter().find(|k| k["alg"] == alg.name()))
                .ok_or_else(|| bad(&format!("no {} key", alg.name())))?;
            let der = entry["pkcs8"]
                .as_str()
                .and_then(|b64| B64.decode(b64).ok())
                .ok_or_else(|| bad("a key is not base64"))?;
            keys.push(
                SigningKey::from_pkcs8(alg, &der)
                    .ok_or_else(|| bad(&format!("the {} key does not load", alg.name())))?,
            );
        }
        Ok(DevIdp {
            issuer: issuer.to_owned(),
            keys,
        })
    }

    /// The issuer (`iss`) its tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(SigningKey::jwk).collect::<Vec<_>>()})
    }

    /// A token with `claims` (a JSON object; `iss` is added when missing), signed with the
    /// `alg` key.
    pub fn token(&self, alg: Alg, claims: &Value) -> Result<String, DevIdpError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.alg == alg)
            .ok_or(DevIdpError::Crypto("find a key for the algorithm"))?;
        let mut claims = claims.clone();
        if let Some(object) = claims.as_object_mut() {
            object
                .entry("iss")
                .or_insert_with(|| Value::String(self.issuer.clone()));
        }
        let header = json!({"alg": alg.name(), "typ": "JWT", "kid": alg.kid()});
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let signature = key.sign(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", B64URL.encode(signature)))
    }

    /// An EdDSA token for `sub` and `audience` with the space-separated `scope`, issued now
    /// and valid for `ttl_secs`, with a fresh `jti`.
    pub fn mint(
        &self,
        sub: &str,
        audience: &str,
        scope: &str,
        ttl_secs: u64,
    ) -> Result<String, DevIdpError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX);
        let claims = json!({"aud": audience, "sub": sub, "scope": scope, "iat": now,
            "exp": now.saturating_add(ttl), "jti": uuid::Uuid::now_v7().to_string()});
        self.token(Alg::EdDsa, &claims)
    }
}

/// Creates (or replaces) `path` with mode 0600 on Unix and writes `bytes`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Authenticator, Issuer, KeySet};

    #[tokio::test]
    async fn every_algorithm_verifies_across_reopens_and_another_idp_is_a_forger() {
        let tmp = tempfile::tempdir().unwrap();
        let idp = DevIdp::open(tmp.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(tmp.path().join(KEYS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({"aud": "api", "sub": "alice", "exp": now + 60});
        let tokens: Vec<String> = Alg::ALL
            .iter()
            .map(|alg| idp.token(*alg, &claims).unwrap())
            .collect();

        let reopened = DevIdp::open(tmp.path()).unwrap();
        let jwks = std::fs::read(tmp.path().join(JWKS_FILE)).unwrap();
        let (keys, skipped) = KeySet::from_jwks(&jwks).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(keys.len(), 3);
        let issuer = std::fs::read_to_string(tmp.path().join(ISSUER_FILE)).unwrap();
        assert_eq!(issuer.trim(), reopened.issuer());
        let auth = Authenticator::builder()
            .issuer(Issuer::new(DEV_ISSUER).keys(keys).audience("api"))
            .build()
            .unwrap();
        for token in tokens
            .iter()
            .chain([&reopened.mint("bob", "api", "x", 60).unwrap()])
        {
            assert!(auth.verify(token).await.is_ok(), "{token}");
        }
        let forger = DevIdp::generate(DEV_ISSUER).unwrap();
        let forged = forger.token(Alg::Rs256, &claims).unwrap();
        assert_eq!(
            auth.verify(&forged).await.unwrap_err().code(),
            "bad_signature"
        );
    }
}
