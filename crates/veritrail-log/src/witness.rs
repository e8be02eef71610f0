//! Witness cosigning: C2SP `tlog-cosignature` (the Ed25519 `cosignature/v1` type) and the
//! `tlog-witness` `add-checkpoint` protocol.
//!
//! A witness remembers, per log, the latest checkpoint it cosigned; it cosigns a new checkpoint
//! only if the log signed it and a consistency proof shows it extends the one remembered. A
//! checkpoint cosigned by k independent witnesses cannot be forked (shown one history to some
//! readers and another to others) without those witnesses seeing both sides.
//!
//! - [`CosignerKey`] / [`CosignatureVerifier`]: the witness's key pair. Key texts use the
//!   signed-note forms with the signature type byte `0x04`: `PRIVATE+KEY+name+hexid+base64(0x04
//!   ‖ seed)` and `name+hexid+base64(0x04 ‖ public key)`, the key ID being
//!   `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]`.
//! - A cosignature is a note signature line whose bytes are `key ID ‖ u64 timestamp (big-endian)
//!   ‖ Ed25519 signature` over `cosignature/v1\ntime <timestamp>\n<checkpoint body>`.
//! - [`Witness`]: the witness's state machine, with its state in a directory, made durable
//!   before it answers (a witness restarted at any moment never cosigns both sides of a fork).
//! - [`cosignatures`] and [`require_cosignatures`]: what a verifier checks.
//!
//! ```
//! use veritrail_log::witness::{CosignerKey, require_cosignatures};
//! use veritrail_log::{Checkpoint, NoteSigner, merkle};
//!
//! let log = NoteSigner::generate("example.com/audit").unwrap();
//! let witness = CosignerKey::generate("witness.example/w1").unwrap();
//! let checkpoint = Checkpoint {
//!     origin: "example.com/audit".into(),
//!     size: 0,
//!     root: merkle::empty_root(),
//!     extensions: vec![],
//! };
//! let signed = checkpoint.sign(&log).unwrap();
//! let line = witness.cosign(&checkpoint.to_body(), 1_700_000_000).unwrap();
//! let cosigned = format!("{signed}{line}");
//! let found = require_cosignatures(&cosigned, &[witness.verifier()], 1).unwrap();
//! assert_eq!(found[0].timestamp, 1_700_000_000);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::merkle::{self, Hash};
use crate::note::{
    NoteError, NoteVerifier, SIG_PREFIX, check_name, check_text, parse_typed_key_fields,
    split_signed, typed_key_id,
};
use crate::proof::ConsistencyBody;

/// The signature type byte of Ed25519 `cosignature/v1` keys.
pub const COSIGNATURE_V1: u8 = 0x04;
/// The most consistency proof lines an `add-checkpoint` body may carry (tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;
const WRONG_TYPE: &str = "the key type is not an Ed25519 cosignature/v1 key (0x04)";

