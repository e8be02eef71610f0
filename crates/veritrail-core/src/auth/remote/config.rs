//! Configuration of a [`JwksStore`](super::JwksStore).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use super::error::{JwksError, prefix};
use crate::auth::keyset::KeySet;

/// Called with each new key set, before it comes into force.
pub(super) type ChangeCallback = Arc<dyn Fn(&Arc<KeySet>) + Send + Sync>;

/// Where a store gets its keys. Displays as the URL (with a note for discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySetLocation {
    /// A JWKS document at this URL.
    JwksUrl(String),
    /// The `jwks_uri` of this OpenID Connect issuer, found through
    /// `{issuer}/.well-known/openid-configuration`.
    OidcIssuer(String),
}

impl fmt::Display for KeySetLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JwksUrl(url) => f.write_str(url),
            Self::OidcIssuer(issuer) => write!(f, "{issuer} (OpenID Connect discovery)"),
        }
    }
}

/// How a [`JwksStore`](super::JwksStore) fetches and keeps its keys.
///
/// Every setter changes one thing; [`validate`](Self::validate) (also run when a store is
/// started) checks the whole. The defaults suit a public identity provider:
///
/// | setting | default |
/// |---|---|
/// | refresh interval without `Cache-Control: max-age` | 5 min |
/// | bounds on `max-age` | 1 min ..= 1 h |
/// | unknown-`kid` refetch cooldown | 30 s |
/// | stale-if-error window | 1 h |
/// | retry backoff after a failure | 1 s doubling to 1 min |
/// | connect / total request timeout | 5 s / 10 s |
/// | maximum response size | 1 MiB |
/// | plain http | refused |
///
/// ```
/// use std::time::Duration;
/// use veritrail_core::auth::remote::JwksConfig;
///
/// let config = JwksConfig::oidc_issuer("https://login.example.com/realms/main")
///     .refresh_bounds(Duration::from_secs(60), Duration::from_secs(3600))
///     .unknown_kid_cooldown(Duration::from_secs(10))
///     .stale_if_error(Duration::from_secs(15 * 60));
/// assert!(config.validate().is_ok());
///
/// // Keys over plain http are refused unless explicitly allowed (tests on loopback).
/// let insecure = JwksConfig::jwks_url("http://127.0.0.1:8080/jwks.json");
/// assert_eq!(insecure.validate().unwrap_err().code(), "insecure_url");
/// assert!(insecure.allow_insecure_http(true).validate().is_ok());
/// ```
#[derive(Clone)]
pub struct JwksConfig {
    pub(super) location: KeySetLocation,
    pub(super) default_refresh: Duration,
    pub(super) min_refresh: Duration,
    pub(super) max_refresh: Duration,
    pub(super) unknown_kid_cooldown: Duration,
    pub(super) stale_if_error: Duration,
    pub(super) retry_min: Duration,
    pub(super) retry_max: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) request_timeout: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) allow_insecure_http: bool,
    pub(super) on_change: Option<ChangeCallback>,
}

impl fmt::Debug for JwksConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksConfig")
            .field("location", &self.location)
            .field("default_refresh", &self.default_refresh)
            .field("min_refresh", &self.min_refresh)
            .field("max_refresh", &self.max_refresh)
            .field("unknown_kid_cooldown", &self.unknown_kid_cooldown)
            .field("stale_if_error", &self.stale_if_error)
            .field("retry_min", &self.retry_min)
            .field("retry_max", &self.retry_max)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("on_change", &self.on_change.as_ref().map(|_| "callback"))
            .finish()
    }
}

impl JwksConfig {
    /// Keys from the JWKS document at `url` (https).
    pub fn jwks_url(url: impl Into<String>) -> Self {
        Self::new(KeySetLocation::JwksUrl(url.into()))
    }

    /// Keys of an OpenID Connect issuer: the store fetches
    /// `{issuer}/.well-known/openid-configuration`, requires its `issuer` to equal `issuer`
    /// exactly, and then fetches the document's `jwks_uri`.
    pub fn oidc_issuer(issuer: impl Into<String>) -> Self {
        Self::new(KeySetLocation::OidcIssuer(issuer.into()))
    }

    fn new(location: KeySetLocation) -> Self {
        Self {
            location,
            default_refresh: Duration::from_secs(5 * 60),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(60 * 60),
            unknown_kid_cooldown: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(60 * 60),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            allow_insecure_http: false,
            on_change: None,
        }
    }

