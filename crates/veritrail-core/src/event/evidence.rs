//! Token evidence: what of the bearer token the event keeps.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Text;

/// What of the bearer token an event keeps (the `token` object, tagged by `mode`).
///
/// - `fingerprint` (the default): `sha256` is the lowercase hex SHA-256 of the compact token
///   bytes, as `printf %s "$TOKEN" | sha256sum` prints it.
/// - `full`: the compact signed token in `jwt` (plus its fingerprint), so that the identity
///   provider's signature can be re-checked later against the archived keyset. HMAC-signed
///   (`HS*`) tokens are never kept whole — verifying them would need the shared secret, and the
///   token stays usable until it expires — so [`TokenEvidence::full`] falls back to the
///   fingerprint and says why in `full_refused`. Best combined with encryption of `token.jwt`.
/// - `none`: nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum TokenEvidence {
    /// The SHA-256 of the compact token.
    Fingerprint {
        /// Lowercase hex SHA-256 of the compact token.
        sha256: String,
        /// Set when the full token was asked for and refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        full_refused: Option<FullTokenRefused>,
    },
    /// The whole compact token.
    Full {
        /// Lowercase hex SHA-256 of the compact token.
        sha256: String,
        /// The compact token (possibly encrypted by field protection).
        jwt: Text,
    },
    /// No token evidence.
    None,
}

/// Why a full token was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullTokenRefused {
    /// The token is HMAC-signed (`HS256`/`HS384`/`HS512`): never kept whole.
    HmacAlg,
    /// The token is not a compact JWS whose header names its `alg`.
    UnreadableHeader,
}

impl FullTokenRefused {
    /// The stable name written in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            FullTokenRefused::HmacAlg => "hmac_alg",
            FullTokenRefused::UnreadableHeader => "unreadable_header",
        }
    }
}

/// Which [`TokenEvidence`] to capture (a configuration value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceMode {
    /// SHA-256 fingerprint (the default).
    #[default]
    Fingerprint,
    /// The full signed token (refused for HMAC-signed tokens).
    Full,
    /// Nothing.
    None,
}

impl TokenEvidence {
    /// Captures evidence of the compact `token` in the given mode.
    pub fn capture(mode: EvidenceMode, token: &str) -> Self {
        Self::capture_hashed(mode, token, None)
    }

    /// [`capture`](Self::capture) with the token's SHA-256 already computed (by the
    /// verified-token cache), when it was.
    pub(crate) fn capture_hashed(
        mode: EvidenceMode,
        token: &str,
        digest: Option<[u8; 32]>,
    ) -> Self {
        let sha256 = || digest_hex(&digest.unwrap_or_else(|| Sha256::digest(token).into()));
        match mode {
            EvidenceMode::Fingerprint => TokenEvidence::Fingerprint {
                sha256: sha256(),
                full_refused: None,
            },
            EvidenceMode::Full => match full_refusal(token) {
                Some(reason) => TokenEvidence::Fingerprint {
                    sha256: sha256(),
                    full_refused: Some(reason),
                },
                None => TokenEvidence::Full {
                    sha256: sha256(),
                    jwt: Text::Plain(token.to_owned()),
                },
            },
            EvidenceMode::None => TokenEvidence::None,
        }
    }

    /// The SHA-256 fingerprint of the compact `token`.
    pub fn fingerprint(token: &str) -> Self {
        Self::capture(EvidenceMode::Fingerprint, token)
    }

    /// The full compact `token` — unless its header says it is HMAC-signed or cannot be read,
    /// in which case the fingerprint, with the reason in `full_refused`.
    pub fn full(token: &str) -> Self {
        Self::capture(EvidenceMode::Full, token)
    }

    /// The mode this evidence is in.
    pub fn mode(&self) -> EvidenceMode {
        match self {
            TokenEvidence::Fingerprint { .. } => EvidenceMode::Fingerprint,
            TokenEvidence::Full { .. } => EvidenceMode::Full,
            TokenEvidence::None => EvidenceMode::None,
        }
    }

    /// The hex SHA-256 fingerprint, when kept.
    pub fn sha256(&self) -> Option<&str> {
        match self {
            TokenEvidence::Fingerprint { sha256, .. } | TokenEvidence::Full { sha256, .. } => {
                Some(sha256)
            }
            TokenEvidence::None => None,
        }
    }
}

/// Reads the `alg` of a compact JWS header; refuses HMAC and anything unreadable.
fn full_refusal(token: &str) -> Option<FullTokenRefused> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(FullTokenRefused::UnreadableHeader);
    };
    let Some(header) = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| serde_json::from_slice::<Header>(&json).ok())
    else {
        return Some(FullTokenRefused::UnreadableHeader);
    };
    if header
        .alg
        .get(..2)
        .is_some_and(|p| p.eq_ignore_ascii_case("HS"))
    {
        Some(FullTokenRefused::HmacAlg)
    } else {
        None
    }
}

/// Lower-case hex of a SHA-256 digest (what `hex::encode` gives, without its per-character
/// string building).
fn digest_hex(digest: &[u8; 32]) -> String {
    let mut buf = [0u8; 64];
    hex::encode_to_slice(digest, &mut buf).expect("64 bytes for 32");
    String::from_utf8(buf.to_vec()).expect("hex is ASCII")
}