/// The message a `cosignature/v1` signs: the header line, the timestamp line, then the
/// checkpoint body (the note text, without signature lines).
pub fn cosignature_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// A witness's private key (Ed25519, `cosignature/v1`). `Debug` shows the name and key ID,
/// never the key; the key is zeroed on drop.
#[derive(Clone)]
pub struct CosignerKey {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignerKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl CosignerKey {
    /// A new random key named `name` (a schema-less URL such as `witness.example/w1`).
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(&mut seed[..])
            .map_err(|e| NoteError::Random(e.to_string()))?;
        let key = SigningKey::from_bytes(&seed);
        Ok(Self {
            name: name.into(),
            key_id: typed_key_id(COSIGNATURE_V1, name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+name+hexid+base64(0x04 ‖ 32-byte seed)`; surrounding whitespace is
    /// ignored. The key ID must match.
    pub fn from_text(text: &str) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::InvalidPrivateKey { reason };
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(bad("it does not start with PRIVATE+KEY+"))?;
        let fields = parse_typed_key_fields(rest, COSIGNATURE_V1, WRONG_TYPE)
            .map_err(|e| e.into_error(bad))?;
        let key = SigningKey::from_bytes(&fields.key);
        let computed = typed_key_id(COSIGNATURE_V1, fields.name, key.verifying_key().as_bytes());
        if computed != fields.key_id {
            return Err(NoteError::KeyIdMismatch {
                name: fields.name.into(),
                stated: fields.key_id,
                computed,
            });
        }
        Ok(Self {
            name: fields.name.into(),
            key_id: computed,
            key,
        })
    }

    /// The private key text (keep it secret).
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(Vec::with_capacity(33));
        raw.push(COSIGNATURE_V1);
        raw.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64.encode(&*raw)
        ))
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Cosigns a checkpoint body (the note text, ending in a newline) at `timestamp` (POSIX
    /// seconds, at most 2^63 − 1): returns the signature line, newline included, to append to
    /// the signed checkpoint.
    pub fn cosign(&self, body: &str, timestamp: u64) -> Result<String, NoteError> {
        check_text(body).map_err(|reason| NoteError::InvalidText { reason })?;
        if timestamp > i64::MAX as u64 {
            return Err(NoteError::InvalidText {
                reason: "a cosignature timestamp must not exceed 2^63 - 1".into(),
            });
        }
        let sig = self
            .key
            .sign(cosignature_message(body, timestamp).as_bytes());
        let mut raw = Vec::with_capacity(76);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{SIG_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(raw)
        ))
    }
}

/// A witness's verifier key, text form `name+hexid+base64(0x04 ‖ public key)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses the text form; surrounding whitespace is ignored. The key ID must match.
    pub fn from_text(text: &str) -> Result<Self, NoteError> {
        let trimmed = text.trim();
        let bad = |reason| NoteError::InvalidVerifierKey {
            text: trimmed.into(),
            reason,
        };
        let fields = parse_typed_key_fields(trimmed, COSIGNATURE_V1, WRONG_TYPE)
            .map_err(|e| e.into_error(bad))?;
        let key = VerifyingKey::from_bytes(&fields.key)
            .map_err(|_| bad("the bytes are not an Ed25519 public key"))?;
        let computed = typed_key_id(COSIGNATURE_V1, fields.name, &fields.key);
        if computed != fields.key_id {
            return Err(NoteError::KeyIdMismatch {
                name: fields.name.into(),
                stated: fields.key_id,
                computed,
            });
        }
        Ok(Self {
            name: fields.name.into(),
            key_id: computed,
            key,
        })
    }

    /// The text form `name+hexid+base64(0x04 ‖ public key)`.
    pub fn to_text(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(COSIGNATURE_V1);
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(raw))
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Checks one signature's bytes (after the key ID) over `body`; returns its timestamp.
    fn check(&self, body: &str, bytes: &[u8]) -> Option<u64> {
        let (ts, sig) = bytes.split_at_checked(8)?;
        let timestamp = u64::from_be_bytes(ts.try_into().ok()?);
        if timestamp > i64::MAX as u64 {
            return None;
        }
        let sig = Signature::from_slice(sig).ok()?;
        self.key
            .verify_strict(cosignature_message(body, timestamp).as_bytes(), &sig)
            .ok()
            .map(|()| timestamp)
    }
}

impl fmt::Display for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A valid cosignature found on a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's name.
    pub name: String,
    /// Its key ID.
    pub key_id: u32,
    /// When it cosigned (POSIX seconds).
    pub timestamp: u64,
    /// The signature line, without its newline.
    pub line: String,
}

/// Why a checkpoint's cosignatures were not enough.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The signed note is malformed.
    #[error("{0}")]
    Note(#[from] NoteError),
    /// A line by one of the named witnesses (its name and key ID) does not verify.
    #[error(
        "the cosignature by {name}+{key_id:08x} does not verify: the checkpoint or the cosignature was altered"
    )]
    BadCosignature {
        /// The witness's name.
        name: String,
        /// Its key ID.
        key_id: u32,
    },
    /// Fewer valid cosignatures than required.
    #[error(
        "the checkpoint carries {found} valid cosignature(s) from the {named} witness(es) named, \
         {required} required{missing}"
    )]
    TooFew {
        /// Valid cosignatures from distinct named witnesses.
        found: usize,
        /// Witnesses named.
        named: usize,
        /// Cosignatures required.
        required: usize,
        /// `; missing: name, name` for the witnesses that did not cosign.
        missing: String,
    },
}

