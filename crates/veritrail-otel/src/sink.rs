//! [`OtelLogSink`]: every committed audit record and every signed checkpoint, also exported
//! as an OpenTelemetry log record.

use std::ops::Range;
use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_semantic_conventions::attribute::{
    HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE,
};
use veritrail_core::event::RecoveredRecord;
use veritrail_core::event::{AuditEvent, Outcome, Text, TokenEvidence};
use veritrail_writer::{Batch, Sink, SinkError};

use crate::{
    AUDIT_ACTION, AUDIT_BODY_REDACTED, AUDIT_CHECKPOINT_ROOT_HASH, AUDIT_CHECKPOINT_SIZE,
    AUDIT_EVENT_ID, AUDIT_EVENT_KIND, AUDIT_EVENT_OUTCOME, AUDIT_LOG_INDEX, AUDIT_LOG_ORIGIN,
    EVENT_NAME_AUDIT, EVENT_NAME_CHECKPOINT, EnduserPolicy, layer::scope,
};

/// A [`Sink`] that writes into `inner` (the file log, or any other sink) and exports a copy
/// of what `inner` made durable as OpenTelemetry log records:
///
/// - each record, once committed: body the record's JSON, exactly as stored and hashed (except
///   that a full token kept in clear is cut down to its fingerprint, see below); event name
///   `veritrail.audit.event`; the timestamp of the event; the trace context of the request;
///   attributes `audit.event.id`, `audit.event.kind`, `audit.event.outcome`,
///   `audit.log.index`, `audit.log.origin`, `http.request.method`, `http.route`,
///   `http.response.status_code`, `audit.action`, and the identity only as the
///   [`EnduserPolicy`] says;
/// - each signed checkpoint: body the signed note, event name `veritrail.audit.checkpoint`,
///   attributes `audit.log.origin`, `audit.checkpoint.size`, `audit.checkpoint.root_hash`.
///
/// The checkpoints are the point: a copy of the log's signed head kept in a system the
/// writer does not control, which `veritrail verify --against` later proves the log extends —
/// so truncating or rewriting the log is caught.
///
/// Exporting never fails the writer: the SDK's processor takes the record, and a slow or
/// unreachable collector costs telemetry, not the audit log. Use the SDK's batch processor
/// (as [`init_from_env`](crate::init_from_env) does): a simple processor would export on the
/// writer's thread and delay every commit.
///
/// A record that holds the full token in clear (evidence mode `full` without encrypting
/// `token.jwt`) is exported re-serialised with only the token's fingerprint, and
/// `audit.body.redacted = true`: a telemetry backend must not receive usable bearer tokens.
pub struct OtelLogSink<S, L> {
    inner: S,
    logger: L,
    origin: String,
    enduser: EnduserPolicy,
    /// Records appended and not yet committed: their bytes back to back, with index and range.
    pending: Vec<u8>,
    ranges: Vec<(u64, Range<usize>)>,
}

impl<S: std::fmt::Debug, L> std::fmt::Debug for OtelLogSink<S, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelLogSink")
            .field("inner", &self.inner)
            .field("origin", &self.origin)
            .field("enduser", &self.enduser)
            .field("pending", &self.ranges.len())
            .finish_non_exhaustive()
    }
}

