//! Connection caps: at most so many open client connections in all, and so many from one
//! address (an IPv6 /64 counts as one address: anyone holding one has all of it). Trusted
//! proxies are exempt from the per-address cap, since all their clients share their address.
//!
//! A connection over a cap is answered `503` with `Retry-After` in one non-blocking write and
//! closed at once: the accept loop never waits on it, and no descriptor outlives it. So a
//! client that opens connections until the process runs out of file descriptors starves only
//! itself.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use veritrail_core::engine::TrustedProxies;

/// What a connection over a cap gets before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
    retry-after: 1\r\ncontent-length: 0\r\n\r\n";

/// Which cap a connection was over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OverCap {
    /// `max_connections`.
    Total,
    /// `max_connections_per_ip`.
    PerAddress,
}

/// The caps and the connections open under them. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ConnectionLimits {
    inner: Arc<Inner>,
}

struct Inner {
    max_total: usize,
    max_per_address: usize,
    exempt: TrustedProxies,
    open: Mutex<Open>,
    refused: AtomicU64,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// An admitted connection: its place under the caps is given back when this is dropped.
pub(crate) struct Admitted {
    inner: Arc<Inner>,
    /// The address it counts against, unless exempt.
    address: Option<IpAddr>,
}

impl ConnectionLimits {
    /// Caps of `max_total` connections in all and `max_per_address` from one address; peers
    /// in `exempt` count only against the first.
    pub(crate) fn new(max_total: usize, max_per_address: usize, exempt: TrustedProxies) -> Self {
        ConnectionLimits {
            inner: Arc::new(Inner {
                max_total,
                max_per_address,
                exempt,
                open: Mutex::new(Open::default()),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// Takes a place for a connection from `peer`, or says which cap it is over (and counts
    /// it as refused).
    pub(crate) fn admit(&self, peer: IpAddr) -> Result<Admitted, OverCap> {
        let peer = peer.to_canonical();
        let address = (!self.inner.exempt.contains(peer)).then(|| address_of(peer));
        let mut open = self.inner.lock();
        let over = if open.total >= self.inner.max_total {
            Some(OverCap::Total)
        } else if address.is_some_and(|a| {
            open.by_address.get(&a).copied().unwrap_or(0) >= self.inner.max_per_address
        }) {
            Some(OverCap::PerAddress)
        } else {
            None
        };
        if let Some(over) = over {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return Err(over);
        }
        open.total += 1;
        if let Some(a) = address {
            *open.by_address.entry(a).or_default() += 1;
        }
        Ok(Admitted {
            inner: Arc::clone(&self.inner),
            address,
        })
    }

    /// Connections refused so far.
    pub(crate) fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// The cap on all connections.
    pub(crate) fn max_total(&self) -> usize {
        self.inner.max_total
    }

    /// The cap on connections from one address.
    pub(crate) fn max_per_address(&self) -> usize {
        self.inner.max_per_address
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // Plain counters: a panic elsewhere cannot leave them half-written.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.inner.lock();
        open.total -= 1;
        if let Some(a) = self.address
            && let Some(n) = open.by_address.get_mut(&a)
        {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&a);
            }
        }
    }
}

/// The address a peer counts against: itself for IPv4, its /64 for IPv6.
fn address_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !0u128 << 64)),
    }
}

/// Answers a connection over a cap with a 503 in one non-blocking write, and closes it.
pub(crate) fn turn_away(stream: tokio::net::TcpStream) {
    // A fresh socket's send buffer is empty: this either goes out whole or not at all, and
    // never waits. Dropping the stream closes it.
    let _ = stream.try_write(BUSY);
}

/// The most connections the open-file limit leaves room for: each client connection may hold
/// an upstream connection too, and the log and listeners need some. The soft limit is first
/// raised to the hard one, as most servers do. `None` where it cannot be told.
#[cfg(unix)]
pub(crate) fn descriptor_budget() -> Option<usize> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = match (limit.current, limit.maximum) {
        (Some(soft), Some(hard)) if hard > soft => {
            let raised = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                hard
            } else {
                soft
            }
        }
        (Some(soft), _) => soft,
        (None, _) => return None,
    };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    Some((soft.saturating_sub(64) / 2).max(1))
}

/// The most connections the open-file limit leaves room for (`None`: not known here).
#[cfg(not(unix))]
pub(crate) fn descriptor_budget() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_in_all_and_per_address_and_places_given_back() {
        let limits = ConnectionLimits::new(3, 2, TrustedProxies::parse(["10.0.0.0/8"]).unwrap());
        let a1 = limits.admit(ip("192.0.2.1")).unwrap();
        let _a2 = limits.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(
            limits.admit(ip("192.0.2.1")).err(),
            Some(OverCap::PerAddress)
        );
        let _b = limits.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(limits.admit(ip("192.0.2.9")).err(), Some(OverCap::Total));
        assert_eq!(limits.refused(), 2);
        drop(a1);
        let _a3 = limits.admit(ip("192.0.2.1")).unwrap();

        let limits = ConnectionLimits::new(10, 1, TrustedProxies::parse(["10.0.0.0/8"]).unwrap());
        let _v6 = limits.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8::ffff:2")).err(),
            Some(OverCap::PerAddress),
            "one /64"
        );
        let _other = limits.admit(ip("2001:db8:0:1::1")).unwrap();
        let _p1 = limits.admit(ip("10.0.0.2")).unwrap();
        let _p2 = limits.admit(ip("10.0.0.2")).unwrap();
    }
}