/// The valid cosignatures on `note` (a signed checkpoint) by the `witnesses` named, one per
/// witness at most. Lines by other keys are ignored, as signed-note requires; a line by a named
/// witness that does not verify is an error (the checkpoint or the line was altered).
pub fn cosignatures(
    note: &str,
    witnesses: &[CosignatureVerifier],
) -> Result<Vec<Cosignature>, CosignatureError> {
    let (body, lines) = split_signed(note)?;
    let mut out: Vec<Cosignature> = Vec::new();
    for line in lines {
        let Some(w) = witnesses
            .iter()
            .find(|w| w.name == line.name && w.key_id == line.key_id)
        else {
            continue;
        };
        let Some(timestamp) = w.check(body, &line.signature) else {
            return Err(CosignatureError::BadCosignature {
                name: w.name.clone(),
                key_id: w.key_id,
            });
        };
        if !out.iter().any(|c| c.name == w.name && c.key_id == w.key_id) {
            out.push(Cosignature {
                name: w.name.clone(),
                key_id: w.key_id,
                timestamp,
                line: line.line.into(),
            });
        }
    }
    Ok(out)
}

/// Like [`cosignatures`], and fails unless at least `min` of the named witnesses cosigned.
pub fn require_cosignatures(
    note: &str,
    witnesses: &[CosignatureVerifier],
    min: usize,
) -> Result<Vec<Cosignature>, CosignatureError> {
    let found = cosignatures(note, witnesses)?;
    if found.len() < min {
        let missing: Vec<&str> = witnesses
            .iter()
            .filter(|w| {
                !found
                    .iter()
                    .any(|c| c.name == w.name && c.key_id == w.key_id)
            })
            .map(|w| w.name.as_str())
            .collect();
        return Err(CosignatureError::TooFew {
            found: found.len(),
            named: witnesses.len(),
            required: min,
            missing: if missing.is_empty() {
                String::new()
            } else {
                format!("; missing: {}", missing.join(", "))
            },
        });
    }
    Ok(found)
}

/// Adds `lines` (signature lines, each ending in a newline) to a signed note, skipping any
/// line it already carries.
pub fn add_signature_lines(note: &str, lines: &str) -> String {
    let mut out = note.to_owned();
    for line in lines.split_inclusive('\n') {
        if line.starts_with(SIG_PREFIX)
            && line.ends_with('\n')
            && !note.split_inclusive('\n').any(|l| l == line)
        {
            out.push_str(line);
        }
    }
    out
}

/// Why a witness refused an `add-checkpoint` request, with the HTTP status tlog-witness
/// gives it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddCheckpointError {
    /// 400: the body is malformed, or the old size is larger than the checkpoint's.
    #[error("bad request: {0}")]
    Malformed(String),
    /// 404: the witness does not witness this origin.
    #[error("unknown log {0:?}: this witness does not witness it")]
    UnknownLog(String),
    /// 403: no signature by the log's key verifies.
    #[error("the checkpoint is not signed by the log's key: {0}")]
    BadSignature(String),
    /// 409: the old size is not the size the witness last cosigned, or the same size with
    /// another root (a fork). The body of the answer is the witness's size.
    #[error("the witness's latest cosigned checkpoint for this log has size {size}")]
    Conflict {
        /// The size of the latest checkpoint the witness cosigned for this log.
        size: u64,
    },
    /// 422: the consistency proof does not verify.
    #[error("the consistency proof does not verify: {0}")]
    BadProof(String),
    /// 500: the witness could not make its state durable (it cosigned nothing).
    #[error("the witness cannot store its state: {0}")]
    Storage(#[from] io::Error),
}

impl AddCheckpointError {
    /// The HTTP status code tlog-witness gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::UnknownLog(_) => 404,
            Self::BadSignature(_) => 403,
            Self::Conflict { .. } => 409,
            Self::BadProof(_) => 422,
            Self::Storage(_) => 500,
        }
    }
}

/// The latest checkpoint a witness cosigned for one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessedHead {
    /// Its size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
}

