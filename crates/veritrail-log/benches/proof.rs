//! An inclusion proof for a random index of a 10,000,000-record log, side by side with one
//! random 32-byte read of the stored hashes (a proof costs about 2·log2(n) of those).
//!
//! Building the log (tiny records, to keep it quick) also measures the appender's memory:
//! resident set size and its peak after 1, 2, 5 and 10 million records; flat means the
//! appender holds O(log n) state plus fixed buffers.
//!
//! `cargo bench -p veritrail-log --bench proof`. The log is built once under Cargo's
//! `CARGO_TARGET_TMPDIR` and reused (delete it to measure memory again); its files are in the
//! page cache when measured.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use veritrail_log::{Log, LogOptions, NoteSigner, merkle};

const RECORDS: u64 = 10_000_000;
const BATCH: u64 = 65_536;

/// A `VmRSS` / `VmHWM` line from `/proc/self/status`, in MiB.
fn memory(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn build(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let signer = NoteSigner::generate("bench.example/proof").unwrap();
    let mut log = Log::open(dir, signer, LogOptions::default()).unwrap();
    let start = std::time::Instant::now();
    let mut report_at = [1_000_000u64, 2_000_000, 5_000_000, 10_000_000]
        .into_iter()
        .peekable();
    let mut first = 0;
    while first < RECORDS {
        let end = (first + BATCH).min(RECORDS);
        let batch: Vec<Vec<u8>> = (first..end)
            .map(|i| format!("{{\"i\":{i}}}").into_bytes())
            .collect();
        log.append_batch(batch.iter().map(Vec::as_slice)).unwrap();
        log.sync().unwrap();
        first = end;
        while report_at.peek().is_some_and(|&n| log.size() >= n) {
            let n = report_at.next().unwrap();
            eprintln!(
                "appender memory after {:>10} records: VmRSS {:6.1} MiB, VmHWM (peak) {:6.1} MiB",
                n,
                memory("VmRSS:"),
                memory("VmHWM:")
            );
        }
    }
    assert_eq!(log.size(), RECORDS);
    log.close().unwrap();
    eprintln!(
        "built {} records in {:.1} s",
        RECORDS,
        start.elapsed().as_secs_f64()
    );
}

fn log_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-proof-10M");
    if Log::open_read_only(&dir).is_ok_and(|l| l.size() >= RECORDS) {
        eprintln!(
            "reusing {} (delete it to measure appender memory again)",
            dir.display()
        );
    } else {
        build(&dir);
    }
    dir
}

/// xorshift64: random indexes without a dependency.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn inclusion_proof(c: &mut Criterion) {
    let dir = log_dir();
    let log = Log::open_read_only(&dir).unwrap();
    let size = log.size();
    let root = log.root();
    eprintln!("reader memory: VmRSS {:.1} MiB", memory("VmRSS:"));

    let mut g = c.benchmark_group("inclusion_proof_10M");
    g.sample_size(50);
    g.measurement_time(Duration::from_secs(5));
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    g.bench_function("veritrail: inclusion_proof(random index)", |b| {
        b.iter(|| {
            let index = next(&mut x) % size;
            log.inclusion_proof(black_box(index), size).unwrap()
        })
    });
    g.bench_function("veritrail: read + inclusion_proof + verify (prove)", |b| {
        b.iter(|| {
            let index = next(&mut x) % size;
            let record = log.read(index).unwrap();
            let proof = log.inclusion_proof(index, size).unwrap();
            merkle::verify_inclusion(&merkle::leaf_hash(&record), index, size, &proof, &root)
                .unwrap();
        })
    });
    let leaves = File::open(dir.join("tree/level-00.hashes")).unwrap();
    g.bench_function("baseline: one random 32-byte pread of a stored hash", |b| {
        b.iter(|| {
            let index = next(&mut x) % size;
            let mut h = [0u8; 32];
            leaves.read_exact_at(&mut h, index * 32).unwrap();
            h
        })
    });
    g.finish();
}

criterion_group!(benches, inclusion_proof);
criterion_main!(benches);
