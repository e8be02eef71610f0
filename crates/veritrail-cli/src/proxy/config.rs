//! The proxy's settings: a TOML file for everything the flags set plus per-route policy,
//! with the flags taking precedence, checked before anything starts.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! upstream = "http://127.0.0.1:3000"
//! jwks = "idp/jwks.json"            # or an https URL; or `oidc = "https://login.example"`
//! issuer = "https://login.example"
//! audience = "orders-api"
//! log = "audit-log"
//! key = "audit.key"
//! durability = "async"              # the default for routes that do not say
//! identity_headers = true
//! upstream_timeout = 30             # seconds
//! shutdown_grace = 10               # seconds
//! trusted_proxies = ["10.0.0.0/8"]
//! forwarded_header = "x-forwarded-for"  # or "forwarded": the one the trusted proxies write
//! trust_request_id = false          # keep a client's X-Request-Id (off: always a fresh id)
//! underscores_in_headers = "drop"   # or "keep": header names with `_` are dropped, as nginx does
//! max_connections = 10000           # open client connections, in all
//! max_connections_per_ip = 256      # from one address (one /64 for IPv6; trusted proxies exempt)
//! metrics_listen = "127.0.0.1:9090" # /metrics, /healthz, /readyz (off unless set)
//! tls_cert = "tls/cert.pem"         # TLS 1.2+ on the listener (reloaded on SIGHUP or change)
//! tls_key = "tls/key.pem"
//! tls_client_ca = "tls/clients.pem" # mTLS: client certificates required, subject recorded
//! upstream_ca = "tls/upstream-ca.pem"   # for an https:// upstream (default: system CAs)
//! upstream_h2c = false              # HTTP/2 prior knowledge to an http:// upstream (gRPC)
//! max_body_bytes = 10485760         # request bodies larger are refused (413); routes may override
//! body_digest = false               # record the SHA-256 of request bodies (routes may override)
//! response_body_digest = false      # and of response bodies, in a follow-up event (routes too)
//!
//! [[route]]
//! prefix = "/health"
//! public = true
//!
//! [[route]]
//! prefix = "/admin/"
//! scopes = ["admin"]
//! durability = "write-ahead"
//!
//! [[route]]
//! prefix = "/live/"
//! upgrades = ["websocket"]          # HTTP/1.1 upgrades this route allows (default: none)
//! ```
//!
//! Relative paths in the file are relative to the file's directory. Route prefixes match
//! canonical request paths on segment boundaries (see [`Routes`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http::Uri;
use serde::Deserialize;
use veritrail_core::engine::{ForwardedHeader, RoutePolicy, canonical_path, path_is_under};
use veritrail_core::recorder::Durability;

use crate::cli::{DurabilityArg, ProxyArgs, UnderscoresArg};
use crate::keysource::KeySource;

/// Open client connections at most, unless configured.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Open client connections from one address at most, unless configured.
pub(crate) const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

/// The config file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    upstream: Option<String>,
    jwks: Option<String>,
    oidc: Option<String>,
    hs_secret_file: Option<PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
    log: Option<PathBuf>,
    key: Option<PathBuf>,
    durability: Option<DurabilityArg>,
    identity_headers: Option<bool>,
    upstream_timeout: Option<u64>,
    shutdown_grace: Option<u64>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    forwarded_header: Option<String>,
    trust_request_id: Option<bool>,
    underscores_in_headers: Option<UnderscoresArg>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    realm: Option<String>,
    metrics_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    upstream_ca: Option<PathBuf>,
    upstream_insecure: Option<bool>,
    upstream_h2c: Option<bool>,
    max_body_bytes: Option<u64>,
    body_digest: Option<bool>,
    response_body_digest: Option<bool>,
    #[serde(default)]
    route: Vec<RouteConfig>,
}

/// One `[[route]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteConfig {
    prefix: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    durability: Option<DurabilityArg>,
    max_body_bytes: Option<u64>,
    body_digest: Option<bool>,
    response_body_digest: Option<bool>,
    #[serde(default)]
    upgrades: Vec<String>,
}

