//! Field protection: AEAD encryption and keyed-HMAC pseudonymisation of chosen fields.
//!
//! A [`Protection`] names fields and what happens to each; [`Protection::apply`] replaces
//! their values in the event, before it is handed to the recorder, so the clear value never
//! reaches the log. The log stays verifiable without the keys: the protected form is what is
//! stored and hashed.
//!
//! - **Encryption** (`{"enc":"xchacha20poly1305","kid":"k1","nonce":"..","ct":".."}`):
//!   XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`, audited, pure Rust). Its 192-bit nonce
//!   is safe to draw at random for any number of events under one key, which AES-256-GCM's
//!   96-bit nonce is not. The plaintext is the compact JSON of the value (`"alice"` for a
//!   string), so that decryption restores its type; the associated data is
//!   `veritrail-field-v1 \0 kid \0 path \0 event-id`, so a ciphertext cannot be moved to
//!   another field or event. `nonce` and `ct` are base64url without padding.
//! - **Pseudonymisation** (`{"hmac":"k2","v":".."}`): HMAC-SHA-256 under the key, over the
//!   UTF-8 bytes of a string value (the compact JSON of any other value), base64url without
//!   padding. The same input gives the same output under the same key, so equality search
//!   works: compute the pseudonym of what you look for with [`FieldKeys::pseudonym`]. Meant
//!   for scalar values: a JSON object's pseudonym depends on its member order as serialised.
//!
//! Fields that can be protected (paths): `actor.sub`, `actor.jti`, `actor.claims.<name>`,
//! `token.jwt`, `request.path`, `request.raw_path`, `request.client_address`,
//! `request.user_agent`, `request.query.<name>`, `request.headers.<name>`, `target`,
//! `extra.<name>`. A rule for `request.path` covers `request.raw_path` too (the same path as
//! sent), unless `request.raw_path` has a rule of its own.
//!
//! Keys are zeroized when dropped and never shown by `Debug`, `Display` or errors.
//!
//! ```
//! use veritrail_core::event::AuditEvent;
//! use veritrail_core::event::protect::{FieldKeys, Protection};
//!
//! let keys = FieldKeys::new()
//!     .with_encryption_key("k1", &[7u8; 32])?
//!     .with_pseudonym_key("k2", &[9u8; 32])?;
//! let protection = Protection::new(keys.clone())
//!     .encrypt("request.client_address", "k1")?
//!     .pseudonymise("actor.claims.email", "k2")?;
//!
//! let mut event = AuditEvent::http("GET", "/me")
//!     .client_address("203.0.113.9")
//!     .actor(veritrail_core::event::Actor {
//!         claims: [("email".to_owned(), "alice@example.com".into())].into(),
//!         ..Default::default()
//!     })
//!     .build();
//! protection.apply(&mut event)?;
//! let mut record = Vec::new();
//! event.write_json(0, &mut record);
//! assert!(!String::from_utf8_lossy(&record).contains("203.0.113.9"));
//! assert!(!String::from_utf8_lossy(&record).contains("alice@example.com"));
//!
//! // An auditor holding k1 reads the address back; anyone holding k2 can search by email.
//! keys.reveal(&mut event)?;
//! let request = &event.as_http().unwrap().request;
//! assert_eq!(request.client_address.as_ref().unwrap().as_plain(), Some("203.0.113.9"));
//! let wanted = keys.pseudonym("k2", &"alice@example.com".into())?;
//! let claim = &event.as_http().unwrap().actor.as_ref().unwrap().claims["email"];
//! assert_eq!(claim, &serde_json::to_value(&wanted)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{AuditEvent, HttpEvent, TokenEvidence};

/// The `enc` value of an [`EncryptedField`].
pub const ALGORITHM: &str = "xchacha20poly1305";
const AAD_LABEL: &[u8] = b"veritrail-field-v1";
const MIN_PSEUDONYM_KEY: usize = 32;

/// A string field that field protection may replace by its encrypted or pseudonymised form.
///
/// Serialised as a plain JSON string, or as the protected object in its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Text {
    /// The value in clear.
    Plain(String),
    /// The value encrypted under a key id.
    Encrypted(EncryptedField),
    /// The value replaced by its keyed HMAC.
    Pseudonym(PseudonymField),
}

