//! gRPC: refusals a gRPC client understands, and the final `grpc-status` in the event.
//!
//! A request is gRPC when its `content-type` is `application/grpc` (or `application/grpc+…`,
//! `application/grpc;…`). For such a request:
//!
//! - A refusal is a gRPC error, not a bare HTTP status: HTTP 200, trailers-only, with
//!   `grpc-status` `16 UNAUTHENTICATED` (for a 401), `7 PERMISSION_DENIED` (403),
//!   `14 UNAVAILABLE` (503, keys or log unavailable), `3 INVALID_ARGUMENT` (400) …, and
//!   `grpc-message` saying why (the problem's detail). The RFC 6750 challenge is kept.
//! - The event's `action` is the RPC (`/package.Service/Method`) unless the handler names
//!   another, and `extra.grpc_status` holds the call's final status: read from the response
//!   head for a trailers-only answer, else from the trailers when the body ends. The outcome
//!   follows it (`0` success; `16`, `7` denied; `1` cancelled; `3`, `5`, `6`, `8`, `9`, `11`
//!   failure; others error).
//!
//! Reading trailers needs the response body: [`AuditLayer::grpc`](crate::AuditLayer::grpc)
//! wraps it in a [`GrpcBody`], which records the event when the trailers pass through (before
//! handing them on: on a `durable` route the client sees the end of the call once it is on
//! disk; if it cannot be recorded, the trailers say `14 UNAVAILABLE` instead). Without that
//! wrapper (the plain [`AuditLayer`]), a call that is not trailers-only is
//! recorded when its head is ready, without a `grpc_status`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use veritrail_core::engine::{AuditContext, EngineFuture, Exchange, Rejection};
use veritrail_core::event::Outcome;

use crate::layer::AuditLayer;
use crate::service::AuditService;

/// `grpc-status`: the call was refused for want of valid credentials.
pub const UNAUTHENTICATED: u32 = 16;
/// `grpc-status`: the caller may not make this call.
pub const PERMISSION_DENIED: u32 = 7;
/// `grpc-status`: the service cannot take the call now (keys or audit log unavailable).
pub const UNAVAILABLE: u32 = 14;

/// Whether a request is a gRPC call (by its `content-type`).
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| is_grpc_content_type(v.as_bytes()))
}

fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';'))
}

/// The `grpc-status` for a refusal with this HTTP status.
pub fn status_for(http_status: u16) -> u32 {
    match http_status {
        401 => UNAUTHENTICATED,
        403 => PERMISSION_DENIED,
        400 | 414 | 431 => 3, // INVALID_ARGUMENT
        404 => 5,             // NOT_FOUND
        405 | 501 => 12,      // UNIMPLEMENTED
        413 | 429 => 8,       // RESOURCE_EXHAUSTED
        408 | 504 => 4,       // DEADLINE_EXCEEDED
        502 | 503 => UNAVAILABLE,
        _ => 13, // INTERNAL
    }
}

/// The outcome a call that ended with `grpc-status` `code` is recorded with.
fn outcome_for(code: u32) -> Outcome {
    match code {
        0 => Outcome::Success,
        UNAUTHENTICATED | PERMISSION_DENIED => Outcome::Denied,
        1 => Outcome::Cancelled,
        3 | 5 | 6 | 8 | 9 | 11 => Outcome::Failure,
        _ => Outcome::Error,
    }
}

/// Percent-encodes a `grpc-message` (gRPC over HTTP/2: bytes outside printable ASCII, and
/// `%`, as `%XX`).
fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `grpc-status` a head or trailer map carries, if a valid one.
fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<u32>()
        .ok()
        .filter(|c| *c <= 16)
}

/// A refusal as a gRPC error: HTTP 200, trailers-only, `grpc-status` and `grpc-message`.
pub fn grpc_rejection_response<B: From<Bytes>>(rejection: &Rejection) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::new()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(
        "grpc-status",
        HeaderValue::from(status_for(rejection.status())),
    );
    if let Ok(message) = HeaderValue::from_str(&encode_message(&rejection_message(rejection))) {
        headers.insert("grpc-message", message);
    }
    crate::response::set_challenge(headers, rejection);
    response
}

