//! Forwarding one request to the upstream: the body streams through untouched in both
//! directions; hop-by-hop headers are removed (RFC 9110 §7.6.1); `Forwarded`,
//! `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Via` are added; identity
//! headers are stripped from the request and, when configured, set from the verified token.
//! An unreachable upstream is a 502, a slow one a 504, both recorded as errors.
//!
//! What the upstream gets is what was audited, whatever the client spelled:
//!
//! - Many servers read `X-Auth_Subject` as `X-Auth-Subject` (CGI, WSGI and PHP map both to
//!   `HTTP_X_AUTH_SUBJECT`). A header whose name folds (ASCII case, any character that is not
//!   a letter or digit taken for `-`) to one the proxy sets is removed, and by default every
//!   header whose name holds `_` is dropped, as nginx does ([`UnderscoresArg`]).
//! - `Authorization` goes on only when it carried the token the engine verified (the engine
//!   refuses a request with more than one); `Proxy-Authorization` never does.
//! - The forwarding chain: from a peer that is not a trusted proxy, the client's own
//!   `Forwarded` / `X-Forwarded-*` / `X-Real-IP` are replaced, not appended to; from a trusted
//!   one, the header it writes is appended to and the other is rewritten from the client
//!   address the engine believed.

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
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use veritrail_core::auth::{Identity, TokenSource};
use veritrail_core::engine::{AuditContext, ForwardedHeader, RequestView, TrustedProxies};
use veritrail_tower::PeerAddr;

use super::body::{self, DigestedBody, UpstreamBody};
use super::config::{BodyRules, Upgrades, Upstream};
use super::upgrade::{self, Asked, Tunnels};
use crate::cli::UnderscoresArg;
use std::sync::atomic::Ordering;

/// Identity headers the proxy sets for the upstream; always removed from incoming requests.
pub(crate) const IDENTITY_HEADERS: [&str; 5] = [
    "x-auth-subject",
    "x-auth-issuer",
    "x-auth-scopes",
    "x-auth-roles",
    "x-auth-request-id",
];

/// Headers the proxy sets for the upstream (besides the identity headers): a client's
/// look-alike spelling of one (`X_Forwarded_For`) is always removed.
const SET_BY_PROXY: [&str; 6] = [
    "x-request-id",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
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
    client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
    /// HTTP/1.1 only, whatever ALPN could offer: for upgrade requests.
    upgrade_client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
    tunnels: Tunnels,
    upstream: Upstream,
    timeout: Duration,
    options: ForwardOptions,
}

/// How requests are rewritten for the upstream.
#[derive(Clone, Debug)]
pub(crate) struct ForwardOptions {
    /// Set the identity headers from the verified token.
    pub(crate) identity_headers: bool,
    /// Forward or drop incoming header names holding `_`.
    pub(crate) underscores: UnderscoresArg,
    /// The peers whose forwarding header is believed, and which header that is.
    pub(crate) proxies: TrustedProxies,
    /// Clients reach the proxy over TLS (`X-Forwarded-Proto: https`).
    pub(crate) https: bool,
}

impl Forward {
    /// Forwards to `upstream`, answering 504 when its response head takes longer than
    /// `timeout`. An `https://` upstream is spoken to over TLS, its certificate checked as
    /// configured (HTTP/2 or HTTP/1.1 by ALPN); an `http://` one over HTTP/1.1, or HTTP/2
    /// with prior knowledge when `h2c` is set.
    pub(crate) fn new(
        upstream: Upstream,
        timeout: Duration,
        options: ForwardOptions,
    ) -> anyhow::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        // An https upstream gets TLS, a plain one none (the scheme is the proxy's own).
        connector.enforce_http(false);
        let http1_only = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(super::tls::client_config(&upstream.trust)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector.clone());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(super::tls::client_config(&upstream.trust)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        let mut client = Client::builder(hyper_util::rt::TokioExecutor::new());
        client.timer(hyper_util::rt::TokioTimer::new());
        let upgrade_client = client.build(http1_only);
        if upstream.h2c {
            client.http2_only(true);
        }
        Ok(Forward {
            inner: Arc::new(ForwardInner {
                client: client.build(connector),
                upgrade_client,
                tunnels: Tunnels::default(),
                upstream,
                timeout,
                options,
            }),
        })
    }
}