impl Text {
    /// The clear value, if not protected.
    pub fn as_plain(&self) -> Option<&str> {
        match self {
            Text::Plain(s) => Some(s),
            _ => None,
        }
    }

    /// Whether encryption or pseudonymisation replaced the value.
    pub fn is_protected(&self) -> bool {
        !matches!(self, Text::Plain(_))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> serde::de::Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, or an encrypted or pseudonym object")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text, E> {
        Ok(Text::Plain(s.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Text, E> {
        Ok(Text::Plain(s))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Text, A::Error> {
        let form = ProtectedForm::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        form.into_text().ok_or_else(|| {
            serde::de::Error::custom(
                "a protected field has either enc, kid, nonce and ct, or hmac and v",
            )
        })
    }
}

/// Either protected object, read by member names (never from an array).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtectedForm {
    enc: Option<String>,
    kid: Option<String>,
    nonce: Option<String>,
    ct: Option<String>,
    hmac: Option<String>,
    v: Option<String>,
}

impl ProtectedForm {
    fn into_text(self) -> Option<Text> {
        match self {
            ProtectedForm {
                enc: Some(enc),
                kid: Some(kid),
                nonce: Some(nonce),
                ct: Some(ct),
                hmac: None,
                v: None,
            } => Some(Text::Encrypted(EncryptedField {
                enc,
                kid,
                nonce,
                ct,
            })),
            ProtectedForm {
                enc: None,
                kid: None,
                nonce: None,
                ct: None,
                hmac: Some(hmac),
                v: Some(v),
            } => Some(Text::Pseudonym(PseudonymField { hmac, v })),
            _ => None,
        }
    }

    /// The protected form of a claim or extra value, if it is one.
    fn of_value(value: &Value) -> Option<Text> {
        if !value.is_object() {
            return None;
        }
        ProtectedForm::deserialize(value).ok()?.into_text()
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::Plain(String::new())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::Plain(s)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::Plain(s.to_owned())
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Text::Plain(s.clone())
    }
}

/// An encrypted field value: `{"enc":"xchacha20poly1305","kid":"k1","nonce":"..","ct":".."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedField {
    /// The AEAD algorithm; always `xchacha20poly1305`.
    pub enc: String,
    /// The id of the key it was encrypted under.
    pub kid: String,
    /// The 24-byte nonce, base64url without padding.
    pub nonce: String,
    /// Ciphertext with its 16-byte tag, base64url without padding.
    pub ct: String,
}

/// A pseudonymised field value: `{"hmac":"k2","v":".."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymField {
    /// The id of the HMAC key.
    pub hmac: String,
    /// HMAC-SHA-256 of the value, base64url without padding.
    pub v: String,
}

/// What went wrong protecting or revealing a field. Never carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectError {
    /// The path is not one of the protectable fields.
    #[error("`{0}` is not a protectable field (see veritrail_core::event::protect for the list)")]
    UnknownPath(String),
    /// The same field was given two treatments.
    #[error("field `{0}` is already protected by another rule")]
    DuplicatePath(String),
    /// No key with this id is loaded.
    #[error("no {kind} key with id `{kid}` is loaded")]
    UnknownKey {
        /// `encryption` or `pseudonym`.
        kind: &'static str,
        /// The key id.
        kid: String,
    },
    /// A key has the wrong length.
    #[error("{kind} key `{kid}` must be {expected} bytes, got {got}")]
    KeyLength {
        /// `encryption` or `pseudonym`.
        kind: &'static str,
        /// The key id.
        kid: String,
        /// The required length (for pseudonym keys, the minimum).
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The field names an algorithm this build does not know.
    #[error("field `{path}` is encrypted with unsupported algorithm `{enc}`")]
    Algorithm {
        /// The field path.
        path: String,
        /// The `enc` value found.
        enc: String,
    },
    /// Decryption failed: wrong key, or the field, its path or its event id was altered.
    #[error(
        "field `{path}` did not decrypt under key `{kid}`: wrong key, or the record was altered"
    )]
    Decrypt {
        /// The field path.
        path: String,
        /// The key id.
        kid: String,
    },
    /// The nonce or ciphertext is not valid base64url, or the plaintext is not the JSON expected.
    #[error("field `{path}` is malformed: {reason}")]
    Malformed {
        /// The field path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Encryption failed (random number generator unavailable).
    #[error("could not encrypt field `{0}`: the system random number generator failed")]
    Encrypt(String),
}

