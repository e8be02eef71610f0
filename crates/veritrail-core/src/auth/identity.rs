//! The verified caller: [`Identity`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::AuthError;
use super::keyset::alg_name;
use crate::event::Actor;

/// A caller whose token was verified. Cheap to clone (one `Arc`); the same value is returned
/// for a cached token.
///
/// `Debug` shows the subject, issuer and key, never the claims (they may hold personal data).
#[derive(Clone)]
pub struct Identity(Arc<IdentityInner>);

pub(crate) struct IdentityInner {
    pub(crate) sub: Option<String>,
    pub(crate) iss: String,
    pub(crate) aud: Vec<String>,
    pub(crate) jti: Option<String>,
    pub(crate) iat: Option<i64>,
    pub(crate) nbf: Option<i64>,
    pub(crate) exp: Option<i64>,
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key_thumbprint: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) roles: Vec<String>,
    /// Always a JSON object.
    pub(crate) claims: Value,
    pub(crate) token_sha256: Option<[u8; 32]>,
    /// The audit actor, built on first use, with the claim allow-list it was built for.
    pub(crate) actor: OnceLock<(Vec<String>, Arc<Actor>)>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("sub", &self.0.sub)
            .field("iss", &self.0.iss)
            .field("kid", &self.0.kid)
            .field("alg", &self.0.alg)
            .finish_non_exhaustive()
    }
}

impl Identity {
    pub(crate) fn new(inner: IdentityInner) -> Self {
        Identity(Arc::new(inner))
    }

    /// The subject (`sub`).
    pub fn sub(&self) -> Option<&str> {
        self.0.sub.as_deref()
    }
    /// The issuer (`iss`): one of the configured issuers.
    pub fn iss(&self) -> &str {
        &self.0.iss
    }
    /// The audiences (`aud`, a string or an array in the token), in token order.
    pub fn aud(&self) -> &[String] {
        &self.0.aud
    }
    /// The token id (`jti`).
    pub fn jti(&self) -> Option<&str> {
        self.0.jti.as_deref()
    }
    /// Issued at (`iat`), seconds since the epoch.
    pub fn iat(&self) -> Option<i64> {
        self.0.iat
    }
    /// Not before (`nbf`), seconds since the epoch.
    pub fn nbf(&self) -> Option<i64> {
        self.0.nbf
    }
    /// Expiry (`exp`), seconds since the epoch.
    pub fn exp(&self) -> Option<i64> {
        self.0.exp
    }
    /// The header's key id (`kid`).
    pub fn kid(&self) -> Option<&str> {
        self.0.kid.as_deref()
    }
    /// The algorithm the signature was verified with (the key's).
    pub fn alg(&self) -> Algorithm {
        self.0.alg
    }
    /// The RFC 7638 thumbprint of the key that verified the token.
    pub fn key_thumbprint(&self) -> &str {
        &self.0.key_thumbprint
    }
    /// Scopes from `scope` (space-separated), `scp` and the issuer's configured scope claims.
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }
    /// Roles from `roles` and the issuer's configured role claim paths
    /// (e.g. `realm_access.roles`).
    pub fn roles(&self) -> &[String] {
        &self.0.roles
    }
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }
    /// Whether the token grants `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.0.roles.iter().any(|r| r == role)
    }
    /// `Ok` if every scope in `required` is granted, else [`AuthError::InsufficientScope`]
    /// (403).
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), AuthError> {
        if required.iter().all(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope {
                required: required.iter().map(|s| (*s).to_owned()).collect(),
            })
        }
    }
    /// All claims of the token.
    pub fn claims(&self) -> &Map<String, Value> {
        static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);
        self.0.claims.as_object().unwrap_or(&EMPTY)
    }
    /// One claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }
    /// The claims as an application type.
    pub fn claims_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.0.claims)
    }
    /// SHA-256 of the whole token, when the verification computed it (it does when the cache
    /// is on): the default token evidence of audit events.
    pub fn token_sha256(&self) -> Option<[u8; 32]> {
        self.0.token_sha256
    }

    /// The audit event's actor, with the allow-listed custom claims (by name) copied in.
    pub fn to_actor<S: AsRef<str>>(&self, allowed_claims: &[S]) -> Actor {
        let i = &*self.0;
        Actor {
            sub: i.sub.as_deref().map(Into::into),
            iss: Some(i.iss.clone()),
            aud: i.aud.clone(),
            jti: i.jti.as_deref().map(Into::into),
            iat: i.iat,
            exp: i.exp,
            kid: i.kid.clone(),
            alg: Some(alg_name(i.alg).to_owned()),
            scopes: i.scopes.clone(),
            roles: i.roles.clone(),
            claims: allowed_claims
                .iter()
                .filter_map(|k| {
                    let k = k.as_ref();
                    Some((k.to_owned(), self.claim(k)?.clone()))
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// [`to_actor`](Self::to_actor), shared: the first call builds the actor and keeps it in
    /// the identity, so every event of a cached token points at the same one instead of
    /// copying its strings. A call with another claim allow-list than the first builds a
    /// fresh actor.
    pub fn shared_actor<S: AsRef<str>>(&self, allowed_claims: &[S]) -> Arc<Actor> {
        let (kept, actor) = self.0.actor.get_or_init(|| {
            let kept = allowed_claims
                .iter()
                .map(|s| s.as_ref().to_owned())
                .collect();
            (kept, Arc::new(self.to_actor(allowed_claims)))
        });
        if kept
            .iter()
            .map(String::as_str)
            .eq(allowed_claims.iter().map(AsRef::as_ref))
        {
            actor.clone()
        } else {
            Arc::new(self.to_actor(allowed_claims))
        }
    }
}

impl From<&Identity> for Actor {
    /// The actor without custom claims; see [`Identity::to_actor`].
    fn from(identity: &Identity) -> Self {
        identity.to_actor::<&str>(&[])
    }
}

/// Appends the strings found at `value`: a space-separated string, or an array of strings.
pub(crate) fn collect_strings(value: Option<&Value>, out: &mut Vec<String>) {
    match value {
        Some(Value::String(s)) => {
            out.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
        }
        Some(Value::Array(items)) => {
            out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        _ => {}
    }
}

/// The value at a dotted claim path (`realm_access.roles`).
pub(crate) fn claim_path<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = claims.get(first)?;
    for segment in rest {
        v = v.as_object()?.get(segment)?;
    }
    Some(v)
}
