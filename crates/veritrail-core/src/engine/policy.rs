//! Route policy: whether a route needs a token, which scopes and roles, and how durably its
//! event is recorded.

use std::collections::HashMap;
use std::sync::Arc;

use crate::recorder::Durability;

use super::view::RequestView;

/// Whether a route needs an authenticated caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// A valid token is required: no token is a 401.
    #[default]
    Required,
    /// A token is checked if one is sent (an invalid one is still a 401); without one the
    /// request goes on anonymously.
    Optional,
    /// No authentication: tokens are not looked at. The request is still audited.
    Public,
}

/// What one route requires, and how its event is recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Whether a token is required.
    pub auth: AuthMode,
    /// Scopes the caller must all hold (from `scope` / `scp`).
    pub scopes: Vec<String>,
    /// Roles the caller must all hold.
    pub roles: Vec<String>,
    /// How durably the route's event is recorded.
    pub durability: Durability,
}

/// A route refused the caller: the scopes or roles it lacks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("insufficient scope: the token lacks {}", missing_list(.missing_scopes, .missing_roles))]
pub struct Denied {
    /// Required scopes the caller does not hold.
    pub missing_scopes: Vec<String>,
    /// Required roles the caller does not hold.
    pub missing_roles: Vec<String>,
    /// Every scope the route requires (for the RFC 6750 `scope` challenge attribute).
    pub required_scopes: Vec<String>,
}

fn missing_list(scopes: &[String], roles: &[String]) -> String {
    let s = scopes.iter().map(|s| format!("scope `{s}`"));
    let r = roles.iter().map(|r| format!("role `{r}`"));
    s.chain(r).collect::<Vec<_>>().join(", ")
}

impl RoutePolicy {
    /// A route that requires a valid token and nothing more (the default).
    pub fn authenticated() -> Self {
        Self::default()
    }

    /// A route where a token is optional.
    pub fn optional() -> Self {
        RoutePolicy {
            auth: AuthMode::Optional,
            ..Self::default()
        }
    }

    /// A route without authentication.
    pub fn public() -> Self {
        RoutePolicy {
            auth: AuthMode::Public,
            ..Self::default()
        }
    }

    /// Also requires `scope`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Also requires `role`.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Records the route's events with this durability.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether the policy asks for any scope or role.
    pub fn has_requirements(&self) -> bool {
        !self.scopes.is_empty() || !self.roles.is_empty()
    }

    /// Checks a caller's scopes and roles against the policy.
    pub fn authorize<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a str> + Clone,
        roles: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), Denied> {
        let missing = |need: &[String], have: &dyn Fn(&str) -> bool| {
            need.iter()
                .filter(|n| !have(n))
                .cloned()
                .collect::<Vec<_>>()
        };
        let missing_scopes = missing(&self.scopes, &|n| {
            scopes.clone().into_iter().any(|s| s == n)
        });
        let missing_roles = missing(&self.roles, &|n| roles.clone().into_iter().any(|r| r == n));
        if missing_scopes.is_empty() && missing_roles.is_empty() {
            Ok(())
        } else {
            Err(Denied {
                missing_scopes,
                missing_roles,
                required_scopes: self.scopes.clone(),
            })
        }
    }
}

/// What a route adds from inside the audit layer (route-level middleware such as axum's
/// `route_layer` or actix's `Resource::wrap`): further scopes and roles, and a durability.
/// Applied with [`AuditContext::enforce`](super::AuditContext::enforce); both adapters wrap
/// this one type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteRequirements {
    /// The scopes and roles to require (its `auth` is `Required`: requirements imply a caller).
    pub policy: RoutePolicy,
    /// The durability to record the request with, if it changes.
    pub durability: Option<Durability>,
}

impl RouteRequirements {
    /// Also requires `scope`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.policy.scopes.push(scope.into());
        self
    }

    /// Also requires `role`.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.policy.roles.push(role.into());
        self
    }

    /// Records the request's event with `durability`.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }
}

/// Policies by route: the route template the framework matched (`/orders/{id}`) or, when the
/// framework gives none, the literal path; optionally per method. Unlisted routes get the
/// default policy.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    default: Arc<RoutePolicy>,
    routes: HashMap<String, Vec<MethodPolicy>>,
}