/// A field that can be protected.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldPath {
    /// `actor.sub`
    ActorSub,
    /// `actor.jti`
    ActorJti,
    /// `actor.claims.<name>`
    ActorClaim(String),
    /// `token.jwt` (the full token, in `full` evidence mode)
    TokenJwt,
    /// `request.path`
    RequestPath,
    /// `request.raw_path` (protected along with `request.path` unless it has its own rule)
    RequestRawPath,
    /// `request.client_address`
    RequestClientAddress,
    /// `request.user_agent`
    RequestUserAgent,
    /// `request.query.<name>`
    RequestQuery(String),
    /// `request.headers.<name>` (lowercase)
    RequestHeader(String),
    /// `target`
    Target,
    /// `extra.<name>`
    Extra(String),
}

impl std::str::FromStr for FieldPath {
    type Err = ProtectError;

    fn from_str(path: &str) -> Result<Self, ProtectError> {
        let named = |prefix: &str| {
            path.strip_prefix(prefix)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
        };
        Ok(match path {
            "actor.sub" => FieldPath::ActorSub,
            "actor.jti" => FieldPath::ActorJti,
            "token.jwt" => FieldPath::TokenJwt,
            "request.path" => FieldPath::RequestPath,
            "request.raw_path" => FieldPath::RequestRawPath,
            "request.client_address" => FieldPath::RequestClientAddress,
            "request.user_agent" => FieldPath::RequestUserAgent,
            "target" => FieldPath::Target,
            _ => {
                if let Some(name) = named("actor.claims.") {
                    FieldPath::ActorClaim(name)
                } else if let Some(name) = named("request.query.") {
                    FieldPath::RequestQuery(name)
                } else if let Some(name) = named("request.headers.") {
                    FieldPath::RequestHeader(name.to_ascii_lowercase())
                } else if let Some(name) = named("extra.") {
                    FieldPath::Extra(name)
                } else {
                    return Err(ProtectError::UnknownPath(path.to_owned()));
                }
            }
        })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::ActorSub => f.write_str("actor.sub"),
            FieldPath::ActorJti => f.write_str("actor.jti"),
            FieldPath::ActorClaim(n) => write!(f, "actor.claims.{n}"),
            FieldPath::TokenJwt => f.write_str("token.jwt"),
            FieldPath::RequestPath => f.write_str("request.path"),
            FieldPath::RequestRawPath => f.write_str("request.raw_path"),
            FieldPath::RequestClientAddress => f.write_str("request.client_address"),
            FieldPath::RequestUserAgent => f.write_str("request.user_agent"),
            FieldPath::RequestQuery(n) => write!(f, "request.query.{n}"),
            FieldPath::RequestHeader(n) => write!(f, "request.headers.{n}"),
            FieldPath::Target => f.write_str("target"),
            FieldPath::Extra(n) => write!(f, "extra.{n}"),
        }
    }
}

