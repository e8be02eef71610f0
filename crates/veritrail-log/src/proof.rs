//! Proof files: `c2sp.org/tlog-proof@v1` (<https://c2sp.org/tlog-proof>) for inclusion, and the
//! tlog-witness `add-checkpoint` body (<https://c2sp.org/tlog-witness>) for consistency.
//!
//! An inclusion proof file carries one record (base64 on its `extra` line), its index, the
//! Merkle inclusion proof, and the signed checkpoint, so that a third party can verify the
//! record offline with nothing but the log's verifier key:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra eyJ2IjoxfQ==
//! index 1
//! <base64 hash, leaf side first, one per line>
//!
//! <signed checkpoint, verbatim>
//! ```
//!
//! ```
//! use veritrail_log::{Checkpoint, NoteSigner, merkle, proof::InclusionProofFile};
//!
//! let signer = NoteSigner::generate("example.com/audit").unwrap();
//! let records: [&[u8]; 3] = [b"{\"a\":1}", b"{\"b\":2}", b"{\"c\":3}"];
//! let leaves: Vec<_> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
//! let checkpoint = Checkpoint {
//!     origin: "example.com/audit".into(),
//!     size: 3,
//!     root: merkle::root_of_leaves(&leaves),
//!     extensions: vec![],
//! };
//! let file = InclusionProofFile {
//!     index: 1,
//!     record: records[1].to_vec(),
//!     proof: merkle::inclusion_proof(&leaves, 1, 3).unwrap(),
//!     checkpoint: checkpoint.sign(&signer).unwrap(),
//! };
//! let text = file.to_text();
//! let parsed = InclusionProofFile::parse(&text).unwrap();
//! assert_eq!(parsed.verify(&signer.verifier()).unwrap(), checkpoint);
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::checkpoint::{CheckpointError, hash_text, parse_decimal, parse_hash};
use crate::merkle::{self, Hash, ProofError};
use crate::{Checkpoint, NoteVerifier};

/// The first line of an inclusion proof file.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The most proof lines accepted: a proof in a tree of at most 2^64 leaves has at most 64
/// hashes (tlog-witness allows 63 consistency lines).
const MAX_PROOF_LINES: usize = 64;

/// Why a proof file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofFileError {
    /// The text does not follow the format.
    #[error("malformed proof file, line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The embedded checkpoint is malformed or its signature does not verify.
    #[error("checkpoint in the proof: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The Merkle proof does not hold.
    #[error("the Merkle proof does not verify: {0}")]
    Proof(#[from] ProofError),
    /// The consistency body's old size is not the size of the old checkpoint given.
    #[error("the proof starts at size {body}, but the old checkpoint has size {checkpoint}")]
    OldSizeMismatch {
        /// The `old N` of the body.
        body: u64,
        /// The old checkpoint's size.
        checkpoint: u64,
    },
    /// The two checkpoints are from different logs.
    #[error("the old checkpoint is from log {old:?} but the new one is from log {new:?}")]
    OriginMismatch {
        /// The old checkpoint's origin.
        old: String,
        /// The new checkpoint's origin.
        new: String,
    },
}

fn malformed(line: usize, reason: impl Into<String>) -> ProofFileError {
    ProofFileError::Malformed {
        line,
        reason: reason.into(),
    }
}

/// Reads what follows the first `header_lines` lines: the proof hash lines up to the first
/// empty line, then the checkpoint (everything after it, which must be non-empty).
fn parse_proof_and_checkpoint(
    text: &str,
    header_lines: usize,
) -> Result<(Vec<Hash>, String), ProofFileError> {
    let mut offset = text
        .split_inclusive('\n')
        .take(header_lines)
        .map(str::len)
        .sum::<usize>();
    let mut proof = Vec::new();
    let mut line_no = header_lines;
    loop {
        line_no += 1;
        let rest = &text[offset..];
        let Some(end) = rest.find('\n') else {
            return Err(malformed(
                line_no,
                "the proof ends before the blank line that precedes the checkpoint",
            ));
        };
        let line = &rest[..end];
        offset += end + 1;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LINES {
            return Err(malformed(
                line_no,
                format!("more than {MAX_PROOF_LINES} proof hashes"),
            ));
        }
        proof.push(parse_hash(line).map_err(|r| malformed(line_no, format!("proof hash: {r}")))?);
    }
    let checkpoint = &text[offset..];
    if checkpoint.is_empty() {
        return Err(malformed(
            line_no + 1,
            "no checkpoint follows the blank line",
        ));
    }
    Ok((proof, checkpoint.into()))
}

