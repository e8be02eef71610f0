//! Verification key sets (JWK / JWKS / PEM / HMAC).
//!
//! A [`KeySet`] is immutable and cheap to share (`Arc<KeySet>`); key sources swap a whole new
//! set in atomically when keys change. Every [`VerificationKey`] carries its algorithm: it comes
//! from the JWK's `alg` member, from the curve (`EC`, `OKP`), or from the configuration, never
//! from a token (RFC 8725 §3.1).
//!
//! Parsing a JWKS document is tolerant in the one way that matters in production: a key this
//! crate cannot use (unknown `kty` or curve, `use` other than `sig`, a malformed member, an RSA
//! modulus under 2048 bits, a symmetric `oct` key) is skipped and reported as a [`SkippedKey`];
//! the usable keys beside it still load.
//!
//! Defaults worth knowing:
//! - An RSA JWK without `alg` gets `RS256` (what OpenID Connect requires every provider to
//!   support); a token signed with PS256 under such a key is refused as an algorithm mismatch.
//!   Publish `alg` or use [`KeySet::from_jwk`] with a default to change that.
//! - Symmetric (`oct`) JWKs are never loaded from documents: HMAC secrets are configured
//!   explicitly through [`KeySet::from_hmac_secret`], and must be at least as long as the hash
//!   output (RFC 7518 §3.2).
//!
//! ```
//! use veritrail_core::auth::keyset::KeySet;
//!
//! let jwks = br#"{"keys":[
//!   {"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
//!   {"kty":"EC","crv":"P-521","kid":"not-supported","x":"AA","y":"AA"}
//! ]}"#;
//! let (keys, skipped) = KeySet::from_jwks(jwks).unwrap();
//! assert_eq!(keys.len(), 1);
//! assert_eq!(keys.by_kid("k1").unwrap().alg, jsonwebtoken::Algorithm::EdDSA);
//! assert_eq!(skipped[0].kid.as_deref(), Some("not-supported"));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;

/// The largest JWKS document accepted by [`KeySet::from_jwks`], in bytes.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The most keys one JWKS document may hold; further keys are skipped.
pub const MAX_JWKS_KEYS: usize = 100;

/// One verification key. The algorithm comes from the key (JWK `alg`) or the configuration,
/// never from a token.
pub struct VerificationKey {
    /// The key id (`kid`), used only to look the key up.
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub alg: Algorithm,
    /// The key in jsonwebtoken's form.
    pub key: DecodingKey,
    /// RFC 7638 JWK thumbprint (base64url SHA-256) — stable identity for caches and keyset
    /// records. For HMAC keys it is a domain-separated SHA-256 of the secret: never published,
    /// but do not log it either.
    pub thumbprint: String,
    /// The public JWK (normalised: `kty`, key members, `kid`, `alg`, `use`), or `None` for
    /// HMAC: secrets are never archived.
    pub public_jwk: Option<Value>,
}

impl VerificationKey {
    /// Whether this is a symmetric (HMAC) key.
    pub fn is_symmetric(&self) -> bool {
        self.public_jwk.is_none()
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material: HMAC secrets must not reach logs.
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("symmetric", &self.is_symmetric())
            .finish_non_exhaustive()
    }
}

/// An immutable set of keys; cheap to share (`Arc<KeySet>`), swapped atomically on refresh.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<Arc<VerificationKey>>,
    by_kid: HashMap<String, usize>,
    id: [u8; 32],
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet").field("keys", &self.keys).finish()
    }
}

impl Default for KeySet {
    fn default() -> Self {
        Self::empty()
    }
}

/// A key of a JWKS document that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's `kid`, when it had a string one.
    pub kid: Option<String>,
    /// Why it was skipped (no key material).
    pub reason: String,
}

