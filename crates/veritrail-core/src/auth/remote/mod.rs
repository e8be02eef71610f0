//! Remote key sources: JWKS URLs and OpenID Connect discovery (feature `remote`).
//!
//! A [`JwksStore`] fetches a key set over https, keeps it fresh in the background and hands it
//! out without locks. It answers the peers' best-known failures: refetch storms on unknown
//! `kid`s (a cooldown, and one fetch however many requests miss at once), a whole JWKS refused
//! for one odd key (odd keys are skipped and reported), an empty 500 when the identity
//! provider is down (the last good keys serve for a bounded stale-if-error window, then
//! [`KeysUnavailable`] tells the middleware to answer 503), and a new HTTP client per refresh
//! (one client per store, with timeouts, a size limit and no redirects off the origin).
//!
//! Configurations are plain values that can be checked without a network:
//!
//! ```
//! use std::time::Duration;
//! use veritrail_core::auth::remote::{JwksConfig, KeySetLocation};
//!
//! let config = JwksConfig::jwks_url("https://www.googleapis.com/oauth2/v3/certs")
//!     .refresh_bounds(Duration::from_secs(5 * 60), Duration::from_secs(6 * 60 * 60))
//!     .stale_if_error(Duration::from_secs(30 * 60));
//! config.validate()?;
//! assert!(matches!(config.location(), KeySetLocation::JwksUrl(_)));
//! # Ok::<(), veritrail_core::auth::remote::JwksError>(())
//! ```
//!
//! A store for an OpenID Connect issuer, as an authenticator uses it:
//!
//! ```no_run
//! use veritrail_core::auth::remote::{JwksConfig, JwksStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = JwksConfig::oidc_issuer("https://login.example.com/realms/main")
//!     .on_change(|keys| println!("new key set with {} keys", keys.len()));
//! // `connect` waits for the first key set; `spawn` would start serving 503s meanwhile.
//! let store = JwksStore::connect(config).await?;
//!
//! let kid = "2024-09-key"; // from the token's header
//! let keys = store.current()?; // lock-free
//! let key = match keys.by_kid(kid) {
//!     Some(key) => Some(key.clone()),
//!     // Unknown kid: refetch (cooldown, single-flight) and look again.
//!     None => store.refresh_for_unknown_kid(kid).await?.by_kid(kid).cloned(),
//! };
//! println!("verify with {:?}", key.map(|k| k.alg));
//! # Ok(())
//! # }
//! ```
//!
//! [`KeysUnavailable`] (no keys yet, or stale-if-error window over) maps to 503 with
//! `Retry-After`; [`JwksError`] describes failed fetches ([`JwksStore::status`],
//! [`JwksStore::connect`], [`JwksStore::refresh_now`]).

mod config;
mod error;
mod http;
mod store;

pub use config::{JwksConfig, KeySetLocation};
pub use error::{JwksError, KeysUnavailable, UnavailableReason};
pub use store::{JwksStatus, JwksStore};