/// Everything the proxy runs with.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) listen: String,
    pub(crate) upstream: Upstream,
    pub(crate) keys: KeySource,
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) log: PathBuf,
    /// The signing key; none for a `nats://` log (replicas hold no key: the sequencer signs).
    pub(crate) key: Option<PathBuf>,
    pub(crate) durability: Durability,
    pub(crate) identity_headers: bool,
    pub(crate) upstream_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    /// `--recover` (command line only, never from the file: it is a one-off decision).
    pub(crate) recover: bool,
    pub(crate) trusted_proxies: Vec<String>,
    /// The one forwarding header the trusted proxies write (the other is never believed).
    pub(crate) forwarded_header: ForwardedHeader,
    /// Whether a client's request id is kept (default: replaced by a fresh one).
    pub(crate) trust_request_id: bool,
    /// The witnesses each new checkpoint is submitted to (`--witness`).
    pub(crate) witnesses: Vec<crate::witness::WitnessTarget>,
    /// Whether incoming header names holding `_` are forwarded (default: dropped).
    pub(crate) underscores_in_headers: UnderscoresArg,
    /// Open client connections at most, in all.
    pub(crate) max_connections: usize,
    /// Open client connections at most from one address (one /64 for IPv6).
    pub(crate) max_connections_per_ip: usize,
    pub(crate) realm: Option<String>,
    pub(crate) routes: Routes,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, if anywhere.
    pub(crate) metrics_listen: Option<String>,
    /// TLS on the listener, if configured.
    pub(crate) tls: Option<TlsFiles>,
}

/// The listener's certificate, key and (for mTLS) client CAs.
#[derive(Clone, Debug)]
pub(crate) struct TlsFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) client_ca: Option<PathBuf>,
}

/// How the upstream's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum UpstreamTrust {
    /// The system's CAs.
    System,
    /// The CAs of this PEM file.
    Ca(PathBuf),
    /// Not at all (`--upstream-insecure`).
    Insecure,
}

/// The upstream service's base URL (`http[s]://host:port[/base]`) and how it is spoken to.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    /// `https` or not.
    pub(crate) https: bool,
    /// `host:port`.
    pub(crate) authority: http::uri::Authority,
    /// A path prefixed to every request's path, without a trailing `/` (often empty).
    pub(crate) base_path: String,
    /// HTTP/2 with prior knowledge to an `http://` upstream.
    pub(crate) h2c: bool,
    /// How an `https://` upstream's certificate is checked.
    pub(crate) trust: UpstreamTrust,
}

impl Upstream {
    fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--upstream {url:?} is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("--upstream {url:?} must be an http:// or https:// URL"),
        };
        let authority = uri
            .authority()
            .cloned()
            .with_context(|| format!("--upstream {url:?} has no host"))?;
        if uri.query().is_some() {
            bail!("--upstream {url:?}: a query string is not allowed in the upstream URL");
        }
        Ok(Upstream {
            https,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            h2c: false,
            trust: UpstreamTrust::System,
        })
    }

    /// The upstream URI for a request's path and query.
    pub(crate) fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(if self.https { "https" } else { "http" })
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path_and_query}", self.base_path))
            .build()
    }
}

/// Per-route policy by path prefix: the longest matching prefix wins. The prefix, as
/// configured, is the route name the event records.
///
/// Prefixes match canonical paths (see [`canonical_path`]) on segment boundaries: `/health`
/// covers `/health` and `/health/...`, never `/healthz`; a trailing `/` changes nothing, so
/// `/admin/` covers `/admin` itself too. Matching is case-sensitive, like the paths.
#[derive(Clone, Debug, Default)]
pub(crate) struct Routes {
    /// Longest prefix first.
    entries: Vec<(Arc<str>, RoutePolicy)>,
    /// The body rules of each entry, in the same order.
    bodies: Vec<BodyRules>,
    /// The upgrade protocols each entry allows, in the same order.
    upgrades: Vec<Upgrades>,
    /// The body rules of paths under no route.
    default_body: BodyRules,
}

/// What is done with request bodies on a route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BodyRules {
    /// Refuse bodies larger than this (`413`, recorded).
    pub(crate) max_bytes: Option<u64>,
    /// Record the SHA-256 of the request body as it streams (`extra.request_body_sha256`).
    pub(crate) digest: bool,
    /// Record the SHA-256 of the response body as it streams, in a follow-up event
    /// (`extra.response_body_sha256`).
    pub(crate) response_digest: bool,
}

/// The HTTP/1.1 upgrade protocols a route allows (`upgrades = ["websocket"]`), lower case;
/// none by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Upgrades(Arc<[String]>);

impl Upgrades {
    /// Whether `protocol` (a token of an `Upgrade` header, perhaps with a `/version`) is
    /// allowed: its name, ASCII case aside, is one of the route's.
    pub(crate) fn allows(&self, protocol: &str) -> bool {
        let name = protocol.split('/').next().unwrap_or_default();
        self.0.iter().any(|p| p.eq_ignore_ascii_case(name))
    }

