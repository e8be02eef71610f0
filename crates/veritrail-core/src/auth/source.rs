//! Where an issuer's keys come from: a fixed [`KeySet`] or a dynamic [`KeySource`].
//!
//! The authenticator asks a source for its [`current`](KeySource::current) keys on every
//! verification (this must be cheap: an atomic load), and calls
//! [`refresh_for_unknown_kid`](KeySource::refresh_for_unknown_kid) when a token names a `kid`
//! the current set lacks, or when the source has no keys at all. The remote JWKS store
//! (feature `remote`) implements it with a cooldown and single-flight fetches.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::keyset::KeySet;

/// The future returned by [`KeySource::refresh_for_unknown_kid`].
pub type KeySetFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<KeySet>, SourceUnavailable>> + Send + 'a>>;

/// Called with every new key set of a source whose keys change, before the set comes into
/// force (see [`KeySource::watch`]). It runs on the source's refreshing task: it must not block.
pub type KeySetListener = Arc<dyn Fn(&Arc<KeySet>) + Send + Sync>;

/// A source of verification keys for one issuer.
pub trait KeySource: Send + Sync {
    /// The keys in force now. Called on every verification: make it cheap (no I/O, no lock).
    /// `Err` when the source has no usable keys (never loaded, or expired).
    fn current(&self) -> Result<Arc<KeySet>, SourceUnavailable>;

    /// A token names `kid`, which [`current`](Self::current) lacks (or there were no keys):
    /// refetch if the source's policy allows (cooldown, one fetch for many callers) and return
    /// the keys in force afterwards. The authenticator looks the `kid` up once more and
    /// refuses the token if it is still missing.
    fn refresh_for_unknown_kid<'a>(&'a self, kid: &'a str) -> KeySetFuture<'a>;

    /// A short description for errors and logs (a URL, "static keys"); never key material.
    fn describe(&self) -> String {
        "key source".to_owned()
    }

    /// Registers `listener`, called with every new key set before it comes into force, so
    /// that whatever the listener records precedes every token verified with that set (the
    /// engine records each set in the audit log this way). Returns `true` when the listener
    /// was registered, `false` when this source's keys never change (the default: a fixed set
    /// has nothing to report after [`current`](Self::current)).
    fn watch(&self, listener: KeySetListener) -> bool {
        let _ = listener;
        false
    }
}

/// No keys can be offered right now: the request is answered with 503 and `Retry-After`,
/// not 401 (the token may well be valid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("verification keys unavailable: {reason}")]
pub struct SourceUnavailable {
    /// Why (no key material, no token content).
    pub reason: String,
    /// When the source will try again, as a hint for `Retry-After`.
    pub retry_after: Option<Duration>,
}

/// A fixed key set: PEM, JWK or JWKS files, or an HMAC secret.
#[derive(Clone)]
pub struct StaticKeys(Arc<KeySet>);

impl StaticKeys {
    /// Wraps a key set.
    pub fn new(keys: impl Into<Arc<KeySet>>) -> Self {
        StaticKeys(keys.into())
    }

    /// The key set.
    pub fn keys(&self) -> &Arc<KeySet> {
        &self.0
    }
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StaticKeys").field(&self.0).finish()
    }
}

impl KeySource for StaticKeys {
    fn current(&self) -> Result<Arc<KeySet>, SourceUnavailable> {
        Ok(Arc::clone(&self.0))
    }

    fn refresh_for_unknown_kid<'a>(&'a self, _kid: &'a str) -> KeySetFuture<'a> {
        Box::pin(std::future::ready(Ok(Arc::clone(&self.0))))
    }

    fn describe(&self) -> String {
        format!("static keys ({})", self.0.len())
    }
}

#[cfg(feature = "remote")]
mod remote_impl {
    use super::{KeySetFuture, KeySetListener, KeySource, SourceUnavailable};
    use crate::auth::keyset::KeySet;
    use crate::auth::remote::{JwksStore, KeysUnavailable};
    use std::sync::Arc;

    impl From<KeysUnavailable> for SourceUnavailable {
        fn from(e: KeysUnavailable) -> Self {
            SourceUnavailable {
                reason: e.to_string(),
                retry_after: Some(e.retry_after),
            }
        }
    }

    impl KeySource for JwksStore {
        fn current(&self) -> Result<Arc<KeySet>, SourceUnavailable> {
            JwksStore::current(self).map_err(Into::into)
        }

        fn refresh_for_unknown_kid<'a>(&'a self, kid: &'a str) -> KeySetFuture<'a> {
            Box::pin(async move {
                JwksStore::refresh_for_unknown_kid(self, kid)
                    .await
                    .map_err(Into::into)
            })
        }

        fn describe(&self) -> String {
            format!("JWKS {}", self.location())
        }

        fn watch(&self, listener: KeySetListener) -> bool {
            self.add_listener(move |keys: &Arc<KeySet>| listener(keys));
            true
        }
    }
}