impl Forward {
    /// The tunnels of upgraded connections, to close on shutdown.
    pub(crate) fn tunnels(&self) -> Tunnels {
        self.inner.tunnels.clone()
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
    async fn forward(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        let audit = req.extensions().get::<AuditContext>().cloned();
        let grpc = veritrail_tower::grpc::is_grpc(&req);
        let failed = |status: StatusCode, reason: &str| {
            if let Some(audit) = &audit {
                audit.insert("upstream_error", reason);
            }
            if grpc {
                grpc_problem(status, reason)
            } else {
                problem(status, reason)
            }
        };
        // Only the path the engine authorised is ever forwarded; a request without one was
        // refused before it got here (fail closed if not).
        let Some(AuthorisedPath(path)) = req.extensions().get::<AuthorisedPath>().cloned() else {
            return failed(StatusCode::BAD_GATEWAY, "bad_upstream_request");
        };
        let rules = req.extensions().get::<BodyRules>().copied();
        let too_large = |max: u64| {
            if let Some(audit) = &audit {
                audit.insert("body_too_large", max);
            }
            if grpc {
                grpc_problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            } else {
                problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
        };
        // Declared too large: refused before the upstream is contacted.
        if let Some(max) = rules.and_then(|r| r.max_bytes)
            && req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|length| length > max)
        {
            return too_large(max);
        }
        let note = |name: &str, value: &str| {
            if let Some(audit) = &audit {
                audit.insert(name, value);
            }
        };
        let hold = req.extensions_mut().remove::<upgrade::Hold>();
        let asked = upgrade::asked(req.headers(), req.version() == http::Version::HTTP_11);
        let upgrade = match asked {
            Asked::Nothing => None,
            Asked::Ignored(protocol) => {
                note("upgrade_ignored", protocol);
                None
            }
            Asked::Ambiguous => {
                note("upgrade_refused", "upgrade_ambiguous");
                return problem(StatusCode::BAD_REQUEST, "upgrade_ambiguous");
            }
            Asked::Upgrade(protocol) => {
                let name = String::from_utf8_lossy(protocol.as_bytes()).into_owned();
                note("upgrade", &name);
                let allowed = req
                    .extensions()
                    .get::<Upgrades>()
                    .is_some_and(|u| u.allows(&name));
                if !allowed {
                    note("upgrade_refused", "upgrade_not_allowed");
                    return problem(StatusCode::FORBIDDEN, "upgrade_not_allowed");
                }
                // Needs the request's own context for its close event: fail closed without.
                let Some(audit) = &audit else {
                    return failed(StatusCode::BAD_GATEWAY, "bad_upstream_request");
                };
                Some((protocol, name, hyper::upgrade::on(&mut req), audit))
            }
        };
        let mut req = match self.upstream_request(req, &path) {
            Ok(req) => req,
            Err(_) => return failed(StatusCode::BAD_GATEWAY, "bad_upstream_request"),
        };
        // Never passed on, even when not named in `Connection`: it goes with `Upgrade: h2c`.
        req.headers_mut().remove("http2-settings");
        if let Some((protocol, ..)) = &upgrade {
            upgrade::set_upgrade(req.headers_mut(), protocol);
        }
        let req = req.map(|body| UpstreamBody::new(body, rules, audit.clone()));
        let flags = req.body().flags();
        let client = match upgrade {
            Some(_) => &self.upgrade_client,
            None => &self.client,
        };
        let sent = tokio::time::timeout(self.timeout, client.request(req)).await;
        if let Some((over, done)) = &flags {
            if over.load(Ordering::SeqCst) {
                return too_large(rules.and_then(|r| r.max_bytes).unwrap_or(0));
            }
            body::note_incomplete(
                audit.as_ref(),
                rules.is_some_and(|r| r.digest),
                done.load(Ordering::SeqCst),
            );
        }
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(e)) if e.is_connect() && tls_refused(&e) => {
                return failed(StatusCode::BAD_GATEWAY, "upstream_tls_failed");
            }
            Ok(Err(e)) if e.is_connect() => {
                return failed(StatusCode::BAD_GATEWAY, "upstream_unreachable");
            }
            Ok(Err(_)) => return failed(StatusCode::BAD_GATEWAY, "upstream_failed"),
            Err(_) => return failed(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        };
        let mut response = response;
        let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let upgrade = match upgrade {
            Some((protocol, name, client_side, audit)) if switched => {
                if !upgrade::switched_to(response.headers(), &protocol) {
                    return failed(StatusCode::BAD_GATEWAY, "upstream_bad_upgrade");
                }
                let upstream_side = hyper::upgrade::on(&mut response);
                self.tunnels
                    .open(client_side, upstream_side, name, audit.follow_up(), hold);
                Some(protocol)
            }
            // The upstream switched to what nobody asked for.
            None if switched => return failed(StatusCode::BAD_GATEWAY, "upstream_bad_upgrade"),
            // Declined by the upstream: its answer goes back as it is.
            _ => None,
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = &upgrade {
            upgrade::set_upgrade(&mut parts.headers, protocol);
        }
        parts
            .headers
            .append(header::VIA, HeaderValue::from_static(VIA));
        let body = match (&audit, rules.is_some_and(|r| r.response_digest)) {
            (Some(audit), true) if upgrade.is_none() => {
                let follow_up = audit.follow_up();
                DigestedBody::new(body, parts.status.as_u16(), follow_up).boxed_unsync()
            }
            _ => body.boxed_unsync(),
        };
        Response::from_parts(parts, ProxyBody(body))
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
        // HTTP/2 has no `Host`: the authority is in the target.
        let client_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        // `TE: trailers` is the one end-to-end use of TE (gRPC needs it); hop-by-hop otherwise.
        let trailers = parts.headers.get_all(header::TE).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
        // The client's version says nothing about the upstream's: the connection decides.
        parts.version = http::Version::HTTP_11;
        let path_and_query = match parts.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        parts.uri = self.upstream.uri_for(&path_and_query)?;
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers);
        strip_smuggled(headers, self.options.underscores);
        let verified = parts
            .extensions
            .get::<AuditContext>()
            .and_then(AuditContext::token_source);
        keep_verified_credentials(headers, verified.as_ref());
        headers.remove(header::HOST);
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        let proto = if self.options.https { "https" } else { "http" };
        add_forwarding(
            headers,
            peer,
            client_host.as_ref(),
            &self.options.proxies,
            proto,
        );
        headers.insert(
            header::HOST,
            HeaderValue::from_str(self.upstream.authority.as_str())
                .unwrap_or(HeaderValue::from_static("localhost")),
        );
        if self.options.identity_headers {
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

/// Whether a connection to the upstream failed in its TLS handshake (certificate not
/// trusted, wrong name, no common protocol).
fn tls_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        // The connector's error comes boxed: its type is not always reachable by downcast,
        // but rustls's own words are (`invalid peer certificate: …`, `received fatal alert`).
        let text = e.to_string();
        if e.is::<rustls::Error>()
            || e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>())
            || text.contains("invalid peer certificate")
            || text.contains("received fatal alert")
            || text.contains("peer is incompatible")
        {
            return true;
        }
        next = e.source();
    }
    false
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

/// A header name folded as the servers that confuse `_` and `-` fold it: ASCII lower case,
/// every character but letters and digits taken for `-`.
fn folded(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b.to_ascii_lowercase())
            } else {
                '-'
            }
        })
        .collect()
}

