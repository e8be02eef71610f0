//! Proof files: `c2sp.org/tlog-proof@v1` and the tlog-witness consistency body.
//!
//! CONTRACT:
//!
//! ```ignore
//! /// An inclusion proof file whose `extra` line is base64 of the record bytes.
//! #[derive(Clone, Debug, PartialEq, Eq)]
//! pub struct InclusionProofFile { pub index: u64, pub record: Vec<u8>, pub proof: Vec<Hash>, pub checkpoint: String /* signed note */ }
//! impl InclusionProofFile {
//!     pub fn to_text(&self) -> String;
//!     pub fn parse(text: &str) -> Result<Self, ProofFileError>;
//!     /// Opens the checkpoint with `verifier` and checks the record's inclusion under its root.
//!     pub fn verify(&self, verifier: &NoteVerifier) -> Result<Checkpoint, ProofFileError>;
//! }
//! /// `old N`, one base64 hash per line, blank line, the new signed checkpoint.
//! #[derive(Clone, Debug, PartialEq, Eq)]
//! pub struct ConsistencyBody { pub old_size: u64, pub proof: Vec<Hash>, pub checkpoint: String }
//! impl ConsistencyBody { pub fn to_text(&self) -> String; pub fn parse(text: &str) -> Result<Self, ProofFileError>; }
//! ```
