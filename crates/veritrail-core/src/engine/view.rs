//! The engine's view of a request, independent of any web framework.

use std::net::IpAddr;

/// What the engine needs to know about a request, whatever framework carries it.
///
/// The tower adapter implements it for `http::Request<B>`, the actix adapter for its
/// `ServiceRequest`; tests implement it for a plain struct. Header names are passed in lower
/// case; values that are not valid UTF-8 may be skipped.
pub trait RequestView {
    /// The method, e.g. `GET`.
    fn method(&self) -> &str;
    /// The path as the client sent it (not decoded or normalised), without the query string.
    /// The engine canonicalises it (see [`canonical_path`](super::canonical_path)).
    fn path(&self) -> &str;
    /// The raw query string without `?`, if any.
    fn query(&self) -> Option<&str>;
    /// The route template the framework matched (`/orders/{id}`), if it knows one yet.
    fn route(&self) -> Option<&str>;
    /// The first value of header `name`.
    fn header(&self, name: &str) -> Option<&str>;
    /// Calls `visit` with every value of header `name`, in order.
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str));
    /// Calls `visit` with every value of header `name` as raw bytes, in order, including
    /// values that are not valid UTF-8 (credentials headers are checked with it: one that
    /// cannot be read is refused, not overlooked). The default goes through
    /// [`for_each_header`](Self::for_each_header); adapters whose header values may hold other
    /// bytes override it.
    fn for_each_header_bytes(&self, name: &str, visit: &mut dyn FnMut(&[u8])) {
        self.for_each_header(name, &mut |v| visit(v.as_bytes()))
    }
    /// The address of the connection's peer (the nearest hop), if known.
    fn peer_addr(&self) -> Option<IpAddr>;
    /// The authority (`host[:port]`) of an HTTP/1 request target sent in absolute form
    /// (`GET http://host/x HTTP/1.1`); `None` for the usual origin form (`GET /x`), and for
    /// HTTP/2, whose `:authority` is not a second spelling of the target. The engine refuses
    /// an absolute-form target whose path is not canonical or whose authority is not the
    /// `Host` header's.
    fn absolute_form_authority(&self) -> Option<&str> {
        None
    }
}

impl<V: RequestView + ?Sized> RequestView for &V {
    fn method(&self) -> &str {
        (**self).method()
    }
    fn path(&self) -> &str {
        (**self).path()
    }
    fn query(&self) -> Option<&str> {
        (**self).query()
    }
    fn route(&self) -> Option<&str> {
        (**self).route()
    }
    fn header(&self, name: &str) -> Option<&str> {
        (**self).header(name)
    }
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str)) {
        (**self).for_each_header(name, visit)
    }
    fn for_each_header_bytes(&self, name: &str, visit: &mut dyn FnMut(&[u8])) {
        (**self).for_each_header_bytes(name, visit)
    }
    fn peer_addr(&self) -> Option<IpAddr> {
        (**self).peer_addr()
    }
    fn absolute_form_authority(&self) -> Option<&str> {
        (**self).absolute_form_authority()
    }
}

/// A request held in plain owned fields: for tests, and for callers whose request type is
/// awkward to borrow from.
#[derive(Clone, Debug, Default)]
pub struct SimpleRequest {
    /// The method.
    pub method: String,
    /// The path as sent, without the query string.
    pub path: String,
    /// The authority of an absolute-form target (see
    /// [`RequestView::absolute_form_authority`]).
    pub authority: Option<String>,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// The matched route template.
    pub route: Option<String>,
    /// Headers as (lower-case name, value), in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// The connection's peer address.
    pub peer: Option<IpAddr>,
}

impl SimpleRequest {
    /// A request with this method and target: `/path?query`, or the absolute form
    /// `http://host/path?query`.
    pub fn new(method: &str, target: &str) -> Self {
        let (target, query) = match target.split_once('?') {
            Some((t, q)) => (t, Some(q.to_owned())),
            None => (target, None),
        };
        let absolute = ["http://", "https://"]
            .iter()
            .find_map(|scheme| target.strip_prefix(scheme));
        let (authority, path) = match absolute {
            Some(rest) => match rest.find('/') {
                Some(slash) => (Some(&rest[..slash]), &rest[slash..]),
                None => (Some(rest), "/"),
            },
            None => (None, target),
        };
        SimpleRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            authority: authority.map(str::to_owned),
            query,
            ..Self::default()
        }
    }

    /// Adds a header (the name is lower-cased).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Sets the peer address.
    pub fn peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// Sets the matched route template.
    pub fn route(mut self, route: &str) -> Self {
        self.route = Some(route.to_owned());
        self
    }
}

impl RequestView for SimpleRequest {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn for_each_header(&self, name: &str, visit: &mut dyn FnMut(&str)) {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .for_each(|(_, v)| visit(v));
    }
    fn peer_addr(&self) -> Option<IpAddr> {
        self.peer
    }
    fn absolute_form_authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }
}
