//! [`Authenticator`]: finds and verifies tokens for several issuers.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use super::backend::{self, SignatureFailure};
use super::cache::{CacheEntry, TokenCache};
use super::clock::{Clock, SystemClock};
use super::error::AuthError;
use super::extract::{FoundToken, TokenRequest, TokenSource, find_token};
use super::identity::{Identity, IdentityInner};
use super::issuer::{Issuer, audiences, numeric_date, string_claim};
use super::jws::{self, SizeLimits, UnverifiedToken};
use super::keyset::{KeySet, VerificationKey};

/// The default maximum token length, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The default maximum length of the encoded JOSE header, in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 2 * 1024;
/// The default capacity of the verified-token cache, in tokens.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// A token without `kid` is tried against at most this many keys of its issuer.
const MAX_KIDLESS_CANDIDATES: usize = 4;

/// A synchronous custom check, run after every successful verification (cache hits
/// included): revocation lists, tenant rules. Closures `Fn(&Identity) -> Result<(), AuthError>`
/// implement it; use [`AuthError::Rejected`] with your own reason code.
pub trait TokenCheck: Send + Sync {
    /// `Err` refuses the token.
    fn check(&self, identity: &Identity) -> Result<(), AuthError>;
}

impl<F> TokenCheck for F
where
    F: Fn(&Identity) -> Result<(), AuthError> + Send + Sync,
{
    fn check(&self, identity: &Identity) -> Result<(), AuthError> {
        self(identity)
    }
}

/// The future of an [`AsyncTokenCheck`].
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send + 'a>>;

/// An asynchronous custom check (a revocation service, a `jti` replay store), run after the
/// synchronous ones on every successful verification, cache hits included. Closures
/// `Fn(Identity) -> impl Future<Output = Result<(), AuthError>>` implement it.
pub trait AsyncTokenCheck: Send + Sync {
    /// `Err` refuses the token.
    fn check<'a>(&'a self, identity: &'a Identity) -> CheckFuture<'a>;
}

impl<F, Fut> AsyncTokenCheck for F
where
    F: Fn(Identity) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), AuthError>> + Send + 'static,
{
    fn check<'a>(&'a self, identity: &'a Identity) -> CheckFuture<'a> {
        Box::pin(self(identity.clone()))
    }
}

/// Why an authenticator configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No issuer configured.
    #[error("no issuer configured")]
    NoIssuer,
    /// Two issuers with the same `iss`.
    #[error("issuer {0:?} is configured twice")]
    DuplicateIssuer(String),
    /// An issuer without keys.
    #[error("issuer {0:?} has no key source")]
    NoKeys(String),
    /// An issuer that checks audiences but accepts none.
    #[error(
        "issuer {0:?} checks the audience but none is configured: add one, or skip the check explicitly"
    )]
    NoAudience(String),
    /// HMAC keys for an issuer that did not allow them.
    #[error("issuer {0:?} has HMAC keys but HMAC is not allowed for it (Issuer::allow_hmac)")]
    HmacNotAllowed(String),
    /// No token source.
    #[error("no token source configured")]
    NoTokenSource,
}

/// Builds an [`Authenticator`].
pub struct AuthenticatorBuilder {
    issuers: Vec<Issuer>,
    sources: Vec<TokenSource>,
    clock: Arc<dyn Clock>,
    cache_capacity: usize,
    limits: SizeLimits,
    checks: Vec<Arc<dyn TokenCheck>>,
    async_checks: Vec<Arc<dyn AsyncTokenCheck>>,
}

impl fmt::Debug for AuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatorBuilder")
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

impl AuthenticatorBuilder {
    /// Trusts an issuer (call once per issuer).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Where tokens are looked for (default: `Authorization: Bearer` only).
    pub fn token_sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// The time source (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The verified-token cache's capacity in tokens; 0 turns the cache off (default:
    /// [`DEFAULT_CACHE_CAPACITY`]). See the `cache` section of the module docs for the
    /// trade-off.
    pub fn cache_capacity(mut self, tokens: usize) -> Self {
        self.cache_capacity = tokens;
        self
    }

