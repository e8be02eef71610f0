//! Forwarding one request to the upstream: the body streams through untouched in both
//! directions; hop-by-hop headers are removed (RFC 9110 §7.6.1); `Forwarded`,
//! `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Via` are added; identity
//! headers are stripped from the request and, when configured, set from the verified token.
//! An unreachable upstream is a 502, a slow one a 504, both recorded as errors.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use veritrail_core::auth::Identity;
use veritrail_core::engine::AuditContext;
use veritrail_tower::PeerAddr;

use super::config::Upstream;

/// Identity headers the proxy sets for the upstream; always removed from incoming requests.
pub(crate) const IDENTITY_HEADERS: [&str; 5] = [
    "x-auth-subject",
    "x-auth-issuer",
    "x-auth-scopes",
    "x-auth-roles",
    "x-auth-request-id",
];

/// Headers that concern one connection only (RFC 9110 §7.6.1), besides those `Connection`
/// names.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the proxy answers and streams: the upstream's body, or a short one of its own.
pub(crate) struct ProxyBody(UnsyncBoxBody<Bytes, hyper::Error>);

impl From<Bytes> for ProxyBody {
    fn from(bytes: Bytes) -> Self {
        ProxyBody(
            Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// The canonical path of a request (see [`veritrail_core::engine::canonical_path`]): what
/// the route was chosen by, the engine authorised, and the upstream gets.
#[derive(Clone, Debug)]
pub(crate) struct AuthorisedPath(pub(crate) String);

/// The innermost service: sends each request on to the upstream.
#[derive(Clone)]
pub(crate) struct Forward {
    inner: Arc<ForwardInner>,
}

struct ForwardInner {
    client: Client<HttpConnector, Incoming>,
    upstream: Upstream,
    timeout: Duration,
    identity_headers: bool,
}

impl Forward {
    /// Forwards to `upstream`, answering 504 when its response head takes longer than
    /// `timeout`.
    pub(crate) fn new(upstream: Upstream, timeout: Duration, identity_headers: bool) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Forward {
            inner: Arc::new(ForwardInner {
                client,
                upstream,
                timeout,
                identity_headers,
            }),
        }
    }
}

/// The response future of [`Forward`].
pub(crate) type ForwardFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

impl tower::Service<Request<Incoming>> for Forward {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ForwardFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { Ok(inner.forward(req).await) })
    }
}

impl ForwardInner {
    async fn forward(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let audit = req.extensions().get::<AuditContext>().cloned();
        let failed = |status: StatusCode, reason: &str| {
            if let Some(audit) = &audit {
                audit.insert("upstream_error", reason);
            }
            problem(status, reason)
        };
        // Only the path the engine authorised is ever forwarded; a request without one was
        // refused before it got here (fail closed if not).
        let Some(AuthorisedPath(path)) = req.extensions().get::<AuthorisedPath>().cloned() else {
            return failed(StatusCode::BAD_GATEWAY, "bad_upstream_request");
        };
        let req = match self.upstream_request(req, &path) {
            Ok(req) => req,
            Err(_) => return failed(StatusCode::BAD_GATEWAY, "bad_upstream_request"),
        };
        let response = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) if e.is_connect() => {
                return failed(StatusCode::BAD_GATEWAY, "upstream_unreachable");
            }
            Ok(Err(_)) => return failed(StatusCode::BAD_GATEWAY, "upstream_failed"),
            Err(_) => return failed(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts
            .headers
            .append(header::VIA, HeaderValue::from_static(VIA));
        Response::from_parts(parts, ProxyBody(body.boxed_unsync()))
    }

