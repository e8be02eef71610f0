//! Where the token-checking keys come from (`--jwks FILE|URL`, `--oidc ISSUER_URL`,
//! `--hs-secret-file FILE`) and the [`Authenticator`] built from them. `veritrail proxy` and
//! `veritrail token verify` both build theirs here, so a token the one accepts the other
//! accepts.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use veritrail_core::auth::remote::{JwksConfig, JwksStore};
use veritrail_core::auth::{Authenticator, Issuer, KeySet, TokenSource};

use crate::cli::KeySourceArgs;

/// Where the token-checking keys come from.
#[derive(Debug)]
pub(crate) enum KeySource {
    /// A JWKS file.
    JwksFile(PathBuf),
    /// A JWKS URL, fetched and refreshed.
    JwksUrl(String),
    /// An OpenID Connect issuer's discovery document.
    Oidc(String),
    /// A file holding an HMAC secret (never printed).
    HmacSecretFile(PathBuf),
}

impl KeySource {
    /// The key source the flags name; `None` when they name none.
    pub(crate) fn from_args(args: &KeySourceArgs) -> Result<Option<Self>> {
        Self::choose(
            args.jwks.clone(),
            args.oidc.clone(),
            args.hs_secret_file.clone(),
            PathBuf::from,
        )
    }

    /// At most one of the three key sources (`path` resolves file names); `None` when none is
    /// given. A `jwks` starting with `http://` or `https://` is a URL, anything else a file.
    pub(crate) fn choose(
        jwks: Option<String>,
        oidc: Option<String>,
        hs_secret_file: Option<PathBuf>,
        path: impl Fn(String) -> PathBuf,
    ) -> Result<Option<Self>> {
        match (jwks, oidc, hs_secret_file) {
            (None, None, None) => Ok(None),
            (Some(jwks), None, None) => Ok(Some(
                if jwks.starts_with("https://") || jwks.starts_with("http://") {
                    KeySource::JwksUrl(jwks)
                } else {
                    KeySource::JwksFile(path(jwks))
                },
            )),
            (None, Some(oidc), None) => Ok(Some(KeySource::Oidc(oidc))),
            (None, None, Some(file)) => Ok(Some(KeySource::HmacSecretFile(path(
                file.to_string_lossy().into_owned(),
            )))),
            _ => bail!("give only one of jwks, oidc and hs_secret_file"),
        }
    }

    /// The issuer tokens must name when none is configured: the OpenID Connect issuer's URL.
    pub(crate) fn default_issuer(&self) -> Option<&str> {
        match self {
            KeySource::Oidc(url) => Some(url),
            _ => None,
        }
    }
}

/// What [`authenticator`] built.
pub(crate) struct Keys {
    /// Verifies tokens of the configured issuer and audience with the configured keys.
    pub(crate) authenticator: Authenticator,
    /// The store of keys fetched from a URL (for readiness and metrics); `None` otherwise.
    #[cfg_attr(
        not(feature = "proxy"),
        expect(dead_code, reason = "only the proxy reports on its key store")
    )]
    pub(crate) store: Option<Arc<JwksStore>>,
}

/// Builds the authenticator for tokens of `issuer` for `audience`, with keys from `source`,
/// reading tokens from `token_sources` (none: the `Authorization: Bearer` header). Must run
/// inside a tokio runtime (fetched keys are refreshed by a task). An engine built over it
/// records the key sets in force in its log (at start and whenever a fetched set changes), as
/// for every library user; a shared secret is never recorded.
pub(crate) async fn authenticator(
    source: &KeySource,
    (issuer, audience): (&str, &str),
    token_sources: &[TokenSource],
) -> Result<Keys> {
    let mut store = None;
    let config = Issuer::new(issuer).audience(audience);
    let config = match source {
        KeySource::JwksFile(path) => {
            let json = std::fs::read(path)
                .with_context(|| format!("cannot read the JWKS file {}", path.display()))?;
            let (keys, skipped) = KeySet::from_jwks(&json)
                .with_context(|| format!("{} is not a usable JWKS", path.display()))?;
            for s in &skipped {
                eprintln!("warning: {}: a key was skipped: {s:?}", path.display());
            }
            config.keys(keys)
        }
        KeySource::HmacSecretFile(path) => {
            let secret = std::fs::read(path)
                .with_context(|| format!("cannot read the secret file {}", path.display()))?;
            let keys = KeySet::from_hmac_secret_any(secret.trim_ascii()).with_context(|| {
                format!("{} does not hold a usable HMAC secret", path.display())
            })?;
            config.keys(keys).allow_hmac()
        }
        KeySource::JwksUrl(url) => {
            let remote = remote(JwksConfig::jwks_url(url), url).await?;
            store = Some(Arc::clone(&remote));
            config.key_source(remote)
        }
        KeySource::Oidc(url) => {
            let remote = remote(JwksConfig::oidc_issuer(url), url).await?;
            store = Some(Arc::clone(&remote));
            config.key_source(remote)
        }
    };
    let mut builder = Authenticator::builder().issuer(config);
    if !token_sources.is_empty() {
        builder = builder.token_sources(token_sources.iter().cloned());
    }
    let authenticator = builder.build().context("invalid authentication settings")?;
    Ok(Keys {
        authenticator,
        store,
    })
}

/// A remote key store, loaded once before this returns.
async fn remote(config: JwksConfig, url: &str) -> Result<Arc<JwksStore>> {
    let config = config.allow_insecure_http(is_loopback_http(url));
    let store = JwksStore::connect(config)
        .await
        .with_context(|| format!("cannot load the keys from {url}"))?;
    Ok(Arc::new(store))
}

/// Plain http is accepted only on loopback (a test or a sidecar identity provider).
fn is_loopback_http(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    uri.scheme_str() == Some("http")
        && uri.host().is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}
