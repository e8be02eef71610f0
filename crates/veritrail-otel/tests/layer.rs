//! The server span: attributes, correlation with the audit event both ways, trace
//! continuation, refusals, errors, identity policies, and no secrets.

mod common;

use axum::body::Body;
use common::*;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use veritrail_core::event::{FieldKeys, Outcome};
use veritrail_core::recorder::MemoryRecorder;
use veritrail_otel::{EnduserPolicy, OtelLayer};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn otel(provider: &opentelemetry_sdk::trace::SdkTracerProvider) -> OtelLayer {
    veritrail_otel::axum::layer()
        .tracer_provider(provider)
        .log_origin(ORIGIN)
}

#[tokio::test]
async fn a_request_span_has_the_http_attributes_and_names_its_event() {
    let (provider, spans) = tracing();
    let recorder = MemoryRecorder::new();
    let app = app(engine(recorder.clone()), otel(&provider), None);
    let token = token("alice", "orders:read");
    let req = request("GET", "/orders/7?expand=items")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (response, _) = send(&app, req).await;
    assert_eq!(response.status(), 200);

    let [span] = server_spans(&spans).try_into().unwrap();
    let event = recorder.events().pop().unwrap();
    assert_eq!(span.name, "GET /orders/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.status, Status::Unset);
    let a = &span.attributes;
    assert_eq!(attr(a, "http.request.method"), Some(&s("GET")));
    assert_eq!(attr(a, "http.route"), Some(&s("/orders/{id}")));
    assert_eq!(attr(a, "url.path"), Some(&s("/orders/7")));
    assert_eq!(attr(a, "url.scheme"), Some(&s("http")));
    assert_eq!(attr(a, "client.address"), Some(&s(PEER)));
    assert_eq!(attr(a, "user_agent.original"), Some(&s("otel-test/1.0")));
    assert_eq!(attr(a, "http.response.status_code"), Some(&Value::I64(200)));
    assert_eq!(attr(a, "error.type"), None);
    assert_eq!(attr(a, "audit.event.id"), Some(&s(&event.id.to_string())));
    assert_eq!(
        attr(a, "audit.log.index"),
        Some(&Value::I64(event.index.unwrap() as i64))
    );
    assert_eq!(attr(a, "audit.log.origin"), Some(&s(ORIGIN)));
    assert_eq!(attr(a, "audit.event.outcome"), Some(&s("success")));
    // The identity is not reported unless configured.
    assert_eq!(attr(a, "enduser.id"), None);
    assert_eq!(attr(a, "enduser.pseudo.id"), None);
    assert_no_secret(
        "span",
        a,
        &[&token, COOKIE_SECRET, std::str::from_utf8(SECRET).unwrap()],
    );
}

#[tokio::test]
async fn the_event_records_the_span_and_the_span_records_the_event() {
    let (provider, spans) = tracing();
    let recorder = MemoryRecorder::new();
    let app = app(
        engine(recorder.clone()),
        otel(&provider),
        Some(provider.clone()),
    );
    let token = token("alice", "orders:read");
    for _ in 0..3 {
        let req = request("GET", "/orders/7")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        send(&app, req).await;
    }
    let server = server_spans(&spans);
    let events = recorder.events();
    assert_eq!((server.len(), events.len()), (3, 3));
    for (span, event) in server.iter().zip(&events) {
        let request = &event.as_http().unwrap().request;
        // Event → span.
        assert_eq!(
            request.trace_id.as_deref(),
            Some(span.span_context.trace_id().to_string().as_str())
        );
        assert_eq!(
            request.span_id.as_deref(),
            Some(span.span_context.span_id().to_string().as_str())
        );
        // Span → event.
        assert_eq!(
            attr(&span.attributes, "audit.event.id"),
            Some(&s(&event.id.to_string()))
        );
        // No incoming traceparent: a new trace.
        assert_eq!(span.parent_span_id, SpanId::INVALID);
    }
    // Three requests, three traces.
    let traces: std::collections::BTreeSet<_> = server
        .iter()
        .map(|s| s.span_context.trace_id().to_string())
        .collect();
    assert_eq!(traces.len(), 3);
    // The handler's own span is a child of the server span.
    let children: Vec<_> = spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.name == "load order")
        .collect();
    assert_eq!(children.len(), 3);
    for (child, parent) in children.iter().zip(&server) {
        assert_eq!(child.parent_span_id, parent.span_context.span_id());
        assert_eq!(
            child.span_context.trace_id(),
            parent.span_context.trace_id()
        );
    }
}

