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