    /// Where the keys come from.
    pub fn location(&self) -> &KeySetLocation {
        &self.location
    }

    /// How long a key set stays fresh when the response carries no `Cache-Control: max-age`
    /// (still clamped to the [bounds](Self::refresh_bounds)).
    pub fn default_refresh(mut self, interval: Duration) -> Self {
        self.default_refresh = interval;
        self
    }

    /// Bounds on how long a key set stays fresh: `Cache-Control: max-age` (minus `Age`) is
    /// honoured within `[min, max]`, so a server cannot make the store poll it constantly or
    /// keep a key set forever.
    pub fn refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_refresh = min;
        self.max_refresh = max;
        self
    }

    /// After any fetch, an unknown `kid` does not cause another fetch before this much time
    /// has passed: tokens with made-up `kid`s cannot make the store hammer the identity
    /// provider.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.unknown_kid_cooldown = cooldown;
        self
    }

    /// How long the last key set stays in use after it went stale while refreshes failed.
    /// After that the store reports [`KeysUnavailable`](super::KeysUnavailable) (a 503),
    /// rather than trusting keys the identity provider may have revoked long ago.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Delay before retrying after a failed fetch: `min`, doubling after each consecutive
    /// failure, at most `max`.
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min;
        self.retry_max = max;
        self
    }

    /// Maximum time to establish a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Maximum time for one whole request, from connecting until the last byte of the body.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Maximum size of a response body (discovery document or JWKS).
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Accept plain-http URLs. Off by default: keys fetched over http can be replaced by
    /// anyone on the path. Meant for tests against a server on loopback.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Calls `callback` with every new key set (whenever [`KeySet::id`] changes), *before* the
    /// set comes into force: an audit writer that records the set from here records it before
    /// any token verified with it. The callback runs on the refreshing task and must not block.
    /// See also [`JwksStore::subscribe`](super::JwksStore::subscribe).
    pub fn on_change(mut self, callback: impl Fn(&Arc<KeySet>) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(callback));
        self
    }

    /// Checks the configuration: URLs absolute and https (unless allowed otherwise), bounds
    /// ordered, timeouts and limits non-zero.
    pub fn validate(&self) -> Result<(), JwksError> {
        match &self.location {
            KeySetLocation::JwksUrl(url) => {
                self.check_url(url)?;
            }
            KeySetLocation::OidcIssuer(issuer) => {
                self.discovery_url(issuer)?;
            }
        }
        if self.min_refresh > self.max_refresh {
            return Err(JwksError::InvalidConfig(
                "refresh_bounds: the minimum is above the maximum",
            ));
        }
        if self.min_refresh.is_zero() {
            return Err(JwksError::InvalidConfig(
                "refresh_bounds: the minimum must be above zero",
            ));
        }
        if self.retry_min.is_zero() || self.retry_min > self.retry_max {
            return Err(JwksError::InvalidConfig(
                "retry_backoff: need 0 < minimum <= maximum",
            ));
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(JwksError::InvalidConfig("timeouts must be above zero"));
        }
        if self.max_response_bytes == 0 {
            return Err(JwksError::InvalidConfig(
                "max_response_bytes must be above zero",
            ));
        }
        Ok(())
    }

    /// Parses `url` and applies the https rule to it.
    pub(super) fn check_url(&self, url: &str) -> Result<Url, JwksError> {
        let parsed = Url::parse(url).map_err(|e| JwksError::InvalidUrl {
            url: prefix(url, 200),
            reason: e.to_string(),
        })?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_insecure_http => {}
            "http" => {
                return Err(JwksError::InsecureUrl {
                    url: prefix(url, 200),
                });
            }
            other => {
                return Err(JwksError::InvalidUrl {
                    url: prefix(url, 200),
                    reason: format!("unsupported scheme {other:?}"),
                });
            }
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(JwksError::InvalidUrl {
                url: prefix(url, 200),
                reason: "no host".into(),
            });
        }
        Ok(parsed)
    }

    /// `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4: a
    /// trailing `/` of the issuer is removed first).
    pub(super) fn discovery_url(&self, issuer: &str) -> Result<Url, JwksError> {
        let issuer_url = self.check_url(issuer)?;
        if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
            return Err(JwksError::InvalidUrl {
                url: prefix(issuer, 200),
                reason: "an issuer has no query or fragment".into(),
            });
        }
        let base = issuer.strip_suffix('/').unwrap_or(issuer);
        self.check_url(&format!("{base}/.well-known/openid-configuration"))
    }
}