    /// The longest token accepted, in bytes (default [`DEFAULT_MAX_TOKEN_BYTES`]).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.limits.max_token = max;
        self
    }

    /// The longest encoded JOSE header accepted (default [`DEFAULT_MAX_HEADER_BYTES`]).
    pub fn max_header_bytes(mut self, max: usize) -> Self {
        self.limits.max_header = max;
        self
    }

    /// Adds a synchronous custom check.
    pub fn check(mut self, check: impl TokenCheck + 'static) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds an asynchronous custom check.
    pub fn async_check(mut self, check: impl AsyncTokenCheck + 'static) -> Self {
        self.async_checks.push(Arc::new(check));
        self
    }

    /// Checks the configuration and builds the authenticator. Also installs the crate's crypto
    /// backend as jsonwebtoken's process default (see [`backend`](super::backend)).
    pub fn build(self) -> Result<Authenticator, ConfigError> {
        backend::install_default_provider();
        if self.issuers.is_empty() {
            return Err(ConfigError::NoIssuer);
        }
        if self.sources.is_empty() {
            return Err(ConfigError::NoTokenSource);
        }
        let mut by_iss = HashMap::new();
        for (i, issuer) in self.issuers.iter().enumerate() {
            if by_iss.insert(issuer.iss.clone(), i).is_some() {
                return Err(ConfigError::DuplicateIssuer(issuer.iss.clone()));
            }
            let Some(source) = &issuer.source else {
                return Err(ConfigError::NoKeys(issuer.iss.clone()));
            };
            if issuer.check_audience && issuer.audiences.is_empty() {
                return Err(ConfigError::NoAudience(issuer.iss.clone()));
            }
            if !issuer.allow_hmac
                && let Ok(keys) = source.current()
                && keys.keys().iter().any(|k| k.is_symmetric())
            {
                return Err(ConfigError::HmacNotAllowed(issuer.iss.clone()));
            }
        }
        Ok(Authenticator {
            inner: Arc::new(Inner {
                issuers: self.issuers,
                by_iss,
                sources: self.sources,
                clock: self.clock,
                cache: (self.cache_capacity > 0).then(|| TokenCache::new(self.cache_capacity)),
                limits: self.limits,
                checks: self.checks,
                async_checks: self.async_checks,
            }),
        })
    }
}

struct Inner {
    issuers: Vec<Issuer>,
    by_iss: HashMap<String, usize>,
    sources: Vec<TokenSource>,
    clock: Arc<dyn Clock>,
    cache: Option<TokenCache>,
    limits: SizeLimits,
    checks: Vec<Arc<dyn TokenCheck>>,
    async_checks: Vec<Arc<dyn AsyncTokenCheck>>,
}

/// Verifies JWTs for a set of trusted issuers. Framework-neutral; cheap to clone (one `Arc`).
///
/// The pipeline for one token: size limits → strict split and base64url → header rules (no
/// `none`, no `jwk`/`jku`/`x5u`/`x5c`, no `crit`) → issuer chosen by the unverified `iss`
/// (only that issuer's keys are considered) → `typ` → key by `kid` (unknown `kid`: one refresh
/// of a dynamic source) → the key's algorithm must equal `alg` → ECDSA zero-signature check →
/// signature → `exp`/`nbf`/`iat`/age → `aud` → required claims → custom checks.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuers", &self.inner.issuers)
            .field("sources", &self.inner.sources)
            .field("cache", &self.inner.cache.is_some())
            .finish_non_exhaustive()
    }
}

enum KeyChoice {
    Found(Vec<Arc<VerificationKey>>),
    Refresh,
}

/// Where the synchronous part of a verification got to.
enum Step {
    Done(Result<Identity, AuthError>),
    /// The keys of this issuer (by index) must be fetched first.
    Refresh(usize),
}

