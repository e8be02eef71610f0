//! C2SP tlog-checkpoint bodies.
//!
//! CONTRACT:
//!
//! ```ignore
//! #[derive(Clone, Debug, PartialEq, Eq)]
//! pub struct Checkpoint { pub origin: String, pub size: u64, pub root: Hash, pub extensions: Vec<String> }
//! impl Checkpoint {
//!     pub fn to_body(&self) -> String;                       // "origin\nsize\nbase64(root)\n[ext\n]*"
//!     pub fn parse_body(body: &str) -> Result<Self, CheckpointError>;
//!     pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError>; // full signed note text
//!     /// Verifies the signed note with `verifier` and parses its body.
//!     pub fn open(signed: &str, verifier: &NoteVerifier) -> Result<Self, CheckpointError>;
//! }
//! ```