    /// Whether the route allows any upgrade.
    pub(crate) fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// The protocols of a route's `upgrades` list, checked: tokens, and none that would carry
    /// requests the proxy could not audit one by one (`h2c`: HTTP/2 over the tunnel).
    fn parse(prefix: &str, names: Vec<String>) -> Result<Self> {
        let mut protocols = Vec::new();
        for name in names {
            let lower = name.to_ascii_lowercase();
            let token = !lower.is_empty()
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                bail!(
                    "route {prefix:?}: upgrades: {name:?} is not a protocol name like \"websocket\""
                );
            }
            if lower == "h2c" || lower == "h2" || lower == "http" {
                bail!(
                    "route {prefix:?}: upgrades: {name:?} cannot be allowed: an HTTP/2 tunnel \
                     would carry requests past the per-request policy and the audit log"
                );
            }
            if !protocols.contains(&lower) {
                protocols.push(lower);
            }
        }
        Ok(Upgrades(protocols.into()))
    }
}

impl Routes {
    /// The route (prefix) that the canonical `path` falls under, if any.
    #[cfg(test)]
    pub(crate) fn matching(&self, path: &str) -> Option<&Arc<str>> {
        self.matching_rules(path).0
    }

    /// The route `path` falls under, if any, the body rules that apply to it and the
    /// upgrades it allows (none for paths under no route).
    pub(crate) fn matching_rules(
        &self,
        path: &str,
    ) -> (Option<&Arc<str>>, BodyRules, Option<&Upgrades>) {
        match self
            .entries
            .iter()
            .position(|(prefix, _)| path_is_under(path, prefix))
        {
            Some(i) => (
                Some(&self.entries[i].0),
                self.bodies[i],
                Some(&self.upgrades[i]).filter(|u| u.any()),
            ),
            None => (None, self.default_body, None),
        }
    }

    /// Every route and its policy.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &RoutePolicy)> {
        self.entries.iter().map(|(p, policy)| (&**p, policy))
    }
}

/// A configured prefix, checked: it must be a canonical path, or requests could never be
/// matched against it as written.
fn check_prefix(prefix: &str) -> Result<()> {
    if !prefix.starts_with('/') {
        bail!("route prefix {prefix:?} must start with `/` (it is matched against request paths)");
    }
    match canonical_path(prefix) {
        Ok(canonical) if canonical == prefix => Ok(()),
        Ok(canonical) => bail!(
            "route prefix {prefix:?} is not a canonical path: write it as {canonical:?} \
             (request paths are matched after `.`/`..` segments and repeated `/` are resolved \
             and unreserved escapes decoded)"
        ),
        Err(e) => bail!("route prefix {prefix:?} can never match a request: {e}"),
    }
}

fn durability(arg: DurabilityArg) -> Durability {
    match arg {
        DurabilityArg::Async => Durability::Async,
        DurabilityArg::Durable => Durability::Durable,
        DurabilityArg::WriteAhead => Durability::WriteAhead,
    }
}

