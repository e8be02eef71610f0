//! Requests the proxy refuses before the audit layer sees them, each recorded as an `http`
//! event (outcome `denied`, the reason in `authz.reason`):
//!
//! - `CONNECT`: a reverse proxy opens no tunnels; answered 405 here, never forwarded.
//! - Request heads that hyper refuses itself before any service runs: it answers 400 (a
//!   malformed request line or header), 414 (a target longer than 65,534 bytes) or 431 (a
//!   head larger than its buffer, or more than 100 header fields) and ends the connection with
//!   a parse error. The error is read from the connection's result and recorded with what is
//!   known: the peer, the reason, and the method and target when the start of the head read
//!   off the socket ([`HeadCapture`]) shows them.
//! - HTTP/2 connections the server's HTTP/2 library closed for a protocol violation (it sent
//!   `GOAWAY` with `PROTOCOL_ERROR`, `COMPRESSION_ERROR` (a header block it cannot decode),
//!   `FRAME_SIZE_ERROR`, `FLOW_CONTROL_ERROR`, … or `ENHANCE_YOUR_CALM`, its answer to a
//!   flood of resets or of frames): recorded as `malformed_http2` (`http2_flood` for the
//!   last) with the peer and the HTTP/2 error code in the detail; method and path are `-`.
//!
//! Not recorded (no service runs and the HTTP server tells nothing about it): a malformed
//! *request* on an otherwise sound HTTP/2 connection (a missing or repeated pseudo-header, a
//! connection-specific field such as `Connection` or `Upgrade`, an upper-case field name):
//! RFC 9113 §8.1.1 makes it a stream error, and the library resets that stream
//! (`RST_STREAM PROTOCOL_ERROR`) and keeps the connection, so nothing of it reaches the
//! upstream either; and connections that end before a request head (a TLS handshake that
//! fails, a client that connects and closes).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use veritrail_core::engine::{Engine, Rejection, RejectionKind, SimpleRequest};

use super::forward::ProxyBody;

/// How much of a request head is kept to name a refused request.
const CAPTURED: usize = 1024;
/// The longest target recorded for a refused head (a 414's is long by definition).
const RECORDED_TARGET: usize = 256;

/// The methods the proxy forwards (any but `CONNECT`), for the 405's `Allow`.
const ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";

/// The start of what a connection's client sent since its last request was handed on: a
/// head hyper then refuses is there.
#[derive(Clone, Default)]
pub(crate) struct HeadCapture(Arc<Mutex<Vec<u8>>>);

impl HeadCapture {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request head was parsed and handed on: start over for the next one.
    pub(crate) fn request_started(&self) {
        self.lock().clear();
    }

