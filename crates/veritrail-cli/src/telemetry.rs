//! OpenTelemetry for the serving commands (`demo`, `proxy`): when the standard
//! `OTEL_EXPORTER_OTLP_*` variables are set, each request's server span is tied to its audit
//! event, and every record and signed checkpoint is also exported as an OTel log record.
//! Without them nothing is exported and nothing changes.

use std::path::Path;

use anyhow::{Context, Result};
use veritrail_log::{LogOptions, NoteSigner};
use veritrail_otel::{OtelGuard, OtelLayer, OtelLogSink};
use veritrail_writer::{FileSink, Sink, Writer, WriterConfig};

/// The OTLP providers, when the environment asks for them.
pub(crate) struct Telemetry {
    guard: Option<OtelGuard>,
}

impl Telemetry {
    /// Reads the `OTEL_*` variables; `service` is the default `service.name`.
    pub(crate) fn from_env(service: &str) -> Result<Self> {
        let guard = veritrail_otel::init_from_env(service)
            .context("invalid OpenTelemetry settings in the OTEL_* environment variables")?;
        if guard.is_some() {
            eprintln!("OpenTelemetry: exporting spans and audit records over OTLP");
        }
        Ok(Telemetry { guard })
    }

    /// `base` configured with the tracer provider, or `None` when OTLP is off.
    pub(crate) fn layer(&self, base: OtelLayer) -> Option<OtelLayer> {
        self.guard
            .as_ref()
            .map(|g| base.tracer_provider(g.tracer_provider()))
    }

    /// A writer over the file log at `dir` (or the PostgreSQL log a `postgres://` location
    /// names), exporting its records as OTel logs when on. A
    /// failure of the writer is printed on stderr when it happens. `recover` adopts a log
    /// without checkpoint history ([`LogOptions::recover`]).
    pub(crate) fn open_writer(
        &self,
        dir: &Path,
        signer: NoteSigner,
        recover: bool,
    ) -> Result<Writer> {
        self.open_writer_witnessed(dir, signer, recover, None)
    }

    /// [`open_writer`](Self::open_writer), with the witness cosignatures received on
    /// `cosignatures` stored in a directory log (see `FileSink::with_cosignatures`).
    pub(crate) fn open_writer_witnessed(
        &self,
        dir: &Path,
        signer: NoteSigner,
        recover: bool,
        cosignatures: Option<std::sync::mpsc::Receiver<veritrail_writer::Cosigned>>,
    ) -> Result<Writer> {
        let opened = || format!("cannot open the audit log {}", dir.display());
        let shown = dir.display().to_string();
        let config = WriterConfig::default().on_failure(move |why| {
            eprintln!(
                "error: the audit log {shown} FAILED and records nothing more: {why}; every \
                 request is now refused with 503; fix the storage, then restart (the log \
                 recovers what is on disk)"
            );
        });
        let options = LogOptions::default().recover(recover);
        let sink: Box<dyn Sink> = match crate::logdir::postgres_location(dir)? {
            #[cfg(feature = "postgres")]
            Some(loc) => Box::new(
                veritrail_postgres::PgSink::open(&loc, signer, Default::default())
                    .with_context(opened)?,
            ),
            #[cfg(not(feature = "postgres"))]
            Some(loc) => match loc {},
            None => {
                let sink = FileSink::open(dir, signer, options).with_context(opened)?;
                Box::new(match cosignatures {
                    Some(rx) => sink.with_cosignatures(rx),
                    None => sink,
                })
            }
        };
        self.start(sink, config).with_context(opened)
    }

    /// A writer for a replica: its events go to the JetStream stream `at` names, which a
    /// `veritrail sequencer` integrates and signs (no local log, no key). `Durable` waits for
    /// JetStream's acknowledgement; a broker outage gives `Durable` callers 503 after 5 s while
    /// `Async` events wait in the queue, and publishing resumes by itself.
    pub(crate) async fn open_nats_writer(
        &self,
        at: &crate::logdir::NatsLocation,
    ) -> Result<Writer> {
        #[cfg(feature = "nats")]
        {
            let opened = || format!("cannot publish audit events to {at}");
            let sink = veritrail_nats::NatsSink::connect(at, Default::default())
                .await
                .with_context(opened)?;
            let shown = at.to_string();
            let config = WriterConfig::default().on_failure(move |why| {
                eprintln!(
                    "error: publishing audit events to {shown} FAILED: {why}; every request \
                     is now refused with 503; fix the stream, then restart"
                );
            });
            self.start(Box::new(sink), config).with_context(opened)
        }
        #[cfg(not(feature = "nats"))]
        match *at {}
    }

    fn start(
        &self,
        sink: Box<dyn Sink>,
        config: WriterConfig,
    ) -> Result<Writer, veritrail_writer::WriterError> {
        match &self.guard {
            None => Writer::start(sink, config),
            Some(guard) => Writer::start(OtelLogSink::new(sink, guard.logger_provider()), config),
        }
    }

    /// Flushes and stops the exporters (after the writer, whose last records they carry).
    pub(crate) async fn shutdown(self) {
        if let Some(guard) = self.guard
            && let Err(e) = guard.shutdown().await
        {
            eprintln!("OpenTelemetry shutdown: {e}");
        }
    }
}
