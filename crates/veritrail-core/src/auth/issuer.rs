//! One trusted issuer: its keys, audiences and rules ([`Issuer`]), and the claim checks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::error::AuthError;
use super::identity::{claim_path, collect_strings};
use super::keyset::KeySet;
use super::source::{KeySource, StaticKeys};

/// The default clock-skew leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// A trusted issuer: the `iss` value, where its keys come from, and the rules its tokens must
/// satisfy. Tokens are only ever checked against their own issuer's keys.
///
/// Defaults: `exp` required, audience checked (configure at least one with
/// [`audience`](Self::audience) or turn the check off with
/// [`skip_audience_check`](Self::skip_audience_check)), 60 s leeway, every algorithm of the
/// keys allowed except HMAC, which needs [`allow_hmac`](Self::allow_hmac); scopes from
/// `scope` and `scp`, roles from `roles`.
#[derive(Clone)]
pub struct Issuer {
    pub(crate) iss: String,
    pub(crate) source: Option<Arc<dyn KeySource>>,
    pub(crate) audiences: Vec<String>,
    pub(crate) check_audience: bool,
    pub(crate) allow_hmac: bool,
    pub(crate) algorithms: Option<Vec<Algorithm>>,
    pub(crate) leeway: i64,
    pub(crate) max_age: Option<i64>,
    pub(crate) require_exp: bool,
    pub(crate) typ: Option<String>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) scope_claims: Vec<Vec<String>>,
    pub(crate) role_claims: Vec<Vec<String>>,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("iss", &self.iss)
            .field("keys", &self.source.as_ref().map(|s| s.describe()))
            .field("audiences", &self.audiences)
            .field("check_audience", &self.check_audience)
            .field("allow_hmac", &self.allow_hmac)
            .finish_non_exhaustive()
    }
}

