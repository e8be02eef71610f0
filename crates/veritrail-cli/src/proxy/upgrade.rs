//! HTTP/1.1 upgrades (WebSocket and others): authenticated and authorised at the upgrade
//! request like any request, allowed only on routes that name the protocol
//! (`upgrades = ["websocket"]`), then forwarded — the upstream's `101 Switching Protocols`
//! answered to the client and the bytes copied both ways until either side closes.
//!
//! Two events record an upgrade. The request's own, when the `101` goes out: status 101 and
//! `extra.upgrade` (the protocol). Then, when the tunnel closes, a follow-up event of the
//! same request (same `request_id`, caller and decisions; see
//! [`FollowUp`](veritrail_core::engine::FollowUp)) with `extra.follow_up = "upgrade_closed"`,
//! `extra.upgrade`, `extra.bytes_from_client` and `extra.bytes_from_upstream` (the bytes read
//! from each side after the switch, frames and all), `extra.duration_ms` (from the switch to
//! the close) and `extra.closed` (`eof`: both sides closed; `error`: a side broke off, with
//! `extra.tunnel_error`; `shutdown`: the proxy was stopping).
//!
//! What is refused, and how:
//!
//! - An `Upgrade` on a route that does not allow that protocol: `403 upgrade_not_allowed`,
//!   after the token checks (a missing token is the usual 401), with `extra.upgrade` and
//!   `extra.upgrade_refused` in the event. Nothing reaches the upstream.
//! - An `Upgrade` naming more than one protocol: `400 upgrade_ambiguous` (the upstream could
//!   pick another than the one allowed).
//! - `Upgrade: h2c` (or another name for HTTP/2): never honoured — it would put an HTTP/2
//!   connection, and every request on it, past the per-request policy. RFC 9110 §7.8 lets a
//!   server ignore an upgrade: the request is forwarded as a plain HTTP/1.1 request (as
//!   `curl --http2` expects) and the event says `extra.upgrade_ignored = "h2c"`.
//! - `Upgrade` without `upgrade` among the `Connection` options (matched as a token, ASCII
//!   case aside, over every `Connection` line), or on an HTTP/1.0 request: not an upgrade
//!   request (RFC 9110 §7.8); the header is dropped with the other hop-by-hop ones.
//! - Upgrades on HTTP/2 (extended `CONNECT`, RFC 8441): the proxy does not announce
//!   `SETTINGS_ENABLE_CONNECT_PROTOCOL`, so clients open WebSockets over HTTP/1.1; a plain
//!   `CONNECT` is refused (405, recorded) like on HTTP/1.1.
//! - An upstream `101` the proxy did not ask for, or for another protocol:
//!   `502 upstream_bad_upgrade`.
//!
//! A tunnel holds its client connection's place under the connection caps while it lasts.
//! On shutdown, open tunnels are closed and their follow-up events recorded before the log
//! is closed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::watch;
use veritrail_core::engine::FollowUp;
use veritrail_core::event::Outcome;

use super::tap::ReadTap;

/// What a request asks for by its `Upgrade` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// No upgrade: no `Upgrade` header, or one that is not a hop-by-hop signal.
    Nothing,
    /// An upgrade to this protocol (the header's one token, as sent).
    Upgrade(HeaderValue),
    /// An upgrade to HTTP/2, ignored: the request goes on as a plain one.
    Ignored(&'static str),
    /// More than one protocol named.
    Ambiguous,
}

/// Whether `headers` list `token` among their `Connection` options.
fn connection_lists(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// What an HTTP/1.x request with these headers asks for (`http11`: it is HTTP/1.1).
pub(crate) fn asked(headers: &HeaderMap, http11: bool) -> Asked {
    if !http11 || !headers.contains_key(header::UPGRADE) || !connection_lists(headers, "upgrade") {
        return Asked::Nothing;
    }
    let mut protocols = headers
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty());
    let (Some(protocol), None) = (protocols.next(), protocols.next()) else {
        return Asked::Ambiguous;
    };
    let name = protocol.split(|b| *b == b'/').next().unwrap_or_default();
    if [&b"h2c"[..], b"h2", b"http"]
        .iter()
        .any(|h2| name.eq_ignore_ascii_case(h2))
    {
        return Asked::Ignored("h2c");
    }
    match HeaderValue::from_bytes(protocol) {
        Ok(protocol) => Asked::Upgrade(protocol),
        Err(_) => Asked::Ambiguous,
    }
}

/// Marks `headers` as an upgrade request (or response) to `protocol`.
pub(crate) fn set_upgrade(headers: &mut HeaderMap, protocol: &HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol.clone());
}

/// Whether an upstream's `101` switched to `protocol` (its `Upgrade` names it, case aside).
pub(crate) fn switched_to(headers: &HeaderMap, protocol: &HeaderValue) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(protocol.as_bytes()))
}

/// A client connection's place under the connection caps (and in the open-connections
/// gauge), put into each of its requests: an upgraded connection keeps it while its tunnel
/// lasts, after the HTTP connection that carried it has ended.
#[derive(Clone)]
pub(crate) struct Hold {
    /// Kept, never read: the place is given back when the last clone goes.
    _place: Arc<dyn Send + Sync>,
}

impl Hold {
    /// Holds `place` for the connection and every tunnel it becomes.
    pub(crate) fn new(place: impl Send + Sync + 'static) -> Self {
        Hold {
            _place: Arc::new(place),
        }
    }
}

/// The open tunnels: told to close on shutdown, and waited for.
#[derive(Clone)]
pub(crate) struct Tunnels {
    stop: watch::Sender<bool>,
    open: Arc<watch::Sender<usize>>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Tunnels {
            stop: watch::channel(false).0,
            open: Arc::new(watch::channel(0).0),
        }
    }
}