/// A tlog-witness witness: the logs it witnesses (origin → the log's verifier key), its key,
/// and its state directory (one file per origin holding the latest checkpoint it cosigned).
///
/// [`add_checkpoint`](Self::add_checkpoint) checks, persists (write, fsync, rename, fsync of
/// the directory) and only then cosigns, all under one lock, so that no two requests can race
/// and a witness killed at any point never cosigns two sizes out of order or two roots for one
/// size.
pub struct Witness {
    key: CosignerKey,
    logs: HashMap<String, NoteVerifier>,
    dir: PathBuf,
    state: Mutex<HashMap<String, WitnessedHead>>,
}

impl fmt::Debug for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.key)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn state_file(dir: &Path, origin: &str) -> PathBuf {
    let digest = Sha256::digest(origin.as_bytes());
    dir.join(format!("{}.checkpoint", hex::encode(digest)))
}

impl Witness {
    /// Opens (creating it if needed) the state directory and loads the latest cosigned
    /// checkpoint of each log. A state file whose checkpoint the log's key did not sign, or
    /// whose origin is not the file's, is refused: the state was tampered with.
    pub fn open(
        dir: &Path,
        key: CosignerKey,
        logs: impl IntoIterator<Item = NoteVerifier>,
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut by_origin = HashMap::new();
        for log in logs {
            by_origin.insert(log.name().to_owned(), log);
        }
        let mut state = HashMap::new();
        for (origin, verifier) in &by_origin {
            let path = state_file(dir, origin);
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let checkpoint = Checkpoint::open(&text, verifier)
                .ok()
                .filter(|c| &c.origin == origin)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: not a checkpoint of {origin} signed by its key: the witness \
                             state was altered",
                            path.display()
                        ),
                    )
                })?;
            state.insert(
                origin.clone(),
                WitnessedHead {
                    size: checkpoint.size,
                    root: checkpoint.root,
                },
            );
        }
        Ok(Self {
            key,
            logs: by_origin,
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
        })
    }

    /// The witness's verifier key.
    pub fn verifier(&self) -> CosignatureVerifier {
        self.key.verifier()
    }

    /// The latest checkpoint cosigned for `origin`, if any.
    pub fn latest(&self, origin: &str) -> Option<WitnessedHead> {
        self.lock().get(origin).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, WitnessedHead>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles an `add-checkpoint` request body at time `now` (POSIX seconds): on success, the
    /// cosignature line(s) to answer with (status 200).
    pub fn add_checkpoint(&self, body: &str, now: u64) -> Result<String, AddCheckpointError> {
        let request = ConsistencyBody::parse(body)
            .map_err(|e| AddCheckpointError::Malformed(e.to_string()))?;
        if request.proof.len() > MAX_PROOF_LINES {
            return Err(AddCheckpointError::Malformed(format!(
                "more than {MAX_PROOF_LINES} consistency proof lines"
            )));
        }
        // The origin, read before any signature is checked, only to pick the log's key.
        let (text, _) = split_signed(&request.checkpoint)
            .map_err(|e| AddCheckpointError::Malformed(e.to_string()))?;
        let origin = text.split('\n').next().unwrap_or_default();
        let verifier = self
            .logs
            .get(origin)
            .ok_or_else(|| AddCheckpointError::UnknownLog(origin.to_owned()))?;
        let checkpoint = Checkpoint::open(&request.checkpoint, verifier).map_err(|e| match e {
            CheckpointError::Note(e) => AddCheckpointError::BadSignature(e.to_string()),
            other => AddCheckpointError::Malformed(other.to_string()),
        })?;
        if request.old_size > checkpoint.size {
            return Err(AddCheckpointError::Malformed(format!(
                "old size {} is larger than the checkpoint's size {}",
                request.old_size, checkpoint.size
            )));
        }

        let mut state = self.lock();
        let known = state.get(origin).cloned().unwrap_or(WitnessedHead {
            size: 0,
            root: merkle::empty_root(),
        });
        if request.old_size != known.size {
            return Err(AddCheckpointError::Conflict { size: known.size });
        }
        if request.old_size == checkpoint.size {
            if checkpoint.root != known.root {
                return Err(AddCheckpointError::Conflict { size: known.size });
            }
            if !request.proof.is_empty() {
                return Err(AddCheckpointError::BadProof(
                    "a proof between equal sizes must be empty".into(),
                ));
            }
        } else if request.old_size == 0 {
            if !request.proof.is_empty() {
                return Err(AddCheckpointError::BadProof(
                    "the proof from size 0 must be empty".into(),
                ));
            }
        } else {
            merkle::verify_extends(
                known.size,
                checkpoint.size,
                &request.proof,
                &known.root,
                &checkpoint.root,
            )
            .map_err(|e| AddCheckpointError::BadProof(e.to_string()))?;
        }

        // Durable before the answer: a restarted witness remembers what it cosigned.
        self.persist(origin, &request.checkpoint)?;
        state.insert(
            origin.to_owned(),
            WitnessedHead {
                size: checkpoint.size,
                root: checkpoint.root,
            },
        );
        drop(state);
        self.key
            .cosign(text, now)
            .map_err(|e| AddCheckpointError::Malformed(e.to_string()))
    }

    fn persist(&self, origin: &str, note: &str) -> io::Result<()> {
        let path = state_file(&self.dir, origin);
        let tmp = path.with_extension("tmp");
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(note.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        fs::File::open(&self.dir)?.sync_all()
    }
}

/// The `name+hexid` of each signature line on a signed note (for messages).
pub fn signers(note: &str) -> Vec<String> {
    split_signed(note)
        .map(|(_, lines)| {
            lines
                .iter()
                .map(|l| format!("{}+{:08x}", l.name, l.key_id))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoteSigner;

    fn head(size: u64, leaves: &[Hash]) -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size,
            root: merkle::root_of_leaves(&leaves[..size as usize]),
            extensions: vec![],
        }
    }

    #[test]
    fn keys_round_trip_and_hide_the_secret() {
        let key = CosignerKey::generate("witness.example/w1").unwrap();
        let again = CosignerKey::from_text(&key.to_text()).unwrap();
        assert_eq!(again.verifier(), key.verifier());
        let v = CosignatureVerifier::from_text(&key.verifier().to_text()).unwrap();
        assert_eq!(v, key.verifier());
        assert!(!format!("{key:?}").contains(&key.to_text()[..]));
        // A note key (type 0x01) is not a cosigner key, and the other way round.
        let note_key = NoteSigner::generate("witness.example/w1").unwrap();
        assert!(CosignatureVerifier::from_text(&note_key.verifier().to_text()).is_err());
        assert!(NoteVerifier::from_text(&key.verifier().to_text()).is_err());
        assert_ne!(
            key.key_id(),
            crate::note::key_id("witness.example/w1", key.verifier().key.as_bytes())
        );
    }

    #[test]
    fn split_view_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = NoteSigner::generate("example.com/log").unwrap();
        let key = CosignerKey::generate("witness.example/w1").unwrap();
        let w = Witness::open(dir.path(), key.clone(), [log.verifier()]).unwrap();
        let leaves: Vec<Hash> = (0..8u8).map(|i| merkle::leaf_hash(&[i])).collect();
        let mut fork = leaves.clone();
        fork[4] = merkle::leaf_hash(b"forked");
        let body = |old: u64, new: &Checkpoint, proof: Vec<Hash>| {
            ConsistencyBody {
                old_size: old,
                proof,
                checkpoint: new.sign(&log).unwrap(),
            }
            .to_text()
        };
        let h4 = head(4, &leaves);
        let line = w.add_checkpoint(&body(0, &h4, vec![]), 10).unwrap();
        let cosigned = format!("{}{line}", h4.sign(&log).unwrap());
        assert_eq!(
            cosignatures(&cosigned, &[key.verifier()]).unwrap()[0].timestamp,
            10
        );

        let h5 = head(5, &leaves);
        let proof = merkle::consistency_proof(&leaves[..5], 4, 5).unwrap();
        w.add_checkpoint(&body(4, &h5, proof), 11).unwrap();
        // The other side of the fork, from the same size-4 head: 409 with the size held.
        let f5 = head(5, &fork);
        let proof = merkle::consistency_proof(&fork[..5], 4, 5).unwrap();
        let err = w.add_checkpoint(&body(4, &f5, proof), 12).unwrap_err();
        assert_eq!(
            (err.status(), w.latest("example.com/log").unwrap().size),
            (409, 5)
        );
        // Claimed at the size held: same size, other root.
        let err = w.add_checkpoint(&body(5, &f5, vec![]), 12).unwrap_err();
        assert_eq!(err.status(), 409);
        // A wrong proof to a larger fork: 422.
        let f6 = head(6, &fork);
        let proof = merkle::consistency_proof(&leaves[..6], 5, 6).unwrap();
        let err = w.add_checkpoint(&body(5, &f6, proof), 12).unwrap_err();
        assert_eq!(err.status(), 422);
        // A restarted witness remembers.
        drop(w);
        let w = Witness::open(dir.path(), key, [log.verifier()]).unwrap();
        assert_eq!(w.latest("example.com/log").unwrap().size, 5);
        let err = w.add_checkpoint(&body(4, &f5, vec![]), 13).unwrap_err();
        assert_eq!(err.status(), 409);
    }

    #[test]
    fn refusals_carry_the_spec_status() {
        let dir = tempfile::tempdir().unwrap();
        let log = NoteSigner::generate("example.com/log").unwrap();
        let other = NoteSigner::generate("example.com/log").unwrap();
        let stranger = NoteSigner::generate("example.com/other").unwrap();
        let w = Witness::open(
            dir.path(),
            CosignerKey::generate("w").unwrap(),
            [log.verifier()],
        )
        .unwrap();
        let leaves: Vec<Hash> = (0..3u8).map(|i| merkle::leaf_hash(&[i])).collect();
        let h = head(3, &leaves);
        let body = |old: u64, signer: &NoteSigner, c: &Checkpoint| {
            ConsistencyBody {
                old_size: old,
                proof: vec![],
                checkpoint: c.sign(signer).unwrap(),
            }
            .to_text()
        };
        assert_eq!(w.add_checkpoint("junk", 1).unwrap_err().status(), 400);
        let mut foreign = h.clone();
        foreign.origin = "example.com/other".into();
        assert_eq!(
            w.add_checkpoint(&body(0, &stranger, &foreign), 1)
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            w.add_checkpoint(&body(0, &other, &h), 1)
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            w.add_checkpoint(&body(4, &log, &h), 1)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            w.add_checkpoint(&body(2, &log, &h), 1)
                .unwrap_err()
                .status(),
            409
        );
        assert!(
            w.latest("example.com/log").is_none(),
            "nothing refused was stored"
        );
    }

    #[test]
    fn a_tampered_cosignature_is_an_error_and_unknown_lines_are_ignored() {
        let log = NoteSigner::generate("example.com/log").unwrap();
        let w1 = CosignerKey::generate("w1").unwrap();
        let w2 = CosignerKey::generate("w2").unwrap();
        let c = head(1, &[merkle::leaf_hash(b"x")]);
        let signed = c.sign(&log).unwrap();
        let line = w1.cosign(&c.to_body(), 5).unwrap();
        let note = add_signature_lines(&signed, &line);
        assert_eq!(
            add_signature_lines(&note, &line),
            note,
            "no duplicate lines"
        );
        assert_eq!(cosignatures(&note, &[w2.verifier()]).unwrap(), vec![]);
        let err = require_cosignatures(&note, &[w1.verifier(), w2.verifier()], 2).unwrap_err();
        assert!(err.to_string().contains("missing: w2"), "{err}");
        // The timestamp is signed: change it and the line no longer verifies.
        let b64 = line.trim_end().rsplit(' ').next().unwrap();
        let mut raw = BASE64.decode(b64).unwrap();
        raw[11] ^= 1;
        let forged = format!("{SIG_PREFIX}w1 {}\n", BASE64.encode(raw));
        let err = cosignatures(&format!("{signed}{forged}"), &[w1.verifier()]).unwrap_err();
        assert!(
            matches!(err, CosignatureError::BadCosignature { .. }),
            "{err}"
        );
    }
}
