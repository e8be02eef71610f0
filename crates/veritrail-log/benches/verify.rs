//! Verifying a large log (about 256 MiB of 500-byte records) with `verify_dir` on both cores,
//! side by side with single-core SHA-256 over 1024-byte blocks of the same number of bytes —
//! what `openssl speed -bytes 1024 sha256` measures; that command's own figure is printed too
//! when `openssl` is installed.
//!
//! `cargo bench -p veritrail-log --bench verify`. The log is built once under Cargo's
//! `CARGO_TARGET_TMPDIR` and reused; the files are in the page cache when measured.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use veritrail_log::verify::{VerifyOptions, verify_dir};
use veritrail_log::{Log, LogOptions, NoteSigner, NoteVerifier};

const RECORDS: u64 = 512 * 1024;
const RECORD: usize = 500;

fn record(i: u64) -> Vec<u8> {
    support::record(i, RECORD)
}

/// The log (built on first use) and its verifier key.
fn log_dir() -> (PathBuf, NoteVerifier) {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-verify-256MiB");
    let key_path = base.with_extension("key");
    if let Ok(text) = std::fs::read_to_string(&key_path)
        && let Ok(signer) = NoteSigner::from_text(&text)
        && Log::open_read_only(&base).is_ok_and(|l| l.size() == RECORDS)
    {
        return (base, signer.verifier());
    }
    let _ = std::fs::remove_dir_all(&base);
    let signer = NoteSigner::generate("bench.example/verify").unwrap();
    std::fs::write(&key_path, signer.to_text().as_bytes()).unwrap();
    let verifier = signer.verifier();
    let mut log = Log::open(&base, signer, LogOptions::default()).unwrap();
    for chunk in 0..RECORDS / 4096 {
        let batch: Vec<Vec<u8>> = (chunk * 4096..(chunk + 1) * 4096).map(record).collect();
        log.append_batch(batch.iter().map(Vec::as_slice)).unwrap();
        log.sync().unwrap();
    }
    log.close().unwrap();
    (base, verifier)
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Prints `openssl speed -bytes 1024 sha256` for reference.
fn print_openssl_speed() {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-bytes", "1024", "-seconds", "3", "sha256"])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(line) = text.lines().rev().find(|l| l.starts_with("sha256")) {
                let kb: f64 = line
                    .split_whitespace()
                    .last()
                    .and_then(|v| v.trim_end_matches('k').parse().ok())
                    .unwrap_or(0.0);
                eprintln!(
                    "openssl speed -bytes 1024 sha256 (single core): {:.0} MB/s ({line})",
                    kb * 1000.0 / 1e6
                );
            }
        }
        _ => eprintln!("openssl not available: no `openssl speed` reference figure"),
    }
}

/// Wall and CPU time of `runs` calls, printed as MB/s of wall time and MB per CPU-second:
/// the second does not depend on how busy the machine is.
fn cpu_report(what: &str, bytes: u64, runs: u32, mut f: impl FnMut()) {
    let (wall, cpu) = (std::time::Instant::now(), support::cpu_seconds());
    for _ in 0..runs {
        f();
    }
    let (wall, cpu) = (wall.elapsed().as_secs_f64(), support::cpu_seconds() - cpu);
    let mb = bytes as f64 * f64::from(runs) / 1e6;
    eprintln!(
        "{what:<48} {:7.0} MB/s wall, {:7.0} MB per CPU-second",
        mb / wall,
        mb / cpu
    );
}

fn verify_large_log(c: &mut Criterion) {
    let (dir, verifier) = log_dir();
    let bytes = segment_bytes(&dir);
    eprintln!(
        "log: {RECORDS} records of {RECORD} bytes, {:.1} MiB of segments, {} cores",
        bytes as f64 / (1 << 20) as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    print_openssl_speed();

    let mut g = c.benchmark_group("verify_256MiB");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for threads in [2, 1] {
        let opts = VerifyOptions::default().threads(threads);
        g.bench_function(format!("veritrail: verify_dir, {threads} thread(s)"), |b| {
            b.iter(|| {
                let report = verify_dir(&dir, &verifier, &opts).unwrap();
                assert_eq!(report.records, RECORDS);
            })
        });
    }
    let data: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
    let sha_1k = || {
        let mut last = [0u8; 32];
        for block in data.chunks(1024) {
            last = Sha256::digest(black_box(block)).into();
        }
        black_box(last);
    };
    for threads in [2, 1] {
        let opts = VerifyOptions::default().threads(threads);
        cpu_report(
            &format!("verify_dir, {threads} thread(s)"),
            bytes,
            5,
            || {
                verify_dir(&dir, &verifier, &opts).unwrap();
            },
        );
    }
    cpu_report(
        "baseline: sha256 1024-byte blocks, 1 core",
        bytes,
        5,
        sha_1k,
    );
    g.bench_function("baseline: sha256 over 1024-byte blocks, 1 core", |b| {
        b.iter(sha_1k)
    });
    g.finish();
}

criterion_group!(benches, verify_large_log);
criterion_main!(benches);
