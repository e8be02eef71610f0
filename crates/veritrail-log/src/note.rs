//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.
//!
//! A signed note is a text ending in a newline, a blank line, and signature lines
//! `— <key name> base64(key ID ‖ signature)`. Keys use the signed-note text forms:
//! a private key `PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 ‖ seed)` and a verifier key
//! `<name>+<hex key ID>+base64(0x01 ‖ public key)`, where the key ID is the first four bytes
//! (big-endian) of `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`. Notes signed here verify with any
//! conforming implementation (Go's `golang.org/x/mod/sumdb/note` is one).
//!
//! ```
//! use veritrail_log::note::{self, NoteSigner};
//!
//! let signer = NoteSigner::generate("example.com/audit").unwrap();
//! let signed = signer.sign("hello\n").unwrap();
//! assert_eq!(note::open(&signed, &signer.verifier()).unwrap(), "hello\n");
//!
//! // The verifier key travels as text; the private key text never appears in Debug.
//! let verifier = note::NoteVerifier::from_text(&signer.verifier().to_text()).unwrap();
//! assert_eq!(verifier, signer.verifier());
//! assert!(!format!("{signer:?}").contains(&signer.to_text()[..]));
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The signed-note signature type byte for Ed25519.
const ALG_ED25519: u8 = 0x01;
/// The signature line prefix: EM DASH (U+2014) and a space.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";
/// Notes with more signature lines are refused (the spec asks for at least 16).
const MAX_SIGNATURES: usize = 100;

/// Why a key or note was refused. Messages never contain private key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// A key name is empty or contains a space or `+`.
    #[error(
        "invalid key name {name:?}: a key name must be non-empty and contain no spaces or '+' \
         (use a schema-less URL such as example.com/log)"
    )]
    InvalidName {
        /// The refused name.
        name: String,
    },
    /// A private key text is malformed (the key itself is never shown).
    #[error("invalid signed-note private key: {reason} (expected PRIVATE+KEY+name+hexid+base64)")]
    InvalidPrivateKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A verifier key text is malformed.
    #[error("invalid signed-note verifier key {text:?}: {reason} (expected name+hexid+base64)")]
    InvalidVerifierKey {
        /// The refused text.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key ID written in a key text is not the one computed from its name and key.
    #[error(
        "key ID {stated:08x} written for key {name:?} does not match its key (computed {computed:08x}); \
         the key text was altered or belongs to another name"
    )]
    KeyIdMismatch {
        /// The key name.
        name: String,
        /// The key ID in the text.
        stated: u32,
        /// The key ID computed from the name and public key.
        computed: u32,
    },
    /// A note text cannot be signed.
    #[error("cannot sign this text: {reason}")]
    InvalidText {
        /// What is wrong with it.
        reason: String,
    },
    /// A signed note is malformed.
    #[error("malformed signed note: {reason}")]
    Malformed {
        /// What is wrong, with the line number where that helps.
        reason: String,
    },
    /// A signature by the trusted key does not verify: the text or signature was altered.
    #[error(
        "the signature by {name}+{key_id:08x} does not verify: the note text or its signature \
         was altered"
    )]
    BadSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// The note carries no signature by the trusted key.
    #[error(
        "the note is not signed by the trusted key {name}+{key_id:08x} (signatures found: {found}); \
         check that you use the log's verifier key"
    )]
    NotSigned {
        /// The trusted key's name.
        name: String,
        /// The trusted key's ID.
        key_id: u32,
        /// `name+hexid` of each signature present, comma-separated, or `none`.
        found: String,
    },
    /// The operating system's random number generator failed.
    #[error("cannot generate a key: the system random number generator failed: {0}")]
    Random(String),
}

/// Whether `name` is a valid signed-note key name: non-empty, no Unicode whitespace, no `+`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidName { name: name.into() })
    }
}

/// The signed-note key ID of an Ed25519 key: `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`,
/// big-endian.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    typed_key_id(ALG_ED25519, name, public_key)
}

/// `SHA-256(name ‖ 0x0A ‖ alg ‖ public key)[:4]`, big-endian: the key ID of a key of signature
/// type `alg` (0x01 for note signatures, 0x04 for cosignature/v1).
pub(crate) fn typed_key_id(alg: u8, name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', alg]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Parses the `hexid` field: exactly 8 hex digits.
fn parse_hex_id(hex: &str) -> Option<u32> {
    if hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(hex, 16).ok()
    } else {
        None
    }
}

/// The fields shared by both key texts: `name+hexid+base64(alg ‖ 32-byte key)`.
pub(crate) struct KeyFields<'a> {
    pub(crate) name: &'a str,
    pub(crate) key_id: u32,
    /// The seed or public key; zeroed on drop since it may be a secret.
    pub(crate) key: Zeroizing<[u8; 32]>,
}