/// A mutable view of one field's value, wherever it lives in the event.
enum Slot<'a> {
    Text(&'a mut Text),
    Value(&'a mut Value),
}

impl FieldPath {
    /// The field's value in `event`, if present.
    fn slot<'a>(&self, event: &'a mut HttpEvent) -> Option<Slot<'a>> {
        use FieldPath::*;
        Some(match self {
            ActorSub => Slot::Text(Arc::make_mut(event.actor.as_mut()?).sub.as_mut()?),
            ActorJti => Slot::Text(Arc::make_mut(event.actor.as_mut()?).jti.as_mut()?),
            ActorClaim(n) => Slot::Value(Arc::make_mut(event.actor.as_mut()?).claims.get_mut(n)?),
            TokenJwt => match event.token.as_mut()? {
                TokenEvidence::Full { jwt, .. } => Slot::Text(jwt),
                _ => return None,
            },
            RequestPath => Slot::Text(&mut event.request.path),
            RequestRawPath => Slot::Text(event.request.raw_path.as_mut()?),
            RequestClientAddress => Slot::Text(event.request.client_address.as_mut()?),
            RequestUserAgent => Slot::Text(event.request.user_agent.as_mut()?),
            RequestQuery(n) => Slot::Text(event.request.query.get_mut(n)?),
            RequestHeader(n) => Slot::Text(event.request.headers.get_mut(n)?),
            Target => Slot::Text(event.target.as_mut()?),
            Extra(n) => Slot::Value(event.extra.get_mut(n)?),
        })
    }

    /// Every present field of `event` that may hold a protected value.
    fn present(event: &HttpEvent) -> Vec<FieldPath> {
        use FieldPath::*;
        let mut paths = vec![RequestPath];
        if event.request.raw_path.is_some() {
            paths.push(RequestRawPath);
        }
        if let Some(actor) = &event.actor {
            if actor.sub.is_some() {
                paths.push(ActorSub);
            }
            if actor.jti.is_some() {
                paths.push(ActorJti);
            }
            paths.extend(actor.claims.keys().cloned().map(ActorClaim));
        }
        if matches!(event.token, Some(TokenEvidence::Full { .. })) {
            paths.push(TokenJwt);
        }
        if event.request.client_address.is_some() {
            paths.push(RequestClientAddress);
        }
        if event.request.user_agent.is_some() {
            paths.push(RequestUserAgent);
        }
        paths.extend(event.request.query.keys().cloned().map(RequestQuery));
        paths.extend(event.request.headers.keys().cloned().map(RequestHeader));
        if event.target.is_some() {
            paths.push(Target);
        }
        paths.extend(event.extra.keys().cloned().map(Extra));
        paths
    }
}

/// An XChaCha20-Poly1305 key (the cipher zeroizes it on drop).
struct EncryptionKey(XChaCha20Poly1305);

/// An HMAC-SHA-256 key, zeroized on drop.
struct PseudonymKey(Zeroizing<Vec<u8>>);

/// The field keys: encryption keys (to protect and to reveal) and pseudonym keys, by key id.
///
/// Cheap to clone (shared). `Debug` shows key ids only.
#[derive(Clone, Default)]
pub struct FieldKeys {
    encryption: BTreeMap<String, Arc<EncryptionKey>>,
    pseudonym: BTreeMap<String, Arc<PseudonymKey>>,
}

