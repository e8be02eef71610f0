//! The `http` event: who, what, from where, under what authority, with what result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuditEvent, EventBody, EventError, Text, TokenEvidence, time_format};

/// The fields of an `http` event (everything after `kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpEvent {
    /// `intent` (write-ahead, before the handler runs) or `complete`.
    pub phase: Phase,
    /// On a `complete` record, the id of its write-ahead `intent` record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_id: Option<Uuid>,
    /// Who made the request (absent when anonymous or refused before the token was read).
    /// Shared: every event of a cached token points at the same actor (field protection
    /// copies it before changing it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Arc<Actor>>,
    /// What of the bearer token is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenEvidence>,
    /// The request.
    pub request: Request,
    /// The authentication decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authn: Option<Authn>,
    /// The authorization decision, when the route has a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authz: Option<Authz>,
    /// The application's action, e.g. `order.refund`, when the handler names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// What the action was applied to, e.g. `order:7`, when the handler names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Text>,
    /// Further application fields (protectable one by one as `extra.<name>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
    /// The response status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// From the start of the request to the response, in whole microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// How the request ended (absent on `intent` records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// Which record of a request this is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Written (durably) before the handler runs, for `write-ahead` routes.
    Intent,
    /// The final record of the request.
    #[default]
    Complete,
}

impl Phase {
    /// The stable name written in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Intent => "intent",
            Phase::Complete => "complete",
        }
    }
}

/// Who made the request: the verified token's claims.
///
/// Plain data; the authenticator converts its identity into it. Times are seconds since the
/// Unix epoch, as in the token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    /// Subject (`sub`); protectable as `actor.sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<Text>,
    /// Issuer (`iss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audiences (`aud`), always an array.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    /// Token id (`jti`); protectable as `actor.jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<Text>,
    /// Issued at (`iat`), seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Expiry (`exp`), seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Key id from the token header (`kid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Signature algorithm from the token header (`alg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Granted scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Granted roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Allow-listed custom claims; protectable one by one as `actor.claims.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Value>,
}

/// The request, as the engine saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The route template, e.g. `/orders/{id}`, when the router knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The canonical path (without the query): what the route policy was matched against
    /// and, in `veritrail proxy`, what the upstream got (see
    /// [`canonical_path`](crate::engine::canonical_path)). For a request refused as
    /// `invalid_path`, which has none, the path as sent. Protectable as `request.path`.
    pub path: Text,
    /// The path exactly as the client sent it, only when it differs from the canonical `path`
    /// (`//admin/../x` for `/x`). Protected along with `request.path` (or on its own as
    /// `request.raw_path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<Text>,
    /// Allow-listed query parameters; protectable as `request.query.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, Text>,
    /// The client address, resolved through the configured trusted proxies; protectable as
    /// `request.client_address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<Text>,
    /// The `User-Agent`; protectable as `request.user_agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Text>,
    /// The request id (e.g. `x-request-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// W3C trace id (32 lowercase hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// W3C span id (16 lowercase hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// Allow-listed headers, lowercase names; protectable as `request.headers.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Text>,
}

/// The authentication decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authn {
    /// Allowed, denied, or anonymous (no token, on a route that allows that).
    pub decision: AuthnDecision,
    /// Machine-readable reason code, e.g. `expired`, `bad_signature`, `missing_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Outcome of authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthnDecision {
    /// A valid token was presented.
    Allowed,
    /// The token was missing or invalid and the request was refused.
    Denied,
    /// No token, on a route that allows anonymous access.
    Anonymous,
}

impl AuthnDecision {
    /// The stable name written in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthnDecision::Allowed => "allowed",
            AuthnDecision::Denied => "denied",
            AuthnDecision::Anonymous => "anonymous",
        }
    }
}

