//! Property tests: proofs built from stored hashes verify, and a proof is refused for any other
//! record, index, tree size or root.

use std::collections::HashMap;

use proptest::prelude::*;
use veritrail_log::merkle::{self, CompactRange, Hash};

/// A tree of `size` distinct records, its stored full-subtree hashes, and the root at every
/// size `0..=size` (roots[n] = root of the first n leaves).
struct Tree {
    leaves: Vec<Hash>,
    stored: HashMap<(u8, u64), Hash>,
    roots: Vec<Hash>,
}

fn tree(size: u64, salt: u64) -> Tree {
    let mut range = CompactRange::new();
    let mut stored = HashMap::new();
    let mut leaves = Vec::new();
    let mut roots = vec![range.root()];
    for i in 0..size {
        let record = [salt.to_le_bytes(), i.to_le_bytes()].concat();
        let leaf = merkle::leaf_hash(&record);
        leaves.push(leaf);
        range.append(leaf, |level, index, hash| {
            stored.insert((level, index), *hash);
        });
        roots.push(range.root());
    }
    Tree {
        leaves,
        stored,
        roots,
    }
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut h = *h;
    h[bit / 8 % 32] ^= 1 << (bit % 8);
    h
}

/// (size, index < size, other index < size, other size >= 1, salt, bit).
fn inclusion_case() -> impl Strategy<Value = (u64, u64, u64, u64, u64, usize)> {
    (1u64..700).prop_flat_map(|size| {
        (
            Just(size),
            0..size,
            0..size,
            1u64..700,
            any::<u64>(),
            0usize..256,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn inclusion_proofs_verify_and_bind_everything(
        (size, index, other_index, other_size, salt, bit) in inclusion_case()
    ) {
        let t = tree(size.max(other_size), salt);
        let root = t.roots[size as usize];
        let leaf = t.leaves[index as usize];
        let proof = merkle::inclusion_proof(&t.stored, index, size).unwrap();
        prop_assert_eq!(merkle::root_at(&t.stored, size).unwrap(), root);
        prop_assert_eq!(&proof, &merkle::inclusion_proof(&t.leaves[..], index, size).unwrap());
        prop_assert!(merkle::verify_inclusion(&leaf, index, size, &proof, &root).is_ok());

        // Another record.
        let stranger = merkle::leaf_hash(b"not in the tree");
        prop_assert!(merkle::verify_inclusion(&stranger, index, size, &proof, &root).is_err());
        if other_index != index {
            let other_leaf = t.leaves[other_index as usize];
            prop_assert!(merkle::verify_inclusion(&other_leaf, index, size, &proof, &root).is_err());
            // Same record and proof, claimed at another index.
            prop_assert!(merkle::verify_inclusion(&leaf, other_index, size, &proof, &root).is_err());
        }
        // Another tree size, with that size's real root.
        if other_size != size {
            let other_root = t.roots[other_size as usize];
            prop_assert!(merkle::verify_inclusion(&leaf, index, other_size, &proof, &other_root).is_err());
        }
        // Another root, or any altered proof hash.
        prop_assert!(merkle::verify_inclusion(&leaf, index, size, &proof, &flip(&root, bit)).is_err());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let at = bit % bad.len();
            bad[at] = flip(&bad[at], bit);
            prop_assert!(merkle::verify_inclusion(&leaf, index, size, &bad, &root).is_err());
            // Too short, or too long.
            prop_assert!(merkle::verify_inclusion(&leaf, index, size, &proof[1..], &root).is_err());
        }
        let mut long = proof.clone();
        long.push(root);
        prop_assert!(merkle::verify_inclusion(&leaf, index, size, &long, &root).is_err());
        // Index outside the tree.
        prop_assert!(merkle::verify_inclusion(&leaf, size, size, &proof, &root).is_err());
    }

    #[test]
    fn consistency_proofs_verify_and_bind_everything(
        (new, old, other, salt, bit) in (1u64..700).prop_flat_map(|new| {
            (Just(new), 1..=new, 1..=new, any::<u64>(), 0usize..256)
        })
    ) {
        let t = tree(new, salt);
        let (old_root, new_root) = (t.roots[old as usize], t.roots[new as usize]);
        let proof = merkle::consistency_proof(&t.stored, old, new).unwrap();
        prop_assert_eq!(&proof, &merkle::consistency_proof(&t.leaves[..], old, new).unwrap());
        prop_assert!(merkle::verify_consistency(old, new, &proof, &old_root, &new_root).is_ok());

        // Another old size or new size, each with its real root.
        if other != old {
            let other_root = t.roots[other as usize];
            prop_assert!(merkle::verify_consistency(other, new, &proof, &other_root, &new_root).is_err());
        }
        if other != new && other >= old {
            let other_root = t.roots[other as usize];
            prop_assert!(merkle::verify_consistency(old, other, &proof, &old_root, &other_root).is_err());
        }
        // Altered roots or proof hashes.
        prop_assert!(merkle::verify_consistency(old, new, &proof, &flip(&old_root, bit), &new_root).is_err());
        prop_assert!(merkle::verify_consistency(old, new, &proof, &old_root, &flip(&new_root, bit)).is_err());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let at = bit % bad.len();
            bad[at] = flip(&bad[at], bit);
            prop_assert!(merkle::verify_consistency(old, new, &bad, &old_root, &new_root).is_err());
            prop_assert!(merkle::verify_consistency(old, new, &proof[1..], &old_root, &new_root).is_err());
        }
        let mut long = proof.clone();
        long.push(new_root);
        prop_assert!(merkle::verify_consistency(old, new, &long, &old_root, &new_root).is_err());
        // A tree that diverges from the old one (one record changed) is not an extension.
        if old < new {
            let mut forked = t.leaves.clone();
            forked[(bit as u64 % old) as usize] = merkle::leaf_hash(b"rewritten");
            let forked_root = merkle::root_of_leaves(&forked);
            prop_assert!(merkle::verify_consistency(old, new, &proof, &old_root, &forked_root).is_err());
            let forked_proof = merkle::consistency_proof(&forked[..], old, new).unwrap();
            prop_assert!(
                merkle::verify_consistency(old, new, &forked_proof, &old_root, &forked_root).is_err()
            );
        }
    }

    #[test]
    fn compact_range_rebuilt_from_parts_continues_identically(
        (first, more, salt) in (0u64..600, 1u64..600, any::<u64>())
    ) {
        let t = tree(first + more, salt);
        let mut range = CompactRange::new();
        for leaf in &t.leaves[..first as usize] {
            range.append(*leaf, |_, _, _| {});
        }
        let mut rebuilt = CompactRange::from_parts(range.size(), range.hashes().to_vec()).unwrap();
        for leaf in &t.leaves[first as usize..] {
            rebuilt.append(*leaf, |_, _, _| {});
        }
        prop_assert_eq!(rebuilt.root(), t.roots[(first + more) as usize]);
    }
}