#[tokio::test]
async fn an_incoming_traceparent_continues_its_trace() {
    let (provider, spans) = tracing();
    let recorder = MemoryRecorder::new();
    let app = app(engine(recorder.clone()), otel(&provider), None);
    let req = request("GET", "/health")
        .header("traceparent", TRACEPARENT)
        .body(Body::empty())
        .unwrap();
    send(&app, req).await;
    let [span] = server_spans(&spans).try_into().unwrap();
    let incoming_trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let incoming_span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    assert_eq!(span.span_context.trace_id(), incoming_trace);
    assert_eq!(span.parent_span_id, incoming_span);
    assert!(span.parent_span_is_remote);
    assert_ne!(span.span_context.span_id(), incoming_span);
    let event = recorder.events().pop().unwrap();
    let request = &event.as_http().unwrap().request;
    assert_eq!(
        request.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    // The event names the server span, not the caller's.
    assert_eq!(
        request.span_id.as_deref(),
        Some(span.span_context.span_id().to_string().as_str())
    );
    assert_eq!(span.name, "GET /health");
}

#[tokio::test]
async fn without_an_sdk_the_incoming_traceparent_reaches_the_event() {
    // The global tracer provider is the no-op one: this test binary never installs one.
    let recorder = MemoryRecorder::new();
    let app = app(
        engine(recorder.clone()),
        veritrail_otel::axum::layer(),
        None,
    );
    let req = request("GET", "/health")
        .header("traceparent", TRACEPARENT)
        .body(Body::empty())
        .unwrap();
    let (response, _) = send(&app, req).await;
    assert_eq!(response.status(), 200);
    let event = recorder.events().pop().unwrap();
    let recorded = &event.as_http().unwrap().request;
    assert_eq!(
        recorded.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(recorded.span_id.as_deref(), Some("00f067aa0ba902b7"));

    // And with no traceparent at all, none is invented.
    let req = request("GET", "/health").body(Body::empty()).unwrap();
    send(&app, req).await;
    let event = recorder.events().pop().unwrap();
    assert_eq!(event.as_http().unwrap().request.trace_id, None);
}

#[tokio::test]
async fn refused_requests_are_spanned_with_their_event() {
    let (provider, spans) = tracing();
    let recorder = MemoryRecorder::new();
    let app = app(engine(recorder.clone()), otel(&provider), None);
    let no_token = request("GET", "/orders/7").body(Body::empty()).unwrap();
    let wrong_scope = request("GET", "/orders/7")
        .header(
            "authorization",
            format!("Bearer {}", token("bob", "orders:write")),
        )
        .body(Body::empty())
        .unwrap();
    let bad_token = request("GET", "/orders/7")
        .header("authorization", "Bearer not.a.token")
        .body(Body::empty())
        .unwrap();
    for (req, status) in [(no_token, 401), (wrong_scope, 403), (bad_token, 401)] {
        let (response, _) = send(&app, req).await;
        assert_eq!(response.status(), status);
    }
    let server = server_spans(&spans);
    let events = recorder.events();
    assert_eq!((server.len(), events.len()), (3, 3));
    for ((span, event), status) in server.iter().zip(&events).zip([401, 403, 401]) {
        let http = event.as_http().unwrap();
        assert_eq!(http.outcome, Some(Outcome::Denied));
        assert_eq!(http.status, Some(status));
        let a = &span.attributes;
        assert_eq!(
            attr(a, "http.response.status_code"),
            Some(&Value::I64(status as i64))
        );
        assert_eq!(attr(a, "audit.event.id"), Some(&s(&event.id.to_string())));
        assert_eq!(attr(a, "audit.event.outcome"), Some(&s("denied")));
        // A refusal is the client's problem: no error status, no error.type.
        assert_eq!(span.status, Status::Unset);
        assert_eq!(attr(a, "error.type"), None);
        assert_eq!(
            http.request.span_id.as_deref(),
            Some(span.span_context.span_id().to_string().as_str())
        );
    }
}

#[tokio::test]
async fn server_errors_set_the_error_status_and_type() {
    let (provider, spans) = tracing();
    let recorder = MemoryRecorder::new();
    let engine = veritrail_core::engine::Engine::builder(authenticator(), recorder.clone())
        .default_policy(veritrail_core::engine::RoutePolicy::public())
        .build();
    let app = app(engine, otel(&provider), None);
    let (response, _) = send(&app, request("GET", "/boom").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), 500);
    let [span] = server_spans(&spans).try_into().unwrap();
    assert!(matches!(span.status, Status::Error { .. }));
    assert_eq!(attr(&span.attributes, "error.type"), Some(&s("500")));
    assert_eq!(
        attr(&span.attributes, "audit.event.outcome"),
        Some(&s("error"))
    );
}

#[tokio::test]
async fn unknown_methods_are_other_with_the_original_kept() {
    let (provider, spans) = tracing();
    let recorder = MemoryRecorder::new();
    let app = app(engine(recorder.clone()), otel(&provider), None);
    send(
        &app,
        request("PURGE", "/health").body(Body::empty()).unwrap(),
    )
    .await;
    let [span] = server_spans(&spans).try_into().unwrap();
    assert_eq!(
        attr(&span.attributes, "http.request.method"),
        Some(&s("_OTHER"))
    );
    assert_eq!(
        attr(&span.attributes, "http.request.method_original"),
        Some(&s("PURGE"))
    );
}

#[tokio::test]
async fn the_identity_is_reported_only_as_configured() {
    let keys = FieldKeys::new()
        .with_pseudonym_key("p1", &[9u8; 32])
        .unwrap();
    let expected_pseudonym = keys
        .pseudonym("p1", &serde_json::Value::String("alice".into()))
        .unwrap()
        .v;
    let token = token("alice", "orders:read");
    for (policy, key, value) in [
        (EnduserPolicy::Plain, "enduser.id", "alice".to_owned()),
        (
            EnduserPolicy::pseudonymised(keys.clone(), "p1").unwrap(),
            "enduser.pseudo.id",
            expected_pseudonym.clone(),
        ),
    ] {
        let (provider, spans) = tracing();
        let recorder = MemoryRecorder::new();
        let app = app(
            engine(recorder.clone()),
            otel(&provider).enduser(policy),
            None,
        );
        let req = request("GET", "/orders/7")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        send(&app, req).await;
        let [span] = server_spans(&spans).try_into().unwrap();
        assert_eq!(attr(&span.attributes, key), Some(&s(&value)));
        let other = if key == "enduser.id" {
            "enduser.pseudo.id"
        } else {
            "enduser.id"
        };
        assert_eq!(attr(&span.attributes, other), None);
        if key == "enduser.pseudo.id" {
            assert_no_secret("pseudonymised span", &span.attributes, &["alice"]);
        }
    }
    // A key id the keys do not hold is refused up front.
    assert!(EnduserPolicy::pseudonymised(keys, "nope").is_err());
}

#[tokio::test]
async fn configuring_a_shared_layer_leaves_its_clones_as_they_were() {
    let (provider, spans) = tracing();
    let base = veritrail_otel::axum::layer().tracer_provider(&provider);
    let plain = base.clone();
    let with_origin = base.log_origin(ORIGIN);
    for (layer, origin) in [(plain, None), (with_origin, Some(s(ORIGIN)))] {
        spans.reset();
        let app = app(engine(MemoryRecorder::new()), layer, None);
        send(&app, request("GET", "/health").body(Body::empty()).unwrap()).await;
        let [span] = server_spans(&spans).try_into().unwrap();
        assert_eq!(attr(&span.attributes, "audit.log.origin"), origin.as_ref());
    }
}