/// Reads the config file (if any) and applies the flags over it.
pub(crate) fn load(args: &ProxyArgs) -> Result<Settings> {
    let (file, base) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            let file: FileConfig = toml::from_str(&text)
                .with_context(|| format!("{} is not a valid proxy config", path.display()))?;
            let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
            (file, base)
        }
        None => (FileConfig::default(), PathBuf::new()),
    };
    let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let missing = |flag: &str| {
        anyhow::anyhow!(
            "{flag} is required (as a flag, or in the --config file); see `veritrail proxy --help`"
        )
    };

    let listen = args
        .listen
        .clone()
        .or(file.listen)
        .ok_or_else(|| missing("--listen"))?;
    listen
        .parse::<SocketAddr>()
        .with_context(|| format!("--listen {listen:?} is not an address like 127.0.0.1:8080"))?;
    let upstream = args
        .upstream
        .clone()
        .or(file.upstream)
        .ok_or_else(|| missing("--upstream"))?;
    let mut upstream = Upstream::parse(&upstream)?;
    upstream.h2c = args.upstream_h2c || file.upstream_h2c.unwrap_or(false);
    let upstream_ca = args.upstream_ca.clone().or(file.upstream_ca.map(rel));
    let insecure = args.upstream_insecure || file.upstream_insecure.unwrap_or(false);
    upstream.trust = match (upstream_ca, insecure) {
        (Some(_), true) => bail!("give --upstream-ca or --upstream-insecure, not both"),
        (Some(ca), false) => UpstreamTrust::Ca(ca),
        (None, true) => UpstreamTrust::Insecure,
        (None, false) => UpstreamTrust::System,
    };
    if !upstream.https && upstream.trust != UpstreamTrust::System {
        bail!("--upstream-ca and --upstream-insecure are for an https:// upstream");
    }
    if upstream.https && upstream.h2c {
        bail!("--upstream-h2c is for an http:// upstream (https negotiates HTTP/2 by ALPN)");
    }
    let orphan_client_ca = file.tls_client_ca.is_some();
    let tls = match (
        args.tls_cert.clone().or(file.tls_cert.map(rel)),
        args.tls_key.clone().or(file.tls_key.map(rel)),
    ) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca.clone().or(file.tls_client_ca.map(rel)),
        }),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    if tls.is_none() && orphan_client_ca {
        bail!("tls_client_ca needs tls_cert and tls_key");
    }

    // The flags' key source replaces the file's entirely.
    let keys = match KeySource::from_args(&args.tokens.keys)? {
        Some(keys) => keys,
        None => KeySource::choose(file.jwks, file.oidc, file.hs_secret_file, |p| rel(p.into()))?
            .ok_or_else(|| missing("one of --jwks, --oidc or --hs-secret-file"))?,
    };
    let issuer = args
        .tokens
        .issuer
        .clone()
        .or(file.issuer)
        .or_else(|| keys.default_issuer().map(str::to_owned))
        .ok_or_else(|| missing("--issuer"))?;
    let audience = args
        .tokens
        .audience
        .clone()
        .or(file.audience)
        .ok_or_else(|| missing("--audience"))?;
    let log = args
        .log
        .clone()
        .or(file
            .log
            .map(|log| if is_url(&log) { log } else { rel(log) }))
        .ok_or_else(|| missing("--log"))?;
    let key = args.key.clone().or(file.key.map(rel));
    if key.is_none() && !log.to_str().is_some_and(|l| l.starts_with("nats://")) {
        return Err(missing("--key"));
    }
    let default_durability = durability(
        args.durability
            .or(file.durability)
            .unwrap_or(DurabilityArg::Async),
    );

    let mut entries = Vec::new();
    let default_body = BodyRules {
        max_bytes: file.max_body_bytes,
        digest: file.body_digest.unwrap_or(false),
        response_digest: file.response_body_digest.unwrap_or(false),
    };
    for route in file.route {
        check_prefix(&route.prefix)?;
        if route.public && (route.optional || !route.scopes.is_empty() || !route.roles.is_empty()) {
            bail!(
                "route {:?} is public: it cannot also be optional or require scopes or roles",
                route.prefix
            );
        }
        let mut policy = if route.public {
            RoutePolicy::public()
        } else if route.optional {
            RoutePolicy::optional()
        } else {
            RoutePolicy::authenticated()
        };
        policy.scopes = route.scopes;
        policy.roles = route.roles;
        policy.durability = route.durability.map_or(default_durability, durability);
        // `/admin` and `/admin/` cover the same paths.
        let covers = |p: &str| p.trim_end_matches('/').to_owned();
        if let Some((other, _, _)) = entries
            .iter()
            .find(|(p, _, _): &&(Arc<str>, _, _)| covers(p) == covers(&route.prefix))
        {
            bail!(
                "route prefix {:?} is configured twice (as {other:?}: a trailing `/` does not \
                 make another route)",
                route.prefix
            );
        }
        let body = BodyRules {
            max_bytes: route.max_body_bytes.or(default_body.max_bytes),
            digest: route.body_digest.unwrap_or(default_body.digest),
            response_digest: route
                .response_body_digest
                .unwrap_or(default_body.response_digest),
        };
        let upgrades = Upgrades::parse(&route.prefix, route.upgrades)?;
        if upgrades.any() && upstream.h2c {
            bail!(
                "route {:?} allows upgrades, but upstream_h2c speaks HTTP/2 to the upstream, \
                 which has no HTTP/1.1 upgrade",
                route.prefix
            );
        }
        entries.push((Arc::from(route.prefix), policy, (body, upgrades)));
    }
    entries.sort_by_key(|(prefix, _, _)| {
        let covered = prefix.trim_end_matches('/').len();
        (std::cmp::Reverse(covered), std::cmp::Reverse(prefix.len()))
    });

    let forwarded_header = match args.forwarded_header.clone().or(file.forwarded_header) {
        Some(name) => name
            .parse::<ForwardedHeader>()
            .map_err(|e| anyhow::anyhow!("forwarded_header: {e}"))?,
        None => ForwardedHeader::default(),
    };
    let max_connections = args
        .max_connections
        .or(file.max_connections)
        .unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let max_connections_per_ip = args
        .max_connections_per_ip
        .or(file.max_connections_per_ip)
        .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP);
    if max_connections == 0 || max_connections_per_ip == 0 {
        bail!("max_connections and max_connections_per_ip must be at least 1");
    }

    let metrics_listen = args.metrics_listen.clone().or(file.metrics_listen);
    if let Some(addr) = &metrics_listen {
        addr.parse::<SocketAddr>().with_context(|| {
            format!("--metrics-listen {addr:?} is not an address like 127.0.0.1:9090")
        })?;
    }
    let witnesses = args
        .witness
        .iter()
        .map(|w| crate::witness::WitnessTarget::parse(w))
        .collect::<Result<Vec<_>>>()?;
    if !witnesses.is_empty() && crate::logdir::postgres_location(&log)?.is_some() {
        bail!("--witness works with a log directory only, so far (not a postgres:// log)");
    }

    Ok(Settings {
        listen,
        upstream,
        keys,
        issuer,
        audience,
        log,
        key,
        durability: default_durability,
        identity_headers: args.identity_headers || file.identity_headers.unwrap_or(false),
        upstream_timeout: Duration::from_secs(
            args.upstream_timeout
                .or(file.upstream_timeout)
                .unwrap_or(30),
        ),
        shutdown_grace: Duration::from_secs(
            args.shutdown_grace.or(file.shutdown_grace).unwrap_or(10),
        ),
        recover: args.recover,
        trusted_proxies: file.trusted_proxies,
        forwarded_header,
        trust_request_id: args.trust_request_id || file.trust_request_id.unwrap_or(false),
        witnesses,
        underscores_in_headers: args
            .underscores_in_headers
            .or(file.underscores_in_headers)
            .unwrap_or(UnderscoresArg::Drop),
        max_connections,
        max_connections_per_ip,
        realm: file.realm,
        routes: Routes {
            bodies: entries.iter().map(|(_, _, (body, _))| *body).collect(),
            upgrades: entries
                .iter()
                .map(|(_, _, (_, upgrades))| upgrades.clone())
                .collect(),
            entries: entries
                .into_iter()
                .map(|(prefix, policy, _)| (prefix, policy))
                .collect(),
            default_body,
        },
        metrics_listen,
        tls,
    })
}

