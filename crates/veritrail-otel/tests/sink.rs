//! The log sink: committed records and signed checkpoints as OpenTelemetry log records, from
//! a real writer over a real file log.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use common::*;
use opentelemetry::logs::{AnyValue, Severity};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLogRecord, SdkLoggerProvider};
use veritrail_core::event::{AuditEvent, TokenEvidence};
use veritrail_core::recorder::{Durability, Recorder};
use veritrail_log::{Log, LogOptions, NoteSigner};
use veritrail_otel::{EnduserPolicy, OtelLogSink};
use veritrail_writer::{FileSink, Writer, WriterConfig};

fn logging() -> (SdkLoggerProvider, InMemoryLogExporter) {
    let logs = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(logs.clone())
        .build();
    (provider, logs)
}

fn writer(dir: &std::path::Path, provider: &SdkLoggerProvider, enduser: EnduserPolicy) -> Writer {
    let signer = NoteSigner::generate(ORIGIN).unwrap();
    let options = LogOptions::default().origin(Some(ORIGIN.into()));
    let sink =
        OtelLogSink::new(FileSink::open(dir, signer, options).unwrap(), provider).enduser(enduser);
    Writer::start(sink, WriterConfig::default()).unwrap()
}

fn records(logs: &InMemoryLogExporter) -> Vec<SdkLogRecord> {
    logs.get_emitted_logs()
        .unwrap()
        .into_iter()
        .map(|l| l.record)
        .collect()
}

fn attr<'a>(record: &'a SdkLogRecord, key: &str) -> Option<&'a AnyValue> {
    record
        .attributes_iter()
        .find(|(k, _)| k.as_str() == key)
        .map(|(_, v)| v)
}

fn body(record: &SdkLogRecord) -> String {
    match record.body() {
        Some(AnyValue::String(s)) => s.as_str().to_owned(),
        other => panic!("body is not a string: {other:?}"),
    }
}

fn text(value: &str) -> AnyValue {
    AnyValue::String(value.to_owned().into())
}

fn by_event_name<'a>(records: &'a [SdkLogRecord], name: &str) -> Vec<&'a SdkLogRecord> {
    records
        .iter()
        .filter(|r| r.event_name() == Some(name))
        .collect()
}

#[tokio::test]
async fn each_committed_record_is_exported_verbatim_with_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, logs) = logging();
    let writer = writer(dir.path(), &provider, EnduserPolicy::Omit);
    let handle = writer.handle();
    let event = AuditEvent::http("DELETE", "/orders/7")
        .route("/orders/{id}")
        .trace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
        .actor(veritrail_core::event::Actor {
            sub: Some("alice".into()),
            ..Default::default()
        })
        .action("order.delete")
        .status(403)
        .build();
    let id = event.id;
    let receipt = handle.record(event, Durability::Durable).await.unwrap();
    let index = receipt.index.unwrap();
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    assert!(report.error.is_none());

    let exported = records(&logs);
    let events = by_event_name(&exported, veritrail_otel::EVENT_NAME_AUDIT);
    // start, the event, stop: every record of the log, in order.
    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(events.len() as u64, log.size());
    for (i, record) in events.iter().enumerate() {
        let stored = log.read(i as u64).unwrap();
        assert_eq!(body(record), String::from_utf8(stored).unwrap());
        assert_eq!(
            attr(record, "audit.log.index"),
            Some(&AnyValue::Int(i as i64))
        );
        assert_eq!(attr(record, "audit.log.origin"), Some(&text(ORIGIN)));
    }
    let kinds: Vec<_> = events
        .iter()
        .map(|r| attr(r, "audit.event.kind").cloned())
        .collect();
    assert_eq!(
        kinds,
        vec![Some(text("start")), Some(text("http")), Some(text("stop"))]
    );

    let record = events[index as usize];
    assert_eq!(attr(record, "audit.event.id"), Some(&text(&id.to_string())));
    assert_eq!(attr(record, "http.request.method"), Some(&text("DELETE")));
    assert_eq!(attr(record, "http.route"), Some(&text("/orders/{id}")));
    assert_eq!(
        attr(record, "http.response.status_code"),
        Some(&AnyValue::Int(403))
    );
    assert_eq!(attr(record, "audit.action"), Some(&text("order.delete")));
    assert_eq!(attr(record, "audit.event.outcome"), Some(&text("denied")));
    assert_eq!(record.severity_number(), Some(Severity::Warn));
    assert_eq!(attr(record, "enduser.id"), None);
    let trace = record.trace_context().expect("trace context set");
    assert_eq!(
        trace.trace_id,
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(trace.span_id, SpanId::from_hex("00f067aa0ba902b7").unwrap());
    // The event's own time, not the export's.
    let stored = AuditEvent::from_json(&log.read(index).unwrap()).unwrap();
    assert_eq!(record.timestamp(), Some(stored.time.into()));
}

