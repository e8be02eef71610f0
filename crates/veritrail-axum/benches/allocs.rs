//! Heap allocations per request, counted by dhat's global allocator: the same axum router as
//! `benches/layer.rs` called with `oneshot`, plain and behind `veritrail_axum::layer` (RS256
//! tokens from a pool of 1,000, the verified-token cache warm), with events dropped
//! (`discard`) or recorded `Async` into a file log by a real writer (`writer`; the writer
//! thread's allocations are counted too, after a final flush).
//!
//! Counts are exact and repeatable (no timing): the figure is allocations per request,
//! averaged over 10,000 requests after a warm-up that fills the token cache.
//!
//! Run: `cargo bench -p veritrail-axum --bench allocs`.

#![allow(missing_docs)]

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use support::{Discard, app, engine};
use tower::ServiceExt;
use veritrail_core::recorder::Recorder;
use veritrail_log::NoteSigner;
use veritrail_writer::{Writer, WriterConfig};

// dhat's allocator counts every allocation of every thread (the writer's included); the
// workspace forbids `unsafe`, so no hand-written `GlobalAlloc`.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn counts() -> (u64, u64) {
    let stats = dhat::HeapStats::get();
    (stats.total_blocks, stats.total_bytes)
}

const REQUESTS: usize = 10_000;

fn main() {
    // Where they come from: `VERITRAIL_DHAT=1` writes dhat-heap.json (view it with dhat's
    // viewer) instead of only counting.
    let _profiler = if std::env::var_os("VERITRAIL_DHAT").is_some() {
        dhat::Profiler::new_heap()
    } else {
        dhat::Profiler::builder().testing().build()
    };
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
    let handle = writer.handle();
    let routers: [(&str, Router); 3] = [
        ("plain axum", app().with_state(())),
        (
            "veritrail, events dropped",
            app()
                .layer(veritrail_axum::layer(engine(Discard)))
                .with_state(()),
        ),
        (
            "veritrail, Async into a file log",
            app()
                .layer(veritrail_axum::layer(engine(handle.clone())))
                .with_state(()),
        ),
    ];
    println!("| setup | allocations per request | bytes per request |");
    println!("| --- | ---: | ---: |");
    // A Durable record is acknowledged once everything queued before it is written: the
    // writer's work for the measured requests is inside the count.
    let flush = || {
        runtime
            .block_on(handle.record(
                veritrail_core::event::AuditEvent::start("bench/flush"),
                veritrail_core::recorder::Durability::Durable,
            ))
            .expect("flushed");
    };
    for (name, router) in routers {
        let call = |i: usize| {
            let request = http::Request::get(format!("/orders/{i}"))
                .header("authorization", &tokens[i % tokens.len()])
                .body(Body::empty())
                .unwrap();
            let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
            assert!(response.status().is_success());
            drop(response);
        };
        // Warm-up: every token verified and cached, buffers grown.
        for i in 0..2 * tokens.len() {
            call(i);
        }
        flush();
        let (a0, b0) = counts();
        for i in 0..REQUESTS {
            call(i);
        }
        flush();
        let (a1, b1) = counts();
        let n = REQUESTS as f64;
        println!(
            "| {name} | {:.1} | {:.0} |",
            (a1 - a0) as f64 / n,
            (b1 - b0) as f64 / n
        );
    }
    runtime.block_on(writer.shutdown(Instant::now() + Duration::from_secs(30)));
}
