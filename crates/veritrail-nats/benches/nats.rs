//! Many replicas, one log — the figures of BENCHMARKS.md, each beside its baseline in the same
//! run, against the shared JetStream at 127.0.0.1:4222 (each part its own stream, removed
//! afterwards):
//!
//! 1. `Durable` events through the writer and `NatsSink`, from `CALLERS` concurrent callers,
//!    vs bare `async-nats` JetStream publishing of the same records (same `Nats-Msg-Id`), each
//!    caller publishing and awaiting its acknowledgement, the same `CALLERS` at once.
//!    Alternating rounds.
//! 2. The sequencer integrating a stream filled beforehand, into a directory log, vs a bare
//!    pull consumer reading and acknowledging the same stream (no log).
//! 3. Lag while the sequencer runs under a steady load: from JetStream storing an event to the
//!    checkpoint covering it being signed (median, p99).
//!
//! `cargo bench -p veritrail-nats --bench nats`; `VT_BENCH_EVENTS` (default 30,000 per round)
//! and `VT_BENCH_FILL` (default 500,000) change the sizes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use bytes::Bytes;
use futures_util::StreamExt;
use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{Durability, Recorder};
use veritrail_log::NoteSigner;
use veritrail_nats::{
    NatsLocation, NatsSink, SequencerOptions, SinkOptions, StreamSettings, ensure_stream,
};
use veritrail_writer::{Writer, WriterConfig};

const CALLERS: usize = 64;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings() -> StreamSettings {
    StreamSettings::default().replicas(1)
}

fn location(part: &str) -> NatsLocation {
    let stream = format!("vt_bench_{part}_{}", std::process::id());
    format!("nats://127.0.0.1:4222/{stream}?origin=bench.veritrail/{stream}")
        .parse()
        .unwrap()
}

async fn fresh(at: &NatsLocation) -> jetstream::Context {
    let client = veritrail_nats::connect(at, "bench").await.unwrap();
    let js = jetstream::new(client);
    let _ = js.delete_stream(at.stream()).await;
    let _ = js.delete_stream(format!("KV_{}", at.lease_bucket())).await;
    ensure_stream(&js, at, &settings()).await.unwrap();
    js
}

async fn remove(js: &jetstream::Context, at: &NatsLocation) {
    let _ = js.delete_stream(at.stream()).await;
    let _ = js.delete_stream(format!("KV_{}", at.lease_bucket())).await;
}

/// A typical audit event (about 330 bytes as a record).
fn event(caller: usize, i: usize) -> AuditEvent {
    AuditEvent::http("POST", format!("/orders/{caller}/{i}/items"))
        .route("/orders/{id}/{n}/items")
        .client_address("203.0.113.9")
        .authn_allowed()
        .action("orders.add_item")
        .target(format!("order:{caller}-{i}"))
        .status(201)
        .latency_us(830)
        .build()
}

fn record(event: &AuditEvent) -> (String, Bytes) {
    let mut out = Vec::new();
    event.write_json(0, &mut out);
    (event.id.to_string(), Bytes::from(out))
}

