//! [`init_from_env`]: OTLP/HTTP tracer and logger providers from the standard `OTEL_*`
//! variables, and an [`OtelGuard`] whose shutdown flushes them without blocking a runtime.

use std::time::Duration;

use opentelemetry_otlp::{
    ExporterBuildError, LogExporter, Protocol, SpanExporter, WithExportConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// How long [`OtelGuard`]'s shutdown gives each provider to export what it holds.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to export, as the standard OpenTelemetry variables say.
///
/// | variable | meaning |
/// | --- | --- |
/// | `OTEL_EXPORTER_OTLP_ENDPOINT` | the collector's base URL (`http://collector:4318`); `/v1/traces` and `/v1/logs` are appended |
/// | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` | a signal's full URL, used as it is |
/// | `OTEL_EXPORTER_OTLP_PROTOCOL` (and the `_TRACES_` / `_LOGS_` forms) | `http/protobuf` (the default) or `http/json`; `grpc` is not built in |
/// | `OTEL_SERVICE_NAME` | the `service.name` resource attribute |
/// | `OTEL_SDK_DISABLED` | `true`: no export at all |
///
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` and `OTEL_RESOURCE_ATTRIBUTES`
/// are read by the exporter and the SDK themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// The full URL spans are sent to.
    pub traces_endpoint: String,
    /// The full URL log records are sent to.
    pub logs_endpoint: String,
    /// The encoding of spans.
    pub traces_protocol: OtlpProtocol,
    /// The encoding of log records.
    pub logs_protocol: OtlpProtocol,
    /// `service.name`.
    pub service_name: String,
}

/// The OTLP/HTTP encodings veritrail can export with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf` (the default of the OTLP specification).
    #[default]
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

impl OtlpProtocol {
    /// Parses the value of `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn parse(value: &str) -> Result<Self, InitError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Ok(OtlpProtocol::HttpJson),
            _ => Err(InitError::UnsupportedProtocol(value.to_owned())),
        }
    }

    fn otlp(self) -> Protocol {
        match self {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
            OtlpProtocol::HttpJson => Protocol::HttpJson,
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The protocol variable names something other than `http/protobuf` or `http/json`.
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL={0:?} is not supported: use http/protobuf or http/json (OTLP over HTTP, port 4318); gRPC is not built into veritrail"
    )]
    UnsupportedProtocol(String),
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP {signal} exporter: {source}")]
    Exporter {
        /// `traces` or `logs`.
        signal: &'static str,
        /// The exporter's error.
        #[source]
        source: ExporterBuildError,
    },
}

/// Why a shutdown did not flush everything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// A provider reported an error while flushing or shutting down.
    #[error("telemetry {signal} were not all exported at shutdown: {message}")]
    Flush {
        /// `traces` or `logs`.
        signal: &'static str,
        /// The SDK's error.
        message: String,
    },
    /// The shutdown thread did not answer in time (an exporter hung past its timeout).
    #[error("telemetry shutdown did not finish within {0:?}")]
    Timeout(Duration),
    /// The shutdown thread could not be started or died.
    #[error("the telemetry shutdown thread failed")]
    Thread,
}

