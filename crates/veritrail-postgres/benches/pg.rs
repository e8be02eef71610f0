//! PostgreSQL store benchmarks, each side by side with its baseline in the same run:
//!
//! 1. `Durable` events/s through the writer into PostgreSQL, against a bare
//!    `COPY … FROM STDIN (FORMAT binary)` of the very same rows (read back from the table)
//!    by the same client library, in transactions of the writer's average batch size;
//! 2. `prove` of a random index in a 1,000,000-record origin (`read` + inclusion proof,
//!    one connection, prepared statements), against the file log's on the same records;
//! 3. `verify` of that origin, against the file log's `verify_dir` on the same records.
//!
//! `cargo bench -p veritrail-postgres --bench pg` (server: `VERITRAIL_BENCH_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`; `VERITRAIL_BENCH_RECORDS` for the size of the
//! large origin, default 1,000,000). Everything runs in a schema of its own, dropped after
//! (kept with `VERITRAIL_BENCH_KEEP=1`, for looking at the tables).

use std::pin::pin;
use std::time::{Duration, Instant};

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;
use veritrail_core::event::{Actor, AuditEvent};
use veritrail_core::recorder::{Durability, Recorder};
use veritrail_log::source::LogSource;
use veritrail_log::verify::{VerifyOptions, verify_dir};
use veritrail_log::{Log, LogOptions, NoteSigner};
use veritrail_postgres::{PgLocation, PgLog, PgSink, PgStore, RECORD_TYPES, verify};
use veritrail_writer::{Writer, WriterConfig};

