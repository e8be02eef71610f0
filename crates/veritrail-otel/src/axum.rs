//! Readers for axum 0.8: the route template from `MatchedPath`, the peer from `ConnectInfo`.

use std::net::{IpAddr, SocketAddr};

use ::axum::extract::{ConnectInfo, MatchedPath};
use http::Extensions;

use crate::OtelLayer;

/// The [`OtelLayer`] for axum: span names and `http.route` from `MatchedPath`, the peer
/// address from `ConnectInfo<SocketAddr>`. Add it with `Router::layer` after (outside) the
/// audit layer.
pub fn layer() -> OtelLayer {
    OtelLayer::new()
        .route_with(matched_path)
        .peer_addr_with(peer_addr)
}

fn matched_path(ext: &Extensions) -> Option<&str> {
    ext.get::<MatchedPath>().map(MatchedPath::as_str)
}

fn peer_addr(ext: &Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| ext.get::<veritrail_tower::PeerAddr>().map(|p| p.0.ip()))
}