impl fmt::Debug for FieldKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldKeys")
            .field("encryption", &self.encryption.keys().collect::<Vec<_>>())
            .field("pseudonym", &self.pseudonym.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FieldKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a 32-byte XChaCha20-Poly1305 key under `kid` (replacing any key with that id).
    pub fn with_encryption_key(
        mut self,
        kid: impl Into<String>,
        key: &[u8],
    ) -> Result<Self, ProtectError> {
        let kid = kid.into();
        let cipher =
            XChaCha20Poly1305::new_from_slice(key).map_err(|_| ProtectError::KeyLength {
                kind: "encryption",
                kid: kid.clone(),
                expected: 32,
                got: key.len(),
            })?;
        self.encryption.insert(kid, Arc::new(EncryptionKey(cipher)));
        Ok(self)
    }

    /// Adds an HMAC-SHA-256 key of at least 32 bytes under `kid` (replacing any key with that
    /// id).
    pub fn with_pseudonym_key(
        mut self,
        kid: impl Into<String>,
        key: &[u8],
    ) -> Result<Self, ProtectError> {
        let kid = kid.into();
        if key.len() < MIN_PSEUDONYM_KEY {
            return Err(ProtectError::KeyLength {
                kind: "pseudonym",
                kid,
                expected: MIN_PSEUDONYM_KEY,
                got: key.len(),
            });
        }
        self.pseudonym
            .insert(kid, Arc::new(PseudonymKey(Zeroizing::new(key.to_vec()))));
        Ok(self)
    }

    fn encryption_key(&self, kid: &str) -> Result<&EncryptionKey, ProtectError> {
        lookup(&self.encryption, "encryption", kid)
    }

    fn pseudonym_key(&self, kid: &str) -> Result<&PseudonymKey, ProtectError> {
        lookup(&self.pseudonym, "pseudonym", kid)
    }

    /// Encrypts `value` as field `path` of event `event_id` under key `kid`.
    pub fn encrypt(
        &self,
        kid: &str,
        path: &FieldPath,
        event_id: Uuid,
        value: &Value,
    ) -> Result<EncryptedField, ProtectError> {
        let key = self.encryption_key(kid)?;
        let path = path.to_string();
        let plaintext = Zeroizing::new(serde_json::to_vec(value).expect("a Value serialises"));
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated_data(kid, &path, event_id);
        let ct = key
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| ProtectError::Encrypt(path))?;
        Ok(EncryptedField {
            enc: ALGORITHM.to_owned(),
            kid: kid.to_owned(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            ct: URL_SAFE_NO_PAD.encode(ct),
        })
    }

    /// Decrypts `field`, stored as field `path` of event `event_id`, to the original value.
    pub fn decrypt(
        &self,
        field: &EncryptedField,
        path: &FieldPath,
        event_id: Uuid,
    ) -> Result<Value, ProtectError> {
        let path = path.to_string();
        if field.enc != ALGORITHM {
            return Err(ProtectError::Algorithm {
                path,
                enc: field.enc.clone(),
            });
        }
        let key = self.encryption_key(&field.kid)?;
        let malformed = |reason| ProtectError::Malformed {
            path: path.clone(),
            reason,
        };
        let nonce = URL_SAFE_NO_PAD
            .decode(&field.nonce)
            .ok()
            .filter(|n| n.len() == 24)
            .ok_or_else(|| malformed("nonce is not 24 bytes of base64url"))?;
        let ct = URL_SAFE_NO_PAD
            .decode(&field.ct)
            .map_err(|_| malformed("ct is not base64url"))?;
        let aad = associated_data(&field.kid, &path, event_id);
        let plaintext = Zeroizing::new(
            key.0
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &ct,
                        aad: &aad,
                    },
                )
                .map_err(|_| ProtectError::Decrypt {
                    path: path.clone(),
                    kid: field.kid.clone(),
                })?,
        );
        serde_json::from_slice(&plaintext).map_err(|_| malformed("plaintext is not JSON"))
    }

    /// The pseudonym of `value` under key `kid`: what a field pseudonymised with that key
    /// holds when its clear value was `value`. Use it to search by equality.
    pub fn pseudonym(&self, kid: &str, value: &Value) -> Result<PseudonymField, ProtectError> {
        let key = self.pseudonym_key(kid)?;
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("HMAC accepts keys of any length");
        match value {
            Value::String(s) => mac.update(s.as_bytes()),
            other => mac.update(&serde_json::to_vec(other).expect("a Value serialises")),
        }
        Ok(PseudonymField {
            hmac: kid.to_owned(),
            v: URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
        })
    }

    /// Decrypts, in place, every encrypted field of `event` whose key is loaded; returns how
    /// many were revealed. Fields under other keys, and pseudonyms, stay as they are.
    pub fn reveal(&self, event: &mut AuditEvent) -> Result<usize, ProtectError> {
        let id = event.id;
        let Some(http) = event.as_http_mut() else {
            return Ok(0);
        };
        let mut revealed = 0;
        for path in FieldPath::present(http) {
            let Some(slot) = path.slot(http) else {
                continue;
            };
            match slot {
                Slot::Text(text) => {
                    let Text::Encrypted(field) = text else {
                        continue;
                    };
                    if !self.encryption.contains_key(&field.kid) {
                        continue;
                    }
                    match self.decrypt(field, &path, id)? {
                        Value::String(s) => *text = Text::Plain(s),
                        _ => {
                            return Err(ProtectError::Malformed {
                                path: path.to_string(),
                                reason: "plaintext is not a string",
                            });
                        }
                    }
                }
                Slot::Value(value) => {
                    let Some(Text::Encrypted(field)) = ProtectedForm::of_value(value) else {
                        continue;
                    };
                    if !self.encryption.contains_key(&field.kid) {
                        continue;
                    }
                    *value = self.decrypt(&field, &path, id)?;
                }
            }
            revealed += 1;
        }
        Ok(revealed)
    }
}

