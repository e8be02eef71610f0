//! The store: lock-free reads, single-flight fetches, a background refresh task.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use reqwest::Url;
use tokio::sync::{Mutex, Notify, oneshot, watch};
use tokio::time::Instant;

use super::config::{ChangeCallback, JwksConfig, KeySetLocation};
use super::error::{JwksError, KeysUnavailable, UnavailableReason};
use super::http::Fetcher;
use crate::auth::keyset::{KeySet, SkippedKey};

/// Verification keys fetched from a JWKS URL or an OpenID Connect issuer, kept fresh by a
/// background task.
///
/// - **Reads are lock-free**: [`current`](Self::current) is one atomic load; each refresh
///   replaces the whole key set with one atomic swap, so a reader never sees half a set.
/// - **Refresh** runs in the background when the set goes stale: `Cache-Control: max-age`
///   (minus `Age`) clamped to the configured bounds, the default interval otherwise; after a
///   failure it retries with exponential backoff.
/// - **Unknown `kid`**: [`refresh_for_unknown_kid`](Self::refresh_for_unknown_kid) refetches
///   at most once per cooldown, and however many requests miss at once, one fetch serves them
///   all (the others wait for its result).
/// - **Stale-if-error**: when refreshes fail, the last good set stays in force for the
///   configured window past its freshness; then [`current`](Self::current) reports
///   [`KeysUnavailable`] (answer 503 with `Retry-After`, not 401 or 500).
/// - **Odd keys are skipped**, not fatal; [`status`](Self::status) lists them. A document with
///   no usable key at all counts as a failed refresh (the keys in force are kept).
/// - **Change notification**: [`subscribe`](Self::subscribe) and
///   [`JwksConfig::on_change`] see every new set (a new [`KeySet::id`]).
///
/// The store is a cheap handle (`Clone` shares it). The background task ends when the last
/// handle is dropped; it runs on whatever tokio runtime (current-thread or multi-thread) the
/// store was started in.
#[derive(Clone)]
pub struct JwksStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: JwksConfig,
    /// The parsed JWKS URL; `None` for an OIDC issuer (found by discovery).
    jwks_url: Option<Url>,
    fetcher: Fetcher,
    snapshot: ArcSwap<Snapshot>,
    /// Held for the whole of a fetch: one fetch at a time, later callers wait for its result.
    gate: Arc<Mutex<Gate>>,
    /// Where fetches run, so that a cancelled caller does not cancel the fetch others wait for.
    runtime: tokio::runtime::Handle,
    /// Completed fetch attempts; a waiter that sees it move knows a fetch happened meanwhile.
    attempts: AtomicU64,
    state: StdMutex<State>,
    changes: watch::Sender<Arc<KeySet>>,
    /// Called with every new set before it comes into force, after the configured callback
    /// (see [`JwksStore::add_listener`]).
    listeners: StdMutex<Vec<ChangeCallback>>,
    /// Tells the background task that the schedule changed.
    wake: Arc<Notify>,
    /// Dropped with the store, which stops the background task.
    _stop: oneshot::Sender<()>,
}

/// What readers see; replaced as a whole.
struct Snapshot {
    keys: Option<Arc<KeySet>>,
    /// End of freshness plus the stale-if-error window.
    usable_until: Instant,
}

/// Owned by whoever fetches.
struct Gate {
    /// `jwks_uri` from discovery; forgotten after a failure so the next attempt rediscovers.
    discovered: Option<Url>,
    last_attempt: Option<Instant>,
}

/// Bookkeeping for scheduling and [`JwksStatus`]; never held across an await.
struct State {
    next_attempt: Instant,
    fresh_until: Option<Instant>,
    consecutive_failures: u32,
    last_success: Option<Instant>,
    last_error: Option<JwksError>,
    skipped: Vec<SkippedKey>,
}

#[derive(Clone, Copy)]
enum Trigger {
    /// The background timer: fetch if the schedule still says so.
    Scheduled,
    /// A caller that saw `seen` completed attempts: fetch unless one completed since.
    Demand { seen: u64 },
    /// An unknown `kid`: as `Demand`, and not within the cooldown after any fetch.
    UnknownKid { seen: u64 },
}

