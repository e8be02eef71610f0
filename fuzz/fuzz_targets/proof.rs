//! tlog-proof files and consistency bodies (veritrail-log `proof`).
//!
//! Input: one mode byte, then UTF-8 text:
//! - even: an inclusion proof file; a parsed one prints back to the same text; it is verified
//!   as given, and (mode & 2) with its checkpoint replaced by a valid signed checkpoint of a
//!   fixed tree, so fuzzed indexes and proof hashes reach the Merkle check;
//! - odd: a consistency body, the same way (from the fixed tree's smaller checkpoint).
//!
//! Properties: nothing panics; printing is the inverse of parsing; what verifies against the
//! fixed tree is a true statement about it.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::{note_signer, note_verifier};
use veritrail_log::merkle::{self, Hash};
use veritrail_log::proof::{ConsistencyBody, InclusionProofFile};
use veritrail_log::{Checkpoint, NoteVerifier};

struct Tree {
    verifier: NoteVerifier,
    leaves: Vec<Vec<u8>>,
    /// The signed checkpoints of sizes 3 and 7.
    small: Checkpoint,
    signed: String,
}

static TREE: LazyLock<Tree> = LazyLock::new(|| {
    let leaves: Vec<Vec<u8>> = (0..7).map(|i| format!("record {i}").into_bytes()).collect();
    let hashes: Vec<Hash> = leaves.iter().map(|l| merkle::leaf_hash(l)).collect();
    let checkpoint = |size: usize| Checkpoint {
        origin: "fuzz.example/log".into(),
        size: size as u64,
        root: merkle::root_of_leaves(&hashes[..size]),
        extensions: Vec::new(),
    };
    Tree {
        verifier: note_verifier(),
        leaves,
        small: checkpoint(3),
        signed: checkpoint(7).sign(&note_signer()).unwrap(),
    }
});

fuzz_target!(|data: &[u8]| {
    let tree = &*TREE;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(mut file) = InclusionProofFile::parse(text) else {
            return;
        };
        assert_eq!(file.to_text(), text);
        let _ = file.verify(&tree.verifier);
        if mode & 2 == 2 {
            file.checkpoint = tree.signed.clone();
            if file.verify(&tree.verifier).is_ok() {
                assert_eq!(
                    tree.leaves
                        .get(usize::try_from(file.index).unwrap_or(usize::MAX)),
                    Some(&file.record),
                    "a proof verifies for a record that is not at its index"
                );
            }
        }
    } else {
        let Ok(mut body) = ConsistencyBody::parse(text) else {
            return;
        };
        assert_eq!(body.to_text(), text);
        let _ = body.verify(&tree.small, &tree.verifier);
        if mode & 2 == 2 {
            body.checkpoint = tree.signed.clone();
            if body.verify(&tree.small, &tree.verifier).is_ok() {
                assert_eq!(body.old_size, 3);
            }
        }
    }
});