#[tokio::test]
async fn signed_checkpoints_are_exported_as_the_log_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, logs) = logging();
    let signer = NoteSigner::generate(ORIGIN).unwrap();
    let options = LogOptions::default().origin(Some(ORIGIN.into()));
    let sink = OtelLogSink::new(
        FileSink::open(dir.path(), signer, options).unwrap(),
        &provider,
    );
    let config = WriterConfig::default().checkpoint_every(Some(2));
    let writer = Writer::start(sink, config).unwrap();
    let handle = writer.handle();
    for i in 0..5 {
        let event = AuditEvent::http("GET", format!("/orders/{i}"))
            .status(200)
            .build();
        handle.record(event, Durability::Durable).await.unwrap();
    }
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    let exported = records(&logs);
    let checkpoints = by_event_name(&exported, veritrail_otel::EVENT_NAME_CHECKPOINT);
    let log = Log::open_read_only(dir.path()).unwrap();
    let history = log.checkpoint_history().unwrap();
    assert!(history.len() >= 2, "history: {history:?}");
    let bodies: Vec<String> = checkpoints.iter().map(|r| body(r)).collect();
    // All but the empty tree's, which the log signed when it was created.
    assert_eq!(bodies, history[1..]);
    // The last one exported is the log's head, which the shutdown report returned.
    assert_eq!(bodies.last(), report.checkpoint.as_ref());
    assert_eq!(bodies.last(), log.latest_checkpoint().unwrap().as_ref());
    let last = checkpoints.last().unwrap();
    assert_eq!(attr(last, "audit.log.origin"), Some(&text(ORIGIN)));
    assert_eq!(
        attr(last, "audit.checkpoint.size"),
        Some(&AnyValue::Int(log.size() as i64))
    );
    let root = bodies.last().unwrap().lines().nth(2).unwrap();
    assert_eq!(attr(last, "audit.checkpoint.root_hash"), Some(&text(root)));
    // A verifier accepts the exported copy as a signed checkpoint of this log.
    veritrail_log::note::open(bodies.last().unwrap(), log.verifier()).unwrap();
}

#[tokio::test]
async fn a_full_token_in_clear_is_cut_to_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, logs) = logging();
    let writer = writer(dir.path(), &provider, EnduserPolicy::Omit);
    // A compact JWS whose header names an asymmetric algorithm: kept whole.
    let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw";
    let evidence = TokenEvidence::full(jwt);
    assert!(matches!(evidence, TokenEvidence::Full { .. }));
    let event = AuditEvent::http("GET", "/orders/1")
        .token(evidence.clone())
        .status(200)
        .build();
    handle_and_stop(writer, event).await;
    let exported = records(&logs);
    let http: Vec<_> = by_event_name(&exported, veritrail_otel::EVENT_NAME_AUDIT)
        .into_iter()
        .filter(|r| attr(r, "audit.event.kind") == Some(&text("http")))
        .collect();
    let [record] = http.try_into().unwrap();
    let exported_body = body(record);
    assert!(!exported_body.contains(jwt));
    assert!(!exported_body.contains("c2lnbmF0dXJl"));
    assert!(exported_body.contains(evidence.sha256().unwrap()));
    assert_eq!(
        attr(record, "audit.body.redacted"),
        Some(&AnyValue::Boolean(true))
    );
    // The log itself keeps the token, as configured.
    let log = Log::open_read_only(dir.path()).unwrap();
    let stored = String::from_utf8(log.read(1).unwrap()).unwrap();
    assert!(stored.contains(jwt));
}

