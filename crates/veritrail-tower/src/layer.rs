//! [`AuditLayer`]: configuration, applied to a service.

use std::net::IpAddr;

use tower_layer::Layer;
use veritrail_core::engine::Engine;

use crate::service::AuditService;
use crate::view::{ExtensionReader, RouteReader, no_route, peer_from_extension};

/// Authenticates every request and records it in the audit log, through an [`Engine`].
///
/// Clone-cheap configuration; builder methods each change one thing.
#[derive(Clone, Debug)]
pub struct AuditLayer {
    pub(crate) engine: Engine,
    pub(crate) peer: ExtensionReader<IpAddr>,
    pub(crate) route: RouteReader,
}

impl AuditLayer {
    /// A layer over `engine`. The peer address is read from the
    /// [`PeerAddr`](crate::PeerAddr) extension; no route template is known.
    pub fn new(engine: Engine) -> Self {
        AuditLayer {
            engine,
            peer: peer_from_extension,
            route: no_route,
        }
    }

    /// Reads the connection's peer address with `reader` (e.g. from axum's `ConnectInfo`).
    pub fn peer_addr_with(mut self, reader: ExtensionReader<IpAddr>) -> Self {
        self.peer = reader;
        self
    }

    /// Reads the matched route template with `reader` (e.g. from axum's `MatchedPath`).
    pub fn route_with(mut self, reader: RouteReader) -> Self {
        self.route = reader;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditService::new(inner, self.clone())
    }
}
