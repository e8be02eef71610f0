//! actix's `ServiceRequest` as the engine's request view.

use std::net::IpAddr;

use actix_web::dev::ServiceRequest;
use veritrail_core::engine::RequestView;

pub(crate) struct ActixView<'a> {
    pub(crate) req: &'a ServiceRequest,
    pub(crate) route: Option<String>,
}

impl<'a> ActixView<'a> {
    pub(crate) fn new(req: &'a ServiceRequest) -> Self {
        ActixView {
            route: req.match_pattern(),
            req,
        }
    }
}

impl RequestView for ActixView<'_> {
    fn method(&self) -> &str {
        self.req.method().as_str()
    }
    fn path(&self) -> &str {
        self.req.path()
    }
    fn query(&self) -> Option<&str> {
        self.req.uri().query()
    }
    fn route(&self) -> Option<&str> {
        self.route.as_deref()
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
        self.req.peer_addr().map(|a| a.ip())
    }
    fn absolute_form_authority(&self) -> Option<&str> {
        // HTTP/2 always carries `:authority` in the URI: only HTTP/1 has an absolute form.
        (self.req.version() < actix_web::http::Version::HTTP_2)
            .then(|| self.req.uri().authority())
            .flatten()
            .map(|a| a.as_str())
    }
}
