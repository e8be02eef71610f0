//! `TracingSpanLayer`: a `tracing` span exported through tracing-opentelemetry is the span
//! the audit event records and names.

#![cfg(feature = "tracing")]

mod common;

use std::future::Future;

use axum::body::Body;
use common::*;
use opentelemetry::trace::TracerProvider;
use tower::{Service, ServiceExt};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use veritrail_core::recorder::MemoryRecorder;
use veritrail_otel::{EnduserPolicy, TracingSpanLayer};

#[tokio::test]
async fn the_event_and_the_tracing_span_name_each_other() {
    let (provider, spans) = tracing();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("app")));
    let _default = tracing::subscriber::set_default(subscriber);

    let recorder = MemoryRecorder::new();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .layer(veritrail_axum::layer(engine(recorder.clone())))
        .layer(
            TracingSpanLayer::new()
                .log_origin(ORIGIN)
                .enduser(EnduserPolicy::Plain),
        );

    // What tower-http's TraceLayer does: call the inner service with the span entered, and
    // poll its future inside the span.
    let span = tracing::info_span!("GET /health");
    let mut service = app.clone();
    ServiceExt::<axum::http::Request<Body>>::ready(&mut service)
        .await
        .unwrap();
    let req = request("GET", "/health").body(Body::empty()).unwrap();
    let future = span.in_scope(|| service.call(req));
    let response = instrumented(future, span.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(span);

    let exported = spans.get_finished_spans().unwrap();
    let [span] = exported.try_into().unwrap();
    let event = recorder.events().pop().unwrap();
    let request = &event.as_http().unwrap().request;
    assert_eq!(
        request.trace_id.as_deref(),
        Some(span.span_context.trace_id().to_string().as_str())
    );
    assert_eq!(
        request.span_id.as_deref(),
        Some(span.span_context.span_id().to_string().as_str())
    );
    assert_eq!(
        attr(&span.attributes, "audit.event.id"),
        Some(&s(&event.id.to_string()))
    );
    assert_eq!(attr(&span.attributes, "audit.log.origin"), Some(&s(ORIGIN)));
    assert_eq!(
        attr(&span.attributes, "audit.event.outcome"),
        Some(&s("success"))
    );
    // A public route: no caller, so no identity even under `Plain`.
    assert_eq!(attr(&span.attributes, "enduser.id"), None);
}

fn instrumented<F: Future>(future: F, span: tracing::Span) -> impl Future<Output = F::Output> {
    future.instrument(span)
}
