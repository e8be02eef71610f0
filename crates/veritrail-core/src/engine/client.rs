//! The client address: the connection's peer, or what trusted proxies say it forwarded for.
//!
//! `Forwarded` (RFC 7239) and `X-Forwarded-For` are believed only when the peer is in a
//! configured trusted-proxy network, and then only as far back as the chain stays inside those
//! networks: walking the hops from the nearest, the first address outside them is the client.
//! Anyone can send these headers, so an untrusted peer's are ignored.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::view::RequestView;

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`; a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

/// A network that does not parse as CIDR notation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an IP network: expected an address or CIDR notation such as 10.0.0.0/8 or fd00::/8"
)]
pub struct NetworkParseError(String);

impl IpNetwork {
    /// The network `addr/prefix`; host bits of `addr` are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, NetworkParseError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(NetworkParseError(format!("{addr}/{prefix}")));
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Ok(IpNetwork { addr, prefix })
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for IpNetwork {
    type Err = NetworkParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || NetworkParseError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => {
                let addr: IpAddr = a.parse().map_err(|_| err())?;
                let prefix: u8 = p.parse().map_err(|_| err())?;
                (addr, prefix)
            }
            None => {
                let addr: IpAddr = s.trim().parse().map_err(|_| err())?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        IpNetwork::new(addr, prefix).map_err(|_| err())
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The networks whose forwarding headers are believed. Empty by default: only the peer counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNetwork>,
}

impl TrustedProxies {
    /// No trusted proxies.
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts these networks.
    pub fn new(networks: impl IntoIterator<Item = IpNetwork>) -> Self {
        TrustedProxies {
            networks: networks.into_iter().collect(),
        }
    }

    /// Parses each network (`"10.0.0.0/8"`, `"::1"`).
    pub fn parse<S: AsRef<str>>(
        networks: impl IntoIterator<Item = S>,
    ) -> Result<Self, NetworkParseError> {
        networks
            .into_iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(|networks| TrustedProxies { networks })
    }

    /// Whether `ip` is in a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// Whether no network is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The client address for this request: the peer unless it is a trusted proxy, else the
    /// nearest forwarded hop outside the trusted networks (`Forwarded` first, `X-Forwarded-For`
    /// if there is no `Forwarded`). A hop that is obfuscated or unparseable ends the walk at the
    /// last address known.
    pub fn client_addr(&self, req: &dyn RequestView) -> Option<IpAddr> {
        let peer = req.peer_addr()?.to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        req.for_each_header("forwarded", &mut |value| forwarded_for(value, &mut hops));
        if hops.is_empty() {
            req.for_each_header("x-forwarded-for", &mut |value| {
                hops.extend(value.split(',').map(|h| parse_node(h.trim())));
            });
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.contains(*ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        Some(client)
    }
}

/// Collects the `for=` node of each element of one `Forwarded` header value (RFC 7239 §4).
fn forwarded_for(value: &str, hops: &mut Vec<Option<IpAddr>>) {
    for element in split_unquoted(value, ',') {
        let node = split_unquoted(element, ';').into_iter().find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
        });
        if let Some(node) = node {
            hops.push(parse_node(node.trim_matches('"')));
        }
    }
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A node: `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:443`, `2001:db8::1`.
/// `unknown` and obfuscated identifiers (`_hidden`) yield `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest
            .split_once(']')?
            .0
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::view::SimpleRequest;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain() {
        let n: IpNetwork = "10.1.2.3/8".parse().unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert!(n.contains(ip("10.255.0.1")));
        assert!(n.contains(ip("::ffff:10.0.0.1")));
        assert!(!n.contains(ip("11.0.0.1")));
        let v6: IpNetwork = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let host: IpNetwork = "::1".parse().unwrap();
        assert!(host.contains(ip("::1")) && !host.contains(ip("::2")));
        assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
        assert!("example.com".parse::<IpNetwork>().is_err());
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("203.0.113.5"))
            .header("x-forwarded-for", "198.51.100.1")
            .header("forwarded", "for=198.51.100.2");
        assert_eq!(proxies.client_addr(&req), Some(ip("203.0.113.5")));
    }

    #[test]
    fn forwarded_chain_stops_at_first_untrusted_hop() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8", "fd00::/8"]).unwrap();
        // A client-supplied spoofed hop on the left is never reached.
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("10.0.0.2"))
            .header(
                "forwarded",
                "for=192.0.2.99, for=\"[2001:db8::7]:4711\";proto=https",
            )
            .header("forwarded", "for=10.0.0.9;by=10.0.0.2");
        assert_eq!(proxies.client_addr(&req), Some(ip("2001:db8::7")));
    }

    #[test]
    fn x_forwarded_for_used_without_forwarded() {
        let proxies = TrustedProxies::parse(["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("127.0.0.1"))
            .header("x-forwarded-for", "1.2.3.4, 198.51.100.7:5555, 10.1.1.1");
        assert_eq!(proxies.client_addr(&req), Some(ip("198.51.100.7")));
    }

    #[test]
    fn obfuscated_hop_ends_the_walk() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("10.0.0.2"))
            .header("forwarded", "for=198.51.100.1, for=_hidden, for=10.0.0.3");
        assert_eq!(proxies.client_addr(&req), Some(ip("10.0.0.3")));
        let all_trusted = SimpleRequest::new("GET", "/")
            .peer(ip("10.0.0.2"))
            .header("x-forwarded-for", "10.0.0.7");
        assert_eq!(proxies.client_addr(&all_trusted), Some(ip("10.0.0.7")));
    }

    #[test]
    fn no_peer_means_unknown() {
        assert_eq!(
            TrustedProxies::none().client_addr(&SimpleRequest::new("GET", "/")),
            None
        );
    }
}