impl OtlpConfig {
    /// The configuration the process environment describes, or `None` when no OTLP
    /// endpoint is set (or `OTEL_SDK_DISABLED=true`): then nothing is exported.
    /// `default_service_name` applies when `OTEL_SERVICE_NAME` is unset.
    pub fn from_env(default_service_name: &str) -> Result<Option<Self>, InitError> {
        Self::from_lookup(default_service_name, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any variable lookup (for tests and for
    /// configuration files that mirror the variables).
    pub fn from_lookup(
        default_service_name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, InitError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let base = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        let traces = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let logs = var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT");
        if base.is_none() && traces.is_none() && logs.is_none() {
            return Ok(None);
        }
        let base = base.unwrap_or_else(|| "http://localhost:4318".to_owned());
        let signal_url = |path: &str| format!("{}/{path}", base.trim_end_matches('/'));
        let protocol = |signal_var: &str| -> Result<OtlpProtocol, InitError> {
            var(signal_var)
                .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
                .map_or(Ok(OtlpProtocol::default()), |p| OtlpProtocol::parse(&p))
        };
        Ok(Some(OtlpConfig {
            traces_endpoint: traces.unwrap_or_else(|| signal_url("v1/traces")),
            logs_endpoint: logs.unwrap_or_else(|| signal_url("v1/logs")),
            traces_protocol: protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")?,
            logs_protocol: protocol("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")?,
            service_name: var("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| default_service_name.to_owned()),
        }))
    }

    /// Builds the tracer and logger providers: OTLP/HTTP exporters behind the SDK's batch
    /// processors, which export on threads of their own. Installs nothing globally.
    pub fn init(&self) -> Result<OtelGuard, InitError> {
        let resource = Resource::builder()
            .with_service_name(self.service_name.clone())
            .build();
        let spans = SpanExporter::builder()
            .with_http()
            .with_endpoint(self.traces_endpoint.clone())
            .with_protocol(self.traces_protocol.otlp())
            .build()
            .map_err(|source| InitError::Exporter {
                signal: "traces",
                source,
            })?;
        let logs = LogExporter::builder()
            .with_http()
            .with_endpoint(self.logs_endpoint.clone())
            .with_protocol(self.logs_protocol.otlp())
            .build()
            .map_err(|source| InitError::Exporter {
                signal: "logs",
                source,
            })?;
        Ok(OtelGuard {
            tracer: SdkTracerProvider::builder()
                .with_batch_exporter(spans)
                .with_resource(resource.clone())
                .build(),
            logger: SdkLoggerProvider::builder()
                .with_batch_exporter(logs)
                .with_resource(resource)
                .build(),
            timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            done: false,
        })
    }
}

/// Builds OTLP/HTTP tracer and logger providers from the standard variables (see
/// [`OtlpConfig`]), or returns `None` when no endpoint is set. Installs nothing globally:
/// give [`OtelGuard::tracer_provider`] to [`OtelLayer`](crate::OtelLayer) and
/// [`OtelGuard::logger_provider`] to [`OtelLogSink`](crate::OtelLogSink), or call
/// [`OtelGuard::install_global`] to make them the process's.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let telemetry = veritrail_otel::init_from_env("veritrail-proxy")?;
/// let otel_layer = match &telemetry {
///     Some(guard) => veritrail_otel::OtelLayer::new().tracer_provider(guard.tracer_provider()),
///     None => veritrail_otel::OtelLayer::new(), // still carries traceparent into the log
/// };
/// // ... serve with `otel_layer` outside the audit layer, then, after the writer is shut down:
/// if let Some(guard) = telemetry {
///     guard.shutdown().await?;
/// }
/// # Ok(()) }
/// ```
pub fn init_from_env(default_service_name: &str) -> Result<Option<OtelGuard>, InitError> {
    OtlpConfig::from_env(default_service_name)?
        .map(|config| config.init())
        .transpose()
}

/// The tracer and logger providers [`init_from_env`] built. Shut it down after the audit
/// writer (whose last records and checkpoint go through the logger).
///
/// [`shutdown`](Self::shutdown) and [`shutdown_blocking`](Self::shutdown_blocking) run the
/// SDK's shutdown on a thread of their own, so they neither block an async runtime's thread
/// (the async form) nor deadlock on one (opentelemetry-rust #2715, #3176: a shutdown called
/// on a single-threaded runtime waiting for an export that needs that same thread).
/// Dropping the guard unshut does a blocking shutdown.
#[must_use = "dropping the OtelGuard shuts telemetry down"]
pub struct OtelGuard {
    tracer: SdkTracerProvider,
    logger: SdkLoggerProvider,
    timeout: Duration,
    done: bool,
}

impl std::fmt::Debug for OtelGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelGuard")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OtelGuard {
    /// The tracer provider (for [`OtelLayer::tracer_provider`](crate::OtelLayer::tracer_provider)).
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer
    }

    /// The logger provider (for [`OtelLogSink::new`](crate::OtelLogSink::new)).
    pub fn logger_provider(&self) -> &SdkLoggerProvider {
        &self.logger
    }

    /// How long shutdown gives each provider (default [`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Makes the tracer provider the process's global one and W3C Trace Context its text-map
    /// propagator — only when the application asks, never by itself.
    pub fn install_global(&self) {
        opentelemetry::global::set_tracer_provider(self.tracer.clone());
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }

    /// Flushes and shuts down both providers on a separate thread, and waits for it without
    /// blocking the runtime.
    pub async fn shutdown(mut self) -> Result<(), ShutdownError> {
        self.done = true;
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn_shutdown(
            self.tracer.clone(),
            self.logger.clone(),
            self.timeout,
            move |r| {
                let _ = tx.send(r);
            },
        )?;
        rx.await.map_err(|_| ShutdownError::Thread)?
    }

    /// [`shutdown`](Self::shutdown) for code outside async contexts: blocks the calling
    /// thread (at most about twice the shutdown timeout).
    pub fn shutdown_blocking(mut self) -> Result<(), ShutdownError> {
        self.done = true;
        self.shutdown_now()
    }

    fn shutdown_now(&self) -> Result<(), ShutdownError> {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_shutdown(
            self.tracer.clone(),
            self.logger.clone(),
            self.timeout,
            move |r| {
                let _ = tx.send(r);
            },
        )?;
        let bound = self.timeout * 2 + Duration::from_secs(1);
        match rx.recv_timeout(bound) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(ShutdownError::Timeout(bound)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(ShutdownError::Thread),
        }
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.shutdown_now();
        }
    }
}

fn spawn_shutdown(
    tracer: SdkTracerProvider,
    logger: SdkLoggerProvider,
    timeout: Duration,
    reply: impl FnOnce(Result<(), ShutdownError>) + Send + 'static,
) -> Result<(), ShutdownError> {
    std::thread::Builder::new()
        .name("veritrail-otel-shutdown".into())
        .spawn(move || {
            let traces = tracer.shutdown_with_timeout(timeout);
            let logs = logger.shutdown_with_timeout(timeout);
            let result = match (traces, logs) {
                (Err(e), _) => Err(ShutdownError::Flush {
                    signal: "traces",
                    message: e.to_string(),
                }),
                (_, Err(e)) => Err(ShutdownError::Flush {
                    signal: "logs",
                    message: e.to_string(),
                }),
                _ => Ok(()),
            };
            reply(result);
        })
        .map(drop)
        .map_err(|_| ShutdownError::Thread)
}
