//! The cost of `OtelLayer` per request, side by side with the audit layer alone: no SDK
//! installed (the no-op tracer: only `traceparent` extraction and correlation), and an SDK
//! with every span sampled and handed to a batch processor.
//!
//! `cargo bench -p veritrail-otel --bench layer`

// `criterion_group!` defines an undocumented function.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::ready;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};
use veritrail_core::engine::{Engine, RoutePolicy};
use veritrail_core::event::AuditEvent;
use veritrail_core::recorder::{Durability, Receipt, RecordFuture, Recorder};
use veritrail_otel::OtelLayer;
use veritrail_tower::AuditLayer;

/// Takes every event and keeps none, so that only the layers are measured.
struct Discard;

impl Recorder for Discard {
    fn record(&self, event: AuditEvent, _: Durability) -> RecordFuture {
        drop(event);
        Box::pin(ready(Ok(Receipt { index: None })))
    }
}

/// Takes every span batch and keeps none.
#[derive(Debug)]
struct DiscardSpans;

impl SpanExporter for DiscardSpans {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        drop(batch);
        ready(Ok(()))
    }
}

fn engine() -> Engine {
    let keys =
        KeySet::from_hmac_secret(&[7u8; 32], jsonwebtoken::Algorithm::HS256, None).expect("key");
    let authenticator = Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.example")
                .keys(keys)
                .allow_hmac()
                .audience("bench"),
        )
        .build()
        .expect("authenticator");
    Engine::builder(authenticator, Discard)
        .default_policy(RoutePolicy::public())
        .build()
}

fn request() -> Request<Full<Bytes>> {
    Request::get("/orders/7")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("user-agent", "bench/1.0")
        .body(Full::default())
        .expect("request")
}

async fn handler(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::from("ok")))
}

fn layers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("request");

    let audit_only = ServiceBuilder::new()
        .layer(AuditLayer::new(engine()))
        .service(service_fn(handler));
    group.bench_function("audit_layer", |b| {
        b.iter(|| runtime.block_on(audit_only.clone().oneshot(request())))
    });

    let noop = ServiceBuilder::new()
        .layer(OtelLayer::new())
        .layer(AuditLayer::new(engine()))
        .service(service_fn(handler));
    group.bench_function("otel_layer_no_sdk", |b| {
        b.iter(|| runtime.block_on(noop.clone().oneshot(request())))
    });

    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(DiscardSpans)
        .build();
    let sdk = ServiceBuilder::new()
        .layer(OtelLayer::new().tracer_provider(&provider))
        .layer(AuditLayer::new(engine()))
        .service(service_fn(handler));
    group.bench_function("otel_layer_sdk", |b| {
        b.iter(|| runtime.block_on(sdk.clone().oneshot(request())))
    });
    group.finish();
    let _ = provider.shutdown();
}

criterion_group!(benches, layers);
criterion_main!(benches);
