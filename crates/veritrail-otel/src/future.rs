//! [`ResponseFuture`]: ends the server span when the response head is ready.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use http::Response;
use opentelemetry::context::WithContext;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute::{
    CLIENT_ADDRESS, ERROR_TYPE, HTTP_RESPONSE_STATUS_CODE,
};
use pin_project_lite::pin_project;
use veritrail_core::engine::AuditRecordInfo;

use crate::EnduserPolicy;
use crate::layer::Config;
use crate::{AUDIT_EVENT_ID, AUDIT_EVENT_OUTCOME, AUDIT_LOG_INDEX};

pin_project! {
    /// The response future of [`OtelService`](crate::OtelService): polls the inner service
    /// inside the span's context, and ends the span with the response's attributes.
    ///
    /// Dropped before it completes, it ends the span as it is.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: WithContext<F>,
        cx: Context,
        peer: Option<IpAddr>,
        config: Arc<Config>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: WithContext<F>,
        cx: Context,
        peer: Option<IpAddr>,
        config: Arc<Config>,
    ) -> Self {
        ResponseFuture {
            inner,
            cx,
            peer,
            config,
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let span = this.cx.span();
        if span.is_recording() {
            let mut attributes = Vec::with_capacity(8);
            let record = match &result {
                Ok(response) => {
                    let status = response.status();
                    attributes.push(KeyValue::new(
                        HTTP_RESPONSE_STATUS_CODE,
                        i64::from(status.as_u16()),
                    ));
                    if status.is_server_error() {
                        attributes.push(KeyValue::new(ERROR_TYPE, status.as_str().to_owned()));
                        span.set_status(Status::error(""));
                    }
                    response.extensions().get::<AuditRecordInfo>()
                }
                Err(_) => {
                    attributes.push(KeyValue::new(ERROR_TYPE, std::any::type_name::<E>()));
                    span.set_status(Status::error(""));
                    None
                }
            };
            let client = record
                .and_then(|r| r.client_address.clone())
                .or_else(|| this.peer.map(|ip| ip.to_string()));
            if let Some(client) = client {
                attributes.push(KeyValue::new(CLIENT_ADDRESS, client));
            }
            if let Some(record) = record {
                attributes.extend(audit_attributes(record, &this.config.enduser));
            }
            span.set_attributes(attributes);
        }
        span.end();
        Poll::Ready(result)
    }
}

/// The attributes that point at the recorded event: `audit.event.id`, `audit.log.index`,
/// `audit.event.outcome`, and the identity as `enduser` says.
pub(crate) fn audit_attributes(record: &AuditRecordInfo, enduser: &EnduserPolicy) -> Vec<KeyValue> {
    let mut attributes = vec![KeyValue::new(AUDIT_EVENT_ID, record.event_id.to_string())];
    if let Some(index) = record.index.and_then(|i| i64::try_from(i).ok()) {
        attributes.push(KeyValue::new(AUDIT_LOG_INDEX, index));
    }
    if let Some(outcome) = record.outcome {
        attributes.push(KeyValue::new(AUDIT_EVENT_OUTCOME, outcome.as_str()));
    }
    if let Some(kv) = record.subject.as_deref().and_then(|s| enduser.plain(s)) {
        attributes.push(kv);
    }
    attributes
}
