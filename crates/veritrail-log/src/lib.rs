//! A tamper-evident log of opaque records.
//!
//! (Crate docs with a runnable example and the crate-choice rationale: to be written.)
//!
//! Module map (the contract other crates build on):
//! - [`merkle`]: RFC 6962 / RFC 9162 hashing, compact ranges, inclusion and consistency proofs.
//! - [`note`]: C2SP signed notes with Ed25519 keys in the signed-note text forms.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies.
//! - [`proof`]: `c2sp.org/tlog-proof@v1` files and tlog-witness consistency bodies.
//! - [`store`]: the on-disk log ([`Log`]): segments, stored hashes, checkpoints, recovery.
//! - [`verify`]: the offline verifier.
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

pub mod checkpoint;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod store;
pub mod verify;

pub use checkpoint::Checkpoint;
pub use merkle::Hash;
pub use note::{NoteSigner, NoteVerifier};
pub use store::{Log, LogOptions};