fn path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_owned).collect()
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Issuer {
    /// An issuer whose tokens carry exactly this `iss`.
    pub fn new(iss: impl Into<String>) -> Self {
        Issuer {
            iss: iss.into(),
            source: None,
            audiences: Vec::new(),
            check_audience: true,
            allow_hmac: false,
            algorithms: None,
            leeway: secs(DEFAULT_LEEWAY),
            max_age: None,
            require_exp: true,
            typ: None,
            required_claims: Vec::new(),
            scope_claims: vec![path("scope"), path("scp")],
            role_claims: vec![path("roles")],
        }
    }

    /// The issuer's `iss`.
    pub fn iss(&self) -> &str {
        &self.iss
    }

    /// A fixed key set (PEM, JWK or JWKS files, an HMAC secret).
    pub fn keys(self, keys: KeySet) -> Self {
        self.key_source(Arc::new(StaticKeys::new(keys)))
    }

    /// A dynamic key source (e.g. the remote JWKS store).
    pub fn key_source(mut self, source: Arc<dyn KeySource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Accepts tokens whose `aud` contains `audience` (call again for more).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Does not check `aud` for this issuer (it is checked by default).
    pub fn skip_audience_check(mut self) -> Self {
        self.check_audience = false;
        self
    }

    /// Accepts HMAC (HS256/384/512) keys for this issuer. Off by default: a shared secret
    /// lets whoever verifies also mint tokens.
    pub fn allow_hmac(mut self) -> Self {
        self.allow_hmac = true;
        self
    }

    /// Restricts the algorithms accepted (on top of each key's own algorithm).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Clock-skew leeway for `exp`, `nbf`, `iat` and the maximum age.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = secs(leeway);
        self
    }

    /// Refuses tokens issued (`iat`) longer ago than `max_age`; `iat` becomes required.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(secs(max_age));
        self
    }

    /// Whether `exp` is required (default: yes).
    pub fn require_exp(mut self, required: bool) -> Self {
        self.require_exp = required;
        self
    }

    /// Requires this `typ` header, e.g. `at+jwt` for RFC 9068 access tokens (compared
    /// case-insensitively, `application/` optional).
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Requires a claim to be present (e.g. `sub`, `jti`).
    pub fn require_claim(mut self, claim: impl Into<String>) -> Self {
        self.required_claims.push(claim.into());
        self
    }

    /// Reads scopes also from this dotted claim path (a space-separated string or an array).
    pub fn scope_claim(mut self, dotted_path: &str) -> Self {
        self.scope_claims.push(path(dotted_path));
        self
    }

    /// Reads roles also from this dotted claim path, e.g. Keycloak's `realm_access.roles` or
    /// `resource_access.my-client.roles`.
    pub fn role_claim(mut self, dotted_path: &str) -> Self {
        self.role_claims.push(path(dotted_path));
        self
    }

    pub(crate) fn algorithm_allowed(&self, alg: Algorithm, symmetric: bool) -> bool {
        (!symmetric || self.allow_hmac) && self.algorithms.as_ref().is_none_or(|a| a.contains(&alg))
    }

    /// `exp`, `nbf`, `iat` and maximum age against `now` (also run on cache hits).
    pub(crate) fn check_times(
        &self,
        exp: Option<i64>,
        nbf: Option<i64>,
        iat: Option<i64>,
        now: i64,
    ) -> Result<(), AuthError> {
        let leeway = self.leeway;
        match exp {
            Some(exp) if exp.saturating_add(leeway) <= now => return Err(AuthError::Expired),
            None if self.require_exp => return Err(AuthError::MissingExp),
            _ => {}
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(AuthError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(AuthError::IssuedInFuture);
        }
        if let Some(max_age) = self.max_age {
            let iat = iat.ok_or(AuthError::MissingIat)?;
            if now.saturating_sub(iat) > max_age.saturating_add(leeway) {
                return Err(AuthError::TooOld);
            }
        }
        Ok(())
    }

    pub(crate) fn check_audience(&self, aud: &[String], present: bool) -> Result<(), AuthError> {
        if !self.check_audience {
            return Ok(());
        }
        if !present {
            return Err(AuthError::MissingAudience);
        }
        if aud.iter().any(|a| self.audiences.contains(a)) {
            Ok(())
        } else {
            Err(AuthError::WrongAudience)
        }
    }

    pub(crate) fn check_required(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        match self
            .required_claims
            .iter()
            .find(|c| !claims.contains_key(c.as_str()))
        {
            Some(missing) => Err(AuthError::MissingClaim(missing.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn scopes_and_roles(
        &self,
        claims: &Map<String, Value>,
    ) -> (Vec<String>, Vec<String>) {
        let mut scopes = Vec::new();
        for p in &self.scope_claims {
            collect_strings(claim_path(claims, p), &mut scopes);
        }
        let mut roles = Vec::new();
        for p in &self.role_claims {
            collect_strings(claim_path(claims, p), &mut roles);
        }
        (scopes, roles)
    }
}

/// A NumericDate claim (RFC 7519 §2): a JSON number, seconds since the epoch. Fractions are
/// rounded towards the stricter side by the caller's choice of `round`.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
    round: fn(f64) -> f64,
) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => match n.as_f64() {
                Some(f) if f.is_finite() => Ok(Some(round(f) as i64)),
                _ => Err(AuthError::InvalidClaim(name)),
            },
        },
        Some(_) => Err(AuthError::InvalidClaim(name)),
    }
}

/// A string claim.
pub(crate) fn string_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::InvalidClaim(name)),
    }
}

/// `aud`: a string or an array of strings. Returns the audiences and whether `aud` was present.
pub(crate) fn audiences(claims: &Map<String, Value>) -> Result<(Vec<String>, bool), AuthError> {
    match claims.get("aud") {
        None => Ok((Vec::new(), false)),
        Some(Value::String(s)) => Ok((vec![s.clone()], true)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or(AuthError::InvalidClaim("aud"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|a| (a, true)),
        Some(_) => Err(AuthError::InvalidClaim("aud")),
    }
}