fn main() {
    let server = std::env::var("VERITRAIL_BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let large: u64 = std::env::var("VERITRAIL_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let schema = format!("vt_bench_{}", std::process::id());
    let base = format!("{server}?schema={schema}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        writer_vs_copy(&rt, &base);
        prove_and_verify(&base, large);
    });
    if std::env::var_os("VERITRAIL_BENCH_KEEP").is_some() {
        println!("kept the schema {schema}");
    } else {
        let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        rt.block_on(sql(&server, &drop));
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A realistic event: an authenticated request with its actor.
fn event(i: u64) -> AuditEvent {
    let actor = Actor {
        sub: Some(format!("user-{}", i % 1000).into()),
        iss: Some("https://login.example.com".into()),
        scopes: vec!["orders:write".into()],
        ..Actor::default()
    };
    AuditEvent::http("POST", format!("/orders/{i}"))
        .route("/orders/{id}")
        .actor(actor)
        .action("order.update")
        .request_id(format!("req-{i}"))
        .status(200)
        .latency_us(1234)
        .build()
}

fn writer_vs_copy(rt: &tokio::runtime::Runtime, base: &str) {
    // Rounds alternate writer and baseline, so that a busy machine weighs on both alike.
    let mut ratios = Vec::new();
    for round in 0..3 {
        let (writer_rate, copy_rate) = writer_round(rt, base, round);
        ratios.push(writer_rate / copy_rate);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "writer / bare COPY, per round: {}; median {:.2}x",
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(", "),
        ratios[ratios.len() / 2]
    );
}

/// One round: `Durable` events through the writer, then the same rows by bare COPY.
fn writer_round(rt: &tokio::runtime::Runtime, base: &str, round: u32) -> (f64, f64) {
    const EVENTS: u64 = 30_720;
    const CALLERS: u64 = 256;
    let origin = format!("bench/writer-{round}");
    let loc: PgLocation = format!("{base}&origin={origin}").parse().unwrap();
    let signer = NoteSigner::generate(&origin).unwrap();
    let sink = PgSink::open(&loc, signer, Default::default()).unwrap();
    let writer = Writer::start(sink, WriterConfig::default()).unwrap();
    let started = Instant::now();
    let cpu = cpu_seconds();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..CALLERS {
            let recorder = writer.handle();
            tasks.push(tokio::spawn(async move {
                for i in 0..EVENTS / CALLERS {
                    let n = i * CALLERS + c;
                    recorder
                        .record(event(n), Durability::Durable)
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let writer_cpu = cpu_seconds() - cpu;
    let report = rt.block_on(writer.shutdown(Instant::now() + Duration::from_secs(30)));
    assert!(report.error.is_none());
    let store = PgStore::open(&loc).unwrap();
    let commits = store.checkpoint_rows().unwrap().len() as u64 - 1;
    let batch = (store.size() / commits).max(1);
    let writer_rate = EVENTS as f64 / elapsed.as_secs_f64();

    // The baseline: the same rows, read back, copied in transactions of the same size.
    let rows = rt.block_on(read_rows(base, &origin));
    let copied = Instant::now();
    let cpu = cpu_seconds();
    rt.block_on(copy_rows(
        base,
        &rows,
        batch as usize,
        &format!("bench/baseline-{round}"),
    ));
    let copy_cpu = cpu_seconds() - cpu;
    let copy_rate = rows.len() as f64 / copied.elapsed().as_secs_f64();
    println!(
        "round {round}: writer, Durable, {CALLERS} callers: {EVENTS} events in {:.2} s = \
         {writer_rate:.0} events/s ({commits} commits, {batch} records per transaction on \
         average; {:.0} events per CPU-second of this process); bare COPY BINARY of the same \
         {} rows, {batch} per transaction: {copy_rate:.0} rows/s ({:.0} rows per CPU-second); \
         ratio {:.2}x",
        elapsed.as_secs_f64(),
        EVENTS as f64 / writer_cpu,
        rows.len(),
        rows.len() as f64 / copy_cpu,
        writer_rate / copy_rate
    );
    (writer_rate, copy_rate)
}

/// User + system CPU time of this process so far (all threads), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|t| t.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

type Row = (
    i64,
    Vec<u8>,
    Vec<u8>,
    Option<time::OffsetDateTime>,
    [Option<String>; 6],
    Option<i32>,
    [Option<String>; 3],
);

async fn client(base: &str) -> (tokio_postgres::Client, String) {
    let loc: PgLocation = base.parse().unwrap();
    let schema = loc.schema().to_owned();
    let url = base.split('?').next().unwrap();
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    (client, schema)
}

async fn sql(server: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
}

async fn read_rows(base: &str, origin: &str) -> Vec<Row> {
    let (client, s) = client(base).await;
    let rows = client
        .query(
            &format!(
                "SELECT idx, record, leaf_hash, time, kind, sub, iss, method, route, status, \
                 outcome, action, request_id FROM {s}.records WHERE origin = $1 ORDER BY idx"
            ),
            &[&origin],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                [r.get(4), r.get(5), r.get(6), r.get(7), r.get(8), None],
                r.get(9),
                [r.get(10), r.get(11), r.get(12)],
            )
        })
        .collect()
}

async fn copy_rows(base: &str, rows: &[Row], batch: usize, origin: &str) {
    let (mut client, s) = client(base).await;
    for chunk in rows.chunks(batch) {
        let tx = client.transaction().await.unwrap();
        let sink = tx
            .copy_in(&format!(
                "COPY {s}.records (origin, idx, record, leaf_hash, time, kind, sub, iss, \
                 method, route, status, outcome, action, request_id) FROM STDIN (FORMAT binary)"
            ))
            .await
            .unwrap();
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &RECORD_TYPES));
        for (idx, record, leaf, time, t, status, u) in chunk {
            let values: [&(dyn ToSql + Sync); 14] = [
                &origin, idx, record, leaf, time, &t[0], &t[1], &t[2], &t[3], &t[4], status, &u[0],
                &u[1], &u[2],
            ];
            writer.as_mut().write(&values).await.unwrap();
        }
        writer.finish().await.unwrap();
        tx.commit().await.unwrap();
    }
}

fn prove_and_verify(base: &str, n: u64) {
    let origin = "bench/large";
    let loc: PgLocation = format!("{base}&origin={origin}").parse().unwrap();
    let signer = NoteSigner::generate(origin).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut file = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap();
    let mut pg = PgLog::open(&loc, signer.clone(), Default::default()).unwrap();
    let built = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + 10_000).min(n);
        let records: Vec<Vec<u8>> = (i..end)
            .map(|j| {
                let mut out = Vec::new();
                event(j).write_json(j, &mut out);
                out
            })
            .collect();
        pg.append_batch(records.iter().map(Vec::as_slice)).unwrap();
        pg.commit().unwrap();
        file.append_batch(records.iter().map(Vec::as_slice))
            .unwrap();
        i = end;
    }
    file.checkpoint().unwrap();
    drop(pg);
    println!(
        "built a {n}-record origin in PostgreSQL and a file log of the same records in {:.1} s",
        built.elapsed().as_secs_f64()
    );

    // prove: read + inclusion proof of random indexes, on an open store.
    let store = PgStore::open(&loc).unwrap();
    let size = store.size();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % size
    };
    let indexes: Vec<u64> = (0..2000).map(|_| random()).collect();
    let time_each = |f: &dyn Fn(u64)| {
        let mut times: Vec<Duration> = indexes
            .iter()
            .map(|&i| {
                let t = Instant::now();
                f(i);
                t.elapsed()
            })
            .collect();
        times.sort();
        (times[times.len() / 2], times[times.len() * 99 / 100])
    };
    let (pg50, pg99) = time_each(&|i| {
        store.read(i).unwrap();
        store.inclusion_proof(i, size).unwrap();
    });
    let (f50, f99) = time_each(&|i| {
        file.read(i).unwrap();
        file.inclusion_proof(i, size).unwrap();
    });
    println!(
        "prove (read + inclusion proof), random index of {size}: PostgreSQL median {:.3} ms, \
         p99 {:.3} ms; file log median {:.3} ms, p99 {:.3} ms",
        ms(pg50),
        ms(pg99),
        ms(f50),
        ms(f99)
    );

    // verify: the whole origin against the file log's verifier on the same records.
    let t = Instant::now();
    let read = store
        .records(0)
        .map(|r| r.unwrap().record.len() as u64)
        .sum::<u64>();
    println!(
        "reading the {size} rows alone (COPY TO STDOUT BINARY, {read} record bytes): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let opts = VerifyOptions::default();
    let t = Instant::now();
    let report = verify(&store, &signer.verifier(), &opts).unwrap();
    let pg_rate = report.records as f64 / t.elapsed().as_secs_f64();
    drop(file);
    let t = Instant::now();
    let file_report = verify_dir(dir.path(), &signer.verifier(), &opts).unwrap();
    let file_rate = file_report.records as f64 / t.elapsed().as_secs_f64();
    assert_eq!(report.root, file_report.root);
    println!(
        "verify {size} records: PostgreSQL {pg_rate:.0} records/s; file log {file_rate:.0} \
         records/s; ratio {:.2}x",
        pg_rate / file_rate
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
