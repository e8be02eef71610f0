//! Every RFC 6962 proof vector in the shared vectors folder (transparency-dev/merkle testdata)
//! must pass or fail exactly as its `wantErr` says.
//!
//! The folder is `rfc6962/` of the vectors folder that `support/vectors.rs` finds.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use veritrail_log::merkle::{self, Hash};

#[path = "support/vectors.rs"]
mod support;
use support::vectors_dir;

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "reading vectors folder {}: {e} (set VERITRAIL_VECTORS to the shared vectors folder)",
            dir.display()
        )
    });
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// A leaf or proof hash from a vector: it must be 32 bytes (the reference verifier refuses a
/// leaf hash of another size too; the typed API cannot even carry one).
fn hash(b64: &str) -> Result<Hash, String> {
    let bytes = STANDARD.decode(b64).map_err(|e| e.to_string())?;
    Hash::try_from(bytes.as_slice()).map_err(|_| format!("{} bytes, not 32", bytes.len()))
}

/// A root from a vector. A few vectors hold "don't care" roots that are not 32 bytes, which the
/// reference verifier only ever compares byte for byte. They are mapped to a 32-byte stand-in
/// that keeps exactly that: equal values stay equal, and no tree hash can equal one (it is a
/// SHA-256 under a domain tag no RFC 6962 hash uses).
fn root(b64: &str) -> Result<Hash, String> {
    let bytes = STANDARD.decode(b64).map_err(|e| e.to_string())?;
    Ok(Hash::try_from(bytes.as_slice()).unwrap_or_else(|_| {
        let mut h = Sha256::new();
        h.update(b"not a 32-byte hash:");
        h.update(&bytes);
        h.finalize().into()
    }))
}

fn hashes(list: &Option<Vec<String>>) -> Result<Vec<Hash>, String> {
    list.iter().flatten().map(|h| hash(h)).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn check_inclusion(v: &Inclusion) -> Result<(), String> {
    let proof = hashes(&v.proof)?;
    let root = root(&v.root)?;
    let leaf = hash(&v.leaf_hash)?;
    merkle::verify_inclusion(&leaf, v.leaf_idx, v.tree_size, &proof, &root)
        .map_err(|e| e.to_string())
}

fn check_consistency(v: &Consistency) -> Result<(), String> {
    let proof = hashes(&v.proof)?;
    let root1 = root(&v.root1)?;
    let root2 = root(&v.root2)?;
    merkle::verify_consistency(v.size1, v.size2, &proof, &root1, &root2).map_err(|e| e.to_string())
}

fn run<T: for<'de> Deserialize<'de>>(
    kind: &str,
    check: impl Fn(&T) -> Result<(), String>,
    want_err: impl Fn(&T) -> bool,
    desc: impl Fn(&T) -> &str,
) -> (usize, usize) {
    let mut files = Vec::new();
    json_files(&vectors_dir().join("rfc6962").join(kind), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no {kind} vectors found");
    let (mut failures, mut errs) = (Vec::new(), 0);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let v: T = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()));
        let got = check(&v);
        if got.is_err() {
            errs += 1;
        }
        if got.is_err() != want_err(&v) {
            failures.push(format!(
                "{} ({}): wantErr={} got {:?}",
                file.display(),
                desc(&v),
                want_err(&v),
                got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (files.len(), errs)
}

#[test]
fn all_inclusion_vectors() {
    let (n, errs) = run::<Inclusion>("inclusion", check_inclusion, |v| v.want_err, |v| &v.desc);
    // Both outcomes must be exercised, or the folder is not what we think it is.
    assert!(n > 50 && errs > 0 && errs < n, "{n} files, {errs} errors");
}

#[test]
fn all_consistency_vectors() {
    let (n, errs) = run::<Consistency>(
        "consistency",
        check_consistency,
        |v| v.want_err,
        |v| &v.desc,
    );
    assert!(n > 50 && errs > 0 && errs < n, "{n} files, {errs} errors");
}

#[test]
fn vector_count_is_complete() {
    let mut files = Vec::new();
    json_files(&vectors_dir().join("rfc6962"), &mut files);
    assert_eq!(files.len(), 196, "expected the 196 RFC 6962 vectors");
}

/// The vectors' happy paths are also reproduced by our proof builders over the vectors' leaves.
#[test]
fn builders_reproduce_happy_path_vectors() {
    let data: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        b"`abcdefghijklmno",
    ];
    let leaves: Vec<Hash> = data.iter().map(|d| merkle::leaf_hash(d)).collect();
    // The root SOURCE.md gives for these leaves.
    assert_eq!(
        merkle::HexHash(merkle::root_of_leaves(&leaves)).to_string(),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    let mut checked = 0;
    let mut files = Vec::new();
    json_files(&vectors_dir().join("rfc6962"), &mut files);
    for file in files.iter().filter(|f| f.ends_with("happy-path.json")) {
        let text = std::fs::read_to_string(file).unwrap();
        if text.contains("leafIdx") {
            let v: Inclusion = serde_json::from_str(&text).unwrap();
            let built = merkle::inclusion_proof(&leaves, v.leaf_idx, v.tree_size).unwrap();
            assert_eq!(built, hashes(&v.proof).unwrap(), "{}", file.display());
            let root = merkle::root_at(&leaves, v.tree_size).unwrap();
            assert_eq!(root, hash(&v.root).unwrap());
        } else {
            let v: Consistency = serde_json::from_str(&text).unwrap();
            let built = merkle::consistency_proof(&leaves, v.size1, v.size2).unwrap();
            assert_eq!(built, hashes(&v.proof).unwrap(), "{}", file.display());
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} happy paths");
}