    fn saw(&self, bytes: &[u8]) {
        let mut head = self.lock();
        let room = CAPTURED - head.len();
        head.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The method and target of the captured request line, as far as they can be told.
    fn request_line(&self) -> (String, String) {
        let head = self.lock();
        let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
        let mut parts = line.split(|b| *b == b' ');
        let method = parts
            .next()
            .filter(|m| (1..=16).contains(&m.len()) && m.iter().all(u8::is_ascii_uppercase))
            .map(|m| String::from_utf8_lossy(m).into_owned());
        let Some(method) = method else {
            return ("-".to_owned(), "-".to_owned());
        };
        let target = parts.next().unwrap_or_default();
        let shown = &target[..target.len().min(RECORDED_TARGET)];
        let mut target = String::from_utf8_lossy(shown).trim_end().to_owned();
        if shown.len() < parts_len(line, &method) {
            target.push('…');
        }
        (
            method,
            if target.is_empty() {
                "-".into()
            } else {
                target
            },
        )
    }
}

/// The length of the target after `method ` in `line` (up to the next space or its end).
fn parts_len(line: &[u8], method: &str) -> usize {
    line.get(method.len() + 1..).map_or(0, |rest| {
        rest.split(|b| *b == b' ').next().map_or(0, <[u8]>::len)
    })
}

impl super::tap::Tap for HeadCapture {
    fn saw(&self, bytes: &[u8]) {
        HeadCapture::saw(self, bytes);
    }
}

/// What hyper answered for a request head it refused, if it answered one: the status, reason
/// code and explanation. `None` for errors that are not a refused head (timeouts, I/O errors,
/// clients that went away) and for the parse errors hyper answers nothing to.
pub(crate) fn refused_head(e: &hyper::Error) -> Option<(u16, &'static str, &'static str)> {
    if !e.is_parse() || e.is_parse_status() || e.is_parse_version_h2() {
        return None;
    }
    // hyper names its error kinds only in their descriptions.
    let text = e.to_string();
    if text.starts_with("internal error") {
        return None;
    }
    Some(if e.is_parse_too_large() {
        if text.starts_with("URI too long") {
            (
                414,
                "uri_too_long",
                "the request target is longer than the proxy accepts",
            )
        } else {
            (
                431,
                "request_head_too_large",
                "the request head is larger than the proxy accepts, or has too many fields",
            )
        }
    } else {
        (
            400,
            "malformed_request",
            "the request line or a header field is not valid HTTP/1.1",
        )
    })
}

/// Records the refusal of a head hyper refused (and already answered) on a connection from
/// `peer`.
pub(crate) async fn record_refused_head(
    engine: &Engine,
    peer: SocketAddr,
    capture: &HeadCapture,
    (status, code, detail): (u16, &'static str, &'static str),
) {
    let (method, target) = capture.request_line();
    let mut view = SimpleRequest::new(&method, "");
    view.path = target;
    let view = view.peer(peer.ip());
    let rejection = Rejection::new(RejectionKind::InvalidRequest, status, code, detail);
    engine.start(&view).refuse_now(rejection).await;
}

/// What the HTTP/2 library closed a client connection for, if it was the client's protocol
/// violation: the reason code for the event and the HTTP/2 error code's name.
pub(crate) fn broken_http2(e: &hyper::Error) -> Option<(&'static str, String)> {
    let h2 = std::error::Error::source(e)?.downcast_ref::<h2::Error>()?;
    if !(h2.is_go_away() && h2.is_library()) {
        return None;
    }
    let reason = h2.reason()?;
    if reason == h2::Reason::NO_ERROR {
        return None;
    }
    let code = if reason == h2::Reason::ENHANCE_YOUR_CALM {
        "http2_flood"
    } else {
        "malformed_http2"
    };
    Some((code, format!("{reason:?}")))
}

/// Records an HTTP/2 connection closed for the client's protocol violation (see
/// [`broken_http2`]).
pub(crate) async fn record_broken_http2(
    engine: &Engine,
    peer: SocketAddr,
    (code, reason): (&'static str, String),
) {
    let mut view = SimpleRequest::new("-", "");
    view.path = "-".to_owned();
    let view = view.peer(peer.ip());
    let detail = format!(
        "the HTTP/2 connection was closed (GOAWAY {reason}): the client broke the protocol"
    );
    let rejection = Rejection::new(RejectionKind::InvalidRequest, 400, code, detail);
    engine.start(&view).refuse_now(rejection).await;
}

/// Refuses a `CONNECT` (405, recorded); the proxy forwards requests, it opens no tunnels.
pub(crate) async fn refuse_connect<B>(
    engine: &Engine,
    req: &Request<B>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let mut view = SimpleRequest::new(req.method().as_str(), "");
    view.path = req.uri().to_string();
    for (name, value) in req.headers() {
        if let Ok(value) = value.to_str() {
            view = view.header(name.as_str(), value);
        }
    }
    let view = view.peer(peer.ip());
    let rejection = Rejection::new(
        RejectionKind::InvalidRequest,
        405,
        "method_not_allowed",
        "CONNECT is not served: this is a reverse proxy, it opens no tunnels",
    );
    let rejection = engine.start(&view).refuse_now(rejection).await;
    let mut response = Response::new(ProxyBody::from(Bytes::from(rejection.body())));
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Rejection::CONTENT_TYPE),
    );
    headers.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(bytes: &[u8]) -> (String, String) {
        let capture = HeadCapture::default();
        capture.saw(bytes);
        capture.request_line()
    }

    #[test]
    fn the_request_line_is_read_as_far_as_it_goes() {
        assert_eq!(
            line(b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\n"),
            ("GET".into(), "/x?y=1".into())
        );
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(70_000));
        let (method, target) = line(long.as_bytes());
        assert_eq!(method, "GET");
        assert!(
            target.starts_with("/aaa") && target.ends_with('…'),
            "{target}"
        );
        assert!(target.len() <= RECORDED_TARGET + '…'.len_utf8());
        assert_eq!(line(b"G(T / HTTP/1.1\r\n"), ("-".into(), "-".into()));
        assert_eq!(line(b"\x16\x03\x01\x02"), ("-".into(), "-".into()));
        assert_eq!(line(b"GET"), ("GET".into(), "-".into()));
    }
}