/// Why a key or key set could not be loaded. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The document is not JSON, or not the expected JSON shape.
    #[error("invalid key document: {0}")]
    InvalidDocument(String),
    /// The document is larger than [`MAX_JWKS_BYTES`].
    #[error("key document too large ({0} bytes, limit {MAX_JWKS_BYTES})")]
    TooLarge(usize),
    /// The key is of a kind this crate does not use, or malformed.
    #[error("unusable key: {0}")]
    Unusable(String),
    /// The PEM text could not be read as a public key of the configured algorithm.
    #[error("invalid PEM public key for {alg:?}: {reason}")]
    InvalidPem {
        /// The configured algorithm.
        alg: Algorithm,
        /// What is wrong.
        reason: String,
    },
    /// A private key was given where a public key is needed.
    #[error("this PEM holds a private key; configure the public key instead")]
    PrivateKeyPem,
    /// An HMAC secret shorter than the hash output (RFC 7518 §3.2).
    #[error("HMAC secret too short for {alg:?}: {len} bytes, at least {min} required")]
    WeakSecret {
        /// The configured algorithm.
        alg: Algorithm,
        /// The secret's length.
        len: usize,
        /// The minimum length.
        min: usize,
    },
    /// The algorithm does not fit the key kind (e.g. an HMAC algorithm for a PEM key).
    #[error("algorithm {alg:?} cannot be used with {what}")]
    WrongAlgorithm {
        /// The requested algorithm.
        alg: Algorithm,
        /// The kind of key it was requested for.
        what: &'static str,
    },
}

impl KeySet {
    /// A set without keys.
    pub fn empty() -> Self {
        Self::from_keys(Vec::new())
    }

    /// Builds a set from keys. A later key with an already used `kid` or thumbprint+alg is
    /// dropped (the first one wins).
    pub fn from_keys(keys: impl IntoIterator<Item = Arc<VerificationKey>>) -> Self {
        let mut out: Vec<Arc<VerificationKey>> = Vec::new();
        let mut by_kid = HashMap::new();
        for key in keys {
            if out
                .iter()
                .any(|k| k.thumbprint == key.thumbprint && k.alg == key.alg && k.kid == key.kid)
            {
                continue;
            }
            if let Some(kid) = &key.kid {
                if by_kid.contains_key(kid) {
                    continue;
                }
                by_kid.insert(kid.clone(), out.len());
            }
            out.push(key);
        }
        let id = set_id(&out);
        KeySet {
            keys: out,
            by_kid,
            id,
        }
    }