/// Removes every identity header in any spelling, look-alike spellings of the other headers
/// the proxy sets, and (unless kept) every header whose name holds `_`.
fn strip_smuggled(headers: &mut HeaderMap, underscores: UnderscoresArg) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let (name, folded) = (name.as_str(), folded(name.as_str()));
            IDENTITY_HEADERS.contains(&folded.as_str())
                || (folded != name && SET_BY_PROXY.contains(&folded.as_str()))
                || (underscores == UnderscoresArg::Drop && name.contains('_'))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Removes every header whose name folds (see [`folded`]) to `name`.
pub(crate) fn strip_spellings_of(headers: &mut HeaderMap, name: &str) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| folded(k.as_str()) == name)
        .cloned()
        .collect();
    for k in doomed {
        headers.remove(k);
    }
}

/// Keeps `Authorization` only when it carried the token the engine verified (`verified`
/// names where that token was); removes `Proxy-Authorization`, which is this hop's.
fn keep_verified_credentials(headers: &mut HeaderMap, verified: Option<&TokenSource>) {
    if verified != Some(&TokenSource::AuthorizationBearer) {
        headers.remove(header::AUTHORIZATION);
    }
    headers.remove(header::PROXY_AUTHORIZATION);
}

/// The `Forwarded` node for `ip` (RFC 7239 §6: IPv6 quoted, in brackets).
fn forwarded_node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => format!("for={ip}"),
        IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    }
}

