//! Durable appends, each side by side with the disk's bare rate in the same run:
//!
//! - `append_batch_4096x500B`: 4,096 records of 500 bytes, `append_batch` + one `sync` (one
//!   fdatasync) per batch, hashing and framing included — against a bare `write` of the same
//!   framed bytes + `fdatasync`. Run on the disk under the temp directory and, to show the
//!   CPU-side ceiling, on tmpfs (`/dev/shm`, where fdatasync costs nothing).
//! - `append_fsync_each_500B`: one record, one `sync` — against a bare 508-byte `write` +
//!   `fdatasync`.
//!
//! `cargo bench -p veritrail-log --bench append` (set `TMPDIR` to bench another disk).

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use veritrail_log::{Log, LogOptions, NoteSigner};

const BATCH: usize = 4096;
const RECORD: usize = 500;
/// Frame header (length + crc32c) the log writes before each record.
const FRAME: usize = 8;
/// Bytes after which a benchmark starts over in a fresh file.
const START_OVER: u64 = 256 << 20;

/// `n` distinct 500-byte records.
fn records(n: usize) -> Vec<Vec<u8>> {
    (0..n as u64).map(|i| support::record(i, RECORD)).collect()
}

fn open_log(dir: &Path) -> Log {
    let signer = NoteSigner::generate("bench.example/append").unwrap();
    Log::open(dir, signer, LogOptions::default()).unwrap()
}

/// The bytes the log writes for a batch, for the baseline.
fn framed(batch: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.len() * (RECORD + FRAME));
    for r in batch {
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(r);
    }
    out
}

fn batches_on(c: &mut Criterion, name: &str, base: &Path) {
    let batch = records(BATCH);
    let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let bytes = framed(&batch);
    let mut g = c.benchmark_group(format!("append_batch_4096x500B/{name}"));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));

    // Both sides start over in a fresh file every 256 MiB (outside the timed part), so that
    // long runs do not fill the disk or tmpfs.
    let mut dir = tempfile::tempdir_in(base).unwrap();
    let mut log = open_log(dir.path());
    g.bench_function("veritrail: append_batch + sync", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if log.size() * (RECORD + FRAME) as u64 > START_OVER {
                    dir = tempfile::tempdir_in(base).unwrap();
                    log = open_log(dir.path());
                }
                let t = Instant::now();
                log.append_batch(slices.iter().copied()).unwrap();
                log.sync().unwrap();
                spent += t.elapsed();
            }
            spent
        })
    });
    drop(log);

    let mut file = File::create(dir.path().join("bare")).unwrap();
    let mut written = 0u64;
    g.bench_function("baseline: write + fdatasync", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if written > START_OVER {
                    dir = tempfile::tempdir_in(base).unwrap();
                    file = File::create(dir.path().join("bare")).unwrap();
                    written = 0;
                }
                let t = Instant::now();
                file.write_all(black_box(&bytes)).unwrap();
                file.sync_data().unwrap();
                spent += t.elapsed();
                written += bytes.len() as u64;
            }
            spent
        })
    });
    g.finish();
}

/// Records per wall second and per CPU-second of `batches` batches on tmpfs: the CPU figure
/// does not depend on how busy the machine is.
fn cpu_report(base: &Path) {
    let batch = records(BATCH);
    let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let bytes = framed(&batch);
    let batches = 100u32;
    let n = f64::from(batches) * BATCH as f64;
    let report = |what: &str, wall: f64, cpu: f64| {
        eprintln!(
            "{what:<44} {:9.0} records/s wall, {:9.0} records per CPU-second",
            n / wall,
            n / cpu
        );
    };
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut log = open_log(dir.path());
    let (wall, cpu) = (Instant::now(), support::cpu_seconds());
    for _ in 0..batches {
        log.append_batch(slices.iter().copied()).unwrap();
        log.sync().unwrap();
    }
    report(
        "tmpfs, veritrail: append_batch + sync",
        wall.elapsed().as_secs_f64(),
        support::cpu_seconds() - cpu,
    );
    drop(log);
    let mut file = File::create(dir.path().join("bare")).unwrap();
    let (wall, cpu) = (Instant::now(), support::cpu_seconds());
    for _ in 0..batches {
        file.write_all(&bytes).unwrap();
        file.sync_data().unwrap();
    }
    report(
        "tmpfs, baseline: write + fdatasync",
        wall.elapsed().as_secs_f64(),
        support::cpu_seconds() - cpu,
    );
}

fn append_batches(c: &mut Criterion) {
    batches_on(c, "disk", &std::env::temp_dir());
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        cpu_report(shm);
        batches_on(c, "tmpfs", shm);
    }
}

fn append_fsync_each(c: &mut Criterion) {
    let record = records(1).pop().unwrap();
    let bytes = framed(std::slice::from_ref(&record));
    let mut g = c.benchmark_group("append_fsync_each_500B");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));

    let dir = tempfile::tempdir().unwrap();
    let mut log = open_log(dir.path());
    g.bench_function("veritrail: append + sync", |b| {
        b.iter(|| {
            log.append(black_box(&record)).unwrap();
            log.sync().unwrap();
        })
    });
    drop(log);

    let mut file = File::create(dir.path().join("bare")).unwrap();
    g.bench_function("baseline: write + fdatasync", |b| {
        b.iter(|| {
            file.write_all(black_box(&bytes)).unwrap();
            file.sync_data().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, append_batches, append_fsync_each);
criterion_main!(benches);