/// A route's policy for one method (`None`: any method).
type MethodPolicy = (Option<String>, Arc<RoutePolicy>);

impl RouteTable {
    /// A table where every route has `default`.
    pub fn new(default: RoutePolicy) -> Self {
        RouteTable {
            default: Arc::new(default),
            routes: HashMap::new(),
        }
    }

    /// The policy of unlisted routes.
    pub fn default_policy(&self) -> &RoutePolicy {
        &self.default
    }

    /// Replaces the policy of unlisted routes.
    pub fn set_default(&mut self, policy: RoutePolicy) {
        self.default = Arc::new(policy);
    }

    /// Sets the policy of `route` for every method.
    pub fn insert(&mut self, route: impl Into<String>, policy: RoutePolicy) {
        self.insert_entry(route.into(), None, policy);
    }

    /// Sets the policy of `route` for `method` only (takes precedence over the any-method one).
    pub fn insert_method(&mut self, method: &str, route: impl Into<String>, policy: RoutePolicy) {
        self.insert_entry(route.into(), Some(method.to_ascii_uppercase()), policy);
    }

    fn insert_entry(&mut self, route: String, method: Option<String>, policy: RoutePolicy) {
        let entries = self.routes.entry(route).or_default();
        entries.retain(|(m, _)| *m != method);
        entries.push((method, Arc::new(policy)));
    }

    /// The policy for this request: by its route template, else by its canonical path (see
    /// [`canonical_path`](super::canonical_path)); the default policy when there is neither.
    pub fn resolve(&self, req: &dyn RequestView) -> &RoutePolicy {
        let path = super::canonical_path(req.path());
        self.lookup(req.method(), req.route().or(path.as_deref().ok()))
    }

    /// The policy for `method` on route (template or canonical path) `key`, shared.
    pub(crate) fn lookup(&self, method: &str, key: Option<&str>) -> &Arc<RoutePolicy> {
        let Some(entries) = key.and_then(|key| self.routes.get(key)) else {
            return &self.default;
        };
        entries
            .iter()
            .find(|(m, _)| m.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(method)))
            .or_else(|| entries.iter().find(|(m, _)| m.is_none()))
            .map_or(&self.default, |(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::view::SimpleRequest;

    #[test]
    fn authorize_lists_what_is_missing() {
        let p = RoutePolicy::authenticated()
            .scope("orders:write")
            .scope("orders:read")
            .role("clerk");
        assert!(
            p.authorize(["orders:read", "orders:write"], ["clerk"])
                .is_ok()
        );
        let d = p.authorize(["orders:read"], ["admin"]).unwrap_err();
        assert_eq!(d.missing_scopes, ["orders:write"]);
        assert_eq!(d.missing_roles, ["clerk"]);
        assert_eq!(d.required_scopes, ["orders:write", "orders:read"]);
        assert_eq!(
            d.to_string(),
            "insufficient scope: the token lacks scope `orders:write`, role `clerk`"
        );
        assert!(RoutePolicy::public().authorize([], []).is_ok());
    }

    #[test]
    fn table_resolves_by_template_then_method() {
        let mut t = RouteTable::new(RoutePolicy::authenticated());
        t.insert("/health", RoutePolicy::public());
        t.insert(
            "/orders/{id}",
            RoutePolicy::authenticated().scope("orders:read"),
        );
        t.insert_method(
            "post",
            "/orders/{id}",
            RoutePolicy::authenticated()
                .scope("orders:write")
                .durability(Durability::Durable),
        );
        let get = SimpleRequest::new("GET", "/orders/7").route("/orders/{id}");
        assert_eq!(t.resolve(&get).scopes, ["orders:read"]);
        let post = SimpleRequest::new("POST", "/orders/7").route("/orders/{id}");
        assert_eq!(t.resolve(&post).durability, Durability::Durable);
        // Without a template, the literal path is the key.
        assert_eq!(
            t.resolve(&SimpleRequest::new("GET", "/health")).auth,
            AuthMode::Public
        );
        assert_eq!(
            t.resolve(&SimpleRequest::new("GET", "/other")).auth,
            AuthMode::Required
        );
    }
}
