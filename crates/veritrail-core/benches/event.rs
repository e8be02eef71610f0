//! `write_json` (straight to bytes) against the same event through `serde_json::Value`.
//!
//! `cargo bench -p veritrail-core --bench event`

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;

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

fn serialise(c: &mut Criterion) {
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
    group.bench_function("via_serde_json_value", |b| {
        b.iter(|| {
            let mut value = serde_json::to_value(black_box(&event)).expect("serialises");
            value["index"] = serde_json::Value::from(black_box(123_456u64));
            black_box(serde_json::to_vec(&value).expect("serialises").len())
        })
    });
    group.finish();
}

criterion_group!(benches, serialise);
criterion_main!(benches);
