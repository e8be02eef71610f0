//! A tamper-evident log of opaque records.
//!
//! Records are opaque byte strings (for audit events, one compact JSON object each), stored
//! exactly as given in a [`Log`] directory, committed to by an RFC 6962 Merkle tree, and
//! vouched for by signed C2SP checkpoints. Anyone holding the verifier key can later check,
//! offline, that no record was altered, removed, reordered or inserted, and hand out a single
//! record with a proof.
//!
//! ```
//! use veritrail_log::proof::InclusionProofFile;
//! use veritrail_log::verify::{VerifyOptions, verify_dir};
//! use veritrail_log::{Log, LogOptions, NoteSigner};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("audit-log");
//! let signer = NoteSigner::generate("example.com/audit/api-1")?;
//! let verifier = signer.verifier(); // publish this; keep the signer secret
//!
//! // Append records, make them durable (one fdatasync per batch), sign a checkpoint.
//! let mut log = Log::open(&dir, signer, LogOptions::default())?;
//! log.append(br#"{"v":1,"action":"login","sub":"alice"}"#)?;
//! log.append_batch([
//!     br#"{"v":1,"action":"read","sub":"alice"}"#.as_slice(),
//!     br#"{"v":1,"action":"logout","sub":"alice"}"#.as_slice(),
//! ])?;
//! log.sync()?;
//! let checkpoint = log.checkpoint()?; // a signed note: hand a copy to an auditor
//!
//! // One record, its inclusion proof and the signed checkpoint, in one file.
//! let size = log.size();
//! let file = InclusionProofFile {
//!     index: 1,
//!     record: log.read(1)?,
//!     proof: log.inclusion_proof(1, size)?,
//!     checkpoint: checkpoint.clone(),
//! };
//! let proved = InclusionProofFile::parse(&file.to_text())?.verify(&verifier)?;
//! assert_eq!(proved.size, 3);
//! log.close()?; // syncs and signs the final checkpoint
//!
//! // Later, offline: recompute everything, and prove the log extends the checkpoint held.
//! let opts = VerifyOptions::default().against(vec![checkpoint]);
//! let report = verify_dir(&dir, &verifier, &opts)?;
//! assert_eq!((report.records, report.against_checked), (3, 1));
//! # Ok(())
//! # }
//! ```
//!
//! Platforms: Unix only (Linux, macOS, the BSDs). The directory store opens its files with
//! `O_NOFOLLOW`, writes at positions (`pwrite`) and syncs directories after creating or
//! renaming files, through Unix-only APIs; the crates built on it share that requirement.
//!
//! Module map:
//! - [`merkle`]: RFC 6962 / RFC 9162 hashing, compact ranges, inclusion and consistency proofs.
//! - [`note`]: C2SP signed notes with Ed25519 keys in the signed-note text forms.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies.
//! - [`proof`]: `c2sp.org/tlog-proof@v1` files and tlog-witness consistency bodies.
//! - [`store`]: the on-disk log ([`Log`]): segments, stored hashes, checkpoints, recovery.
//! - [`source`]: reading any store ([`source::LogSource`]): proofs and the verifier written
//!   once for the directory and for databases.
//! - [`verify`]: the offline verifier.
//! - [`witness`]: C2SP witness cosignatures (`cosignature/v1`) and the `add-checkpoint` witness.
//!
//! # Why these crates
//!
//! Hashing, signatures and base64 come from `sha2` 0.10 (SHA-NI when the CPU has it),
//! `ed25519-dalek` 2.2 and `base64` 0.22. The Merkle tree and the C2SP formats are our own,
//! about a thousand lines checked against the shared RFC 6962 and signed-note vectors, because
//! the existing crates fit poorly:
//! - `ct-merkle` 0.3.0 keeps the whole tree in memory and proves only from it; it has no compact
//!   range and no way to read stored subtree hashes, which the on-disk log needs for O(log n)
//!   proofs, and it is built on `digest` 0.11 / `sha2` 0.11, a second copy of the hash stack.
//! - `tlog_tiles` 0.2.0 (Cloudflare) ports Go's `tlog` with its own stored-hash numbering and
//!   error type, and pulls `url`, `serde_json`, `base64` 0.21 and `thiserror` 1 (duplicates of
//!   our versions) for features we do not use; its proof API does not match [`merkle::HashSource`].
//! - `signed_note` 0.2.0 (Cloudflare) is a sound port of Go's `note`, but it is byte-based, its
//!   errors do not say what is malformed (one `MalformedNote`), and it also pulls `base64` 0.21,
//!   `thiserror` 1 and `signature`. Ours reports the line and reason, and its signer's `Debug`
//!   and errors never show the private key.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod checkpoint;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod source;
pub mod store;
pub mod verify;
pub mod witness;

pub use checkpoint::Checkpoint;
pub use merkle::Hash;
pub use note::{NoteSigner, NoteVerifier};
pub use store::{Log, LogOptions};
