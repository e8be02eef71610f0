//! The operations address (`--metrics-listen`): `/metrics` in the Prometheus text format,
//! `/healthz` (alive) and `/readyz` (ready to serve: the keys are loaded and the audit log
//! can take events; a failed log shows up here as not ready, before any request is refused).
//!
//! Everything goes through the [`metrics`] facade the writer already reports through, with
//! the Prometheus exporter as the recorder. The proxy adds:
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `veritrail_proxy_requests_total` | counter | `route`, `status_class`, `decision` | requests recorded (their `complete` event): the configured route prefix (`-` for none), `2xx`…`5xx` (`none` when no response was sent) and the event's outcome (`success`, `failure`, `denied`, `error`, `cancelled`) |
//! | `veritrail_proxy_auth_failures_total` | counter | `reason` | requests whose token was refused, by the event's reason code (`token_missing`, `token_expired`, …) |
//! | `veritrail_proxy_connections_open` | gauge | | client connections open |
//! | `veritrail_proxy_connections_refused_total` | counter | | connections turned away over the connection caps |
//! | `veritrail_proxy_config_reloads_total` | counter | `result` | `--config` reloads on SIGHUP: `ok` or `refused` (the old policy kept) |
//! | `veritrail_proxy_tls_reloads_total` | counter | `result` | certificate reloads: `ok` or `refused` (the old certificate kept) |
//! | `veritrail_jwks_fetches_total` | counter | | key set fetches (successful or not), for keys from a URL |
//! | `veritrail_jwks_consecutive_failures` | gauge | | failed fetches since the last success |
//! | `veritrail_jwks_available` | gauge | | 1 while keys are in force |
//! | `veritrail_proxy_ready` | gauge | | 1 while `/readyz` answers 200 |
//!
//! The writer's own metrics (queue depth, batches, the commit + fsync latency histogram
//! `veritrail_writer_commit_seconds`, dropped events, which the log records in `gap` records,
//! failures) are listed in `veritrail_writer::metric`. Label values are bounded: routes come
//! from the configuration and reason codes from the engine, never from a request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use veritrail_core::auth::remote::JwksStore;
use veritrail_core::event::{AuditEvent, AuthnDecision, Outcome, Phase};
use veritrail_core::recorder::{Durability, Receipt, RecordError, RecordFuture, Recorder};

/// Counter: requests recorded, by route, status class and decision.
pub(crate) const REQUESTS: &str = "veritrail_proxy_requests_total";
/// Counter: refused tokens, by reason code.
pub(crate) const AUTH_FAILURES: &str = "veritrail_proxy_auth_failures_total";
/// Gauge: client connections open.
pub(crate) const CONNECTIONS_OPEN: &str = "veritrail_proxy_connections_open";
/// Counter: connections turned away over the caps.
pub(crate) const CONNECTIONS_REFUSED: &str = "veritrail_proxy_connections_refused_total";
/// Counter: `--config` reloads, by result.
pub(crate) const CONFIG_RELOADS: &str = "veritrail_proxy_config_reloads_total";
/// Counter: certificate reloads, by result.
pub(crate) const TLS_RELOADS: &str = "veritrail_proxy_tls_reloads_total";
const JWKS_FETCHES: &str = "veritrail_jwks_fetches_total";
const JWKS_FAILURES: &str = "veritrail_jwks_consecutive_failures";
const JWKS_AVAILABLE: &str = "veritrail_jwks_available";
const READY: &str = "veritrail_proxy_ready";

/// Installs the Prometheus exporter as the process's metrics recorder. Must run before the
/// writer starts (it binds its metric handles then).
pub(crate) fn install() -> Result<PrometheusHandle> {
    // Seconds: an fsync takes from tens of microseconds (page cache) to seconds (a sick disk).
    let seconds = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0,
    ];
    let sizes = [
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        32.0,
        64.0,
        128.0,
        256.0,
        512.0,
        1024.0,
        4096.0,
        16384.0,
        65536.0,
        262_144.0,
        1_048_576.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .set_buckets_for_metric(Matcher::Suffix("_records".into()), &sizes)?
        .set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &sizes)?
        .install_recorder()
        .context("cannot install the metrics recorder")
}