fn lookup<'a, K>(
    keys: &'a BTreeMap<String, Arc<K>>,
    kind: &'static str,
    kid: &str,
) -> Result<&'a K, ProtectError> {
    keys.get(kid)
        .map(|k| &**k)
        .ok_or_else(|| ProtectError::UnknownKey {
            kind,
            kid: kid.to_owned(),
        })
}

fn associated_data(kid: &str, path: &str, event_id: Uuid) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + kid.len() + path.len() + 39);
    for part in [AAD_LABEL, kid.as_bytes(), path.as_bytes()] {
        aad.extend_from_slice(part);
        aad.push(0);
    }
    aad.extend_from_slice(
        event_id
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    aad
}

/// What happens to a protected field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Treatment {
    /// Encrypted under this encryption key id.
    Encrypt(String),
    /// Pseudonymised under this pseudonym key id.
    Pseudonymise(String),
}

/// Which fields get which [`Treatment`], with the keys to do it.
#[derive(Clone, Debug, Default)]
pub struct Protection {
    keys: FieldKeys,
    rules: BTreeMap<FieldPath, Treatment>,
}

impl Protection {
    /// No rules yet, with these keys.
    pub fn new(keys: FieldKeys) -> Self {
        Protection {
            keys,
            rules: BTreeMap::new(),
        }
    }

    fn rule(mut self, path: &str, treatment: Treatment) -> Result<Self, ProtectError> {
        let path: FieldPath = path.parse()?;
        if self.rules.contains_key(&path) {
            return Err(ProtectError::DuplicatePath(path.to_string()));
        }
        self.rules.insert(path, treatment);
        Ok(self)
    }

    /// Encrypts field `path` under encryption key `kid` (which must be loaded).
    pub fn encrypt(self, path: &str, kid: &str) -> Result<Self, ProtectError> {
        self.keys.encryption_key(kid)?;
        self.rule(path, Treatment::Encrypt(kid.to_owned()))
    }

    /// Pseudonymises field `path` under pseudonym key `kid` (which must be loaded).
    pub fn pseudonymise(self, path: &str, kid: &str) -> Result<Self, ProtectError> {
        self.keys.pseudonym_key(kid)?;
        self.rule(path, Treatment::Pseudonymise(kid.to_owned()))
    }

    /// The rules, by field.
    pub fn rules(&self) -> impl Iterator<Item = (&FieldPath, &Treatment)> {
        self.rules.iter()
    }

    /// Whether there is no rule (then [`apply`](Self::apply) does nothing).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The keys.
    pub fn keys(&self) -> &FieldKeys {
        &self.keys
    }

    /// Protects the named fields of `event` in place. Absent fields, fields already
    /// protected, and system records are left alone.
    pub fn apply(&self, event: &mut AuditEvent) -> Result<(), ProtectError> {
        let id = event.id;
        let Some(http) = event.as_http_mut() else {
            return Ok(());
        };
        // The path as sent is the same information as the canonical path.
        let raw_path = match self.rules.get(&FieldPath::RequestPath) {
            Some(t) if !self.rules.contains_key(&FieldPath::RequestRawPath) => {
                Some((&FieldPath::RequestRawPath, t))
            }
            _ => None,
        };
        for (path, treatment) in self.rules.iter().chain(raw_path) {
            let Some(slot) = path.slot(http) else {
                continue;
            };
            let protect = |clear: Value| -> Result<Value, ProtectError> {
                Ok(match treatment {
                    Treatment::Encrypt(kid) => {
                        serde_json::to_value(self.keys.encrypt(kid, path, id, &clear)?)
                    }
                    Treatment::Pseudonymise(kid) => {
                        serde_json::to_value(self.keys.pseudonym(kid, &clear)?)
                    }
                }
                .expect("protected fields serialise"))
            };
            match slot {
                Slot::Text(text) => {
                    let Text::Plain(clear) = text else { continue };
                    let clear = Value::String(clear.clone());
                    *text = Text::deserialize(protect(clear)?).expect("a protected form is a Text");
                }
                Slot::Value(value) => {
                    if is_protected_value(value) {
                        continue;
                    }
                    *value = protect(value.clone())?;
                }
            }
        }
        Ok(())
    }
}

/// Whether a claim or extra value already has the encrypted or pseudonym form.
fn is_protected_value(value: &Value) -> bool {
    ProtectedForm::of_value(value).is_some()
}
