//! `init_from_env`: the standard variables, and a shutdown that flushes spans and logs over
//! real OTLP/HTTP without hanging a single-threaded runtime.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use common::*;
use veritrail_log::{LogOptions, NoteSigner};
use veritrail_otel::{InitError, OtelLogSink, OtlpConfig, OtlpProtocol};
use veritrail_writer::{FileSink, Writer, WriterConfig};

fn config(vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, InitError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    OtlpConfig::from_lookup("veritrail-test", |name| vars.get(name).cloned())
}

#[test]
fn no_endpoint_means_no_export() {
    assert_eq!(config(&[]).unwrap(), None);
    assert_eq!(config(&[("OTEL_SERVICE_NAME", "x")]).unwrap(), None);
    assert_eq!(
        config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true")
        ])
        .unwrap(),
        None
    );
}

#[test]
fn the_standard_variables_are_honoured() {
    let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
        .unwrap()
        .unwrap();
    assert_eq!(c.traces_endpoint, "http://collector:4318/v1/traces");
    assert_eq!(c.logs_endpoint, "http://collector:4318/v1/logs");
    assert_eq!(c.traces_protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(c.logs_protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(c.service_name, "veritrail-test");

    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "https://logs.example/ingest",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ("OTEL_SERVICE_NAME", "orders-api"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(c.traces_endpoint, "http://collector:4318/v1/traces");
    assert_eq!(c.logs_endpoint, "https://logs.example/ingest");
    assert_eq!(c.traces_protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(c.logs_protocol, OtlpProtocol::HttpJson);
    assert_eq!(c.service_name, "orders-api");

    // A signal endpoint alone is enough.
    let c = config(&[(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "http://t:4318/v1/traces",
    )])
    .unwrap()
    .unwrap();
    assert_eq!(c.traces_endpoint, "http://t:4318/v1/traces");

    let err = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ])
    .unwrap_err();
    assert!(matches!(err, InitError::UnsupportedProtocol(ref p) if p == "grpc"));
    assert!(err.to_string().contains("http/protobuf"), "{err}");
}

/// What a collector received: (path, content type, body).
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A minimal OTLP/HTTP collector on its own thread: answers 200 to every POST.
fn thread_collector() -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let store = store.clone();
            std::thread::spawn(move || serve_connection(stream, &store));
        }
    });
    (addr, received)
}

fn serve_connection(stream: std::net::TcpStream, store: &Received) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let (mut length, mut content_type) = (0usize, String::new());
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        store.lock().unwrap().push((path, content_type, body));
        writer
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            )
            .unwrap();
    }
}

/// Every string in a JSON document.
fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn received_strings(received: &Received, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (p, content_type, body) in received.lock().unwrap().iter() {
        if p == path {
            assert_eq!(content_type, "application/json");
            strings(&serde_json::from_slice(body).unwrap(), &mut out);
        }
    }
    out
}

/// Serves one audited request and shuts the writer down, with telemetry from `guard`;
/// returns the final checkpoint.
async fn traffic(guard: &veritrail_otel::OtelGuard) -> String {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions::default().origin(Some(ORIGIN.into()));
    let sink = OtelLogSink::new(
        FileSink::open(dir.path(), NoteSigner::generate(ORIGIN).unwrap(), options).unwrap(),
        guard.logger_provider(),
    );
    let writer = Writer::start(sink, WriterConfig::default()).unwrap();
    let otel = veritrail_otel::axum::layer().tracer_provider(guard.tracer_provider());
    let app = app(engine(writer.handle()), otel, None);
    let req = request("GET", "/orders/7")
        .header(
            "authorization",
            format!("Bearer {}", token("alice", "orders:read")),
        )
        .body(Body::empty())
        .unwrap();
    let (response, _) = send(&app, req).await;
    assert_eq!(response.status(), 200);
    let report = writer
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;
    report.checkpoint.unwrap()
}

fn check_export(received: &Received, checkpoint: &str) {
    let spans = received_strings(received, "/v1/traces");
    assert!(spans.iter().any(|s| s == "GET /orders/{id}"), "{spans:?}");
    assert!(
        spans.iter().any(|s| s == "veritrail-test"),
        "service.name: {spans:?}"
    );
    let logs = received_strings(received, "/v1/logs");
    assert!(
        logs.iter().any(|s| s == checkpoint),
        "checkpoint missing: {logs:?}"
    );
    assert!(
        logs.iter().any(|s| s == "veritrail.audit.event"),
        "{logs:?}"
    );
}

#[test]
fn blocking_shutdown_inside_a_current_thread_runtime_flushes_and_returns() {
    let (addr, received) = thread_collector();
    let endpoint = format!("http://{addr}");
    let config = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ])
    .unwrap()
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let checkpoint = runtime.block_on(async {
        let guard = config.init().unwrap();
        let checkpoint = traffic(&guard).await;
        // Called on the runtime's only thread: the SDK's shutdown runs elsewhere.
        guard.shutdown_blocking().unwrap();
        checkpoint
    });
    assert!(started.elapsed() < Duration::from_secs(20));
    check_export(&received, &checkpoint);
}

#[test]
fn async_shutdown_with_the_collector_on_the_same_current_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let received = Received::default();
    let checkpoint = runtime.block_on(async {
        // The collector is served by this runtime's one thread: a shutdown that blocked it
        // would wait for an answer that never comes.
        let store = received.clone();
        let collector = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    store.lock().unwrap().push((
                        uri.path().to_owned(),
                        content_type,
                        body.to_vec(),
                    ));
                    "{}"
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

        let endpoint = format!("http://{addr}");
        let guard = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ])
        .unwrap()
        .unwrap()
        .init()
        .unwrap();
        let checkpoint = traffic(&guard).await;
        tokio::time::timeout(Duration::from_secs(20), guard.shutdown())
            .await
            .expect("the shutdown hung")
            .unwrap();
        checkpoint
    });
    check_export(&received, &checkpoint);
}
