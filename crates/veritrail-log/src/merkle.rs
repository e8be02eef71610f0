//! RFC 6962 / RFC 9162 Merkle tree hashing and proofs.
//!
//! - [`leaf_hash`] and [`node_hash`] are the RFC 6962 hashes (`SHA-256(0x00 ‖ record)`,
//!   `SHA-256(0x01 ‖ left ‖ right)`).
//! - [`CompactRange`] keeps the O(log n) state an appender needs: the hashes of the perfect
//!   subtrees covering `[0, size)`. Its [`append`](CompactRange::append) reports every full
//!   subtree hash it completes, which is what a store keeps so that any proof later needs only
//!   O(log n) reads.
//! - [`HashSource`] is where proofs read those stored hashes; [`root_at`], [`inclusion_proof`]
//!   and [`consistency_proof`] build proofs from it exactly as RFC 9162 §2.1.3.1 and §2.1.4.1
//!   define them.
//! - [`verify_inclusion`] and [`verify_consistency`] are the RFC 9162 §2.1.3.2 and §2.1.4.2
//!   algorithms, with the proof length checked up front so that a proof of the wrong shape is
//!   refused with a precise reason (a client that accepted a falsified proof was immudb's
//!   CVE GO-2022-1117).
//!
//! ```
//! use veritrail_log::merkle::{self, CompactRange};
//!
//! let records: [&[u8]; 3] = [b"a", b"b", b"c"];
//! let mut tree = CompactRange::new();
//! let mut stored = std::collections::HashMap::new();
//! for r in records {
//!     tree.append(merkle::leaf_hash(r), |level, index, hash| {
//!         stored.insert((level, index), *hash);
//!     });
//! }
//! let leaves: Vec<_> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
//! assert_eq!(tree.root(), merkle::root_of_leaves(&leaves));
//!
//! // A HashMap of stored hashes is a HashSource; prove record 1 is in the tree of size 3.
//! let proof = merkle::inclusion_proof(&stored, 1, 3).unwrap();
//! merkle::verify_inclusion(&leaves[1], 1, 3, &proof, &tree.root()).unwrap();
//! ```

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// The RFC 6962 leaf hash of a record: `SHA-256(0x00 ‖ record)`.
pub fn leaf_hash(record: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(record);
    h.finalize().into()
}

/// The RFC 6962 interior node hash: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Why a proof (or a compact range) was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old size of a consistency proof is larger than the new one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    OldSizeLarger {
        /// The old tree size.
        old: u64,
        /// The new tree size.
        new: u64,
    },
    /// A consistency proof from the empty tree was offered. Every tree extends the empty tree,
    /// so such a proof proves nothing; callers treat size 0 as trivially consistent.
    #[error(
        "a consistency proof from the empty tree (size 0) to size {new} proves nothing; \
         every tree extends the empty tree, so check that case without a proof"
    )]
    EmptyOldTree {
        /// The new tree size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, but {expected} are needed for these tree sizes")]
    WrongProofLength {
        /// How many hashes the sizes require.
        expected: usize,
        /// How many the proof holds.
        got: usize,
    },
    /// The root computed from the proof is not the expected root.
    #[error(
        "the proof does not lead to the expected root: computed {computed}, expected {expected}"
    )]
    RootMismatch {
        /// Hex of the root the proof leads to.
        computed: HexHash,
        /// Hex of the root that was expected.
        expected: HexHash,
    },
    /// The consistency proof does not lead to the old root.
    #[error("the proof does not lead to the old root: computed {computed}, expected {expected}")]
    OldRootMismatch {
        /// Hex of the old root the proof leads to.
        computed: HexHash,
        /// Hex of the old root that was expected.
        expected: HexHash,
    },
    /// [`CompactRange::from_parts`] got the wrong number of hashes for the size.
    #[error("a compact range of size {size} needs {expected} hashes, got {got}")]
    WrongHashCount {
        /// The range size.
        size: u64,
        /// `size.count_ones()`.
        expected: usize,
        /// How many hashes were given.
        got: usize,
    },
}