/// A snapshot of a store's health, for health checks, metrics and logs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwksStatus {
    /// Where the keys come from.
    pub location: KeySetLocation,
    /// Whether [`JwksStore::current`] offers keys right now.
    pub available: bool,
    /// Number of keys in force (0 when unavailable).
    pub keys: usize,
    /// Fetch attempts so far (successful or not).
    pub fetches: u64,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The last attempt's error, if it failed.
    pub last_error: Option<JwksError>,
    /// Time since the last successful fetch.
    pub since_last_success: Option<Duration>,
    /// Whether the keys in force are past their freshness (refreshes failing).
    pub stale: bool,
    /// Time until the background task's next attempt.
    pub next_attempt_in: Duration,
    /// Keys of the last fetched document that were skipped, and why.
    pub skipped: Vec<SkippedKey>,
}

impl JwksStore {
    /// Starts a store and its background task, which fetches the keys at once. Until that
    /// fetch succeeds, [`current`](Self::current) reports [`KeysUnavailable`].
    ///
    /// Fails on an invalid configuration, or when called outside a tokio runtime.
    pub fn spawn(config: JwksConfig) -> Result<Self, JwksError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| JwksError::NoRuntime)?;
        let jwks_url = match &config.location {
            KeySetLocation::JwksUrl(url) => Some(config.check_url(url)?),
            KeySetLocation::OidcIssuer(_) => None,
        };
        let fetcher = Fetcher::new(&config)?;
        let now = Instant::now();
        let (stop, stopped) = oneshot::channel();
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            config,
            jwks_url,
            fetcher,
            snapshot: ArcSwap::from_pointee(Snapshot {
                keys: None,
                usable_until: now,
            }),
            gate: Arc::new(Mutex::new(Gate {
                discovered: None,
                last_attempt: None,
            })),
            runtime: runtime.clone(),
            attempts: AtomicU64::new(0),
            state: StdMutex::new(State {
                next_attempt: now,
                fresh_until: None,
                consecutive_failures: 0,
                last_success: None,
                last_error: None,
                skipped: Vec::new(),
            }),
            changes: watch::Sender::new(Arc::new(KeySet::empty())),
            listeners: StdMutex::new(Vec::new()),
            wake: Arc::clone(&wake),
            _stop: stop,
        });
        runtime.spawn(refresh_in_background(Arc::downgrade(&inner), wake, stopped));
        Ok(Self { inner })
    }

    /// Starts a store and waits for its first key set: fails with the fetch's error (wrong
    /// URL, issuer mismatch, server down, ...), which catches configuration mistakes at
    /// start-up. Use [`spawn`](Self::spawn) to start serving (with 503s) while the identity
    /// provider is unreachable.
    pub async fn connect(config: JwksConfig) -> Result<Self, JwksError> {
        let store = Self::spawn(config)?;
        // `seen: 0`: if the background task's first fetch already finished, use its outcome.
        store.inner.refresh(Trigger::Demand { seen: 0 }).await;
        store.last_outcome()?;
        Ok(store)
    }

    /// The keys in force: one atomic load, no lock.
    ///
    /// `Err` when no set was ever loaded, or when refreshes have failed for longer than the
    /// stale-if-error window; the error carries a `Retry-After` hint.
    pub fn current(&self) -> Result<Arc<KeySet>, KeysUnavailable> {
        let snapshot = self.inner.snapshot.load();
        match &snapshot.keys {
            Some(keys) if Instant::now() < snapshot.usable_until => Ok(Arc::clone(keys)),
            Some(_) => Err(self.inner.unavailable(UnavailableReason::Expired)),
            None => Err(self.inner.unavailable(UnavailableReason::NotLoaded)),
        }
    }

    /// For a token whose `kid` is not in [`current`](Self::current) (or when no keys are
    /// available): refetches the set unless a fetch happened within the unknown-`kid`
    /// cooldown, then returns the keys in force. Concurrent callers share one fetch: whoever
    /// comes while a fetch is running waits for it and does not start another.
    ///
    /// The caller then looks `kid` up again; if it is still missing, the token is refused
    /// (`unknown kid`, 401).
    pub async fn refresh_for_unknown_kid(&self, kid: &str) -> Result<Arc<KeySet>, KeysUnavailable> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        if let Ok(keys) = self.current()
            && keys.by_kid(kid).is_some()
        {
            return Ok(keys);
        }
        self.inner.refresh(Trigger::UnknownKid { seen }).await;
        self.current()
    }

    /// Fetches the key set now (ignoring freshness and the cooldown) and returns the outcome.
    /// If another fetch completes while this call waits for its turn, that fetch's outcome is
    /// returned instead of fetching again.
    pub async fn refresh_now(&self) -> Result<Arc<KeySet>, JwksError> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        self.inner.refresh(Trigger::Demand { seen }).await;
        self.last_outcome()
    }

    /// A receiver that sees every new key set (every change of [`KeySet::id`]): wait with
    /// [`changed`](watch::Receiver::changed), read with
    /// [`borrow_and_update`](watch::Receiver::borrow_and_update). It starts with the set in
    /// force (an empty set before the first fetch) marked as seen.
    ///
    /// A watch keeps only the latest value: a subscriber that lags behind two quick changes
    /// sees only the second. To record *every* set (an audit log must), use
    /// [`JwksConfig::on_change`], which is called synchronously before each set comes into
    /// force.
    pub fn subscribe(&self) -> watch::Receiver<Arc<KeySet>> {
        self.inner.changes.subscribe()
    }

    /// Adds a listener called, like [`JwksConfig::on_change`], synchronously with every new
    /// key set before it comes into force (the set in force now is not replayed: read it with
    /// [`current`](Self::current)). A panicking listener is caught and logged.
    pub fn add_listener(&self, listener: impl Fn(&Arc<KeySet>) + Send + Sync + 'static) {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::new(listener));
    }

    /// Where the keys come from.
    pub fn location(&self) -> &KeySetLocation {
        &self.inner.config.location
    }

    /// The store's health: availability, fetch counts, the last error, skipped keys.
    pub fn status(&self) -> JwksStatus {
        let now = Instant::now();
        let current = self.current();
        let state = self.inner.state();
        JwksStatus {
            location: self.inner.config.location.clone(),
            available: current.is_ok(),
            keys: current.as_ref().map_or(0, |keys| keys.len()),
            fetches: self.inner.attempts.load(Ordering::Acquire),
            consecutive_failures: state.consecutive_failures,
            last_error: state.last_error.clone(),
            since_last_success: state.last_success.map(|t| now.saturating_duration_since(t)),
            stale: state.fresh_until.is_some_and(|t| now >= t),
            next_attempt_in: state.next_attempt.saturating_duration_since(now),
            skipped: state.skipped.clone(),
        }
    }

    fn last_outcome(&self) -> Result<Arc<KeySet>, JwksError> {
        if let Some(error) = self.inner.state().last_error.clone() {
            return Err(error);
        }
        let snapshot = self.inner.snapshot.load();
        Ok(snapshot.keys.clone().unwrap_or_default())
    }
}