async fn handle_and_stop(writer: Writer, event: AuditEvent) {
    writer
        .handle()
        .record(event, Durability::Durable)
        .await
        .unwrap();
    writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn requests_through_both_layers_are_logged_with_their_span() {
    let dir = tempfile::tempdir().unwrap();
    let (logger, logs) = logging();
    let (tracer, spans) = tracing();
    let writer = writer(dir.path(), &logger, EnduserPolicy::Plain);
    let otel = veritrail_otel::axum::layer()
        .tracer_provider(&tracer)
        .log_origin(ORIGIN);
    let app = app(engine(writer.handle()), otel, None);
    let token = token("alice", "orders:read");
    let ok = request("GET", "/orders/7")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let unauthenticated = request("GET", "/orders/7").body(Body::empty()).unwrap();
    let forbidden = request("GET", "/orders/7")
        .header(
            "authorization",
            format!("Bearer {}", common::token("bob", "orders:write")),
        )
        .body(Body::empty())
        .unwrap();
    for (req, status) in [(ok, 200), (unauthenticated, 401), (forbidden, 403)] {
        let (response, _) = send(&app, req).await;
        assert_eq!(response.status(), status);
    }
    writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;

    let exported = records(&logs);
    let http: Vec<_> = by_event_name(&exported, veritrail_otel::EVENT_NAME_AUDIT)
        .into_iter()
        .filter(|r| attr(r, "audit.event.kind") == Some(&text("http")))
        .collect();
    let server = server_spans(&spans);
    assert_eq!((http.len(), server.len()), (3, 3));
    for (record, span) in http.iter().zip(&server) {
        let trace = record.trace_context().unwrap();
        assert_eq!(trace.trace_id, span.span_context.trace_id());
        assert_eq!(trace.span_id, span.span_context.span_id());
        let id = attr(record, "audit.event.id").unwrap();
        assert_eq!(
            common::attr(&span.attributes, "audit.event.id").map(|v| v.to_string()),
            Some(match id {
                AnyValue::String(s) => s.as_str().to_owned(),
                other => panic!("{other:?}"),
            })
        );
    }
    let outcomes: Vec<_> = http
        .iter()
        .map(|r| attr(r, "audit.event.outcome").cloned())
        .collect();
    assert_eq!(
        outcomes,
        vec![
            Some(text("success")),
            Some(text("denied")),
            Some(text("denied"))
        ]
    );
    assert_eq!(attr(http[0], "enduser.id"), Some(&text("alice")));
    // No token, secret or cookie anywhere in the exported telemetry; the event keeps the
    // token's fingerprint only.
    let secrets = [
        token.as_str(),
        COOKIE_SECRET,
        std::str::from_utf8(SECRET).unwrap(),
    ];
    for record in &exported {
        let b = body(record);
        for secret in secrets {
            assert!(!b.contains(secret), "a log body holds a secret: {b}");
        }
        for (key, value) in record.attributes_iter() {
            for secret in secrets {
                assert!(
                    !format!("{value:?}").contains(secret),
                    "log attribute {key}"
                );
            }
        }
    }
    for span in spans.get_finished_spans().unwrap() {
        assert_no_secret("span", &span.attributes, &secrets);
    }
    let ok_body = body(http[0]);
    assert!(ok_body.contains("\"sha256\""), "{ok_body}");
}