impl Authenticator {
    /// Starts a configuration.
    pub fn builder() -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            issuers: Vec::new(),
            sources: vec![TokenSource::AuthorizationBearer],
            clock: Arc::new(SystemClock),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            limits: SizeLimits {
                max_token: DEFAULT_MAX_TOKEN_BYTES,
                max_header: DEFAULT_MAX_HEADER_BYTES,
            },
            checks: Vec::new(),
            async_checks: Vec::new(),
        }
    }

    /// The configured issuers.
    pub fn issuers(&self) -> &[Issuer] {
        &self.inner.issuers
    }

    /// The configured token sources, in order.
    pub fn token_sources(&self) -> &[TokenSource] {
        &self.inner.sources
    }

    /// Headers that may carry a token (lower case): never record them.
    pub fn token_headers(&self) -> Vec<String> {
        self.inner
            .sources
            .iter()
            .filter_map(TokenSource::header_name)
            .collect()
    }

    /// Query parameters that may carry a token: never record them.
    pub fn token_query_params(&self) -> Vec<String> {
        self.inner
            .sources
            .iter()
            .filter_map(|s| match s {
                TokenSource::Query(q) => Some(q.clone()),
                _ => None,
            })
            .collect()
    }

    /// The number of tokens in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// Finds the token in a request (`Ok(None)` if there is none; two tokens are an error).
    pub fn find_token(&self, req: &dyn TokenRequest) -> Result<Option<FoundToken>, AuthError> {
        find_token(&self.inner.sources, req)
    }

    /// Finds the token in a request and verifies it. The request is only read before the
    /// returned future is first polled, so it need not be `Sync`.
    pub fn authenticate(
        &self,
        req: &dyn TokenRequest,
    ) -> impl Future<Output = Result<Identity, AuthError>> + Send + '_ {
        let found = self.find_token(req);
        async move {
            let found = found?.ok_or(AuthError::TokenMissing)?;
            self.verify(&found.token).await
        }
    }

    /// Verifies one token. With a static key source and no async checks the future is ready
    /// on its first poll.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let identity = match self.verify_token(token, None) {
            Step::Done(result) => result?,
            Step::Refresh(issuer) => {
                let kid = jws::parse(token, self.inner.limits)?.kid;
                let source = self.inner.issuers[issuer].source.as_ref();
                let keys = match source {
                    Some(source) => source
                        .refresh_for_unknown_kid(kid.as_deref().unwrap_or(""))
                        .await
                        .map_err(|e| AuthError::KeysUnavailable {
                            retry_after: e.retry_after,
                        }),
                    None => Err(AuthError::KeysUnavailable { retry_after: None }),
                };
                match self.verify_token(token, Some(keys?)) {
                    Step::Done(result) => result?,
                    Step::Refresh(_) => unreachable!("no refresh after a refresh"),
                }
            }
        };
        self.run_checks(&identity).await?;
        Ok(identity)
    }

    /// Verifies one token at once when nothing has to wait: a cache hit, or a miss whose key
    /// is in its issuer's current set — with no [`AsyncTokenCheck`] configured. `None` when
    /// it would have to wait (an unknown `kid` whose keys must be fetched, or an async check):
    /// call [`verify`](Self::verify) then. The answer is the one `verify` would give.
    pub fn verify_now(&self, token: &str) -> Option<Result<Identity, AuthError>> {
        if !self.inner.async_checks.is_empty() {
            return None;
        }
        match self.verify_token(token, None) {
            Step::Done(result) => Some(result.and_then(|identity| {
                for check in &self.inner.checks {
                    check.check(&identity)?;
                }
                Ok(identity)
            })),
            Step::Refresh(_) => None,
        }
    }

    async fn run_checks(&self, identity: &Identity) -> Result<(), AuthError> {
        for check in &self.inner.checks {
            check.check(identity)?;
        }
        for check in &self.inner.async_checks {
            check.check(identity).await?;
        }
        Ok(())
    }

    /// The synchronous part of a verification: the cache, then the keys in force — or, after
    /// a refresh, `refreshed` (the cache was already missed then). `Step::Refresh(issuer)`
    /// when the token's key must be fetched first.
    fn verify_token(&self, token: &str, refreshed: Option<Arc<KeySet>>) -> Step {
        let inner = &*self.inner;
        // Before hashing: a huge token must not cost a digest of itself.
        if token.len() > inner.limits.max_token {
            return Step::Done(Err(AuthError::TokenTooLarge {
                max: inner.limits.max_token,
            }));
        }
        let now = inner.clock.now();
        let digest: Option<[u8; 32]> = inner.cache.as_ref().map(|_| Sha256::digest(token).into());
        if refreshed.is_none()
            && let (Some(cache), Some(digest)) = (&inner.cache, &digest)
            && let Some(hit) = cache.get(digest)
        {
            match self.revalidate(&hit, now) {
                Ok(true) => return Step::Done(Ok(hit.identity)),
                Err(e) => return Step::Done(Err(e)),
                Ok(false) => cache.remove(digest),
            }
        }
        let t = match jws::parse(token, inner.limits) {
            Ok(t) => t,
            Err(e) => return Step::Done(Err(e)),
        };
        let issuer_index = match t.claims.get("iss") {
            None => return Step::Done(Err(AuthError::MissingIssuer)),
            Some(serde_json::Value::String(iss)) => match inner.by_iss.get(iss.as_str()) {
                Some(i) => *i,
                None => return Step::Done(Err(AuthError::WrongIssuer)),
            },
            Some(_) => return Step::Done(Err(AuthError::InvalidClaim("iss"))),
        };
        let issuer = &inner.issuers[issuer_index];
        if let Some(expected) = &issuer.typ
            && !t
                .typ
                .as_deref()
                .is_some_and(|typ| jws::typ_matches(typ, expected))
        {
            return Step::Done(Err(AuthError::WrongTyp));
        }
        let Some(source) = issuer.source.as_ref() else {
            return Step::Done(Err(AuthError::KeysUnavailable { retry_after: None }));
        };
        let after_refresh = refreshed.is_some();
        let keys = match refreshed {
            Some(keys) => Ok(keys),
            None => source.current(),
        };
        let candidates = match &keys {
            Ok(set) => match choose_keys(set, &t) {
                Ok(c) => c,
                Err(e) => return Step::Done(Err(e)),
            },
            Err(_) => KeyChoice::Refresh,
        };
        let (KeyChoice::Found(candidates), Ok(keys)) = (candidates, keys) else {
            if !after_refresh {
                return Step::Refresh(issuer_index);
            }
            return Step::Done(Err(if t.kid.is_some() {
                AuthError::UnknownKid
            } else {
                AuthError::NoMatchingKey
            }));
        };
        let result = verify_signature(issuer, &t, &candidates)
            .and_then(|key| build_identity(issuer, t, key, now, digest));
        if let (Ok(identity), Some(cache), Some(digest)) = (&result, &inner.cache, digest)
            && identity.exp().is_some()
        {
            let entry = CacheEntry {
                identity: identity.clone(),
                issuer: issuer_index,
                keyset_id: keys.id(),
            };
            cache.insert(digest, entry, now);
        }
        Step::Done(result)
    }

    /// A cache hit is still good if its times pass and its key is still in the issuer's set.
    /// `Ok(false)`: drop the entry and verify afresh.
    fn revalidate(&self, hit: &CacheEntry, now: i64) -> Result<bool, AuthError> {
        let issuer = &self.inner.issuers[hit.issuer];
        let id = &hit.identity;
        issuer.check_times(id.exp(), id.nbf(), id.iat(), now)?;
        let Some(Ok(keys)) = issuer.source.as_ref().map(|s| s.current()) else {
            return Ok(false);
        };
        Ok(keys.id() == hit.keyset_id || keys.contains(id.key_thumbprint(), id.alg()))
    }
}