impl<S: Sink, L: Logger> OtelLogSink<S, L> {
    /// Wraps `inner`, exporting through a logger of `provider` (scope `veritrail`).
    pub fn new<P>(inner: S, provider: &P) -> Self
    where
        P: LoggerProvider<Logger = L>,
    {
        OtelLogSink {
            origin: inner.origin().to_owned(),
            inner,
            logger: provider.logger_with_scope(scope()),
            enduser: EnduserPolicy::Omit,
            pending: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Whether and how the caller's identity is reported (default: not at all).
    pub fn enduser(mut self, policy: EnduserPolicy) -> Self {
        self.enduser = policy;
        self
    }

    /// The wrapped sink.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the wrapped sink.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn emit_record(&self, index: u64, bytes: &[u8]) {
        let mut record = self.logger.create_log_record();
        record.set_event_name(EVENT_NAME_AUDIT);
        record.set_observed_timestamp(SystemTime::now());
        record.add_attribute(AUDIT_LOG_ORIGIN, self.origin.clone());
        if let Ok(index) = i64::try_from(index) {
            record.add_attribute(AUDIT_LOG_INDEX, index);
        }
        let Ok(mut event) = AuditEvent::from_json(bytes) else {
            // Not an audit event (another tool appended it): the bytes, as they are.
            record.set_severity_number(Severity::Info);
            record.set_severity_text("INFO");
            record.set_body(AnyValue::String(
                String::from_utf8_lossy(bytes).into_owned().into(),
            ));
            self.logger.emit(record);
            return;
        };
        record.set_timestamp(event.time.into());
        record.add_attribute(AUDIT_EVENT_ID, event.id.to_string());
        record.add_attribute(AUDIT_EVENT_KIND, event.kind().as_str());
        let mut severity = (Severity::Info, "INFO");
        let mut redacted = false;
        if let Some(http) = event.as_http_mut() {
            record.add_attribute(HTTP_REQUEST_METHOD, http.request.method.clone());
            if let Some(route) = &http.request.route {
                record.add_attribute(HTTP_ROUTE, route.clone());
            }
            if let Some(status) = http.status {
                record.add_attribute(HTTP_RESPONSE_STATUS_CODE, i64::from(status));
            }
            if let Some(action) = &http.action {
                record.add_attribute(AUDIT_ACTION, action.clone());
            }
            if let Some(outcome) = http.outcome {
                record.add_attribute(AUDIT_EVENT_OUTCOME, outcome.as_str());
                severity = match outcome {
                    Outcome::Success | Outcome::Cancelled => (Severity::Info, "INFO"),
                    Outcome::Failure | Outcome::Denied => (Severity::Warn, "WARN"),
                    Outcome::Error => (Severity::Error, "ERROR"),
                };
            }
            if let Some(kv) = http
                .actor
                .as_ref()
                .and_then(|a| a.sub.as_ref())
                .and_then(|sub| self.enduser.text(sub))
            {
                record.add_attribute(kv.key, AnyValue::from(kv.value.to_string()));
            }
            if let (Some(trace), Some(span)) = (&http.request.trace_id, &http.request.span_id)
                && let (Ok(trace), Ok(span)) = (TraceId::from_hex(trace), SpanId::from_hex(span))
            {
                record.set_trace_context(trace, span, None);
            }
            if let Some(TokenEvidence::Full {
                sha256,
                jwt: Text::Plain(_),
            }) = &http.token
            {
                http.token = Some(TokenEvidence::Fingerprint {
                    sha256: sha256.clone(),
                    full_refused: None,
                });
                redacted = true;
            }
        }
        record.set_severity_number(severity.0);
        record.set_severity_text(severity.1);
        let body = if redacted {
            record.add_attribute(AUDIT_BODY_REDACTED, true);
            let mut out = Vec::with_capacity(bytes.len());
            event.write_json(index, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        } else {
            String::from_utf8_lossy(bytes).into_owned()
        };
        record.set_body(AnyValue::String(body.into()));
        self.logger.emit(record);
    }

    fn emit_checkpoint(&self, note: &str) {
        let mut record = self.logger.create_log_record();
        record.set_event_name(EVENT_NAME_CHECKPOINT);
        record.set_severity_number(Severity::Info);
        record.set_severity_text("INFO");
        let now = SystemTime::now();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
        let mut lines = note.lines();
        let origin = lines.next().unwrap_or(&self.origin).to_owned();
        record.add_attribute(AUDIT_LOG_ORIGIN, origin);
        if let Some(size) = lines.next().and_then(|s| s.parse::<i64>().ok()) {
            record.add_attribute(AUDIT_CHECKPOINT_SIZE, size);
        }
        if let Some(root) = lines.next() {
            record.add_attribute(AUDIT_CHECKPOINT_ROOT_HASH, root.to_owned());
        }
        record.set_body(AnyValue::String(note.to_owned().into()));
        self.logger.emit(record);
    }
}

impl<S, L> Sink for OtelLogSink<S, L>
where
    S: Sink,
    L: Logger + Send + 'static,
{
    fn origin(&self) -> &str {
        self.inner.origin()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        self.inner.append(batch)?;
        for (index, bytes) in batch.indexes().zip(batch.records()) {
            let start = self.pending.len();
            self.pending.extend_from_slice(bytes);
            self.ranges.push((index, start..self.pending.len()));
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        let committed = self.inner.commit();
        if committed.is_ok() {
            // Only what the log made durable is exported.
            for (index, range) in &self.ranges {
                self.emit_record(*index, &self.pending[range.clone()]);
            }
        }
        self.pending.clear();
        self.ranges.clear();
        committed
    }

    fn checkpoint(&mut self) -> Result<Option<String>, SinkError> {
        let note = self.inner.checkpoint()?;
        if let Some(note) = &note {
            self.emit_checkpoint(note);
        }
        Ok(note)
    }

    fn recovered(&self) -> Option<RecoveredRecord> {
        self.inner.recovered()
    }
}