/// The forwarding headers of a request, as the engine's request view (only what
/// [`TrustedProxies::client_addr`] reads).
struct ForwardingView<'a> {
    headers: &'a HeaderMap,
    peer: IpAddr,
}

impl RequestView for ForwardingView<'_> {
    fn method(&self) -> &str {
        ""
    }
    fn path(&self) -> &str {
        ""
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn route(&self) -> Option<&str> {
        None
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str)) {
        for v in self.headers.get_all(name) {
            if let Ok(v) = v.to_str() {
                visit(v);
            }
        }
    }
    fn for_each_header_bytes(&self, name: &str, visit: &mut dyn FnMut(&[u8])) {
        for v in self.headers.get_all(name) {
            visit(v.as_bytes());
        }
    }
    fn peer_addr(&self) -> Option<IpAddr> {
        Some(self.peer)
    }
}

/// Makes the forwarding chain the upstream gets say what the engine believed: from a peer that
/// is not a trusted proxy, the client's own forwarding headers are dropped; from a trusted
/// one, the header it does not write (a client could have sent it through) is replaced by the
/// client address read from the one it writes.
fn clean_forwarding(headers: &mut HeaderMap, peer: Option<IpAddr>, proxies: &TrustedProxies) {
    let Some(peer) = peer.filter(|p| proxies.contains(*p)) else {
        for name in [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-real-ip",
        ] {
            headers.remove(name);
        }
        return;
    };
    let client = proxies
        .client_addr(&ForwardingView { headers, peer })
        .filter(|client| *client != peer.to_canonical());
    if proxies.forwarded_header() == ForwardedHeader::Forwarded {
        headers.remove("x-forwarded-for");
        if let Some(client) = client {
            append(
                headers,
                HeaderName::from_static("x-forwarded-for"),
                &client.to_string(),
            );
        }
    } else {
        headers.remove(header::FORWARDED);
        if let Some(client) = client {
            append(headers, header::FORWARDED, &forwarded_node(client));
        }
    }
}

/// Appends this hop to `Forwarded` (RFC 7239) and `X-Forwarded-For` (after
/// [`clean_forwarding`]), and sets `X-Forwarded-Proto`, `X-Forwarded-Host` and `Via`.
fn add_forwarding(
    headers: &mut HeaderMap,
    peer: Option<IpAddr>,
    host: Option<&HeaderValue>,
    proxies: &TrustedProxies,
    proto: &'static str,
) {
    let peer = peer.map(|p| p.to_canonical());
    clean_forwarding(headers, peer, proxies);
    let host = host
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_token_safe(h));
    let mut element = peer.map_or_else(|| "for=unknown".to_owned(), forwarded_node);
    if let Some(host) = host {
        element.push_str(&format!(";host=\"{host}\""));
    }
    element.push_str(";proto=");
    element.push_str(proto);
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
        HeaderValue::from_static(proto),
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