/// A hash shown in hex in error messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexHash(pub Hash);

impl fmt::Display for HexHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for HexHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a proof could not be built from a [`HashSource`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofBuildError<E> {
    /// The requested index or sizes do not describe a valid proof.
    #[error(transparent)]
    Invalid(#[from] ProofError),
    /// The hash source failed to return a stored hash.
    #[error("reading stored hash at level {level}, index {index}: {source}")]
    Source {
        /// Level of the node that could not be read.
        level: u8,
        /// Index of the node within its level.
        index: u64,
        /// The source's error.
        #[source]
        source: E,
    },
}

/// The compact range `[0, size)`: the hashes of the perfect subtrees that cover it, largest
/// first. This is all the state an appender needs to compute the root; it holds
/// `size.count_ones()` hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The empty range.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a range from the hashes of the perfect subtrees covering `[0, size)`, largest
    /// first (exactly `size.count_ones()` hashes).
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(ProofError::WrongHashCount {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree hashes, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one leaf hash. Calls `visit(level, index, &hash)` for the leaf itself (level 0,
    /// index = its leaf index) and then for every full subtree node this append completes
    /// (level >= 1), bottom-up. Node `(level, index)` covers leaves
    /// `[index << level, (index + 1) << level)`.
    pub fn append(&mut self, leaf: Hash, mut visit: impl FnMut(u8, u64, &Hash)) {
        let leaf_index = self.size;
        visit(0, leaf_index, &leaf);
        let mut hash = leaf;
        let mut level = 0u8;
        // Each trailing one bit of the old size is a subtree of the same height that now merges.
        while (leaf_index >> level) & 1 == 1 {
            let left = self.hashes.pop().expect("one hash per set bit of size");
            hash = node_hash(&left, &hash);
            level += 1;
            visit(level, leaf_index >> level, &hash);
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    /// The RFC 6962 root of `[0, size)`; [`empty_root`] when empty.
    pub fn root(&self) -> Hash {
        fold_parts(&self.hashes)
    }
}

/// Where proofs read stored full-subtree hashes: node `(level, index)` covers leaves
/// `[index << level, (index + 1) << level)`; level 0 holds the leaf hashes.
pub trait HashSource {
    /// The error returned when a hash cannot be read.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The hash of the full subtree node `(level, index)`.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// An in-memory source keyed by `(level, index)`, as [`CompactRange::append`] reports them.
impl HashSource for HashMap<(u8, u64), Hash> {
    type Error = MissingNode;
    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.get(&(level, index))
            .copied()
            .ok_or(MissingNode { level, index })
    }
}

/// A slice of leaf hashes is a source too: interior nodes are computed (O(2^level) work), which
/// suits tests and small trees.
impl HashSource for [Hash] {
    type Error = MissingNode;
    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        let missing = MissingNode { level, index };
        let width = 1u64.checked_shl(u32::from(level)).ok_or(missing)?;
        let start = index.checked_mul(width).ok_or(missing)?;
        let end = start.checked_add(width).ok_or(missing)?;
        if end > self.len() as u64 {
            return Err(missing);
        }
        Ok(root_of_leaves(&self[start as usize..end as usize]))
    }
}

impl HashSource for Vec<Hash> {
    type Error = MissingNode;
    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.as_slice().node(level, index)
    }
}

/// The in-memory sources' error: the node is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no stored hash for node at level {level}, index {index}")]
pub struct MissingNode {
    /// The node's level.
    pub level: u8,
    /// The node's index within its level.
    pub index: u64,
}

fn read<S: HashSource + ?Sized>(
    src: &S,
    level: u8,
    index: u64,
) -> Result<Hash, ProofBuildError<S::Error>> {
    src.node(level, index)
        .map_err(|source| ProofBuildError::Source {
            level,
            index,
            source,
        })
}

/// Largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The stored hashes of the perfect subtrees that make up `[start, end)`, largest first, where
/// `start` is a multiple of the largest power of two `<= end - start` (true of `[0, size)` and
/// of every subtree RFC 9162 proofs name): one read per set bit of `end - start`.
fn perfect_subtrees<S: HashSource + ?Sized>(
    src: &S,
    start: u64,
    end: u64,
) -> Result<Vec<Hash>, ProofBuildError<S::Error>> {
    let mut parts = Vec::with_capacity((end - start).count_ones() as usize);
    let mut at = start;
    let mut rest = end - start;
    while rest > 0 {
        let level = 63 - rest.leading_zeros();
        let width = 1u64 << level;
        debug_assert_eq!(at % width, 0, "subtree not aligned");
        parts.push(read(src, level as u8, at >> level)?);
        at += width;
        rest -= width;
    }
    Ok(parts)
}

/// Folds perfect subtree hashes (largest first) into the hash of their union.
fn fold_parts(parts: &[Hash]) -> Hash {
    let mut iter = parts.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |right, left| node_hash(left, &right))
}

/// MTH(D[start:end]) for `start < end`, aligned as [`perfect_subtrees`] requires.
fn subtree_hash<S: HashSource + ?Sized>(
    src: &S,
    start: u64,
    end: u64,
) -> Result<Hash, ProofBuildError<S::Error>> {
    debug_assert!(start < end);
    Ok(fold_parts(&perfect_subtrees(src, start, end)?))
}

impl CompactRange {
    /// Rebuilds the range `[0, size)` from stored hashes (`size.count_ones()` reads), e.g. to
    /// resume appending after opening a stored log.
    pub fn from_source<S: HashSource + ?Sized>(
        src: &S,
        size: u64,
    ) -> Result<Self, ProofBuildError<S::Error>> {
        Ok(Self {
            size,
            hashes: perfect_subtrees(src, 0, size)?,
        })
    }
}

/// The root of `[0, size)` read from stored hashes: `size.count_ones()` reads.
pub fn root_at<S: HashSource + ?Sized>(
    src: &S,
    size: u64,
) -> Result<Hash, ProofBuildError<S::Error>> {
    Ok(fold_parts(&perfect_subtrees(src, 0, size)?))
}

/// The RFC 9162 §2.1.3.1 inclusion proof (audit path) of leaf `index` in the tree of size
/// `size`, leaf side first. O(log n) reads.
pub fn inclusion_proof<S: HashSource + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofBuildError<S::Error>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size }.into());
    }
    // PATH(m, D[start:end]) unrolled: collect top-down, then reverse (the proof is bottom-up).
    let mut path = Vec::new();
    let (mut start, mut end) = (0u64, size);
    while end - start > 1 {
        let k = split_point(end - start);
        if index < start + k {
            path.push(subtree_hash(src, start + k, end)?);
            end = start + k;
        } else {
            path.push(subtree_hash(src, start, start + k)?);
            start += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The RFC 9162 §2.1.4.1 consistency proof between the trees of sizes `old` and `new`.
/// `old == new` gives the empty proof; `old == 0` is refused with
/// [`ProofError::EmptyOldTree`] (every tree extends the empty tree, there is nothing to prove).
pub fn consistency_proof<S: HashSource + ?Sized>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofBuildError<S::Error>> {
    if old > new {
        return Err(ProofError::OldSizeLarger { old, new }.into());
    }
    if old == 0 {
        return Err(ProofError::EmptyOldTree { new }.into());
    }
    if old == new {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end], b) unrolled, collected top-down then reversed.
    let mut proof = Vec::new();
    let (mut m, mut start, mut end, mut complete) = (old, 0u64, new, true);
    loop {
        let n = end - start;
        if m == n {
            if !complete {
                proof.push(subtree_hash(src, start, end)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            proof.push(subtree_hash(src, start + k, end)?);
            end = start + k;
        } else {
            proof.push(subtree_hash(src, start, start + k)?);
            start += k;
            m -= k;
            complete = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size` (`index < size`):
/// the "inner" levels where the path to `index` and to the last leaf differ, plus one "border"
/// hash per set bit above them.
fn inclusion_proof_len(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

/// The path walk that RFC 9162 §2.1.3.2 and §2.1.4.2 share: starting from node numbers
/// `fnode` (the node being proven) and `snode` (the last node of the tree), calls
/// `step(hash, hash_is_left_sibling)` for each proof hash. Returns whether the path has exactly
/// the right length (`snode` never reaches 0 early and ends at 0).
fn walk_path(
    mut fnode: u64,
    mut snode: u64,
    path: &[Hash],
    mut step: impl FnMut(&Hash, bool),
) -> bool {
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            step(p, true);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            step(p, false);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0
}

/// Checks an RFC 9162 §2.1.3.2 inclusion proof: that `leaf` is leaf `index` of the tree of
/// `size` whose root is `root`. The proof length must be exactly the one the sizes require.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = inclusion_proof_len(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::WrongProofLength {
            expected: inner + border,
            got: proof.len(),
        });
    }
    let mut r = *leaf;
    let walked = walk_path(index, size - 1, proof, |p, p_is_left| {
        r = if p_is_left {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
    });
    if !walked {
        // Unreachable after the length check; kept as the RFC states it.
        return Err(ProofError::WrongProofLength {
            expected: inner + border,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch {
            computed: HexHash(r),
            expected: HexHash(*root),
        });
    }
    Ok(())
}

/// Checks an RFC 9162 §2.1.4.2 consistency proof: that the tree of size `new` with root
/// `new_root` extends the tree of size `old` with root `old_root`.
///
/// Conventions (those of the RFC 6962 test vectors): `old == new` needs an empty proof and
/// equal roots; `old > new` is refused; `old == 0` is refused with
/// [`ProofError::EmptyOldTree`], since a proof from the empty tree proves nothing
/// ([`verify_extends`] treats an empty old tree as extended by every tree).
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OldSizeLarger { old, new });
    }
    if old == 0 {
        return Err(ProofError::EmptyOldTree { new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch {
                computed: HexHash(*old_root),
                expected: HexHash(*new_root),
            });
        }
        return Ok(());
    }
    // Expected length: the inclusion path of leaf old-1 in the new tree, minus the levels
    // below the largest perfect subtree that ends at `old`, plus that subtree's hash unless it
    // is the whole old tree (then old_root stands in for it).
    let (inner, border) = inclusion_proof_len(old - 1, new);
    let shift = old.trailing_zeros() as usize;
    let old_is_perfect = old.is_power_of_two();
    let expected = inner - shift + border + usize::from(!old_is_perfect);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }

    // RFC 9162 §2.1.4.2, step by step.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_is_perfect {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    let walked = walk_path(fnode, snode, &path[1..], |c, c_is_left| {
        if c_is_left {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    });
    if !walked {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: HexHash(fr),
            expected: HexHash(*old_root),
        });
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch {
            computed: HexHash(sr),
            expected: HexHash(*new_root),
        });
    }
    Ok(())
}

/// Checks that the tree of size `new` with root `new_root` extends the tree of size `old` with
/// root `old_root`, as a client comparing two checkpoints needs: [`verify_consistency`], except
/// that the empty tree (size 0, root [`empty_root`], empty proof, as tlog-witness writes it) is
/// extended by every tree.
pub fn verify_extends(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old != 0 {
        return verify_consistency(old, new, proof, old_root, new_root);
    }
    if !proof.is_empty() {
        return Err(ProofError::WrongProofLength {
            expected: 0,
            got: proof.len(),
        });
    }
    if *old_root != empty_root() {
        return Err(ProofError::OldRootMismatch {
            computed: HexHash(empty_root()),
            expected: HexHash(*old_root),
        });
    }
    if new == 0 && *new_root != empty_root() {
        return Err(ProofError::RootMismatch {
            computed: HexHash(empty_root()),
            expected: HexHash(*new_root),
        });
    }
    Ok(())
}

/// The RFC 6962 root of an in-memory list of leaf hashes (MTH), for tests and small trees.
pub fn root_of_leaves(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for leaf in leaves {
        range.append(*leaf, |_, _, _| {});
    }
    range.root()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// MTH straight from the RFC's recursive definition, to check everything else against.
    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            HexHash(empty_root()).to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn compact_range_matches_mth_and_visits_every_full_node() {
        let l = leaves(70);
        let mut range = CompactRange::new();
        let mut stored = HashMap::new();
        for (i, leaf) in l.iter().enumerate() {
            range.append(*leaf, |level, index, hash| {
                assert!(stored.insert((level, index), *hash).is_none());
            });
            let size = i as u64 + 1;
            assert_eq!(range.size(), size);
            assert_eq!(range.hashes().len(), size.count_ones() as usize);
            assert_eq!(range.root(), mth(&l[..=i]));
            assert_eq!(root_at(&stored, size).unwrap(), mth(&l[..=i]));
            let rebuilt = CompactRange::from_parts(size, range.hashes().to_vec()).unwrap();
            assert_eq!(rebuilt, range);
            assert_eq!(CompactRange::from_source(&stored, size).unwrap(), range);
        }
        for ((level, index), hash) in &stored {
            let start = (index << level) as usize;
            assert_eq!(*hash, mth(&l[start..start + (1 << level)]));
        }
        // Full nodes of a 70-leaf tree: 70 + 35 + 17 + 8 + 4 + 2 + 1.
        assert_eq!(stored.len(), 137);
        assert!(CompactRange::from_parts(5, vec![l[0]]).is_err());
    }

    #[test]
    fn proofs_roundtrip_for_all_small_trees() {
        let l = leaves(33);
        for size in 1..=33u64 {
            let root = mth(&l[..size as usize]);
            for index in 0..size {
                let p = inclusion_proof(&l, index, size).unwrap();
                verify_inclusion(&l[index as usize], index, size, &p, &root).unwrap();
                if size > 1 {
                    let other = (index + 1) % size;
                    assert!(verify_inclusion(&l[other as usize], index, size, &p, &root).is_err());
                }
            }
            for old in 1..=size {
                let old_root = mth(&l[..old as usize]);
                let p = consistency_proof(&l, old, size).unwrap();
                verify_consistency(old, size, &p, &old_root, &root).unwrap();
            }
        }
        assert!(matches!(
            inclusion_proof(&l, 3, 3),
            Err(ProofBuildError::Invalid(ProofError::IndexOutOfRange { .. }))
        ));
        assert!(matches!(
            consistency_proof(&l, 0, 3),
            Err(ProofBuildError::Invalid(ProofError::EmptyOldTree { .. }))
        ));
    }

    #[test]
    fn every_tree_extends_the_empty_tree_and_nothing_else() {
        let l = leaves(5);
        let (empty, root5) = (empty_root(), mth(&l));
        verify_extends(0, 5, &[], &empty, &root5).unwrap();
        verify_extends(0, 0, &[], &empty, &empty).unwrap();
        assert!(verify_extends(0, 0, &[], &empty, &root5).is_err());
        assert!(verify_extends(0, 5, &[l[0]], &empty, &root5).is_err());
        assert!(verify_extends(0, 5, &[], &l[0], &root5).is_err());
        let p = consistency_proof(&l, 2, 5).unwrap();
        verify_extends(2, 5, &p, &mth(&l[..2]), &root5).unwrap();
        assert!(verify_extends(2, 5, &p, &mth(&l[..3]), &root5).is_err());
    }

    #[test]
    fn missing_stored_hash_is_reported() {
        let stored: HashMap<(u8, u64), Hash> = HashMap::new();
        let err = inclusion_proof(&stored, 0, 4).unwrap_err();
        assert!(matches!(
            err,
            ProofBuildError::Source {
                level: 1,
                index: 1,
                ..
            }
        ));
    }
}