    /// Parses a JWKS document. Keys it cannot use (unknown kty/crv/alg, `use` != "sig",
    /// malformed) are skipped and reported, not fatal; an empty usable set is still Ok.
    pub fn from_jwks(json: &[u8]) -> Result<(KeySet, Vec<SkippedKey>), KeyError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(KeyError::TooLarge(json.len()));
        }
        let doc: Value = serde_json::from_slice(json)
            .map_err(|e| KeyError::InvalidDocument(format!("not JSON ({e})")))?;
        let Some(list) = doc.get("keys").and_then(Value::as_array) else {
            return Err(KeyError::InvalidDocument("no \"keys\" array".into()));
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        let mut seen_kids = std::collections::HashSet::new();
        for (i, jwk) in list.iter().enumerate() {
            let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
            if i >= MAX_JWKS_KEYS {
                skipped.push(SkippedKey {
                    kid,
                    reason: format!("more than {MAX_JWKS_KEYS} keys"),
                });
                continue;
            }
            match parse_jwk(jwk, None) {
                Ok(key) => {
                    if let Some(kid) = &key.kid
                        && !seen_kids.insert(kid.clone())
                    {
                        skipped.push(SkippedKey {
                            kid: Some(kid.clone()),
                            reason: "duplicate kid".into(),
                        });
                        continue;
                    }
                    keys.push(Arc::new(key));
                }
                Err(reason) => skipped.push(SkippedKey { kid, reason }),
            }
        }
        Ok((Self::from_keys(keys), skipped))
    }

    /// Parses one JWK. `default_alg` applies when the JWK has no `alg` (it must fit the key
    /// type); without either, RSA keys get RS256 and EC/OKP keys the curve's algorithm.
    pub fn from_jwk(json: &[u8], default_alg: Option<Algorithm>) -> Result<KeySet, KeyError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(KeyError::TooLarge(json.len()));
        }
        let jwk: Value = serde_json::from_slice(json)
            .map_err(|e| KeyError::InvalidDocument(format!("not JSON ({e})")))?;
        let key = parse_jwk(&jwk, default_alg).map_err(KeyError::Unusable)?;
        Ok(Self::from_keys([Arc::new(key)]))
    }

    /// Reads a PEM public key (`-----BEGIN PUBLIC KEY-----`, SPKI) for an RSA, EC or EdDSA
    /// algorithm.
    pub fn from_pem(pem: &[u8], alg: Algorithm, kid: Option<String>) -> Result<KeySet, KeyError> {
        let key = pem_key(pem, alg, kid)?;
        Ok(Self::from_keys([Arc::new(key)]))
    }

    /// An HMAC secret for HS256/384/512. Refuses secrets shorter than the hash output.
    pub fn from_hmac_secret(
        secret: &[u8],
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<KeySet, KeyError> {
        let min = match alg {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => {
                return Err(KeyError::WrongAlgorithm {
                    alg,
                    what: "an HMAC secret",
                });
            }
        };
        if secret.len() < min {
            return Err(KeyError::WeakSecret {
                alg,
                len: secret.len(),
                min,
            });
        }
        let mut h = Sha256::new();
        h.update(b"veritrail/hmac-key-id/v1\0");
        h.update(secret);
        let key = VerificationKey {
            kid,
            alg,
            key: DecodingKey::from_secret(secret),
            thumbprint: URL_SAFE_NO_PAD.encode(h.finalize()),
            public_jwk: None,
        };
        Ok(Self::from_keys([Arc::new(key)]))
    }

    /// One HMAC secret for every HS algorithm its length allows (HS256 from 32 bytes, HS384
    /// from 48, HS512 from 64), without `kid`: for tools that do not know the algorithm in
    /// advance (`veritrail token verify --hs-secret-file`).
    pub fn from_hmac_secret_any(secret: &[u8]) -> Result<KeySet, KeyError> {
        let sets: Vec<KeySet> = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            .into_iter()
            .filter_map(|alg| Self::from_hmac_secret(secret, alg, None).ok())
            .collect();
        if sets.is_empty() {
            // Report the HS256 minimum.
            Self::from_hmac_secret(secret, Algorithm::HS256, None)?;
        }
        Ok(Self::merge(sets))
    }

    /// All keys of several sets in one (first occurrence of a `kid` wins).
    pub fn merge(sets: impl IntoIterator<Item = KeySet>) -> KeySet {
        Self::from_keys(sets.into_iter().flat_map(|s| s.keys))
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in load order.
    pub fn keys(&self) -> &[Arc<VerificationKey>] {
        &self.keys
    }

    /// The key with this kid, if any.
    pub fn by_kid(&self, kid: &str) -> Option<&Arc<VerificationKey>> {
        self.by_kid.get(kid).map(|&i| &self.keys[i])
    }

    /// Whether a key with this thumbprint and algorithm is in the set.
    pub fn contains(&self, thumbprint: &str, alg: Algorithm) -> bool {
        self.keys
            .iter()
            .any(|k| k.alg == alg && k.thumbprint == thumbprint)
    }

    /// SHA-256 over the sorted `thumbprint alg kid` lines of the keys: equal sets have equal
    /// ids, whatever their order.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// `{"keys":[...public JWKs...]}` for the log's `keyset` record (no secrets).
    pub fn to_public_jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter_map(|k| k.public_jwk.clone())
            .collect();
        json!({ "keys": keys })
    }
}

fn set_id(keys: &[Arc<VerificationKey>]) -> [u8; 32] {
    let mut lines: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "{} {:?} {}",
                k.thumbprint,
                k.alg,
                k.kid.as_deref().unwrap_or("")
            )
        })
        .collect();
    lines.sort();
    let mut h = Sha256::new();
    for line in lines {
        h.update(line.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

/// The JWA name of an algorithm.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

/// The algorithm for a JWA name this crate verifies (`Ed25519`, RFC 9864, maps to EdDSA).
pub fn parse_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "EdDSA" | "Ed25519" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn is_rsa(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
    )
}

fn str_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("member \"{name}\" is not a string")),
    }
}