/// A tunnel counted in [`Tunnels`] while this lives.
struct Open(Arc<watch::Sender<usize>>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Tunnels {
    /// Tells every open tunnel to close, and waits up to `grace` until all have recorded
    /// their close; says how many were still open then.
    pub(crate) async fn close_all(&self, grace: Duration) -> usize {
        self.stop.send_replace(true);
        let mut open = self.open.subscribe();
        let _ = tokio::time::timeout(grace, open.wait_for(|n| *n == 0)).await;
        *open.borrow()
    }

    /// Opens a tunnel between the client's connection and the upstream's once both have
    /// switched, copying bytes both ways until either side closes, then records the close in
    /// `follow_up`. `hold` (the client connection's place under the caps) is kept until then.
    pub(crate) fn open(
        &self,
        client: OnUpgrade,
        upstream: OnUpgrade,
        protocol: String,
        follow_up: FollowUp,
        hold: Option<Hold>,
    ) {
        self.open.send_modify(|n| *n += 1);
        let open = Open(Arc::clone(&self.open));
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            let _open = open;
            let _hold = hold;
            let mut fields = BTreeMap::new();
            fields.insert("upgrade".to_owned(), Value::from(protocol));
            let (client, upstream) = tokio::join!(client, upstream);
            let started = Instant::now();
            let (client, upstream) = match (client, upstream) {
                (Ok(client), Ok(upstream)) => (client, upstream),
                (client, _) => {
                    // The 101 was withheld (its event could not be recorded), or a side went
                    // away during the switch: no tunnel.
                    let side = if client.is_err() {
                        "client"
                    } else {
                        "upstream"
                    };
                    fields.insert("closed".into(), Value::from("not_switched"));
                    fields.insert("tunnel_error".into(), Value::from(side));
                    let _ = follow_up
                        .record("upgrade_closed", Some(101), Outcome::Error, fields)
                        .await;
                    return;
                }
            };
            let from_client = Arc::new(AtomicU64::new(0));
            let from_upstream = Arc::new(AtomicU64::new(0));
            let mut client = ReadTap::new(TokioIo::new(client), Arc::clone(&from_client));
            let mut upstream = ReadTap::new(TokioIo::new(upstream), Arc::clone(&from_upstream));
            let copied = tokio::select! {
                copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => Some(copied),
                _ = stop.wait_for(|stop| *stop) => None,
            };
            let (closed, outcome) = match copied {
                Some(Ok(_)) => ("eof", Outcome::Success),
                Some(Err(e)) => {
                    fields.insert("tunnel_error".into(), Value::from(e.kind().to_string()));
                    ("error", Outcome::Cancelled)
                }
                None => ("shutdown", Outcome::Cancelled),
            };
            fields.insert("closed".into(), Value::from(closed));
            fields.insert(
                "bytes_from_client".into(),
                Value::from(from_client.load(Ordering::SeqCst)),
            );
            fields.insert(
                "bytes_from_upstream".into(),
                Value::from(from_upstream.load(Ordering::SeqCst)),
            );
            fields.insert(
                "duration_ms".into(),
                Value::from(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
            );
            drop((client, upstream));
            let _ = follow_up
                .record("upgrade_closed", Some(101), outcome, fields)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn upgrade_requests_are_told_by_connection_tokens_whatever_the_spelling() {
        let ws = Asked::Upgrade(HeaderValue::from_static("websocket"));
        for connection in [
            &[("connection", "Upgrade")][..],
            &[("connection", "UPGRADE")],
            &[("connection", "keep-alive, upgrade")],
            &[("connection", "keep-alive"), ("connection", " Upgrade ")],
        ] {
            let mut h = headers(connection);
            h.insert("upgrade", HeaderValue::from_static("websocket"));
            assert_eq!(asked(&h, true), ws, "{connection:?}");
            assert_eq!(asked(&h, false), Asked::Nothing, "HTTP/1.0: {connection:?}");
        }
        for not_listed in [
            &[("upgrade", "websocket")][..],
            &[("upgrade", "websocket"), ("connection", "upgrades")],
            &[("upgrade", "websocket"), ("connection", "keep-alive")],
            &[("connection", "upgrade")],
        ] {
            assert_eq!(asked(&headers(not_listed), true), Asked::Nothing);
        }
        let up = |v: &str| asked(&headers(&[("connection", "upgrade"), ("upgrade", v)]), true);
        for h2 in ["h2c", "H2C", " h2c ", "HTTP/2.0", "h2"] {
            assert_eq!(up(h2), Asked::Ignored("h2c"), "{h2}");
        }
        for two in ["h2c, websocket", "websocket, h2c", "websocket,foo", ",", ""] {
            assert_eq!(up(two), Asked::Ambiguous, "{two:?}");
        }
        let mut twice = headers(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        twice.append("upgrade", HeaderValue::from_static("h2c"));
        assert_eq!(asked(&twice, true), Asked::Ambiguous);
        assert_eq!(
            up("WebSocket"),
            Asked::Upgrade(HeaderValue::from_static("WebSocket"))
        );
    }

    #[test]
    fn a_101_must_name_the_protocol_asked_for() {
        let ws = HeaderValue::from_static("websocket");
        assert!(switched_to(&headers(&[("upgrade", "WebSocket")]), &ws));
        assert!(!switched_to(&headers(&[("upgrade", "h2c")]), &ws));
        assert!(!switched_to(&HeaderMap::new(), &ws));
    }
}