/// The refusal's reason code and detail, as the problem body states them.
fn rejection_message(rejection: &Rejection) -> String {
    format!("{}: {}", rejection.code(), rejection.detail())
}

/// Notes a gRPC call in its context when it starts: the RPC as the action.
pub(crate) fn started(context: &AuditContext, path: &str) {
    if context.action().is_none() {
        context.set_action(path);
    }
}

/// Notes the call's final `grpc-status` and the outcome it stands for.
fn ended(context: &AuditContext, code: u32) {
    context.insert("grpc_status", code);
    context.set_outcome(outcome_for(code));
}

/// Notes a refusal's `grpc-status`.
pub(crate) fn refused(context: &AuditContext, rejection: &Rejection) {
    context.insert("grpc_status", status_for(rejection.status()));
}

/// A gRPC response head seen by the audit layer: `true` when its event is recorded later by
/// the body (the exchange was handed to it), `false` when it is to be recorded now (a
/// trailers-only answer, its status noted; or no body that can record).
pub(crate) fn defer_or_note<B>(
    response: &mut Response<B>,
    exchange: &mut Option<Exchange>,
) -> bool {
    let context = match exchange {
        Some(exchange) => exchange.context().clone(),
        None => return false,
    };
    if let Some(code) = grpc_status(response.headers()) {
        ended(&context, code);
        return false;
    }
    if response.status() != StatusCode::OK {
        // Not a gRPC answer at all (an HTTP error from an intermediary): recorded as such.
        return false;
    }
    match response.extensions_mut().remove::<FinishSlot>() {
        Some(slot) => {
            *slot.lock() = exchange.take();
            true
        }
        None => false,
    }
}

/// Where a gRPC call's exchange waits for its trailers.
#[derive(Clone, Default)]
pub(crate) struct FinishSlot(Arc<Mutex<Option<Exchange>>>);

impl FinishSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Exchange>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for FinishSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FinishSlot")
    }
}

/// [`AuditLayer`] for services that answer gRPC: the response body is a [`GrpcBody`], which
/// records each call's event with the final `grpc-status` from its trailers. Other requests
/// are audited as by [`AuditLayer`]. Made by [`AuditLayer::grpc`].
#[derive(Clone, Debug)]
pub struct GrpcAuditLayer {
    layer: AuditLayer,
}

impl AuditLayer {
    /// This layer for services that answer gRPC calls (tonic, or a proxy in front of one):
    /// each call is recorded when it ends, with its final `grpc-status` (see [`crate::grpc`]).
    pub fn grpc(self) -> GrpcAuditLayer {
        GrpcAuditLayer { layer: self }
    }
}

impl<S> Layer<S> for GrpcAuditLayer {
    type Service = AuditService<GrpcBodies<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditService::new(GrpcBodies { inner }, self.layer.clone())
    }
}

/// Wraps each response body of `S` in a [`GrpcBody`] (inside [`AuditService`]).
#[derive(Clone, Debug)]
pub struct GrpcBodies<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcBodies<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<GrpcBody<ResBody>>;
    type Error = S::Error;
    type Future = GrpcBodiesFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let slot = is_grpc(&req).then(FinishSlot::default);
        GrpcBodiesFuture {
            future: self.inner.call(req),
            slot,
        }
    }
}

pin_project! {
    /// The response future of [`GrpcBodies`].
    pub struct GrpcBodiesFuture<F> {
        #[pin]
        future: F,
        slot: Option<FinishSlot>,
    }
}

impl<F, B, E> std::future::Future for GrpcBodiesFuture<F>
where
    F: std::future::Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GrpcBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.future.poll(cx))?;
        let slot = this.slot.take();
        let (mut parts, body) = response.into_parts();
        if let Some(slot) = &slot {
            parts.extensions.insert(slot.clone());
        }
        let body = GrpcBody {
            kind: Kind::Inner { body },
            slot,
            recording: None,
            held: None,
        };
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { bytes: Option<Bytes> },
    }
}