/// The authorization decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authz {
    /// Allowed or denied.
    pub decision: AuthzDecision,
    /// The scopes the route requires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_scopes: Vec<String>,
    /// The roles the route requires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_roles: Vec<String>,
    /// Machine-readable reason code, e.g. `missing_scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Outcome of authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthzDecision {
    /// The policy allowed the request.
    Allowed,
    /// The policy refused the request.
    Denied,
}

impl AuthzDecision {
    /// The stable name written in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthzDecision::Allowed => "allowed",
            AuthzDecision::Denied => "denied",
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The handler succeeded (1xx–3xx).
    Success,
    /// The request failed on the client's side (4xx other than 401/403).
    Failure,
    /// Authentication or authorization refused the request (401/403).
    Denied,
    /// The server failed (5xx).
    Error,
    /// The client went away or the request was cancelled before a response.
    Cancelled,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 5] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Denied,
        Outcome::Error,
        Outcome::Cancelled,
    ];

    /// The stable name written in the `outcome` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// The outcome a status code implies: 401/403 → denied, other 4xx → failure, 5xx (and
    /// anything out of range) → error, else success.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => Outcome::Denied,
            400..=499 => Outcome::Failure,
            100..=399 => Outcome::Success,
            _ => Outcome::Error,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Outcome {
    type Err = EventError;

    /// Reads a stable name (`success`, `denied`, ...), e.g. from a command-line filter.
    fn from_str(name: &str) -> Result<Self, EventError> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == name)
            .ok_or_else(|| EventError::UnknownName {
                what: "outcome",
                name: name.to_owned(),
                expected: "success, failure, denied, error, cancelled",
            })
    }
}

impl HttpEvent {
    /// A `complete` event for `method` and `path`, with nothing else set.
    pub fn new(method: impl Into<String>, path: impl Into<Text>) -> Self {
        HttpEvent {
            phase: Phase::Complete,
            intent_id: None,
            actor: None,
            token: None,
            request: Request {
                method: method.into(),
                path: path.into(),
                ..Request::default()
            },
            authn: None,
            authz: None,
            action: None,
            target: None,
            extra: BTreeMap::new(),
            status: None,
            latency_us: None,
            outcome: None,
        }
    }
}

/// Builds an `http` [`AuditEvent`]; start with [`AuditEvent::http`].
///
/// Every method sets one thing. On [`build`](Self::build), a `complete` event with a status
/// but no outcome gets [`Outcome::from_status`].
#[derive(Clone, Debug)]
#[must_use = "call .build() to get the event"]
pub struct HttpEventBuilder {
    id: Uuid,
    time: OffsetDateTime,
    event: HttpEvent,
}

impl HttpEventBuilder {
    pub(super) fn new(method: String, path: Text) -> Self {
        HttpEventBuilder {
            id: Uuid::now_v7(),
            time: super::now(),
            event: HttpEvent::new(method, path),
        }
    }

    /// Sets the event id (default: a fresh UUID v7).
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// Sets the event time (default: now), converted to UTC and truncated to microseconds.
    pub fn time(mut self, time: OffsetDateTime) -> Self {
        self.time = time_format::truncate(time);
        self
    }

    /// Makes this a write-ahead `intent` record (no status, latency or outcome yet).
    pub fn intent(mut self) -> Self {
        self.event.phase = Phase::Intent;
        self
    }

    /// Makes this the `complete` record of the intent record `intent_id`.
    pub fn completes(mut self, intent_id: Uuid) -> Self {
        self.event.phase = Phase::Complete;
        self.event.intent_id = Some(intent_id);
        self
    }

    /// Replaces the whole request part (method and path included).
    pub fn request(mut self, request: Request) -> Self {
        self.event.request = request;
        self
    }

