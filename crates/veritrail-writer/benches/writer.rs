//! Writer benchmarks, side by side in one run (criterion, plus a summary table at the end):
//!
//! - `async`: one producer thread, N ~500-byte events, timed until they are all on disk
//!   (veritrail: `Durability::Async`, then `shutdown`, which drains and fsyncs; baseline:
//!   tracing-appender's `non_blocking` writer, not lossy, under a JSON `tracing-subscriber`
//!   layer writing the same fields to a file, timed until its guard has flushed).
//! - `durable`: 64 and 512 concurrent producers each awaiting `Durability::Durable`
//!   acknowledgements, with p50 / p99 acknowledgement latency in the table; next to the bare
//!   rate of one 4 KiB write + fdatasync on the same disk.
//! - memory: bytes per queued event, measured from the resident set with the disk held.
//!
//! Run: `cargo bench -p veritrail-writer --bench writer` (files go to a temporary directory on
//! the disk holding `$TMPDIR`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use veritrail_core::recorder::{Durability, Recorder};
use veritrail_writer::{OverflowPolicy, Writer, WriterConfig};

/// CPU time of the whole process (every thread, user + system), from `/proc/self/stat`, in
/// seconds (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Events and process CPU time spent on them, per benchmark, over every criterion iteration.
static CPU: Mutex<Vec<(&'static str, u64, f64)>> = Mutex::new(Vec::new());

/// Runs `f` (which handles `events` events) and adds its CPU time to `name`'s tally.
fn tally<T>(name: &'static str, events: u64, f: impl FnOnce() -> T) -> T {
    let before = cpu_seconds();
    let out = f();
    let spent = cpu_seconds() - before;
    let mut cpu = CPU.lock().unwrap();
    match cpu.iter_mut().find(|(n, ..)| *n == name) {
        Some(entry) => {
            entry.1 += events;
            entry.2 += spent;
        }
        None => cpu.push((name, events, spent)),
    }
    out
}

/// Events per criterion iteration in the `async` group.
const ASYNC_EVENTS: u64 = 1_000;

fn writer_config() -> WriterConfig {
    // Never refuse: the producer waits for room instead (the comparison is lossless on both
    // sides).
    WriterConfig::default().overflow(OverflowPolicy::Block {
        timeout: Duration::from_secs(30),
    })
}

/// One veritrail event's record size, for the table.
fn record_len() -> usize {
    let mut out = Vec::new();
    common::event("bench-0000000").write_json(1_000_000, &mut out);
    out.len()
}

fn veritrail_async(events: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), common::signer(), writer_config()).unwrap();
    let handle = writer.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        for i in 0..events {
            let event = common::event(&format!("bench-{i:07}"));
            handle.record(event, Durability::Async).await.unwrap();
        }
    });
    let report = writer.shutdown_blocking(Instant::now() + Duration::from_secs(60));
    let elapsed = started.elapsed();
    assert_eq!((report.flushed, report.rejected), (events, 0));
    elapsed
}

/// The same fields as `common::event`, through tracing's JSON formatter.
fn tracing_async(events: u64) -> Duration {
    use tracing_subscriber::layer::SubscriberExt;
    let dir = tempfile::tempdir().unwrap();
    let file = tracing_appender::rolling::never(dir.path(), "audit.log");
    // Not lossy, like the writer; 16 Ki lines so the guard's flush at the end fits in its
    // one-second wait (the line count is checked below).
    let (non_blocking, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(16 << 10)
        .finish(file);
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(non_blocking),
    );
    let started = Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..events {
            let id = uuid_like(i);
            let action = format!("bench-{i:07}");
            tracing::info!(
                target: "audit",
                v = 1,
                id = %id,
                index = i,
                kind = "http",
                phase = "complete",
                actor.sub = "user-7f3a9c",
                actor.iss = "https://idp.example.com/realms/main",
                actor.aud = "orders-api",
                actor.jti = "6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b",
                actor.kid = "key-2026-11",
                actor.alg = "ES256",
                actor.scopes = "orders:read orders:write",
                request.method = "POST",
                request.route = "/orders/{id}/items",
                request.path = "/orders/12345/items",
                request.client_address = "203.0.113.9",
                authn.decision = "allowed",
                action = %action,
                target = "order:12345",
                status = 201,
                latency_us = 830,
                outcome = "success",
            );
        }
    });
    drop(guard);
    let elapsed = started.elapsed();
    let written = std::fs::read(dir.path().join("audit.log")).unwrap();
    let lines = written.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(lines, events, "tracing-appender flushed every line");
    TRACING_LINE.store(
        written.len() / lines as usize,
        std::sync::atomic::Ordering::Relaxed,
    );
    elapsed
}