fn b64_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = str_member(jwk, name)?.ok_or_else(|| format!("member \"{name}\" missing"))?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| format!("member \"{name}\" is not base64url"))
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// Parses one JWK value; the error is a reason for [`SkippedKey`].
fn parse_jwk(jwk: &Value, default_alg: Option<Algorithm>) -> Result<VerificationKey, String> {
    let Some(jwk) = jwk.as_object() else {
        return Err("not a JSON object".into());
    };
    let kid = str_member(jwk, "kid")?.map(str::to_owned);
    if let Some(u) = str_member(jwk, "use")?
        && u != "sig"
    {
        return Err(format!("\"use\" is {u:?}, not \"sig\""));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verifies {
            return Err("\"key_ops\" does not include \"verify\"".into());
        }
    }
    let declared = match str_member(jwk, "alg")? {
        Some(name) => Some(parse_alg(name).ok_or_else(|| format!("unsupported alg {name:?}"))?),
        None => default_alg,
    };
    let kty = str_member(jwk, "kty")?.ok_or("member \"kty\" missing")?;
    match kty {
        "RSA" => {
            let alg = declared.unwrap_or(Algorithm::RS256);
            if !is_rsa(alg) {
                return Err(format!("alg {} does not fit an RSA key", alg_name(alg)));
            }
            let n = b64_member(jwk, "n")?;
            let e = b64_member(jwk, "e")?;
            rsa_key(strip_leading_zeros(&n), strip_leading_zeros(&e), alg, kid)
        }
        "EC" => {
            let crv = str_member(jwk, "crv")?.ok_or("member \"crv\" missing")?;
            let x = b64_member(jwk, "x")?;
            let y = b64_member(jwk, "y")?;
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let key = ec_key(&point, declared, kid)?;
            let expected = key
                .public_jwk
                .as_ref()
                .and_then(|j| j["crv"].as_str())
                .unwrap_or("");
            if expected != crv {
                return Err(format!("coordinates do not fit curve {crv:?}"));
            }
            Ok(key)
        }
        "OKP" => {
            let crv = str_member(jwk, "crv")?.ok_or("member \"crv\" missing")?;
            if crv != "Ed25519" {
                return Err(format!("unsupported OKP curve {crv:?}"));
            }
            ed_key(&b64_member(jwk, "x")?, declared, kid)
        }
        "oct" => {
            Err("symmetric keys are not loaded from JWK documents; configure an HMAC secret".into())
        }
        other => Err(format!("unsupported kty {other:?}")),
    }
}

fn thumbprint(canonical: &Value) -> String {
    // serde_json's Map is a BTreeMap here (no preserve_order), so members are sorted and the
    // compact form is RFC 7638's canonical JSON.
    let text = serde_json::to_string(canonical).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

fn finish(
    mut members: Map<String, Value>,
    key: DecodingKey,
    alg: Algorithm,
    kid: Option<String>,
) -> VerificationKey {
    let tp = thumbprint(&Value::Object(members.clone()));
    if let Some(kid) = &kid {
        members.insert("kid".into(), Value::String(kid.clone()));
    }
    members.insert("alg".into(), Value::String(alg_name(alg).into()));
    members.insert("use".into(), Value::String("sig".into()));
    VerificationKey {
        kid,
        alg,
        key,
        thumbprint: tp,
        public_jwk: Some(Value::Object(members)),
    }
}

fn rsa_key(
    n: &[u8],
    e: &[u8],
    alg: Algorithm,
    kid: Option<String>,
) -> Result<VerificationKey, String> {
    // An empty modulus has 0 bits (found by fuzzing: `n.len() * 8 - 8` underflowed).
    let bits = (n.len() * 8).saturating_sub(n.first().map_or(0, |b| b.leading_zeros() as usize));
    if n.is_empty() || bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA modulus of {bits} bits, at least {MIN_RSA_BITS} required"
        ));
    }
    // e = 1 would make every "signature" equal to its padded message; even e is not RSA.
    let exponent = if e.is_empty() || e.len() > 8 {
        0
    } else {
        e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    };
    if exponent < 3 || exponent % 2 == 0 {
        return Err("RSA exponent out of range (must be odd and at least 3)".into());
    }
    let mut m = Map::new();
    m.insert("e".into(), Value::String(URL_SAFE_NO_PAD.encode(e)));
    m.insert("kty".into(), Value::String("RSA".into()));
    m.insert("n".into(), Value::String(URL_SAFE_NO_PAD.encode(n)));
    Ok(finish(
        m,
        DecodingKey::from_rsa_raw_components(n, e),
        alg,
        kid,
    ))
}

/// `point` is the uncompressed SEC1 point `04 || x || y`.
fn ec_key(
    point: &[u8],
    declared: Option<Algorithm>,
    kid: Option<String>,
) -> Result<VerificationKey, String> {
    let (crv, curve_alg, size) = match point.len() {
        65 => ("P-256", Algorithm::ES256, 32),
        97 => ("P-384", Algorithm::ES384, 48),
        n => {
            return Err(format!(
                "EC point of {n} bytes fits neither P-256 nor P-384"
            ));
        }
    };
    if point[0] != 4 {
        return Err("EC point is not uncompressed".into());
    }
    let alg = declared.unwrap_or(curve_alg);
    if alg != curve_alg {
        return Err(format!("alg {} does not fit curve {crv}", alg_name(alg)));
    }
    let mut m = Map::new();
    m.insert("crv".into(), Value::String(crv.into()));
    m.insert("kty".into(), Value::String("EC".into()));
    m.insert(
        "x".into(),
        Value::String(URL_SAFE_NO_PAD.encode(&point[1..1 + size])),
    );
    m.insert(
        "y".into(),
        Value::String(URL_SAFE_NO_PAD.encode(&point[1 + size..])),
    );
    Ok(finish(m, DecodingKey::from_ec_der(point), alg, kid))
}

