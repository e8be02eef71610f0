//! `http::Request` as the engine's request view.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use http::uri::PathAndQuery;
use http::{Extensions, Request, Uri};
use veritrail_core::engine::{RequestView, canonical_path};

/// The peer address of a request's connection, put into its extensions by whoever accepts
/// connections (see the `hyper_tower` example). axum's `ConnectInfo` is read by
/// `veritrail-axum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// Reads something from a request's extensions.
pub type ExtensionReader<T> = for<'a> fn(&'a Extensions) -> Option<T>;

/// Reads a borrowed string (a route template) from a request's extensions.
pub type RouteReader = for<'a> fn(&'a Extensions) -> Option<&'a str>;

/// The default peer reader: the [`PeerAddr`] extension.
pub(crate) fn peer_from_extension(ext: &Extensions) -> Option<IpAddr> {
    ext.get::<PeerAddr>().map(|p| p.0.ip())
}

/// The default route reader: no route template.
pub(crate) fn no_route(_: &Extensions) -> Option<&str> {
    None
}

/// Replaces the request's path by its canonical form (the query is kept), when they differ.
/// A path without one is left alone: the engine refuses the request before the inner service
/// runs.
pub(crate) fn canonicalise_uri<B>(req: &mut Request<B>) {
    let Ok(Cow::Owned(path)) = canonical_path(req.uri().path()) else {
        return;
    };
    let target = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = req.uri().clone().into_parts();
    // The canonical path only drops or decodes characters the original path held, so it
    // always parses again.
    if let Ok(target) = PathAndQuery::try_from(target) {
        parts.path_and_query = Some(target);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

pub(crate) struct HttpView<'a, B> {
    pub(crate) req: &'a Request<B>,
    pub(crate) peer: Option<IpAddr>,
    pub(crate) route: Option<&'a str>,
}

impl<B> RequestView for HttpView<'_, B> {
    fn method(&self) -> &str {
        self.req.method().as_str()
    }
    fn path(&self) -> &str {
        self.req.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.req.uri().query()
    }
    fn route(&self) -> Option<&str> {
        self.route
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str)) {
        for v in self.req.headers().get_all(name) {
            if let Ok(v) = v.to_str() {
                visit(v);
            }
        }
    }
    fn for_each_header_bytes(&self, name: &str, visit: &mut dyn FnMut(&[u8])) {
        for v in self.req.headers().get_all(name) {
            visit(v.as_bytes());
        }
    }
    fn peer_addr(&self) -> Option<IpAddr> {
        self.peer
    }
    fn absolute_form_authority(&self) -> Option<&str> {
        // HTTP/2 always carries `:authority` in the URI: only HTTP/1 has an absolute form.
        (self.req.version() < http::Version::HTTP_2)
            .then(|| self.req.uri().authority())
            .flatten()
            .map(|a| a.as_str())
    }
}