    /// The request as the upstream gets it.
    /// The request as the upstream gets it: the canonical `path` (never the one the client
    /// spelled) with the original query.
    fn upstream_request(
        &self,
        req: Request<Incoming>,
        path: &str,
    ) -> Result<Request<Incoming>, http::Error> {
        let (mut parts, body) = req.into_parts();
        let path_and_query = match parts.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        parts.uri = self.upstream.uri_for(&path_and_query)?;
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers);
        for name in IDENTITY_HEADERS {
            headers.remove(name);
        }
        let host = headers.remove(header::HOST);
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        add_forwarding(headers, peer, host.as_ref());
        headers.insert(
            header::HOST,
            HeaderValue::from_str(self.upstream.authority.as_str())
                .unwrap_or(HeaderValue::from_static("localhost")),
        );
        if self.identity_headers {
            let identity = parts.extensions.get::<Identity>().cloned();
            let request_id = parts
                .extensions
                .get::<AuditContext>()
                .map(|a| a.request_id().to_owned());
            set_identity(headers, identity.as_ref(), request_id.as_deref());
        }
        Ok(Request::from_parts(parts, body))
    }
}

/// The `Via` value the proxy adds.
const VIA: &str = "1.1 veritrail";

/// Removes `Connection`, every header it names, and the other hop-by-hop headers.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends this hop to `Forwarded` (RFC 7239) and `X-Forwarded-For`, and sets
/// `X-Forwarded-Proto`, `X-Forwarded-Host` and `Via`.
fn add_forwarding(headers: &mut HeaderMap, peer: Option<IpAddr>, host: Option<&HeaderValue>) {
    let host = host
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_token_safe(h));
    let mut element = match peer {
        Some(IpAddr::V4(ip)) => format!("for={ip}"),
        Some(IpAddr::V6(ip)) => format!("for=\"[{ip}]\""),
        None => "for=unknown".to_owned(),
    };
    if let Some(host) = host {
        element.push_str(&format!(";host=\"{host}\""));
    }
    element.push_str(";proto=http");
    append(headers, header::FORWARDED, &element);
    if let Some(ip) = peer {
        append(
            headers,
            HeaderName::from_static("x-forwarded-for"),
            &ip.to_string(),
        );
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    if let Some(host) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    headers.append(header::VIA, HeaderValue::from_static(VIA));
}

/// A host value that can go inside a quoted `Forwarded` parameter as is.
fn is_token_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// Appends `value` to the comma-separated list in `name` (one header line).
fn append(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    let joined = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {value}"),
        _ => value.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(name, v);
    }
}

/// Sets the identity headers from the verified token (none for anonymous requests).
fn set_identity(headers: &mut HeaderMap, identity: Option<&Identity>, request_id: Option<&str>) {
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    if let Some(id) = request_id {
        set("x-auth-request-id", id);
    }
    let Some(identity) = identity else { return };
    if let Some(sub) = identity.sub() {
        set("x-auth-subject", sub);
    }
    set("x-auth-issuer", identity.iss());
    if !identity.scopes().is_empty() {
        set("x-auth-scopes", &identity.scopes().join(" "));
    }
    if !identity.roles().is_empty() {
        set("x-auth-roles", &identity.roles().join(" "));
    }
}

/// An RFC 9457 problem answer of the proxy's own.
fn problem(status: StatusCode, code: &str) -> Response<ProxyBody> {
    let detail = match status {
        StatusCode::GATEWAY_TIMEOUT => "the upstream service did not answer in time",
        _ => "the upstream service could not be reached",
    };
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    let mut response = Response::new(ProxyBody::from(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("connection", "close"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("content-type", "text/plain"),
            ("x-end-to-end", "kept"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "x-end-to-end"]);
    }

    #[test]
    fn forwarding_headers_are_appended_not_replaced() {
        let mut h = HeaderMap::new();
        h.insert("forwarded", HeaderValue::from_static("for=192.0.2.60"));
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.60"));
        let host = HeaderValue::from_static("shop.example:8080");
        add_forwarding(&mut h, Some("10.1.2.3".parse().unwrap()), Some(&host));
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.60, for=10.1.2.3;host=\"shop.example:8080\";proto=http"
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.60, 10.1.2.3");
        assert_eq!(h["x-forwarded-host"], "shop.example:8080");
        assert_eq!(h["x-forwarded-proto"], "http");

        let mut h = HeaderMap::new();
        add_forwarding(&mut h, Some("::1".parse().unwrap()), None);
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=http");
        assert_eq!(h["x-forwarded-for"], "::1");
    }
}
