//! RFC 6962 / RFC 9162 Merkle tree hashing and proofs.
//!
//! CONTRACT (signatures are fixed; bodies are the merkle helper's work):
//!
//! ```ignore
//! pub type Hash = [u8; 32];
//! pub fn leaf_hash(record: &[u8]) -> Hash;                 // SHA-256(0x00 || record)
//! pub fn node_hash(left: &Hash, right: &Hash) -> Hash;     // SHA-256(0x01 || l || r)
//! pub fn empty_root() -> Hash;                             // SHA-256("")
//!
//! /// Compact range [0, size): O(log n) state for appending.
//! #[derive(Clone, Debug, Default, PartialEq, Eq)]
//! pub struct CompactRange { .. }
//! impl CompactRange {
//!     pub fn new() -> Self;
//!     /// Rebuild from the hashes of the perfect subtrees covering [0, size), largest first
//!     /// (exactly `size.count_ones()` hashes). Err if the count is wrong.
//!     pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError>;
//!     pub fn size(&self) -> u64;
//!     pub fn hashes(&self) -> &[Hash];
//!     /// Appends one leaf hash; calls `visit(level, index, &hash)` for the leaf (level 0) and
//!     /// for every full subtree node this append completes (level >= 1), bottom-up.
//!     pub fn append(&mut self, leaf: Hash, visit: impl FnMut(u8, u64, &Hash));
//!     pub fn root(&self) -> Hash;
//! }
//!
//! /// Where proofs read stored full-subtree hashes: node (level, index) covers leaves
//! /// [index << level, (index + 1) << level).
//! pub trait HashSource {
//!     type Error: std::error::Error + Send + Sync + 'static;
//!     fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
//! }
//! /// Root of [0, size) from stored hashes: O(log n) reads.
//! pub fn root_at<S: HashSource>(src: &S, size: u64) -> Result<Hash, ProofBuildError<S::Error>>;
//! pub fn inclusion_proof<S: HashSource>(src: &S, index: u64, size: u64) -> Result<Vec<Hash>, ProofBuildError<S::Error>>;
//! pub fn consistency_proof<S: HashSource>(src: &S, old: u64, new: u64) -> Result<Vec<Hash>, ProofBuildError<S::Error>>;
//! pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError>;
//! pub fn verify_consistency(old: u64, new: u64, proof: &[Hash], old_root: &Hash, new_root: &Hash) -> Result<(), ProofError>;
//! /// Root of an in-memory list of records (for tests and small trees).
//! pub fn root_of_leaves(leaves: &[Hash]) -> Hash;
//! ```