/// The proxy's own answer to a gRPC call it could not forward: a trailers-only gRPC error
/// (`UNAVAILABLE`, or `DEADLINE_EXCEEDED` for a slow upstream).
fn grpc_problem(status: StatusCode, code: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::from(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let grpc_status = veritrail_tower::grpc::status_for(status.as_u16());
    headers.insert("grpc-status", HeaderValue::from(grpc_status));
    if let Ok(message) = HeaderValue::from_str(&format!("{code}: the upstream service failed")) {
        headers.insert("grpc-message", message);
    }
    response
}

/// An RFC 9457 problem answer of the proxy's own.
fn problem(status: StatusCode, code: &str) -> Response<ProxyBody> {
    let detail = match (status, code) {
        (StatusCode::GATEWAY_TIMEOUT, _) => "the upstream service did not answer in time",
        (StatusCode::PAYLOAD_TOO_LARGE, _) => "the request body is larger than this route accepts",
        (_, "upgrade_not_allowed") => "this route does not allow an upgrade to that protocol",
        (_, "upgrade_ambiguous") => "an upgrade request must name exactly one protocol",
        (_, "upstream_bad_upgrade") => {
            "the upstream switched to a protocol the request did not ask for"
        }
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

    fn trusting(network: &str, header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies::parse([network]).unwrap().header(header)
    }

    #[test]
    fn a_trusted_hops_chain_is_appended_to_and_the_other_header_rewritten() {
        // A trusted nginx appends to X-Forwarded-For; the client sent its own Forwarded.
        let mut h = HeaderMap::new();
        h.insert("forwarded", HeaderValue::from_static("for=6.6.6.6"));
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.7, 192.0.2.60"),
        );
        let host = HeaderValue::from_static("shop.example:8080");
        let xff = trusting("10.0.0.0/8", ForwardedHeader::XForwardedFor);
        add_forwarding(
            &mut h,
            Some("10.1.2.3".parse().unwrap()),
            Some(&host),
            &xff,
            "http",
        );
        assert_eq!(h["x-forwarded-for"], "6.6.6.7, 192.0.2.60, 10.1.2.3");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.60, for=10.1.2.3;host=\"shop.example:8080\";proto=http"
        );
        assert_eq!(h["x-forwarded-host"], "shop.example:8080");
        assert_eq!(h["x-forwarded-proto"], "http");

        // The other way round: the trusted hop writes Forwarded.
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            HeaderValue::from_static("for=\"[2001:db8::7]\""),
        );
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        let fwd = trusting("10.0.0.0/8", ForwardedHeader::Forwarded);
        add_forwarding(
            &mut h,
            Some("10.1.2.3".parse().unwrap()),
            None,
            &fwd,
            "http",
        );
        assert_eq!(
            h["forwarded"],
            "for=\"[2001:db8::7]\", for=10.1.2.3;proto=http"
        );
        assert_eq!(h["x-forwarded-for"], "2001:db8::7, 10.1.2.3");
    }

    #[test]
    fn an_untrusted_peers_forwarding_headers_are_replaced() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "6.6.6.6"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        let none = TrustedProxies::none();
        add_forwarding(
            &mut h,
            Some("::ffff:192.0.2.1".parse().unwrap()),
            None,
            &none,
            "http",
        );
        assert_eq!(h["forwarded"], "for=192.0.2.1;proto=http");
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert!(!h.contains_key("x-forwarded-host") && !h.contains_key("x-real-ip"));

        let mut h = HeaderMap::new();
        add_forwarding(&mut h, Some("::1".parse().unwrap()), None, &none, "https");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-for"], "::1");
    }

    #[test]
    fn identity_header_look_alikes_and_underscored_names_are_removed() {
        let names = [
            "x-auth_subject",
            "x_auth_subject",
            "x-auth.subject",
            "x-auth-subject",
            "x_auth-scopes",
            "x-auth_roles",
            "x-auth-issuer",
            "x_auth_request_id",
            "x_forwarded_for",
            "x-request_id",
            "x_real-ip",
            "x-forwarded.proto",
            "x_custom",
            "x-kept",
        ];
        let headers = || {
            let mut h = HeaderMap::new();
            for name in names {
                h.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_static("admin"),
                );
            }
            h
        };
        let mut h = headers();
        strip_smuggled(&mut h, UnderscoresArg::Drop);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
        let mut h = headers();
        strip_smuggled(&mut h, UnderscoresArg::Keep);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["x-kept", "x_custom"], "look-alikes go either way");
    }

    #[test]
    fn only_the_verified_authorization_goes_on() {
        let headers = || {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_static("Basic YTpi"));
            h.insert(
                "proxy-authorization",
                HeaderValue::from_static("Basic YTpi"),
            );
            h
        };
        let mut h = headers();
        keep_verified_credentials(&mut h, Some(&TokenSource::AuthorizationBearer));
        assert!(h.contains_key("authorization") && !h.contains_key("proxy-authorization"));
        for other in [None, Some(TokenSource::Cookie("at".into()))] {
            let mut h = headers();
            keep_verified_credentials(&mut h, other.as_ref());
            assert!(h.is_empty(), "{other:?}");
        }
    }
}