fn write_proof_lines(out: &mut String, proof: &[Hash]) {
    for h in proof {
        out.push_str(&hash_text(h));
        out.push('\n');
    }
}

/// A `c2sp.org/tlog-proof@v1` inclusion proof whose `extra` line is the base64 of the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProofFile {
    /// Index of the record in the log.
    pub index: u64,
    /// The record's exact bytes (carried, unauthenticated until verified, on the `extra` line).
    pub record: Vec<u8>,
    /// The RFC 6962 inclusion proof, leaf side first.
    pub proof: Vec<Hash>,
    /// The signed checkpoint (a signed note), verbatim.
    pub checkpoint: String,
}

impl InclusionProofFile {
    /// The file text.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{TLOG_PROOF_HEADER}\nextra {}\nindex {}\n",
            BASE64.encode(&self.record),
            self.index
        );
        write_proof_lines(&mut out, &self.proof);
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses the file text. The `extra` line is required here, since it carries the record.
    pub fn parse(text: &str) -> Result<Self, ProofFileError> {
        let mut lines = text.split('\n');
        if lines.next() != Some(TLOG_PROOF_HEADER) {
            return Err(malformed(
                1,
                format!("the first line must be {TLOG_PROOF_HEADER:?}"),
            ));
        }
        let extra = lines
            .next()
            .and_then(|l| l.strip_prefix("extra "))
            .ok_or_else(|| {
                malformed(
                    2,
                    "expected \"extra <base64 record>\": this proof does not carry the record",
                )
            })?;
        let record = BASE64
            .decode(extra)
            .map_err(|_| malformed(2, "the extra data is not valid base64"))?;
        let index = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .ok_or_else(|| malformed(3, "expected \"index <decimal>\""))
            .and_then(|n| parse_decimal(n).map_err(|r| malformed(3, format!("index: {r}"))))?;
        let (proof, checkpoint) = parse_proof_and_checkpoint(text, 3)?;
        Ok(Self {
            index,
            record,
            proof,
            checkpoint,
        })
    }

    /// Opens the checkpoint with `verifier` and checks that the record is leaf `index` of the
    /// tree it signs. Returns the checkpoint.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<Checkpoint, ProofFileError> {
        let checkpoint = Checkpoint::open(&self.checkpoint, verifier)?;
        merkle::verify_inclusion(
            &merkle::leaf_hash(&self.record),
            self.index,
            checkpoint.size,
            &self.proof,
            &checkpoint.root,
        )?;
        Ok(checkpoint)
    }
}

/// A consistency proof in the tlog-witness `add-checkpoint` body form: `old N`, one base64 hash
/// per line, a blank line, then the new signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyBody {
    /// Size of the older tree.
    pub old_size: u64,
    /// The RFC 6962 consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The new signed checkpoint, verbatim.
    pub checkpoint: String,
}

impl ConsistencyBody {
    /// The body text.
    pub fn to_text(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        write_proof_lines(&mut out, &self.proof);
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses the body text.
    pub fn parse(text: &str) -> Result<Self, ProofFileError> {
        let first = text.split('\n').next().unwrap_or_default();
        let old_size = first
            .strip_prefix("old ")
            .ok_or_else(|| malformed(1, "expected \"old <decimal size>\""))
            .and_then(|n| parse_decimal(n).map_err(|r| malformed(1, format!("old size: {r}"))))?;
        let (proof, checkpoint) = parse_proof_and_checkpoint(text, 1)?;
        Ok(Self {
            old_size,
            proof,
            checkpoint,
        })
    }

    /// Opens the new checkpoint with `verifier` and checks that it extends `old` (same origin,
    /// `old_size == old.size`, and the proof holds; from size 0 the proof must be empty, as
    /// tlog-witness requires). Returns the new checkpoint.
    pub fn verify(
        &self,
        old: &Checkpoint,
        verifier: &NoteVerifier,
    ) -> Result<Checkpoint, ProofFileError> {
        let new = Checkpoint::open(&self.checkpoint, verifier)?;
        if new.origin != old.origin {
            return Err(ProofFileError::OriginMismatch {
                old: old.origin.clone(),
                new: new.origin,
            });
        }
        if self.old_size != old.size {
            return Err(ProofFileError::OldSizeMismatch {
                body: self.old_size,
                checkpoint: old.size,
            });
        }
        merkle::verify_extends(old.size, new.size, &self.proof, &old.root, &new.root)?;
        Ok(new)
    }
}
