//! Field protection: AEAD encryption and keyed-HMAC pseudonymisation of chosen fields.

use serde::{Deserialize, Serialize};

/// A string field that field protection may replace by its encrypted or pseudonymised form.
///
/// Serialised as a plain JSON string, or as the protected object in its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
