//! The layer's cost per request, in process (no sockets): the same axum router called with
//! `oneshot`, plain and behind `veritrail_axum::layer` (RS256 tokens from a pool of 1,000,
//! the verified-token cache warm), with events dropped (`discard`) or recorded `Async` into a
//! file log by a real writer (`writer`). A diagnostic for `scripts/bench-http`, which
//! measures the same over loopback: this one isolates the request thread's work.
//!
//! Run: `cargo bench -p veritrail-axum --bench layer`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use support::{Discard, app, engine};
use tower::ServiceExt;
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

fn bench(c: &mut Criterion) {
    let tokens: Vec<String> = support::tokens()
        .into_iter()
        .map(|t| format!("Bearer {t}"))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(
        dir.path(),
        NoteSigner::generate("bench/orders").unwrap(),
        WriterConfig::default(),
    )
    .unwrap();
    let routers = [
        ("plain", app()),
        (
            "discard",
            app().layer(veritrail_axum::layer(engine(Discard))),
        ),
        (
            "writer",
            app().layer(veritrail_axum::layer(engine(writer.handle()))),
        ),
    ];
    let mut g = c.benchmark_group("layer");
    for (name, router) in routers {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                let request = http::Request::get(format!("/orders/{i}"))
                    .header("authorization", &tokens[i])
                    .body(Body::empty())
                    .unwrap();
                let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
                assert!(response.status().is_success());
                black_box(response)
            })
        });
    }
    g.finish();
    runtime.block_on(writer.shutdown(Instant::now() + Duration::from_secs(30)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
