//! Merkle hashing costs, each side by side with bare `sha2` doing the same number of SHA-256
//! computations over inputs of the same size (the floor any implementation must pay).
//!
//! `cargo bench -p veritrail-log --bench merkle`

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use veritrail_log::merkle::{self, CompactRange, Hash};

fn leaf_hashing(c: &mut Criterion) {
    let record = vec![b'x'; 500];
    let mut g = c.benchmark_group("leaf_hash_500B");
    g.throughput(Throughput::Bytes(record.len() as u64));
    g.bench_function("merkle::leaf_hash", |b| {
        b.iter(|| merkle::leaf_hash(black_box(&record)))
    });
    let mut prefixed = vec![0u8];
    prefixed.extend_from_slice(&record);
    g.bench_function("baseline: sha2 over the same 501 bytes", |b| {
        b.iter(|| -> Hash { Sha256::digest(black_box(&prefixed)).into() })
    });
    g.finish();
}

fn compact_range_append(c: &mut Criterion) {
    const N: u64 = 4096;
    let leaves: Vec<Hash> = (0..N)
        .map(|i| merkle::leaf_hash(&i.to_le_bytes()))
        .collect();
    let mut g = c.benchmark_group("append_4096_leaf_hashes");
    g.throughput(Throughput::Elements(N));
    g.bench_function("CompactRange::append (visit every node)", |b| {
        b.iter(|| {
            let mut range = CompactRange::new();
            let mut visited = 0u64;
            for leaf in &leaves {
                range.append(*leaf, |_, _, h| visited += u64::from(h[0]));
            }
            (range.root(), visited)
        })
    });
    // A tree of N leaves needs N - 1 node hashes of 65 bytes each.
    let mut node_input = [1u8; 65];
    node_input[0] = 0x01;
    g.bench_function("baseline: sha2 over N-1 65-byte inputs", |b| {
        b.iter(|| {
            let mut acc: Hash = [0; 32];
            for _ in 1..N {
                node_input[1..33].copy_from_slice(&acc);
                acc = Sha256::digest(black_box(&node_input)).into();
            }
            acc
        })
    });
    g.finish();
}

fn proof_verification(c: &mut Criterion) {
    // A proof in a tree of ten million leaves, checked from its hashes alone.
    let size = 10_000_000u64;
    let index = 7_654_321u64;
    let leaf = merkle::leaf_hash(b"record");
    let len = match merkle::verify_inclusion(&leaf, index, size, &[], &[0; 32]) {
        Err(merkle::ProofError::WrongProofLength { expected, .. }) => expected,
        other => panic!("unexpected: {other:?}"),
    };
    let proof: Vec<Hash> = (0..len as u64)
        .map(|i| merkle::leaf_hash(&i.to_le_bytes()))
        .collect();
    // Find the root this proof leads to by verifying against a dummy and reading the error.
    let root = match merkle::verify_inclusion(&leaf, index, size, &proof, &[0; 32]) {
        Err(merkle::ProofError::RootMismatch { computed, .. }) => computed.0,
        other => panic!("unexpected: {other:?}"),
    };
    let mut g = c.benchmark_group("verify_inclusion_10M_leaves");
    g.bench_function("merkle::verify_inclusion", |b| {
        b.iter(|| merkle::verify_inclusion(black_box(&leaf), index, size, &proof, &root))
    });
    let mut node_input = [1u8; 65];
    g.bench_function("baseline: sha2 over as many 65-byte inputs", |b| {
        b.iter(|| {
            let mut acc: Hash = [0; 32];
            for p in &proof {
                node_input[1..33].copy_from_slice(&acc);
                node_input[33..].copy_from_slice(p);
                acc = Sha256::digest(black_box(&node_input)).into();
            }
            acc
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    leaf_hashing,
    compact_range_append,
    proof_verification
);
criterion_main!(benches);