/// The keys a token may be verified with, in its issuer's current set: the key named by
/// `kid`; without `kid` (or when the set's keys have none, as a PEM key), up to a few keys of
/// the token's algorithm. `Refresh` when nothing fits a `kid`.
fn choose_keys(set: &KeySet, t: &UnverifiedToken<'_>) -> Result<KeyChoice, AuthError> {
    // The algorithm comes from the key (RFC 8725 §3.1): a token whose `alg` differs from its
    // key's (e.g. HS256 against an RSA key) is refused before any cryptography.
    if let Some(key) = t.kid.as_deref().and_then(|kid| set.by_kid(kid)) {
        return if key.alg == t.alg {
            Ok(KeyChoice::Found(vec![Arc::clone(key)]))
        } else {
            Err(AuthError::AlgMismatch)
        };
    }
    let mut pool = set
        .keys()
        .iter()
        .filter(|k| t.kid.is_none() || k.kid.is_none())
        .peekable();
    if pool.peek().is_none() {
        return Ok(KeyChoice::Refresh);
    }
    let keys: Vec<_> = pool
        .filter(|k| k.alg == t.alg)
        .take(MAX_KIDLESS_CANDIDATES)
        .cloned()
        .collect();
    if keys.is_empty() {
        return Err(AuthError::AlgMismatch);
    }
    Ok(KeyChoice::Found(keys))
}