pin_project! {
    /// A response body under [`GrpcAuditLayer`]: the inner service's, passed through frame by
    /// frame; for a gRPC call it records the call's event, with the `grpc-status` of its
    /// trailers, before handing the trailers on. Dropped before its end, the call is recorded
    /// as `cancelled`.
    pub struct GrpcBody<B> {
        #[pin]
        kind: Kind<B>,
        slot: Option<FinishSlot>,
        recording: Option<EngineFuture<Result<(), Rejection>>>,
        // What follows the record: the trailers (or `None` for the end of the body).
        held: Option<Option<HeaderMap>>,
    }
}

impl<B> GrpcBody<B> {
    /// `body`, passed through as it is (nothing is recorded by it).
    pub fn new(body: B) -> Self {
        GrpcBody {
            kind: Kind::Inner { body },
            slot: None,
            recording: None,
            held: None,
        }
    }
}

impl<B> From<Bytes> for GrpcBody<B> {
    fn from(bytes: Bytes) -> Self {
        GrpcBody {
            kind: Kind::Full { bytes: Some(bytes) },
            slot: None,
            recording: None,
            held: None,
        }
    }
}

impl<B> std::fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBody").finish_non_exhaustive()
    }
}

impl<B> Body for GrpcBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if let Some(recording) = this.recording.as_mut() {
                let recorded = ready!(recording.as_mut().poll(cx));
                *this.recording = None;
                let Some(held) = this.held.take() else {
                    return Poll::Ready(None);
                };
                let mut trailers = match held {
                    Some(trailers) => trailers,
                    None if recorded.is_ok() => return Poll::Ready(None),
                    None => HeaderMap::new(),
                };
                if let Err(rejection) = recorded {
                    // The call ran but its record is not durable: the client is told so.
                    trailers.insert("grpc-status", HeaderValue::from(UNAVAILABLE));
                    if let Ok(m) =
                        HeaderValue::from_str(&encode_message(&rejection_message(&rejection)))
                    {
                        trailers.insert("grpc-message", m);
                    }
                }
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            let frame = match this.kind.as_mut().project() {
                KindProj::Full { bytes } => {
                    return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))));
                }
                KindProj::Inner { body } => ready!(body.poll_frame(cx)),
            };
            let pending = this.slot.as_ref().and_then(|slot| slot.lock().take());
            let Some(exchange) = pending else {
                return Poll::Ready(frame);
            };
            match frame {
                Some(Ok(frame)) if frame.is_data() => {
                    // Not the end yet: the exchange waits on.
                    if let Some(slot) = this.slot.as_ref() {
                        *slot.lock() = Some(exchange);
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Ok(frame)) => {
                    let trailers = frame.into_trailers().unwrap_or_default();
                    if let Some(code) = grpc_status(&trailers) {
                        ended(exchange.context(), code);
                    } else {
                        exchange.context().set_outcome(Outcome::Error);
                    }
                    *this.recording = Some(exchange.finish(200));
                    *this.held = Some(Some(trailers));
                }
                None => {
                    // A gRPC answer must end with a status; one that does not is an error.
                    exchange.context().set_outcome(Outcome::Error);
                    *this.recording = Some(exchange.finish(200));
                    *this.held = Some(None);
                }
                Some(Err(e)) => {
                    // Dropping the exchange records the call as cancelled.
                    drop(exchange);
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.recording.is_some() || self.held.is_some() {
            return false;
        }
        match &self.kind {
            Kind::Full { bytes } => bytes.is_none(),
            Kind::Inner { body } => {
                body.is_end_stream() && self.slot.as_ref().is_none_or(|slot| slot.lock().is_none())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Inner { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types_and_messages() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC;charset=x",
        ] {
            assert!(is_grpc_content_type(yes.as_bytes()), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/json",
            "application/grp",
        ] {
            assert!(!is_grpc_content_type(no.as_bytes()), "{no}");
        }
        assert_eq!(encode_message("a b%c\n\u{e9}"), "a b%25c%0A%C3%A9");
        assert_eq!(status_for(401), 16);
        assert_eq!(status_for(403), 7);
        assert_eq!(status_for(503), 14);
        assert_eq!(outcome_for(0), Outcome::Success);
        assert_eq!(outcome_for(5), Outcome::Failure);
        assert_eq!(outcome_for(13), Outcome::Error);
    }
}
