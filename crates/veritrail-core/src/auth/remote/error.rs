//! Errors of the JWKS store.

use std::time::Duration;

/// Why a key set could not be fetched, or why a store could not be started.
///
/// Messages name the URL and what went wrong; a response body appears only as a short,
/// sanitised prefix (identity providers put useful hints there, but never whole pages).
/// [`JwksError::code`] gives a stable machine-readable reason for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The configured JWKS URL, issuer or discovered `jwks_uri` is not a valid absolute URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (truncated).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A plain-http URL was given without [`allow_insecure_http`](super::JwksConfig::allow_insecure_http).
    #[error(
        "refusing plain-http URL {url}: keys must come over https \
         (allow_insecure_http(true) is meant for tests on loopback)"
    )]
    InsecureUrl {
        /// The refused URL.
        url: String,
    },
    /// The configuration is inconsistent (for example a minimum above a maximum).
    #[error("invalid JWKS store configuration: {0}")]
    InvalidConfig(&'static str),
    /// The store was started outside a tokio runtime.
    #[error("the JWKS store must be started from within a tokio runtime")]
    NoRuntime,
    /// The HTTP client could not be built (TLS roots unavailable, for example).
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    /// The connection to the server failed.
    #[error("could not connect to {url}: {reason}")]
    Connect {
        /// The URL fetched.
        url: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The server did not answer in full within the configured request timeout.
    #[error("fetching {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL fetched.
        url: String,
        /// The configured request timeout.
        timeout: Duration,
    },
    /// Another transport failure (protocol error, connection reset, ...).
    #[error("fetching {url} failed: {reason}")]
    Transport {
        /// The URL fetched.
        url: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The server answered with a status other than 2xx.
    #[error("{url} answered HTTP {status} (body starts {body_prefix:?})")]
    Status {
        /// The URL fetched.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The first bytes of the body, control characters replaced.
        body_prefix: String,
    },
    /// The server redirected to another origin (scheme, host or port); such redirects are not
    /// followed so that keys only ever come from the configured host.
    #[error("{url} redirected to another origin; not followed")]
    RedirectRefused {
        /// The URL fetched.
        url: String,
    },
    /// The response was larger than the configured maximum.
    #[error("{url} sent more than {limit} bytes")]
    TooLarge {
        /// The URL fetched.
        url: String,
        /// The configured maximum response size.
        limit: usize,
    },
    /// The OpenID Connect discovery document could not be used.
    #[error("{url} is not a usable OpenID Connect discovery document: {reason}")]
    Discovery {
        /// The discovery URL.
        url: String,
        /// What is wrong with the document.
        reason: String,
    },
    /// The discovery document names another issuer than the configured one (OpenID Connect
    /// Discovery 1.0 §4.3 requires them to be identical).
    #[error("issuer mismatch: configured {expected:?}, the discovery document says {found:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer in the discovery document (truncated).
        found: String,
    },
    /// The response is not a JWKS document at all.
    #[error("{url} did not return a JWKS document: {reason}")]
    InvalidJwks {
        /// The URL fetched.
        url: String,
        /// The parser's explanation.
        reason: String,
    },
    /// The JWKS document parsed but none of its keys is usable; the keys in force are kept.
    #[error("{url} published no usable key ({skipped} skipped)")]
    NoUsableKeys {
        /// The URL fetched.
        url: String,
        /// How many keys were skipped.
        skipped: usize,
    },
}

impl JwksError {
    /// A stable, machine-readable reason code (`snake_case`), for logs, metrics and audit
    /// events.
    ///
    /// ```
    /// use veritrail_core::auth::remote::JwksError;
    /// let e = JwksError::IssuerMismatch { expected: "a".into(), found: "b".into() };
    /// assert_eq!(e.code(), "issuer_mismatch");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } => "invalid_url",
            Self::InsecureUrl { .. } => "insecure_url",
            Self::InvalidConfig(_) => "invalid_config",
            Self::NoRuntime => "no_runtime",
            Self::Client(_) => "http_client",
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Status { .. } => "http_status",
            Self::RedirectRefused { .. } => "redirect_refused",
            Self::TooLarge { .. } => "too_large",
            Self::Discovery { .. } => "discovery",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::InvalidJwks { .. } => "invalid_jwks",
            Self::NoUsableKeys { .. } => "no_usable_keys",
        }
    }
}

/// Why [`JwksStore::current`](super::JwksStore::current) has no keys to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnavailableReason {
    /// No key set has been fetched successfully yet.
    NotLoaded,
    /// Refreshes have failed for longer than the stale-if-error window.
    Expired,
}

/// No verification keys can be offered right now: the middleware answers 503 with
/// `Retry-After`, never 401 (the token may be fine) and never an empty 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}; next attempt in {retry_after:?}", match .reason {
    UnavailableReason::NotLoaded => "no key set has been loaded yet",
    UnavailableReason::Expired => "the key set expired: refreshes failed for longer than the stale-if-error window",
})]
pub struct KeysUnavailable {
    /// Why no keys are available.
    pub reason: UnavailableReason,
    /// When the store will try again (a hint for `Retry-After`; at least one second).
    pub retry_after: Duration,
}

/// Cuts `s` to at most `max` characters and replaces control characters, so that text from
/// a remote server can be shown in an error message safely.
pub(super) fn prefix(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}