/// A log location given as a URL (`postgres://…`), not a path relative to the config file.
fn is_url(log: &Path) -> bool {
    log.to_str().is_some_and(|s| s.contains("://"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use veritrail_core::engine::AuthMode;

    fn args(config: &Path) -> ProxyArgs {
        ProxyArgs {
            config: Some(config.to_path_buf()),
            ..ProxyArgs::default()
        }
    }

    #[test]
    fn file_settings_routes_and_flag_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(
            &path,
            r#"
listen = "127.0.0.1:9000"
upstream = "http://127.0.0.1:3000/app/"
jwks = "jwks.json"
issuer = "https://idp.test"
audience = "api"
log = "log"
key = "audit.key"
durability = "durable"

[[route]]
prefix = "/health"
public = true

[[route]]
prefix = "/admin/"
scopes = ["admin"]
durability = "write-ahead"

[[route]]
prefix = "/admin/reports/"
optional = true
"#,
        )
        .unwrap();
        let mut a = args(&path);
        a.listen = Some("127.0.0.1:0".into());
        let s = load(&a).unwrap();
        assert_eq!(s.listen, "127.0.0.1:0", "the flag wins");
        assert!(matches!(&s.keys, KeySource::JwksFile(p) if *p == dir.path().join("jwks.json")));
        assert_eq!(s.log, dir.path().join("log"));
        assert_eq!(
            s.upstream.uri_for("/x?y=1").unwrap().to_string(),
            "http://127.0.0.1:3000/app/x?y=1"
        );
        assert_eq!(
            s.routes.matching("/admin/reports/7").map(|r| &**r),
            Some("/admin/reports/")
        );
        assert_eq!(s.routes.matching("/admin/x").map(|r| &**r), Some("/admin/"));
        assert_eq!(s.routes.matching("/orders"), None);
        // On segment boundaries: the slash-less spelling is covered, a longer name is not.
        assert_eq!(s.routes.matching("/admin").map(|r| &**r), Some("/admin/"));
        assert_eq!(
            s.routes.matching("/admin/reports").map(|r| &**r),
            Some("/admin/reports/")
        );
        assert_eq!(s.routes.matching("/health").map(|r| &**r), Some("/health"));
        assert_eq!(
            s.routes.matching("/health/x").map(|r| &**r),
            Some("/health")
        );
        for outside in [
            "/healthz",
            "/healthz-anything",
            "/health.json",
            "/administrator",
        ] {
            assert_eq!(s.routes.matching(outside), None, "{outside}");
        }
        let policies: Vec<_> = s.routes.iter().collect();
        let admin = policies.iter().find(|(p, _)| *p == "/admin/").unwrap().1;
        assert_eq!(admin.scopes, ["admin"]);
        assert_eq!(admin.durability, Durability::WriteAhead);
        let health = policies.iter().find(|(p, _)| *p == "/health").unwrap().1;
        assert_eq!(health.auth, AuthMode::Public);
        assert_eq!(
            health.durability,
            Durability::Durable,
            "inherits the default"
        );

        a.tokens.keys.oidc = Some("https://login.example".into());
        let s = load(&a).unwrap();
        assert!(
            matches!(s.keys, KeySource::Oidc(_)),
            "flags replace the file's keys"
        );
    }

    #[test]
    fn the_readme_example_config_loads() {
        let readme = include_str!("../../../../README.md");
        let start = readme
            .find("```toml\nlisten")
            .expect("README has the proxy config example");
        let body = &readme[start + "```toml\n".len()..];
        let example = &body[..body.find("```").unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, example).unwrap();
        let s = load(&args(&path)).unwrap();
        assert!(matches!(&s.keys, KeySource::Oidc(url) if url == "https://login.example.com"));
        assert_eq!(
            s.issuer, "https://login.example.com",
            "defaults to the OIDC issuer"
        );
        assert_eq!(s.key, Some(dir.path().join("audit.key")));
        assert!(s.identity_headers);
        assert_eq!(s.trusted_proxies, ["10.0.0.0/8"]);
        let routes: Vec<_> = s.routes.iter().map(|(p, _)| p.to_owned()).collect();
        assert_eq!(
            routes,
            ["/orders/", "/health", "/admin/", "/live/"],
            "longest prefix first"
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        let err = |text: &str| {
            std::fs::write(&path, text).unwrap();
            format!("{:#}", load(&args(&path)).unwrap_err())
        };
        let base = "listen = \"127.0.0.1:1\"\nupstream = \"http://u\"\njwks = \"j\"\n\
                    issuer = \"i\"\naudience = \"a\"\nlog = \"l\"\nkey = \"k\"\n";
        assert!(err("lisen = 1").contains("unknown field"));
        assert!(
            err(&format!("{base}forwarded_header = \"x-real-ip\"\n"))
                .contains("expected `x-forwarded-for` or `forwarded`")
        );
        assert!(
            err(&format!("{base}underscores_in_headers = \"maybe\"\n")).contains("unknown variant")
        );
        assert!(err(&format!("{base}max_connections_per_ip = 0\n")).contains("at least 1"));
        assert!(err("listen = \"127.0.0.1:1\"").contains("--upstream is required"));
        assert!(
            err(&format!("{base}upstream_insecure = true\n")).contains("for an https:// upstream")
        );
        assert!(
            err(&format!(
                "{}upstream_h2c = true\n",
                base.replace("http://u", "https://u")
            ))
            .contains("for an http:// upstream")
        );
        assert!(err(&format!("{base}tls_cert = \"c.pem\"\n")).contains("go together"));
        assert!(err(&base.replace("http://u", "ftp://u")).contains("must be an http://"));
        assert!(err(&format!("{base}oidc = \"https://x\"\n")).contains("only one of jwks, oidc"));
        assert!(err(&format!("{base}[[route]]\nprefix = \"x\"\n")).contains("must start with"));
        let route = |prefix: &str| err(&format!("{base}[[route]]\nprefix = '{prefix}'\n"));
        assert!(route("//admin").contains("write it as \"/admin\""));
        assert!(route("/a/../admin").contains("write it as \"/admin\""));
        assert!(route("/%61dmin").contains("write it as \"/admin\""));
        assert!(route("/admin;x").contains("can never match"));
        assert!(route("/a%2Fb").contains("can never match"));
        assert!(
            err(&format!(
                "{base}[[route]]\nprefix = \"/admin\"\n[[route]]\nprefix = \"/admin/\"\n"
            ))
            .contains("configured twice")
        );
        assert!(
            err(&format!(
                "{base}[[route]]\nprefix = \"/x\"\npublic = true\nscopes = [\"a\"]\n"
            ))
            .contains("is public")
        );
        let upgrades = |list: &str| {
            err(&format!(
                "{base}[[route]]\nprefix = '/ws'\nupgrades = {list}\n"
            ))
        };
        for h2 in ["h2c", "H2C", "h2", "HTTP"] {
            assert!(
                upgrades(&format!("['{h2}']")).contains("cannot be allowed"),
                "{h2}"
            );
        }
        for bad in ["''", "'web socket'", "'websocket/13'", "'a,b'"] {
            assert!(
                upgrades(&format!("[{bad}]")).contains("not a protocol name"),
                "{bad}"
            );
        }
        assert!(
            err(&format!(
                "{base}upstream_h2c = true\n[[route]]\nprefix = '/ws'\nupgrades = ['websocket']\n"
            ))
            .contains("no HTTP/1.1 upgrade")
        );
    }

    #[test]
    fn upgrades_are_allowed_per_route_by_protocol_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nupstream = \"http://u\"\njwks = \"j\"\n\
             issuer = \"i\"\naudience = \"a\"\nlog = \"l\"\nkey = \"k\"\n\
             [[route]]\nprefix = '/ws/'\nupgrades = ['WebSocket', 'websocket']\n\
             [[route]]\nprefix = '/ws/plain/'\n",
        )
        .unwrap();
        let s = load(&args(&path)).unwrap();
        let (_, _, ws) = s.routes.matching_rules("/ws/chat");
        let ws = ws.expect("the route allows upgrades");
        assert_eq!(ws, &Upgrades(vec!["websocket".to_owned()].into()));
        assert!(ws.allows("websocket") && ws.allows("WEBSOCKET") && ws.allows("websocket/13"));
        assert!(!ws.allows("h2c") && !ws.allows("websockets"));
        for none in ["/ws/plain/x", "/other"] {
            assert!(s.routes.matching_rules(none).2.is_none(), "{none}");
        }
    }

    /// The config file is fuzzed here rather than by a libFuzzer target (it is parsed inside
    /// the binary crate, which a fuzz target cannot link): files built from hostile values —
    /// paths with every trick the canonicaliser refuses, odd types, huge numbers, control
    /// characters — and then byte-mutated. Loading never panics, and every config it accepts
    /// has the invariants the proxy relies on.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn hostile_text() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                Just("/".to_owned()),
                Just("/admin".to_owned()),
                Just("/admin/".to_owned()),
                Just("/health".to_owned()),
                Just("/a/b/c".to_owned()),
                "/[a-z%./;\\\\_~-]{0,12}",
                "(/[a-zA-Z0-9._~%-]{0,4}){0,4}/?",
                "\\PC{0,16}",
                ".{0,24}",
                Just("x".repeat(5000)),
            ]
        }

        fn value() -> impl Strategy<Value = toml::Value> {
            prop_oneof![
                hostile_text().prop_map(toml::Value::String),
                any::<i64>().prop_map(toml::Value::Integer),
                prop_oneof![Just(0i64), Just(1), Just(-1), Just(i64::MAX)]
                    .prop_map(toml::Value::Integer),
                any::<bool>().prop_map(toml::Value::Boolean),
                prop::collection::vec(hostile_text().prop_map(toml::Value::String), 0..3)
                    .prop_map(toml::Value::Array),
            ]
        }

        const KEYS: &[&str] = &[
            "listen",
            "upstream",
            "jwks",
            "oidc",
            "hs_secret_file",
            "issuer",
            "audience",
            "log",
            "key",
            "durability",
            "identity_headers",
            "upstream_timeout",
            "shutdown_grace",
            "trusted_proxies",
            "forwarded_header",
            "trust_request_id",
            "underscores_in_headers",
            "max_connections",
            "max_connections_per_ip",
            "realm",
            "metrics_listen",
            "tls_cert",
            "tls_key",
            "tls_client_ca",
            "upstream_ca",
            "upstream_insecure",
            "upstream_h2c",
            "max_body_bytes",
            "body_digest",
            "response_body_digest",
        ];
        /// A `[[route]]` table: well-typed values mostly, so that many are accepted.
        fn route() -> impl Strategy<Value = toml::Table> {
            let names =
                || prop::collection::vec(hostile_text().prop_map(toml::Value::String), 0..3);
            (
                hostile_text(),
                prop::option::of(any::<bool>()),
                prop::option::of(any::<bool>()),
                prop::option::of(names()),
                prop::option::of(names()),
                prop::option::of(prop_oneof![
                    Just("async".to_owned()),
                    Just("durable".to_owned()),
                    Just("write-ahead".to_owned()),
                    hostile_text(),
                ]),
            )
                .prop_map(|(prefix, public, optional, scopes, roles, durability)| {
                    let mut t = toml::Table::new();
                    t.insert("prefix".into(), toml::Value::String(prefix));
                    let mut put = |k: &str, v: Option<toml::Value>| {
                        if let Some(v) = v {
                            t.insert(k.into(), v);
                        }
                    };
                    put("public", public.map(toml::Value::Boolean));
                    put("optional", optional.map(toml::Value::Boolean));
                    put("scopes", scopes.map(toml::Value::Array));
                    put("roles", roles.map(toml::Value::Array));
                    put("durability", durability.map(toml::Value::String));
                    t
                })
        }

        fn table(keys: &'static [&'static str]) -> impl Strategy<Value = toml::Table> {
            prop::collection::vec((prop::sample::select(keys), value()), 1..4)
                .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        }

        fn config() -> impl Strategy<Value = String> {
            let routes = prop::collection::vec(route(), 0..6);
            let over = prop_oneof![2 => Just(toml::Table::new()), 1 => table(KEYS)];
            (over, routes, any::<bool>()).prop_map(|(over, routes, valid_base)| {
                let mut top = toml::Table::new();
                if valid_base {
                    for (k, v) in [
                        ("listen", "127.0.0.1:1"),
                        ("upstream", "http://u"),
                        ("jwks", "j"),
                        ("issuer", "i"),
                        ("audience", "a"),
                        ("log", "l"),
                        ("key", "k"),
                    ] {
                        top.insert(k.into(), toml::Value::String(v.into()));
                    }
                }
                top.extend(over);
                let routes = routes.into_iter().map(toml::Value::Table).collect();
                top.insert("route".into(), toml::Value::Array(routes));
                toml::to_string(&top).expect("a table prints")
            })
        }

        fn mutated() -> impl Strategy<Value = Vec<u8>> {
            let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4);
            let edits = prop_oneof![3 => Just(Vec::new()), 1 => edits];
            (config(), edits).prop_map(|(text, edits)| {
                let mut bytes = text.into_bytes();
                for (at, byte) in edits {
                    if !bytes.is_empty() {
                        let i = at.index(bytes.len());
                        bytes[i] = byte;
                    }
                }
                bytes
            })
        }

        /// Every invariant the proxy relies on in an accepted config.
        fn check(settings: &Settings, probes: &[String]) {
            assert!(settings.listen.parse::<SocketAddr>().is_ok());
            assert!(settings.max_connections >= 1 && settings.max_connections_per_ip >= 1);
            let prefixes: Vec<&str> = settings.routes.iter().map(|(p, _)| p).collect();
            for (i, prefix) in prefixes.iter().enumerate() {
                assert_eq!(
                    canonical_path(prefix).as_deref(),
                    Ok(*prefix),
                    "not canonical"
                );
                assert_eq!(
                    settings.routes.matching(prefix).map(|p| &**p),
                    Some(*prefix)
                );
                let covers = |p: &str| p.trim_end_matches('/').to_owned();
                assert!(
                    prefixes[i + 1..]
                        .iter()
                        .all(|p| covers(p) != covers(prefix)),
                    "{prefix:?} twice"
                );
            }
            // The chosen route is the longest configured prefix that covers the path.
            for probe in probes {
                let Ok(path) = canonical_path(probe) else {
                    continue;
                };
                let chosen = settings.routes.matching(&path).map(|p| &**p);
                let longest = prefixes
                    .iter()
                    .filter(|p| path_is_under(&path, p))
                    .max_by_key(|p| p.trim_end_matches('/').len())
                    .copied();
                assert_eq!(
                    chosen.map(|p| p.trim_end_matches('/').len()),
                    longest.map(|p| p.trim_end_matches('/').len()),
                    "{path:?}: chose {chosen:?}"
                );
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
            #[test]
            fn any_config_file_loads_or_is_refused_never_panics(
                bytes in mutated(),
                probes in prop::collection::vec(hostile_text(), 0..6),
            ) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("proxy.toml");
                std::fs::write(&path, &bytes).unwrap();
                if let Ok(settings) = load(&args(&path)) {
                    check(&settings, &probes);
                }
            }
        }
    }
}