/// Why key fields were refused: a bad name, or a reason the caller wraps in its own variant.
pub(crate) enum KeyFieldsError {
    Name(NoteError),
    Reason(&'static str),
}

impl KeyFieldsError {
    pub(crate) fn into_error(self, wrap: impl FnOnce(&'static str) -> NoteError) -> NoteError {
        match self {
            Self::Name(e) => e,
            Self::Reason(r) => wrap(r),
        }
    }
}

fn parse_key_fields(text: &str) -> Result<KeyFields<'_>, KeyFieldsError> {
    parse_typed_key_fields(text, ALG_ED25519, "the key type is not Ed25519 (0x01)")
}

/// Parses `name+hexid+base64(alg ‖ 32-byte key)` for keys of signature type `alg`.
pub(crate) fn parse_typed_key_fields<'a>(
    text: &'a str,
    alg: u8,
    wrong_type: &'static str,
) -> Result<KeyFields<'a>, KeyFieldsError> {
    use KeyFieldsError::Reason;
    // The name holds no '+', but the base64 may: the key is everything after the second '+'.
    let mut fields = text.splitn(3, '+');
    let (Some(name), Some(hex_id), Some(b64)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(Reason("it does not have the name, key ID and key fields"));
    };
    check_name(name).map_err(KeyFieldsError::Name)?;
    let key_id = parse_hex_id(hex_id).ok_or(Reason("the key ID is not 8 hex digits"))?;
    let decoded = Zeroizing::new(
        BASE64
            .decode(b64)
            .map_err(|_| Reason("the key is not valid base64"))?,
    );
    let (&found, key) = decoded.split_first().ok_or(Reason("the key is empty"))?;
    if found != alg {
        return Err(Reason(wrong_type));
    }
    let key = <[u8; 32]>::try_from(key).map_err(|_| Reason("an Ed25519 key must be 32 bytes"))?;
    Ok(KeyFields {
        name,
        key_id,
        key: Zeroizing::new(key),
    })
}

/// A signed-note Ed25519 private key. `Debug` shows the name and key ID, never the key; the
/// key is zeroed on drop.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// Generates a new key named `name` from the operating system's random number generator.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(&mut seed[..])
            .map_err(|e| NoteError::Random(e.to_string()))?;
        Ok(Self::from_seed(name, &seed))
    }

    fn from_seed(name: &str, seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Self {
            name: name.into(),
            key_id,
            key,
        }
    }

    /// Parses the text form `PRIVATE+KEY+name+hexid+base64(0x01 ‖ 32-byte seed)`; surrounding
    /// whitespace (such as a final newline in a key file) is ignored. The key ID must match.
    pub fn from_text(text: &str) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::InvalidPrivateKey { reason };
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(bad("it does not start with PRIVATE+KEY+"))?;
        let KeyFields {
            name,
            key_id: stated,
            key: seed,
        } = parse_key_fields(rest).map_err(|e| e.into_error(bad))?;
        let signer = Self::from_seed(name, &seed);
        if signer.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                name: name.into(),
                stated,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The private key text `PRIVATE+KEY+name+hexid+base64`, zeroed when dropped. Keep it
    /// secret: write it to a file readable only by its owner.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; 33]);
        raw[0] = ALG_ED25519;
        raw[1..].copy_from_slice(self.key.as_bytes());
        let b64 = Zeroizing::new(BASE64.encode(&raw[..]));
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name, self.key_id, *b64
        ))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs a note text, which must be non-empty, end in `'\n'`, and contain no control
    /// characters other than newlines. Returns the signed note: the text, a blank line and
    /// this key's signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text).map_err(|reason| NoteError::InvalidText { reason })?;
        let sig = self.key.sign(text.as_bytes());
        let mut raw = Vec::with_capacity(68);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(raw)
        ))
    }
}

/// Checks a note text: non-empty, ends in a newline, no control characters but newlines.
pub(crate) fn check_text(text: &str) -> Result<(), String> {
    if !text.ends_with('\n') {
        return Err("a note text must be non-empty and end with a newline".into());
    }
    check_chars(text)
}

/// Signed notes must not contain ASCII control characters other than newline.
pub(crate) fn check_chars(text: &str) -> Result<(), String> {
    match text
        .char_indices()
        .find(|&(_, c)| c < '\u{20}' && c != '\n')
    {
        Some((at, c)) => Err(format!(
            "control character {:?} at byte {at} (only newlines are allowed)",
            c
        )),
        None => Ok(()),
    }
}