impl fmt::Debug for JwksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status();
        f.debug_struct("JwksStore")
            .field("location", &status.location)
            .field("available", &status.available)
            .field("keys", &status.keys)
            .field("fetches", &status.fetches)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data updated in single statements: a panic elsewhere cannot
        // leave it half-written, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn unavailable(&self, reason: UnavailableReason) -> KeysUnavailable {
        let next = self.state().next_attempt;
        KeysUnavailable {
            reason,
            retry_after: next
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
        }
    }

    /// Fetches unless `trigger` says someone else already did (or the cooldown forbids it).
    ///
    /// The fetch runs as its own task, holding the gate: if the caller is cancelled (a request
    /// timeout, a client gone), the fetch still completes for everyone waiting behind it.
    async fn refresh(self: &Arc<Self>, trigger: Trigger) {
        let mut gate = Arc::clone(&self.gate).lock_owned().await;
        let now = Instant::now();
        let attempts = self.attempts.load(Ordering::Acquire);
        let due = match trigger {
            Trigger::Scheduled => self.state().next_attempt <= now,
            Trigger::Demand { seen } => attempts == seen,
            Trigger::UnknownKid { seen } => {
                attempts == seen
                    && gate
                        .last_attempt
                        .is_none_or(|last| now >= after(last, self.config.unknown_kid_cooldown))
            }
        };
        if due {
            let inner = Arc::clone(self);
            let fetch = self
                .runtime
                .spawn(async move { inner.fetch_and_apply(&mut gate).await });
            // A panic in the fetch is a bug, already reported by the runtime; the gate was
            // released while unwinding, so the store keeps working.
            let _ = fetch.await;
        }
    }

    async fn fetch_and_apply(&self, gate: &mut Gate) {
        let started = Instant::now();
        gate.last_attempt = Some(started);
        let result = self.fetch(gate).await;
        match result {
            Ok((keys, skipped, max_age)) => self.apply(started, keys, skipped, max_age),
            Err(error) => {
                // Rediscover next time: the issuer may have moved its keys.
                gate.discovered = None;
                let mut state = self.state();
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let delay = backoff(
                    self.config.retry_min,
                    self.config.retry_max,
                    state.consecutive_failures,
                );
                state.next_attempt = after(Instant::now(), delay);
                tracing::warn!(
                    location = %self.config.location,
                    error = %error,
                    code = error.code(),
                    failures = state.consecutive_failures,
                    retry_in = ?delay,
                    "key set refresh failed"
                );
                state.last_error = Some(error);
            }
        }
        self.attempts.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
    }

    async fn fetch(
        &self,
        gate: &mut Gate,
    ) -> Result<(KeySet, Vec<SkippedKey>, Option<Duration>), JwksError> {
        let url = match (&self.jwks_url, &self.config.location) {
            (Some(url), _) => url.clone(),
            (None, KeySetLocation::OidcIssuer(issuer)) => match &gate.discovered {
                Some(url) => url.clone(),
                None => {
                    let url = self.fetcher.discover(&self.config, issuer).await?;
                    gate.discovered = Some(url.clone());
                    url
                }
            },
            (None, KeySetLocation::JwksUrl(url)) => self.config.check_url(url)?,
        };
        let fetched = self.fetcher.get(&url).await?;
        let (keys, skipped) =
            KeySet::from_jwks(&fetched.body).map_err(|e| JwksError::InvalidJwks {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        for key in &skipped {
            tracing::warn!(
                location = %self.config.location,
                kid = key.kid.as_deref().unwrap_or("-"),
                reason = %key.reason,
                "JWKS key skipped"
            );
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys {
                url: url.to_string(),
                skipped: skipped.len(),
            });
        }
        Ok((keys, skipped, fetched.max_age))
    }

    fn apply(
        &self,
        started: Instant,
        keys: KeySet,
        skipped: Vec<SkippedKey>,
        max_age: Option<Duration>,
    ) {
        let config = &self.config;
        let fresh_for = max_age
            .unwrap_or(config.default_refresh)
            .clamp(config.min_refresh, config.max_refresh);
        let fresh_until = after(started, fresh_for);
        let keys = Arc::new(keys);
        let changed = self
            .snapshot
            .load()
            .keys
            .as_ref()
            .is_none_or(|old| old.id() != keys.id());
        if changed {
            tracing::info!(
                location = %config.location,
                keys = keys.len(),
                skipped = skipped.len(),
                "new key set"
            );
            let listeners = self
                .listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            for callback in config.on_change.iter().chain(&listeners) {
                // A panicking callback must not take the refresh task down with it.
                let call = std::panic::AssertUnwindSafe(|| callback(&keys));
                if std::panic::catch_unwind(call).is_err() {
                    tracing::error!(location = %config.location, "key set change callback panicked");
                }
            }
        }
        self.snapshot.store(Arc::new(Snapshot {
            keys: Some(Arc::clone(&keys)),
            usable_until: after(fresh_until, config.stale_if_error),
        }));
        if changed {
            self.changes.send_replace(keys);
        }
        let mut state = self.state();
        state.next_attempt = fresh_until;
        state.fresh_until = Some(fresh_until);
        state.consecutive_failures = 0;
        state.last_success = Some(Instant::now());
        state.last_error = None;
        state.skipped = skipped;
    }
}