static TRACING_LINE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn uuid_like(i: u64) -> String {
    format!(
        "019ac0de-{:04x}-7{:03x}-8{:03x}-{:012x}",
        i & 0xffff,
        i & 0xfff,
        i & 0xfff,
        i
    )
}

fn bench_async(c: &mut Criterion) {
    let mut group = c.benchmark_group("async");
    group.throughput(Throughput::Elements(ASYNC_EVENTS));
    group.bench_function("veritrail", |b| {
        b.iter_custom(|iters| {
            let n = iters * ASYNC_EVENTS;
            tally("async/veritrail", n, || veritrail_async(n))
        })
    });
    group.bench_function("tracing-appender", |b| {
        b.iter_custom(|iters| {
            let n = iters * ASYNC_EVENTS;
            tally("async/tracing-appender", n, || tracing_async(n))
        })
    });
    group.finish();
}

/// Acknowledgement latencies (ns) of the `durable` runs, by producer count.
static LATENCIES: Mutex<Vec<(usize, Vec<u64>)>> = Mutex::new(Vec::new());

fn bench_durable(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for producers in [64usize, 512] {
        let mut samples: Vec<u64> = Vec::new();
        group.throughput(Throughput::Elements(producers as u64));
        group.bench_function(BenchmarkId::new("producers", producers), |b| {
            b.iter_custom(|iters| {
                // A fresh log per sample (opened and stopped outside the timing), so that the
                // benchmark never holds more than one sample's worth of disk.
                let dir = tempfile::tempdir().unwrap();
                let writer = Writer::open(dir.path(), common::signer(), writer_config()).unwrap();
                let handle = writer.handle();
                let name = if producers == 64 {
                    "durable/64"
                } else {
                    "durable/512"
                };
                let events = iters * producers as u64;
                let (elapsed, latencies) = tally(name, events, || {
                    runtime.block_on(async move {
                        let started = Instant::now();
                        let tasks: Vec<_> = (0..producers)
                            .map(|p| {
                                let handle = handle.clone();
                                tokio::spawn(async move {
                                    let mut latencies = Vec::with_capacity(iters as usize);
                                    for i in 0..iters {
                                        let event = common::event(&format!("durable-{p}-{i}"));
                                        let sent = Instant::now();
                                        let receipt = handle
                                            .record(event, Durability::Durable)
                                            .await
                                            .unwrap();
                                        latencies.push(sent.elapsed().as_nanos() as u64);
                                        assert!(receipt.index.is_some());
                                    }
                                    latencies
                                })
                            })
                            .collect();
                        let mut all = Vec::new();
                        for task in tasks {
                            all.extend(task.await.unwrap());
                        }
                        (started.elapsed(), all)
                    })
                });
                samples.extend(latencies);
                writer.shutdown_blocking(Instant::now() + Duration::from_secs(60));
                elapsed
            })
        });
        LATENCIES.lock().unwrap().push((producers, samples));
    }
    group.finish();
}

