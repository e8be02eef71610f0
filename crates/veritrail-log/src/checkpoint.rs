//! C2SP tlog-checkpoint bodies (<https://c2sp.org/tlog-checkpoint>), signed as signed notes.
//!
//! A checkpoint body is the origin line, the tree size in decimal, the base64 root hash, and
//! optional non-empty extension lines, each ending in a newline.
//!
//! ```
//! use veritrail_log::{Checkpoint, NoteSigner, merkle};
//!
//! let signer = NoteSigner::generate("example.com/audit").unwrap();
//! let cp = Checkpoint {
//!     origin: "example.com/audit".into(),
//!     size: 1,
//!     root: merkle::leaf_hash(b"{}"),
//!     extensions: vec![],
//! };
//! let signed = cp.sign(&signer).unwrap();
//! assert_eq!(Checkpoint::open(&signed, &signer.verifier()).unwrap(), cp);
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::merkle::Hash;
use crate::note::{self, NoteError, NoteSigner, NoteVerifier};

/// A log's signed statement of its tree: origin, size and root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `example.com/audit`.
    pub origin: String,
    /// Number of records in the tree.
    pub size: u64,
    /// RFC 6962 root hash of the tree at `size`.
    pub root: Hash,
    /// Opaque extension lines (without newlines); usually empty.
    pub extensions: Vec<String>,
}

/// Why a checkpoint was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed note did not verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The note text is not a valid checkpoint body.
    #[error("malformed checkpoint, line {line}: {reason}")]
    Malformed {
        /// 1-based line number within the checkpoint body.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses a decimal with no sign and no leading zeroes (unless it is `0`), as C2SP requires for
/// tree sizes and indexes.
pub(crate) fn parse_decimal(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a decimal number"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!("{s:?} has a leading zero"));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is too large for a 64-bit number"))
}

/// Parses one base64 SHA-256 hash (canonical standard base64 with padding).
pub(crate) fn parse_hash(s: &str) -> Result<Hash, String> {
    let bytes = BASE64
        .decode(s)
        .map_err(|_| format!("{s:?} is not valid base64"))?;
    Hash::try_from(bytes.as_slice())
        .map_err(|_| format!("{s:?} decodes to {} bytes, not a 32-byte hash", bytes.len()))
}

/// Base64 of a hash, as every text format here writes it.
pub(crate) fn hash_text(hash: &Hash) -> String {
    BASE64.encode(hash)
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n` followed by one line per extension.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            hash_text(&self.root)
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint body (the note text, without signatures).
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let bad = |line: usize, reason: String| CheckpointError::Malformed { line, reason };
        let Some(body) = body.strip_suffix('\n') else {
            return Err(bad(
                body.split('\n').count(),
                "the body does not end with a newline".into(),
            ));
        };
        // What a signed note may not carry, a body may not either (found by fuzzing: a body
        // with a NUL parsed, and then could not be signed).
        if let Err(reason) = note::check_chars(body) {
            let line = body[..body.find(|c: char| c < ' ' && c != '\n').unwrap_or(0)]
                .matches('\n')
                .count()
                + 1;
            return Err(bad(line, reason));
        }
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 {
            return Err(bad(
                lines.len(),
                "a checkpoint needs an origin, a size and a root hash line".into(),
            ));
        }
        if lines[0].is_empty() {
            return Err(bad(1, "the origin line is empty".into()));
        }
        let size = parse_decimal(lines[1]).map_err(|r| bad(2, format!("tree size: {r}")))?;
        let root = parse_hash(lines[2]).map_err(|r| bad(3, format!("root hash: {r}")))?;
        if let Some(i) = lines[3..].iter().position(|l| l.is_empty()) {
            return Err(bad(4 + i, "extension lines must not be empty".into()));
        }
        Ok(Self {
            origin: lines[0].into(),
            size,
            root,
            extensions: lines[3..].iter().map(|l| (*l).into()).collect(),
        })
    }

    /// Signs the body with `signer`; returns the full signed note text.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        let invalid = |reason: &str| NoteError::InvalidText {
            reason: format!("checkpoint {reason}"),
        };
        if self.origin.is_empty() || self.origin.contains('\n') {
            return Err(invalid("origin must be one non-empty line"));
        }
        if self
            .extensions
            .iter()
            .any(|e| e.is_empty() || e.contains('\n'))
        {
            return Err(invalid("extensions must be non-empty single lines"));
        }
        signer.sign(&self.to_body())
    }

    /// Verifies the signed note with `verifier` and parses its body.
    pub fn open(signed: &str, verifier: &NoteVerifier) -> Result<Self, CheckpointError> {
        Self::parse_body(note::open(signed, verifier)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_with_control_characters_is_refused_as_signing_would() {
        // Found by the `note` fuzz target: such a body parsed, and then could not be signed
        // (and no signed note can carry it).
        let root = hash_text(&[7; 32]);
        for (body, line) in [
            (format!("o\n7\n{root}\nextensio\u{1f}\0n line\n"), 4),
            (format!("o\u{1b}[2J\n7\n{root}\n"), 1),
            (format!("o\n7\r\n{root}\n"), 2),
        ] {
            match Checkpoint::parse_body(&body) {
                Err(CheckpointError::Malformed { line: l, reason }) => {
                    assert_eq!(l, line, "{reason}");
                    assert!(reason.contains("control character"), "{reason}");
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
        let good = format!("o\n7\n{root}\next\n");
        let checkpoint = Checkpoint::parse_body(&good).unwrap();
        assert_eq!(checkpoint.to_body(), good);
    }
}
