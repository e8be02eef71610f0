//! The offline verifier.
//!
//! CONTRACT:
//!
//! ```ignore
//! pub struct VerifyOptions { pub against: Vec<String> /* signed checkpoints held elsewhere */, pub threads: usize }
//! pub struct VerifyReport { pub records: u64, pub root: Hash, pub checkpoints_checked: usize, pub against_checked: usize, pub recovered_tail: bool }
//! /// Recomputes the tree from the segments, checks framing, checksums, indexes, every stored
//! /// checkpoint (signature and root at its size) and each `against` checkpoint (the log extends
//! /// it). The first failure is returned as VerifyError naming index, segment and byte offset.
//! pub fn verify_dir(dir: &Path, verifier: &NoteVerifier, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError>;
//! /// Same, calling `on_record(index, &record)` for each record in order (for `verify --tokens`).
//! pub fn verify_dir_with(dir, verifier, opts, on_record: impl FnMut(u64, &[u8]) -> Result<(), String>) -> Result<VerifyReport, VerifyError>;
//! ```