fn ed_key(
    x: &[u8],
    declared: Option<Algorithm>,
    kid: Option<String>,
) -> Result<VerificationKey, String> {
    if x.len() != 32 {
        return Err(format!("Ed25519 key of {} bytes, 32 required", x.len()));
    }
    let alg = declared.unwrap_or(Algorithm::EdDSA);
    if alg != Algorithm::EdDSA {
        return Err(format!("alg {} does not fit an Ed25519 key", alg_name(alg)));
    }
    let mut m = Map::new();
    m.insert("crv".into(), Value::String("Ed25519".into()));
    m.insert("kty".into(), Value::String("OKP".into()));
    m.insert("x".into(), Value::String(URL_SAFE_NO_PAD.encode(x)));
    Ok(finish(m, DecodingKey::from_ed_der(x), alg, kid))
}

fn pem_key(pem: &[u8], alg: Algorithm, kid: Option<String>) -> Result<VerificationKey, KeyError> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("PRIVATE KEY-----") {
        return Err(KeyError::PrivateKeyPem);
    }
    let bad = |reason: String| KeyError::InvalidPem { alg, reason };
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            return Err(KeyError::WrongAlgorithm {
                alg,
                what: "a PEM public key",
            });
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let dk = DecodingKey::from_ec_pem(pem).map_err(|e| bad(e.to_string()))?;
            let point = dk.try_get_as_bytes().map_err(|e| bad(e.to_string()))?;
            ec_key(point, Some(alg), kid)
        }
        Algorithm::EdDSA => {
            let dk = DecodingKey::from_ed_pem(pem).map_err(|e| bad(e.to_string()))?;
            let x = dk.try_get_as_bytes().map_err(|e| bad(e.to_string()))?;
            ed_key(x, Some(alg), kid)
        }
        a if is_rsa(a) => {
            let dk = DecodingKey::from_rsa_pem(pem).map_err(|e| bad(e.to_string()))?;
            let der = dk.try_get_as_bytes().map_err(|e| bad(e.to_string()))?;
            let (n, e) = rsa_public_key_der(der)
                .ok_or_else(|| bad("not an RSA public key (SPKI) structure".into()))?;
            rsa_key(strip_leading_zeros(n), strip_leading_zeros(e), alg, kid)
        }
        _ => {
            return Err(KeyError::WrongAlgorithm {
                alg,
                what: "a PEM public key",
            });
        }
    };
    key.map_err(bad)
}