/// A signed-note Ed25519 verifier key, text form `name+hexid+base64(0x01 ‖ public key)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses the text form `name+hexid+base64(0x01 ‖ 32-byte public key)`; surrounding
    /// whitespace is ignored. The key ID must match the name and key.
    pub fn from_text(text: &str) -> Result<Self, NoteError> {
        let trimmed = text.trim();
        let bad = |reason| NoteError::InvalidVerifierKey {
            text: trimmed.into(),
            reason,
        };
        let KeyFields {
            name,
            key_id: stated,
            key: public,
        } = parse_key_fields(trimmed).map_err(|e| e.into_error(bad))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| bad("the bytes are not an Ed25519 public key"))?;
        let computed = key_id(name, &public);
        if computed != stated {
            return Err(NoteError::KeyIdMismatch {
                name: name.into(),
                stated,
                computed,
            });
        }
        Ok(Self {
            name: name.into(),
            key_id: stated,
            key,
        })
    }

    /// The text form `name+hexid+base64`.
    pub fn to_text(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, text: &str, sig: &[u8]) -> bool {
        Signature::from_slice(sig)
            .is_ok_and(|sig| self.key.verify_strict(text.as_bytes(), &sig).is_ok())
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Parses a signed note and checks that it carries a valid signature by `verifier`.
///
/// As C2SP requires, signatures by other keys (another name or key ID) are ignored, and a
/// signature by the trusted key that does not verify rejects the whole note. Returns the note
/// text: everything up to and including the newline before the last blank line.
pub fn open<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, NoteError> {
    let (text, lines) = split_signed(note)?;
    let mut found = Vec::new();
    let mut verified = false;
    for line in &lines {
        found.push(format!("{}+{:08x}", line.name, line.key_id));
        if line.name != verifier.name || line.key_id != verifier.key_id {
            continue;
        }
        if !verifier.verify(text, &line.signature) {
            return Err(NoteError::BadSignature {
                name: line.name.into(),
                key_id: line.key_id,
            });
        }
        verified = true;
    }
    if !verified {
        return Err(NoteError::NotSigned {
            name: verifier.name.clone(),
            key_id: verifier.key_id,
            found: if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            },
        });
    }
    Ok(text)
}

/// One signature line of a signed note: `— <name> base64(key ID ‖ signature)`.
pub(crate) struct SignatureLine<'a> {
    /// The key name.
    pub(crate) name: &'a str,
    /// The key ID (the first four decoded bytes).
    pub(crate) key_id: u32,
    /// The signature bytes after the key ID (at least one byte).
    pub(crate) signature: Vec<u8>,
    /// The whole line, without its newline.
    pub(crate) line: &'a str,
}

/// Splits a signed note into its text (up to and including the newline before the last blank
/// line) and its signature lines, each checked for form (not for signature).
pub(crate) fn split_signed(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    let malformed = |reason: String| NoteError::Malformed { reason };
    check_chars(note).map_err(malformed)?;
    let split = note.rfind("\n\n").ok_or_else(|| {
        malformed("no blank line separates the text from the signature lines".into())
    })?;
    let (text, sigs) = (&note[..=split], &note[split + 2..]);
    if sigs.is_empty() {
        return Err(malformed(
            "there is no signature line after the blank line".into(),
        ));
    }
    if !sigs.ends_with('\n') {
        return Err(malformed(
            "the last signature line does not end with a newline".into(),
        ));
    }
    let text_lines = text.matches('\n').count() + 1;
    let mut lines = Vec::new();
    for (i, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
        let line_no = text_lines + 1 + i;
        if i >= MAX_SIGNATURES {
            return Err(malformed(format!(
                "more than {MAX_SIGNATURES} signature lines"
            )));
        }
        let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
            malformed(format!(
                "line {line_no} does not start with \"\u{2014} \" (em dash, space)"
            ))
        })?;
        let (name, b64) = rest.split_once(' ').ok_or_else(|| {
            malformed(format!(
                "line {line_no}: no space between key name and signature"
            ))
        })?;
        if !is_valid_name(name) {
            return Err(malformed(format!(
                "line {line_no}: invalid key name {name:?}"
            )));
        }
        let mut raw = BASE64
            .decode(b64)
            .map_err(|_| malformed(format!("line {line_no}: the signature is not base64")))?;
        if raw.len() < 5 {
            return Err(malformed(format!(
                "line {line_no}: the signature is too short ({} bytes)",
                raw.len()
            )));
        }
        let signature = raw.split_off(4);
        lines.push(SignatureLine {
            name,
            key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            signature,
            line,
        });
    }
    Ok((text, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let signer = NoteSigner::generate("example.com/x").unwrap();
        let text = signer.to_text();
        let b64 = text.splitn(5, '+').nth(4).unwrap();
        assert_eq!(b64.len(), 44);
        let debug = format!("{signer:?}");
        assert!(debug.contains("example.com/x"), "{debug}");
        assert!(!debug.contains(b64), "{debug}");
        assert!(!debug.contains(&format!("{:?}", signer.key.as_bytes())));
    }

    #[test]
    fn generated_keys_roundtrip() {
        let signer = NoteSigner::generate("a.example/b").unwrap();
        let again = NoteSigner::from_text(&format!("{}\n", *signer.to_text())).unwrap();
        assert_eq!(again.key.as_bytes(), signer.key.as_bytes());
        assert_eq!(again.key_id(), signer.key_id());
        assert_eq!(
            NoteVerifier::from_text(&signer.verifier().to_text()).unwrap(),
            signer.verifier()
        );
    }
}
