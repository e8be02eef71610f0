//! `write_json` (the hand-written record writer) against `serde_json::to_writer` of the same
//! event (the same bytes: checked before measuring), and the `time` field's RFC 3339 format
//! through the `time` crate. Times are the benchmark thread's CPU time.
//!
//! `cargo bench -p veritrail-core --bench event`

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

#[path = "support/cpu_time.rs"]
mod cpu_time;

use std::hint::black_box;

use cpu_time::ThreadCpuTime;
use criterion::measurement::WallTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use veritrail_core::event::{Actor, AuditEvent, TokenEvidence};

/// A typical event of about 500 bytes.
fn typical_event() -> AuditEvent {
    let actor = Actor {
        sub: Some("user-8c1f2a".into()),
        iss: Some("https://idp.example.com/".into()),
        aud: vec!["orders-api".into()],
        scopes: vec!["orders:write".into()],
        ..Actor::default()
    };
    AuditEvent::http("POST", "/orders/7/refund")
        .route("/orders/{id}/refund")
        .client_address("203.0.113.9")
        .actor(actor)
        .token(TokenEvidence::fingerprint(
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln",
        ))
        .authn_allowed()
        .action("order.refund")
        .target("order:7")
        .status(200)
        .latency_us(830)
        .build()
}

fn serialise(c: &mut Criterion<ThreadCpuTime>) {
    let event = typical_event();
    let mut out = Vec::with_capacity(1024);
    event.write_json(123_456, &mut out);
    assert!(
        (450..=650).contains(&out.len()),
        "the typical event is about 500 bytes, not {}",
        out.len()
    );
    let mut group = c.benchmark_group("event_serialise");
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("write_json", |b| {
        b.iter(|| {
            out.clear();
            black_box(&event).write_json(black_box(123_456), &mut out);
            black_box(out.len())
        })
    });
    let mut indexed = event.clone();
    indexed.index = Some(123_456);
    let mut serde_out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut serde_out, &indexed).expect("serialises");
    assert_eq!(serde_out, out, "serde_json writes the same record bytes");
    group.bench_function("serde_json_to_writer", |b| {
        b.iter(|| {
            serde_out.clear();
            serde_json::to_writer(&mut serde_out, black_box(&indexed)).expect("serialises");
            black_box(serde_out.len())
        })
    });
    group.finish();

    // The `time` field as the `time` crate formats it (what replacing the hand-written
    // formatter would cost per record).
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let mut group = c.benchmark_group("event_time_field");
    let mut buf = Vec::with_capacity(32);
    group.bench_function("time_format_into", |b| {
        b.iter(|| {
            buf.clear();
            black_box(event.time)
                .to_offset(time::UtcOffset::UTC)
                .format_into(&mut buf, &format)
                .expect("formats");
            black_box(buf.len())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime(WallTime));
    targets = serialise
}
criterion_main!(benches);