/// `t + d`, saturating far in the future instead of overflowing.
fn after(t: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    t.checked_add(d.min(CENTURY)).unwrap_or(t)
}

/// `min`, doubled per consecutive failure after the first, at most `max`.
fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    min.saturating_mul(1 << doublings).min(max)
}

/// Sleeps until the next scheduled attempt and refreshes; ends when the store is dropped.
/// Holds only a weak reference while sleeping, so it never keeps the store alive.
async fn refresh_in_background(
    store: Weak<Inner>,
    wake: Arc<Notify>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let Some(deadline) = store.upgrade().map(|inner| inner.state().next_attempt) else {
            return;
        };
        tokio::select! {
            biased;
            _ = &mut stopped => return,
            () = wake.notified() => continue,
            () = tokio::time::sleep_until(deadline) => {}
        }
        let Some(inner) = store.upgrade() else { return };
        inner.refresh(Trigger::Scheduled).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(1), s(60), 1), s(1));
        assert_eq!(backoff(s(1), s(60), 2), s(2));
        assert_eq!(backoff(s(1), s(60), 6), s(32));
        assert_eq!(backoff(s(1), s(60), 7), s(60));
        assert_eq!(backoff(s(1), s(60), u32::MAX), s(60));
    }

    #[test]
    fn spawn_outside_a_runtime_is_an_error() {
        let config = JwksConfig::jwks_url("https://idp.example/jwks.json");
        assert_eq!(JwksStore::spawn(config).unwrap_err(), JwksError::NoRuntime);
    }
}
