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
///
/// A thin wrapper over [`ipnet::IpNet`] that also accepts bare addresses and matches
/// IPv4-mapped IPv6 addresses as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNetwork(ipnet::IpNet);

/// A network that does not parse as CIDR notation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an IP network: expected an address or CIDR notation such as 10.0.0.0/8 or fd00::/8"
)]
pub struct NetworkParseError(String);

impl IpNetwork {
    /// The network `addr/prefix`; host bits of `addr` are cleared.
    ///
    /// # Errors
    ///
    /// When `prefix` is longer than the address (32 bits for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, NetworkParseError> {
        ipnet::IpNet::new(addr, prefix)
            .map(|net| IpNetwork(net.trunc()))
            .map_err(|_| NetworkParseError(format!("{addr}/{prefix}")))
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for IpNetwork {
    type Err = NetworkParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || NetworkParseError(s.to_owned());
        let s = s.trim();
        let net = if s.contains('/') {
            s.parse::<ipnet::IpNet>().map_err(|_| err())?
        } else {
            ipnet::IpNet::from(s.parse::<IpAddr>().map_err(|_| err())?)
        };
        Ok(IpNetwork(net.trunc()))
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The one header that trusted proxies write the forwarding chain into.
///
/// Only that header is read: were both read, a client could send the other one (a
/// `Forwarded: for=6.6.6.6` through an nginx that only appends to `X-Forwarded-For`), pass it
/// through the trusted proxy untouched, and become the recorded client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`: what nginx (`$proxy_add_x_forwarded_for`),
    /// HAProxy (`option forwardfor`), Envoy, Traefik and the cloud load balancers append to.
    /// The default, since nearly every proxy writes it.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239), one element per hop.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, in lower case.
    pub fn header_name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

impl fmt::Display for ForwardedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header_name())
    }
}

/// A forwarding header name that is neither `forwarded` nor `x-forwarded-for`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a forwarding header: expected `x-forwarded-for` or `forwarded`")]
pub struct ForwardedHeaderParseError(String);

impl FromStr for ForwardedHeader {
    type Err = ForwardedHeaderParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            Ok(ForwardedHeader::XForwardedFor)
        } else if name.eq_ignore_ascii_case("forwarded") {
            Ok(ForwardedHeader::Forwarded)
        } else {
            Err(ForwardedHeaderParseError(s.to_owned()))
        }
    }
}

/// The networks whose forwarding header is believed, and which header that is
/// ([`ForwardedHeader`], `X-Forwarded-For` by default). No network by default: only the peer
/// counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNetwork>,
    header: ForwardedHeader,
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
            header: ForwardedHeader::default(),
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
            .map(TrustedProxies::new)
    }

    /// Reads the chain from `header`, and only from it: the header the trusted proxies write.
    #[must_use]
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The header the chain is read from.
    pub fn forwarded_header(&self) -> ForwardedHeader {
        self.header
    }

    /// Whether `ip` is in a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// Whether no network is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The client address for this request: the peer unless it is a trusted proxy; else the
    /// chain in the configured header (every line of it, in order) is walked from the right,
    /// through the trusted hops, and the first address outside the trusted networks is the
    /// client. A hop that is obfuscated, `unknown` or malformed ends the walk at the last
    /// address known (a trusted proxy's): what lies left of it cannot be believed.
    pub fn client_addr(&self, req: &dyn RequestView) -> Option<IpAddr> {
        let peer = req.peer_addr()?.to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        req.for_each_header_bytes(self.header.header_name(), &mut |value| {
            let Ok(value) = std::str::from_utf8(value) else {
                // Unreadable: one hop that cannot be believed.
                hops.push(None);
                return;
            };
            match self.header {
                ForwardedHeader::Forwarded => forwarded_for(value, &mut hops),
                ForwardedHeader::XForwardedFor => {
                    hops.extend(value.split(',').map(|h| parse_node(h.trim())));
                }
            }
        });
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
/// An element without exactly one `for` parameter is a hop that cannot be believed (`None`).
fn forwarded_for(value: &str, hops: &mut Vec<Option<IpAddr>>) {
    for element in split_unquoted(value, ',') {
        if element.trim().is_empty() {
            // Empty list elements are allowed (RFC 9110 §5.6.1) and carry no hop.
            continue;
        }
        let mut nodes = split_unquoted(element, ';').into_iter().filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
        });
        let node = match (nodes.next(), nodes.next()) {
            (Some(node), None) => unquote(node).and_then(|n| parse_node(&n)),
            _ => None,
        };
        hops.push(node);
    }
}