/// Events/s of `per_caller` Durable events from each of `CALLERS` callers through the sink.
async fn through_sink(at: &NatsLocation, per_caller: usize) -> f64 {
    let sink = NatsSink::connect(at, SinkOptions::default()).await.unwrap();
    let writer = Writer::start(sink, WriterConfig::default()).unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let handle = writer.handle();
            tokio::spawn(async move {
                for i in 0..per_caller {
                    handle
                        .record(event(c, i), Durability::Durable)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (CALLERS * per_caller) as f64 / started.elapsed().as_secs_f64();
    writer
        .shutdown(Instant::now() + Duration::from_secs(10))
        .await;
    rate
}

/// Events/s of the same number of records, bare: each caller publishes one and awaits its
/// acknowledgement, `CALLERS` callers at once.
async fn bare_publish(at: &NatsLocation, per_caller: usize) -> f64 {
    let client = veritrail_nats::connect(at, "bench-bare").await.unwrap();
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(1 << 20)
        .build(client);
    let subject = at.events_subject();
    let records: Vec<Vec<(String, Bytes)>> = (0..CALLERS)
        .map(|c| (0..per_caller).map(|i| record(&event(c, i))).collect())
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = records
        .into_iter()
        .map(|mine| {
            let (js, subject) = (js.clone(), subject.clone());
            tokio::spawn(async move {
                for (id, payload) in mine {
                    let message = PublishMessage::build().payload(payload).message_id(id);
                    js.send_publish(subject.clone(), message)
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (CALLERS * per_caller) as f64 / started.elapsed().as_secs_f64()
}

/// Fills the stream with `n` records, pipelined.
async fn fill(at: &NatsLocation, n: usize) {
    let client = veritrail_nats::connect(at, "bench-fill").await.unwrap();
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(1 << 20)
        .build(client);
    let subject = at.events_subject();
    let mut acks = Vec::with_capacity(2_000);
    for i in 0..n {
        let (id, payload) = record(&event(i % 97, i));
        let message = PublishMessage::build().payload(payload).message_id(id);
        acks.push(js.send_publish(subject.clone(), message).await.unwrap());
        if acks.len() == 2_000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

/// Waits until the sequencers' position (their consumer's acknowledgement floor, read as
/// `veritrail reconcile` reads it) has reached the stream's last message, and at least `n`.
async fn drained(js: &jetstream::Context, at: &NatsLocation, n: u64) {
    loop {
        let mut stream = js.get_stream(at.stream()).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let position = veritrail_nats::reconcile::position(js, at).await.unwrap();
        if position >= last.max(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A sequencer over a fresh directory log (kept while it runs).
fn start_sequencer(
    at: &NatsLocation,
    options: SequencerOptions,
) -> (common::Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = NoteSigner::generate(at.origin()).unwrap();
    let running = common::start_sequencer(at, &dir.path().join("log"), &key, options);
    (running, dir)
}

/// How a bare consumer acknowledges.
#[derive(Clone, Copy, Debug)]
enum Acks {
    /// Each message (`AckPolicy::Explicit`): what the sequencer did until 2026-12-05.
    Each,
    /// The last message taken, cumulatively (`AckPolicy::All`), every 100,000 messages or
    /// 200 ms, waiting for the server's confirmation: what the sequencer does.
    Cumulative,
}

/// Messages/s a bare pull consumer reads and acknowledges, no log: batches of 8,192, like
/// the sequencer.
async fn bare_consume(js: &jetstream::Context, at: &NatsLocation, n: usize, acks: Acks) -> f64 {
    let stream = js.get_stream(at.stream()).await.unwrap();
    let name = format!("bare-{acks:?}");
    let _ = stream.delete_consumer(&name).await;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: at.events_subject(),
            ack_policy: match acks {
                Acks::Each => consumer::AckPolicy::Explicit,
                Acks::Cumulative => consumer::AckPolicy::All,
            },
            max_ack_pending: 1 << 20,
            ..Default::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(8192)
        .messages()
        .await
        .unwrap();
    let mut got = 0;
    let (mut unacked, mut since) = (0, Instant::now());
    while got < n {
        let message = messages.next().await.unwrap().unwrap();
        got += 1;
        match acks {
            Acks::Each => message.ack().await.unwrap(),
            Acks::Cumulative => {
                unacked += 1;
                if unacked >= 100_000 || since.elapsed() >= Duration::from_millis(200) || got == n {
                    message.double_ack().await.unwrap();
                    (unacked, since) = (0, Instant::now());
                }
            }
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(messages);
    let _ = stream.delete_consumer(&name).await;
    rate
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let per_caller = env_or("VT_BENCH_EVENTS", 30_000) / CALLERS;
    let fill_n = env_or("VT_BENCH_FILL", 500_000);

    println!("== 1. Durable publish: sink vs bare async-nats, {CALLERS} callers");
    let mut ratios = Vec::new();
    for round in 0..3 {
        let (sink, bare) = runtime.block_on(async {
            let at = location(&format!("sink{round}"));
            let js = fresh(&at).await;
            let sink = through_sink(&at, per_caller).await;
            remove(&js, &at).await;
            let at = location(&format!("bare{round}"));
            let js = fresh(&at).await;
            let bare = bare_publish(&at, per_caller).await;
            remove(&js, &at).await;
            (sink, bare)
        });
        ratios.push(sink / bare);
        println!(
            "round {round}: sink {sink:.0} events/s, bare {bare:.0} events/s, ratio {:.2}",
            sink / bare
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!("median ratio {:.2}", ratios[1]);

    println!("== 2. Sequencer integration of {fill_n} stored events vs a bare consumer");
    let at = location("integrate");
    let js = runtime.block_on(fresh(&at));
    let filled = Instant::now();
    runtime.block_on(fill(&at, fill_n));
    println!(
        "filled in {:.1} s ({:.0} events/s pipelined publishing)",
        filled.elapsed().as_secs_f64(),
        fill_n as f64 / filled.elapsed().as_secs_f64()
    );
    let each = runtime.block_on(bare_consume(&js, &at, fill_n, Acks::Each));
    let bare = runtime.block_on(bare_consume(&js, &at, fill_n, Acks::Cumulative));
    let started = Instant::now();
    let (running, _log) = start_sequencer(&at, SequencerOptions::default().settings(settings()));
    runtime.block_on(drained(&js, &at, fill_n as u64));
    let elapsed = started.elapsed();
    let report = running.stop();
    let rate = report.integrated as f64 / elapsed.as_secs_f64();
    let after = runtime.block_on(bare_consume(&js, &at, fill_n, Acks::Cumulative));
    println!(
        "sequencer: {} events in {:.2} s = {rate:.0} events/s into a directory log (from start, lease and log open included), {} checkpoints",
        report.integrated,
        elapsed.as_secs_f64(),
        report.checkpoints
    );
    println!(
        "bare pull consumer, same acknowledgements (cumulative, per 100,000 or 200 ms), no log: {bare:.0} messages/s before the sequencer, {after:.0} after; sequencer / bare {:.2} / {:.2}",
        rate / bare,
        rate / after
    );
    println!(
        "bare pull consumer acknowledging each message, no log: {each:.0} messages/s; sequencer / it {:.2}",
        rate / each
    );
    runtime.block_on(remove(&js, &at));

    println!("== 3. Lag under a steady load (publish ack -> signed checkpoint)");
    let at = location("lag");
    let js = runtime.block_on(fresh(&at));
    let (running, _log) = start_sequencer(&at, SequencerOptions::default().settings(settings()));
    let per_second = 20_000;
    runtime.block_on(async {
        let subject = at.events_subject();
        let started = Instant::now();
        let mut sent = 0usize;
        while started.elapsed() < Duration::from_secs(10) {
            let due = (started.elapsed().as_secs_f64() * per_second as f64) as usize;
            let mut acks = Vec::new();
            while sent < due {
                let (id, payload) = record(&event(sent % 97, sent));
                let message = PublishMessage::build().payload(payload).message_id(id);
                acks.push(js.send_publish(subject.clone(), message).await.unwrap());
                sent += 1;
            }
            for ack in acks {
                ack.await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drained(&js, &at, 0).await;
    });
    let report = running.stop();
    let (p50, p99) = report.lag_ms.unwrap();
    println!(
        "{} events at {per_second}/s: lag median {p50} ms, p99 {p99} ms (checkpoint every 200 ms)",
        report.integrated
    );
    runtime.block_on(remove(&js, &at));
}