    /// Sets the route template, e.g. `/orders/{id}`.
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.event.request.route = Some(route.into());
        self
    }

    /// Sets the path as the client sent it, when it differs from the canonical path.
    pub fn raw_path(mut self, raw: impl Into<Text>) -> Self {
        self.event.request.raw_path = Some(raw.into());
        self
    }

    /// Adds an (allow-listed) query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<Text>) -> Self {
        self.event.request.query.insert(name.into(), value.into());
        self
    }

    /// Sets the resolved client address.
    pub fn client_address(mut self, address: impl Into<Text>) -> Self {
        self.event.request.client_address = Some(address.into());
        self
    }

    /// Sets the user agent.
    pub fn user_agent(mut self, user_agent: impl Into<Text>) -> Self {
        self.event.request.user_agent = Some(user_agent.into());
        self
    }

    /// Sets the request id.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.event.request.request_id = Some(request_id.into());
        self
    }

    /// Sets the W3C trace and span ids.
    pub fn trace(mut self, trace_id: impl Into<String>, span_id: impl Into<String>) -> Self {
        self.event.request.trace_id = Some(trace_id.into());
        self.event.request.span_id = Some(span_id.into());
        self
    }

    /// Adds an (allow-listed) header; the name is lowercased.
    pub fn header(mut self, name: impl AsRef<str>, value: impl Into<Text>) -> Self {
        self.event
            .request
            .headers
            .insert(name.as_ref().to_ascii_lowercase(), value.into());
        self
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: impl Into<Arc<Actor>>) -> Self {
        self.event.actor = Some(actor.into());
        self
    }

    /// Sets the token evidence.
    pub fn token(mut self, evidence: TokenEvidence) -> Self {
        self.event.token = Some(evidence);
        self
    }

    /// Sets the authentication decision.
    pub fn authn(mut self, authn: Authn) -> Self {
        self.event.authn = Some(authn);
        self
    }

    /// Authentication allowed the request.
    pub fn authn_allowed(self) -> Self {
        self.authn(Authn {
            decision: AuthnDecision::Allowed,
            reason: None,
        })
    }

    /// Authentication refused the request for `reason` (a machine-readable code).
    pub fn authn_denied(self, reason: impl Into<String>) -> Self {
        self.authn(Authn {
            decision: AuthnDecision::Denied,
            reason: Some(reason.into()),
        })
    }

    /// No token, on a route that allows anonymous access.
    pub fn anonymous(self) -> Self {
        self.authn(Authn {
            decision: AuthnDecision::Anonymous,
            reason: None,
        })
    }

    /// Sets the authorization decision.
    pub fn authz(mut self, authz: Authz) -> Self {
        self.event.authz = Some(authz);
        self
    }

    /// Sets the application action.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.event.action = Some(action.into());
        self
    }

    /// Sets the action's target.
    pub fn target(mut self, target: impl Into<Text>) -> Self {
        self.event.target = Some(target.into());
        self
    }

    /// Adds an application field.
    pub fn extra(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.event.extra.insert(name.into(), value.into());
        self
    }

    /// Sets the response status.
    pub fn status(mut self, status: u16) -> Self {
        self.event.status = Some(status);
        self
    }

    /// Sets the latency in microseconds.
    pub fn latency_us(mut self, micros: u64) -> Self {
        self.event.latency_us = Some(micros);
        self
    }

    /// Sets the latency (saturating at `u64::MAX` microseconds).
    pub fn latency(self, latency: Duration) -> Self {
        self.latency_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX))
    }

    /// Sets the outcome explicitly (otherwise derived from the status).
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.event.outcome = Some(outcome);
        self
    }

    /// The event.
    pub fn build(mut self) -> AuditEvent {
        if self.event.phase == Phase::Complete && self.event.outcome.is_none() {
            self.event.outcome = self.event.status.map(Outcome::from_status);
        }
        AuditEvent {
            id: self.id,
            index: None,
            time: self.time,
            body: EventBody::Http(Box::new(self.event)),
        }
    }
}

impl From<HttpEventBuilder> for AuditEvent {
    fn from(builder: HttpEventBuilder) -> Self {
        builder.build()
    }
}