/// A `Forwarded` parameter value: a token, or a quoted string with its `\` escapes undone.
/// `None` for an unterminated quoted string.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// Splits on `sep` outside double-quoted strings (which may hold `\"`).
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Whether `port` is a port number or an RFC 7239 obfuscated port (`_` then letters, digits,
/// `.`, `_`, `-`).
fn is_port(port: &str) -> bool {
    match port.strip_prefix('_') {
        Some(obfuscated) => {
            !obfuscated.is_empty()
                && obfuscated
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => port.parse::<u16>().is_ok(),
    }
}

/// A node: `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:443`, `2001:db8::1`.
/// `unknown`, obfuscated identifiers (`_hidden`) and anything else (`0x7f.1`, `010.0.0.1`,
/// `fe80::1%eth0`, a host name) yield `None`. IPv4-mapped IPv6 addresses come out as IPv4.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok
            .then(|| ip.parse::<Ipv6Addr>().ok())
            .flatten()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (host, port) = node.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
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
        let proxies = TrustedProxies::parse(["10.0.0.0/8", "fd00::/8"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
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
    fn x_forwarded_for_is_read_by_default() {
        let proxies = TrustedProxies::parse(["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("127.0.0.1"))
            .header("x-forwarded-for", "1.2.3.4, 198.51.100.7:5555, 10.1.1.1");
        assert_eq!(proxies.client_addr(&req), Some(ip("198.51.100.7")));
    }

    #[test]
    fn obfuscated_hop_ends_the_walk() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("10.0.0.2"))
            .header("forwarded", "for=198.51.100.1, for=_hidden, for=10.0.0.3");
        assert_eq!(proxies.client_addr(&req), Some(ip("10.0.0.3")));
        let all_trusted = SimpleRequest::new("GET", "/")
            .peer(ip("10.0.0.2"))
            .header("forwarded", "for=10.0.0.7");
        assert_eq!(proxies.client_addr(&all_trusted), Some(ip("10.0.0.7")));
    }

    #[test]
    fn no_peer_means_unknown() {
        assert_eq!(
            TrustedProxies::none().client_addr(&SimpleRequest::new("GET", "/")),
            None
        );
    }

    /// The reported attack: a trusted nginx appends to `X-Forwarded-For`; the client sends its
    /// own `Forwarded`, which nginx passes through untouched.
    #[test]
    fn only_the_configured_header_is_read() {
        let xff = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        assert_eq!(xff.forwarded_header(), ForwardedHeader::XForwardedFor);
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("10.0.0.2"))
            .header("forwarded", "for=6.6.6.6")
            .header("x-forwarded-for", "203.0.113.9");
        assert_eq!(xff.client_addr(&req), Some(ip("203.0.113.9")));
        // A client-sent X-Forwarded-For is as worthless to a `forwarded` reader.
        let fwd = xff.clone().header(ForwardedHeader::Forwarded);
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("10.0.0.2"))
            .header("x-forwarded-for", "6.6.6.6")
            .header("forwarded", "for=203.0.113.9;proto=https");
        assert_eq!(fwd.client_addr(&req), Some(ip("203.0.113.9")));
        // With only the other header present, the peer is all there is.
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("10.0.0.2"))
            .header("forwarded", "for=6.6.6.6");
        assert_eq!(xff.client_addr(&req), Some(ip("10.0.0.2")));
        assert_eq!(
            "X-Forwarded-For".parse::<ForwardedHeader>(),
            Ok(ForwardedHeader::XForwardedFor)
        );
        assert_eq!(
            " forwarded".parse::<ForwardedHeader>(),
            Ok(ForwardedHeader::Forwarded)
        );
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }

    #[test]
    fn the_chain_is_walked_right_to_left_across_header_lines() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        // The client's own entries are left of the first untrusted address from the right.
        let req = SimpleRequest::new("GET", "/")
            .peer(ip("10.0.0.2"))
            .header("x-forwarded-for", "6.6.6.6, 10.9.9.9")
            .header("x-forwarded-for", "198.51.100.4, 10.0.0.3");
        assert_eq!(proxies.client_addr(&req), Some(ip("198.51.100.4")));
    }

    #[test]
    fn malformed_and_obfuscated_entries_end_the_walk() {
        let xff = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        for bad in [
            "6.6.6.6, garbage",
            "6.6.6.6, 0x7f.0.0.1",
            "6.6.6.6, 010.0.0.1",
            "6.6.6.6, 1.2.3.4.5",
            "6.6.6.6, fe80::1%eth0",
            "6.6.6.6, host.example",
            "6.6.6.6, 1.2.3.4:99999",
            "6.6.6.6, [::1",
            "6.6.6.6, [::1]x",
            "6.6.6.6, unknown",
            "6.6.6.6, _hidden",
            "6.6.6.6, ",
        ] {
            let req = SimpleRequest::new("GET", "/")
                .peer(ip("10.0.0.2"))
                .header("x-forwarded-for", bad);
            assert_eq!(xff.client_addr(&req), Some(ip("10.0.0.2")), "{bad}");
        }
        let fwd = xff.clone().header(ForwardedHeader::Forwarded);
        for bad in [
            "for=6.6.6.6, proto=https",
            "for=6.6.6.6, for=1.2.3.4;for=5.6.7.8",
            "for=6.6.6.6, for=\"1.2.3.4",
            "for=6.6.6.6, for=\"_hidden\"",
            "for=6.6.6.6, for=\"[2001:db8::1]:_x:1\"",
        ] {
            let req = SimpleRequest::new("GET", "/")
                .peer(ip("10.0.0.2"))
                .header("forwarded", bad);
            assert_eq!(fwd.client_addr(&req), Some(ip("10.0.0.2")), "{bad}");
        }
    }

    #[test]
    fn ports_brackets_quotes_and_mapped_addresses() {
        let xff = TrustedProxies::parse(["10.0.0.0/8", "fd00::/8"]).unwrap();
        for (chain, want) in [
            ("198.51.100.7:5555", "198.51.100.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
            ("[::ffff:198.51.100.7]:80", "198.51.100.7"),
            ("6.6.6.6, 198.51.100.7, ::ffff:10.0.0.9", "198.51.100.7"),
            ("6.6.6.6,198.51.100.7,[fd00::1]:8080", "198.51.100.7"),
        ] {
            let req = SimpleRequest::new("GET", "/")
                .peer(ip("10.0.0.2"))
                .header("x-forwarded-for", chain);
            assert_eq!(xff.client_addr(&req), Some(ip(want)), "{chain}");
        }
        let fwd = xff.clone().header(ForwardedHeader::Forwarded);
        for (chain, want) in [
            ("For=\"[2001:db8::7]:4711\"", "2001:db8::7"),
            ("for=\"198.51.100.7:_p0rt\";by=10.0.0.2", "198.51.100.7"),
            (
                "proto=https;for=198.51.100.7;host=\"a,b;c\"",
                "198.51.100.7",
            ),
            ("for=\"198.51.100.7\", , for=10.0.0.3", "198.51.100.7"),
            ("for=\"\\1\\98.51.100.7\"", "198.51.100.7"),
        ] {
            let req = SimpleRequest::new("GET", "/")
                .peer(ip("10.0.0.2"))
                .header("forwarded", chain);
            assert_eq!(fwd.client_addr(&req), Some(ip(want)), "{chain}");
        }
    }
}