fn bench_fdatasync(c: &mut Criterion) {
    let mut group = c.benchmark_group("fdatasync");
    group.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("bare")).unwrap();
    let block = [0x5au8; 4096];
    group.bench_function("write-4KiB", |b| {
        b.iter(|| {
            file.write_all(&block).unwrap();
            file.sync_data().unwrap();
        })
    });
    group.finish();
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Fills a queue of `events` while the disk is held, and measures the resident set growth.
fn bytes_per_queued_event(events: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let sink = common::TestSink::new(dir.path());
    let gate = sink.gate.clone();
    let config = WriterConfig::default()
        .queue_capacity(events + 1, usize::MAX)
        .overflow(OverflowPolicy::Reject);
    let writer = Writer::start(sink, config).unwrap();
    let handle = writer.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    gate.close();
    runtime
        .block_on(handle.record(common::event("first"), Durability::Async))
        .unwrap();
    while gate.waiting() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Each event is built and dropped in turn, so its own allocations are reused: the growth
    // of the resident set is what the queue holds.
    let before = resident_bytes();
    for i in 0..events {
        let event = common::event(&format!("bench-{i:07}"));
        runtime
            .block_on(handle.record(event, Durability::Async))
            .unwrap();
    }
    let after = resident_bytes();
    assert_eq!(handle.queued(), events);
    gate.open();
    writer.shutdown_blocking(Instant::now() + Duration::from_secs(60));
    (after.saturating_sub(before)) as f64 / events as f64
}

/// Events per side per round of [`async_rounds`].
const ROUND_EVENTS: u64 = 50_000;

/// `rounds` alternating runs of the two `async` sides with the same events, each side's time
/// per round, and the ratio (tracing-appender's time / veritrail's): on a shared machine the
/// load changes between criterion's two groups, while one round's two halves see about the
/// same machine. Returns each round's (veritrail, tracing-appender) times.
fn async_rounds(rounds: usize) -> Vec<(Duration, Duration)> {
    (0..rounds)
        .map(|_| (veritrail_async(ROUND_EVENTS), tracing_async(ROUND_EVENTS)))
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

fn main() {
    // First, before the benchmarks leave freed memory behind for the allocator to reuse.
    let per_event = bytes_per_queued_event(200_000);
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    bench_async(&mut criterion);
    bench_durable(&mut criterion);
    bench_fdatasync(&mut criterion);
    criterion.final_summary();
    // The alternating rounds run unless the arguments name other benchmarks only.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && a != "--bench");
    let rounds = match filter {
        Some(f) if !(f.starts_with("async") || "async".starts_with(f.as_str())) => Vec::new(),
        _ if std::env::args().any(|a| a == "--profile-time" || a == "--list") => Vec::new(),
        _ => async_rounds(11),
    };

    println!();
    println!("== veritrail-writer summary (this run) ==");
    println!(
        "event size: veritrail record {} B, tracing JSON line {} B",
        record_len(),
        TRACING_LINE.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!("| benchmark | events | CPU s | events per CPU-second |");
    println!("| --- | --- | --- | --- |");
    for (name, events, cpu) in CPU.lock().unwrap().iter() {
        println!(
            "| {name} | {events} | {cpu:.2} | {:.0} |",
            *events as f64 / cpu
        );
    }
    println!("| producers | durable acks: p50 ms | p99 ms | max ms | samples |");
    println!("| --- | --- | --- | --- | --- |");
    for (producers, mut samples) in LATENCIES.lock().unwrap().drain(..) {
        if samples.is_empty() {
            continue; // filtered out
        }
        samples.sort_unstable();
        println!(
            "| {producers} | {:.3} | {:.3} | {:.3} | {} |",
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
            percentile(&samples, 1.0),
            samples.len()
        );
    }
    println!(
        "memory: {per_event:.0} B of resident set per queued event (200,000 queued, record {} B)",
        record_len()
    );
    if !rounds.is_empty() {
        println!("async, alternating rounds of {ROUND_EVENTS} events per side:");
        println!("| round | veritrail events/s | tracing-appender events/s | ratio |");
        println!("| --- | --- | --- | --- |");
        let rate = |d: &Duration| ROUND_EVENTS as f64 / d.as_secs_f64();
        for (i, (ours, theirs)) in rounds.iter().enumerate() {
            println!(
                "| {} | {:.0} | {:.0} | {:.2} |",
                i + 1,
                rate(ours),
                rate(theirs),
                theirs.as_secs_f64() / ours.as_secs_f64()
            );
        }
        println!(
            "| median | {:.0} | {:.0} | {:.2} |",
            median(rounds.iter().map(|(o, _)| rate(o)).collect()),
            median(rounds.iter().map(|(_, t)| rate(t)).collect()),
            median(
                rounds
                    .iter()
                    .map(|(o, t)| t.as_secs_f64() / o.as_secs_f64())
                    .collect()
            )
        );
    }
}