fn verify_signature(
    issuer: &Issuer,
    t: &UnverifiedToken<'_>,
    candidates: &[Arc<VerificationKey>],
) -> Result<Arc<VerificationKey>, AuthError> {
    let signature = jws::signature_bytes(t.signature)?;
    let mut last = AuthError::BadSignature;
    for key in candidates {
        if !issuer.algorithm_allowed(key.alg, key.is_symmetric()) {
            last = AuthError::AlgNotAllowed;
            continue;
        }
        match backend::verify(key.alg, &key.key, t.signing_input, &signature) {
            Ok(()) => return Ok(Arc::clone(key)),
            Err(SignatureFailure::EcdsaZero) => return Err(AuthError::EcdsaZeroSignature),
            Err(SignatureFailure::KeyUnusable) => last = AuthError::KeyUnusable,
            Err(SignatureFailure::Invalid) => last = AuthError::BadSignature,
        }
    }
    Err(last)
}

fn build_identity(
    issuer: &Issuer,
    t: UnverifiedToken<'_>,
    key: Arc<VerificationKey>,
    now: i64,
    digest: Option<[u8; 32]>,
) -> Result<Identity, AuthError> {
    let claims = t.claims;
    // Rounded to the stricter side: an expiry at 10.5 s counts as 10, a start as 11.
    let exp = numeric_date(&claims, "exp", f64::floor)?;
    let nbf = numeric_date(&claims, "nbf", f64::ceil)?;
    let iat = numeric_date(&claims, "iat", f64::ceil)?;
    issuer.check_times(exp, nbf, iat, now)?;
    let (aud, aud_present) = audiences(&claims)?;
    issuer.check_audience(&aud, aud_present)?;
    issuer.check_required(&claims)?;
    let sub = string_claim(&claims, "sub")?;
    let jti = string_claim(&claims, "jti")?;
    let (scopes, roles) = issuer.scopes_and_roles(&claims);
    Ok(Identity::new(IdentityInner {
        sub,
        iss: issuer.iss.clone(),
        aud,
        jti,
        iat,
        nbf,
        exp,
        kid: t.kid,
        alg: key.alg,
        key_thumbprint: key.thumbprint.clone(),
        scopes,
        roles,
        claims: serde_json::Value::Object(claims),
        token_sha256: digest,
        actor: OnceLock::new(),
    }))
}