/// Reads one DER TLV: returns (tag, contents, rest).
fn der_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, mut b) = b.split_first()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | x as usize);
        b = &b[n..];
        len
    };
    if b.len() < len {
        return None;
    }
    Some((tag, &b[..len], &b[len..]))
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, seq, rest) = der_tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (t1, n, seq) = der_tlv(seq)?;
    let (t2, e, seq) = der_tlv(seq)?;
    (t1 == 2 && t2 == 2 && seq.is_empty()).then_some((n, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7638 §3.1's example key and thumbprint.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn rfc7638_thumbprint() {
        let jwk = json!({"kty":"RSA","n":RFC7638_N,"e":"AQAB","alg":"RS256","kid":"2011-04-29"});
        let set = KeySet::from_jwk(jwk.to_string().as_bytes(), None).unwrap();
        assert_eq!(
            set.keys()[0].thumbprint,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn an_empty_rsa_modulus_is_skipped_not_a_panic() {
        // Found by the `jwks` fuzz target: the bit count underflowed (a panic in debug builds).
        for n in ["", "AA"] {
            let doc = json!({"keys":[{"kty":"RSA","n":n,"e":"AQAB","kid":"k"}]});
            let (set, skipped) = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
            assert!(set.is_empty());
            assert!(skipped[0].reason.contains(" 0 bits"), "{:?}", skipped[0]);
        }
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let doc = json!({"keys":[
            {"kty":"RSA","n":RFC7638_N,"e":"AQAB","kid":"good"},
            {"kty":"RSA","n":"AQAB","e":"AQAB","kid":"short"},
            {"kty":"RSA","n":RFC7638_N,"e":"AQAB","kid":"enc","use":"enc"},
            {"kty":"RSA","n":RFC7638_N,"e":"AQ","kid":"e1"},
            {"kty":"oct","k":"c2VjcmV0","kid":"sym"},
            {"kty":"RSA","n":RFC7638_N,"e":"AQAB","kid":"weird","alg":"RSA-OAEP"},
            {"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"badpoint"},
            {"kty":"RSA","n":RFC7638_N,"e":"AQAB","kid":"good"},
            "not an object"
        ]});
        let (set, skipped) = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.by_kid("good").unwrap().alg, Algorithm::RS256);
        let kids: Vec<_> = skipped.iter().map(|s| s.kid.as_deref()).collect();
        assert_eq!(
            kids,
            [
                Some("short"),
                Some("enc"),
                Some("e1"),
                Some("sym"),
                Some("weird"),
                Some("badpoint"),
                Some("good"),
                None
            ]
        );
    }

    #[test]
    fn not_a_jwks_is_an_error() {
        assert!(matches!(
            KeySet::from_jwks(b"[]"),
            Err(KeyError::InvalidDocument(_))
        ));
        assert!(matches!(
            KeySet::from_jwks(b"{"),
            Err(KeyError::InvalidDocument(_))
        ));
        let (empty, skipped) = KeySet::from_jwks(br#"{"keys":[]}"#).unwrap();
        assert!(empty.is_empty() && skipped.is_empty());
    }

    #[test]
    fn id_is_order_independent_and_public_jwks_has_no_secrets() {
        let a = KeySet::from_jwk(
            json!({"kty":"RSA","n":RFC7638_N,"e":"AQAB","kid":"a"})
                .to_string()
                .as_bytes(),
            None,
        )
        .unwrap();
        let b = KeySet::from_jwk(
            json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"b"})
                .to_string()
                .as_bytes(),
            None,
        )
        .unwrap();
        let h = KeySet::from_hmac_secret(&[7u8; 32], Algorithm::HS256, Some("h".into())).unwrap();
        let ab = KeySet::merge([a.clone(), b.clone(), h.clone()]);
        let ba = KeySet::merge([h, b, a.clone()]);
        assert_eq!(ab.id(), ba.id());
        assert_ne!(ab.id(), a.id());
        assert_eq!(ab.to_public_jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(!format!("{ab:?}").contains("7, 7"));
    }

    #[test]
    fn hmac_secrets_must_be_long_enough() {
        assert!(matches!(
            KeySet::from_hmac_secret(b"short", Algorithm::HS256, None),
            Err(KeyError::WeakSecret { min: 32, .. })
        ));
        assert!(KeySet::from_hmac_secret(&[1; 48], Algorithm::HS384, None).is_ok());
        let algs = |n: usize| -> Vec<Algorithm> {
            let set = KeySet::from_hmac_secret_any(&vec![1; n]).unwrap();
            set.keys().iter().map(|k| k.alg).collect()
        };
        assert_eq!(algs(48), [Algorithm::HS256, Algorithm::HS384]);
        assert_eq!(algs(64).len(), 3);
        assert!(KeySet::from_hmac_secret_any(&[1; 31]).is_err());
        assert!(matches!(
            KeySet::from_hmac_secret(&[1; 64], Algorithm::RS256, None),
            Err(KeyError::WrongAlgorithm { .. })
        ));
    }

    #[test]
    fn jwk_alg_must_fit_the_key() {
        let jwk = json!({"kty":"RSA","n":RFC7638_N,"e":"AQAB","alg":"ES256"});
        assert!(KeySet::from_jwk(jwk.to_string().as_bytes(), None).is_err());
        let jwk = json!({"kty":"RSA","n":RFC7638_N,"e":"AQAB"});
        let set = KeySet::from_jwk(jwk.to_string().as_bytes(), Some(Algorithm::PS384)).unwrap();
        assert_eq!(set.keys()[0].alg, Algorithm::PS384);
    }

    #[test]
    fn private_pem_is_refused() {
        let pem = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            KeySet::from_pem(pem, Algorithm::RS256, None).unwrap_err(),
            KeyError::PrivateKeyPem
        );
    }
}