/// A recorder that counts each request's final event into the proxy's metrics, then hands it
/// on to the log.
pub(crate) struct Metered<R>(pub(crate) R);

fn count(event: &AuditEvent) {
    let Some(http) = event.as_http() else { return };
    // A follow-up event (an upgraded connection's close, a response digest) is no request.
    if http.phase != Phase::Complete || http.extra.contains_key("follow_up") {
        return;
    }
    let class = match http.status {
        Some(s @ 100..=599) => ["1xx", "2xx", "3xx", "4xx", "5xx"][usize::from(s / 100 - 1)],
        _ => "none",
    };
    let decision = match http.outcome {
        Some(Outcome::Success) => "success",
        Some(Outcome::Failure) => "failure",
        Some(Outcome::Denied) => "denied",
        Some(Outcome::Error) => "error",
        Some(Outcome::Cancelled) => "cancelled",
        None => "none",
    };
    let route = http.request.route.clone().unwrap_or_else(|| "-".to_owned());
    metrics::counter!(REQUESTS, "route" => route, "status_class" => class, "decision" => decision)
        .increment(1);
    if let Some(authn) = &http.authn
        && authn.decision == AuthnDecision::Denied
    {
        let reason = authn.reason.clone().unwrap_or_else(|| "-".to_owned());
        metrics::counter!(AUTH_FAILURES, "reason" => reason).increment(1);
    }
}

impl<R: Recorder> Recorder for Metered<R> {
    fn record(&self, event: AuditEvent, durability: Durability) -> RecordFuture {
        count(&event);
        self.0.record(event, durability)
    }

    fn try_record(&self, event: AuditEvent) -> Result<Receipt, RecordError> {
        count(&event);
        self.0.try_record(event)
    }

    fn health(&self) -> Result<(), RecordError> {
        self.0.health()
    }
}

/// A client connection counted in [`CONNECTIONS_OPEN`] while this lives.
pub(crate) struct OpenConnection(());

impl OpenConnection {
    pub(crate) fn new() -> Self {
        metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
        OpenConnection(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// What `/readyz` looks at.
#[derive(Clone)]
pub(crate) struct Readiness {
    /// The key store, for keys fetched from a URL (file keys and secrets are always loaded).
    pub(crate) jwks: Option<Arc<JwksStore>>,
    /// The audit log's recorder.
    pub(crate) log: Arc<dyn Recorder>,
}

impl Readiness {
    /// `Ok` when ready; otherwise why not (no secrets, no key material).
    fn check(&self) -> Result<(), String> {
        if let Some(store) = &self.jwks
            && let Err(e) = store.current()
        {
            return Err(format!("verification keys unavailable: {e}"));
        }
        self.log
            .health()
            .map_err(|e| format!("the audit log cannot take events: {e}"))
    }

    /// Sets the gauges read at scrape time.
    fn observe(&self, ready: bool) {
        metrics::gauge!(READY).set(if ready { 1.0 } else { 0.0 });
        if let Some(store) = &self.jwks {
            let status = store.status();
            metrics::counter!(JWKS_FETCHES).absolute(status.fetches);
            metrics::gauge!(JWKS_FAILURES).set(f64::from(status.consecutive_failures));
            metrics::gauge!(JWKS_AVAILABLE).set(if status.available { 1.0 } else { 0.0 });
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    readiness: Readiness,
) {
    let handle = Arc::new(handle);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (handle, readiness) = (Arc::clone(&handle), readiness.clone());
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let response = answer(req.uri().path(), &handle, &readiness);
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service),
        );
    }
}

fn answer(path: &str, handle: &PrometheusHandle, readiness: &Readiness) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    match path {
        "/metrics" => {
            let ready = readiness.check().is_ok();
            readiness.observe(ready);
            text(
                StatusCode::OK,
                handle.render(),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => match readiness.check() {
            Ok(()) => {
                readiness.observe(true);
                text(StatusCode::OK, "ready\n".into(), PLAIN)
            }
            Err(why) => {
                readiness.observe(false);
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                    PLAIN,
                )
            }
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), PLAIN),
    }
}

/// Binds the operations address.
pub(crate) async fn bind(addr: &str) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
