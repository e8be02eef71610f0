//! The request engine both web adapters drive.
//!
//! For each request it resolves the route's [`RoutePolicy`], the client address (through
//! [`TrustedProxies`]), the request id and the W3C trace context, the allow-listed headers and
//! query parameters ([`CaptureRules`]); it finds the token, authenticates and authorises the
//! caller, and finally builds the `http` [`AuditEvent`](crate::event::AuditEvent) and hands it
//! to the [`Recorder`] with the route's [`Durability`](crate::recorder::Durability). It knows
//! no web framework: adapters give it a [`RequestView`] and render its [`Rejection`]s.
//!
//! The adapter's sequence for one request:
//!
//! 1. [`Engine::start`] → an [`Exchange`]; put [`Exchange::context`] (and later the identity)
//!    into the request.
//! 2. [`Exchange::authenticate`]; on `Err(rejection)`, answer it after [`Exchange::reject`].
//! 3. [`AuditContext::write_ahead`]; on `Err`, the same.
//! 4. Call the handler; then [`Exchange::finish`] with the status (or [`Exchange::fail`] if
//!    the handler's service failed). Dropping the exchange unfinished records `cancelled`.
//!
//! ```
//! use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
//! use veritrail_core::auth::{Authenticator, Issuer, KeySet};
//! use veritrail_core::engine::{Engine, RoutePolicy, SimpleRequest};
//! use veritrail_core::event::Outcome;
//! use veritrail_core::recorder::MemoryRecorder;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = [7u8; 32];
//! let authenticator = Authenticator::builder()
//!     .issuer(
//!         Issuer::new("https://idp.example")
//!             .keys(KeySet::from_hmac_secret(&secret, Algorithm::HS256, None)?)
//!             .allow_hmac()
//!             .audience("orders-api"),
//!     )
//!     .build()?;
//! let recorder = MemoryRecorder::new();
//! let engine = Engine::builder(authenticator, recorder.clone())
//!     .route("/orders/{id}", RoutePolicy::authenticated().scope("orders:read"))
//!     .build();
//!
//! let now = jsonwebtoken::get_current_timestamp();
//! let claims = serde_json::json!({"iss": "https://idp.example", "aud": "orders-api",
//!     "sub": "alice", "exp": now + 300, "scope": "orders:read"});
//! let token = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&secret))?;
//! let request = SimpleRequest::new("GET", "/orders/7")
//!     .route("/orders/{id}")
//!     .header("authorization", &format!("Bearer {token}"));
//!
//! let exchange = engine.start(&request);
//! exchange.authenticate().await?;
//! exchange.context().set_action("order.read");
//! // ... the handler runs ...
//! exchange.finish(200).await?;
//!
//! let event = recorder.events().pop().unwrap();
//! let http = event.as_http().unwrap();
//! assert_eq!(http.outcome, Some(Outcome::Success));
//! assert_eq!(http.action.as_deref(), Some("order.read"));
//! # Ok(())
//! # }
//! ```

mod authn;
mod capture;
mod client;
mod exchange;
mod ids;
mod keysets;
pub mod path;
mod policy;
mod rejection;
mod view;

use std::sync::Arc;

pub use authn::{Authenticator, Identity};
pub use capture::{CaptureRules, NEVER_RECORDED_HEADERS, NEVER_RECORDED_QUERY};
pub use client::{
    ForwardedHeader, ForwardedHeaderParseError, IpNetwork, NetworkParseError, TrustedProxies,
};
pub use exchange::{
    Admission, AuditContext, AuditRecordInfo, EngineFuture, Exchange, Finishing, FollowUp,
};
pub use ids::{MAX_REQUEST_ID_LEN, TraceParent, incoming_request_id, new_request_id};
pub use path::{PathError, canonical_path, path_is_under};
pub use policy::{AuthMode, Denied, RoutePolicy, RouteRequirements, RouteTable};
pub use rejection::{Rejection, RejectionKind};
pub use view::{RequestView, SimpleRequest};

use crate::event::{EvidenceMode, Request, Text};
use crate::recorder::Recorder;

/// The default request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The framework-neutral request engine. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    authenticator: Authenticator,
    recorder: Arc<dyn Recorder>,
    routes: RouteTable,
    proxies: TrustedProxies,
    capture: CaptureRules,
    request_id_header: String,
    trust_request_id: bool,
    evidence: EvidenceMode,
    realm: Option<String>,
    actor_claims: Vec<String>,
    archive_keysets: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("routes", &self.inner.routes)
            .field("trusted_proxies", &self.inner.proxies)
            .field("capture", &self.inner.capture)
            .field("request_id_header", &self.inner.request_id_header)
            .field("evidence", &self.inner.evidence)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts configuring an engine that checks tokens with `authenticator` and records to
    /// `recorder`.
    pub fn builder(authenticator: Authenticator, recorder: impl Recorder) -> EngineBuilder {
        EngineBuilder {
            inner: EngineInner {
                authenticator,
                recorder: Arc::new(recorder),
                routes: RouteTable::new(RoutePolicy::authenticated()),
                proxies: TrustedProxies::none(),
                capture: CaptureRules::new(),
                request_id_header: REQUEST_ID_HEADER.to_owned(),
                trust_request_id: true,
                evidence: EvidenceMode::default(),
                realm: None,
                actor_claims: Vec::new(),
                archive_keysets: true,
            },
        }
    }

    /// The request id header name (lower case).
    pub fn request_id_header(&self) -> &str {
        &self.inner.request_id_header
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.authenticator
    }

    /// The policy the route table gives this request (matched on its canonical path when the
    /// framework names no route template).
    pub fn policy_for(&self, req: &dyn RequestView) -> &RoutePolicy {
        self.inner.routes.resolve(req)
    }

    /// Begins a request: canonicalises its path, resolves its policy, client address, ids and
    /// captured fields, and finds its token (unless the route is public). Nothing is recorded
    /// yet. A path without a canonical form (see [`canonical_path`]) makes
    /// [`Exchange::authenticate`] refuse the request with `400 invalid_path`.
    pub fn start(&self, req: &dyn RequestView) -> Exchange {
        let inner = &self.inner;
        let raw_path = req.path();
        let path = target_path(req);
        let key = req.route().or(path.as_deref().ok());
        let policy = Arc::clone(inner.routes.lookup(req.method(), key));
        // One clock read: the event's time, and the time part of the ids made for it.
        let now = crate::event::now();
        let request_id = inner
            .trust_request_id
            .then(|| incoming_request_id(req, &inner.request_id_header))
            .flatten()
            .map_or_else(
                || ids::request_id_from(ids::fresh_uuid_at(ids::unix_millis(now))),
                str::to_owned,
            );
        let trace = TraceParent::from_request(req);
        let request = Request {
            method: req.method().to_owned(),
            route: req.route().map(str::to_owned),
            // A refused path is recorded as it was sent: it has no canonical form.
            path: Text::Plain(path.as_deref().unwrap_or(raw_path).to_owned()),
            raw_path: match &path {
                Ok(canonical) if canonical != raw_path => Some(Text::Plain(raw_path.to_owned())),
                _ => None,
            },
            query: into_text(inner.capture.query(req)),
            client_address: inner
                .proxies
                .client_addr(req)
                .map(|ip| Text::Plain(ip.to_string())),
            user_agent: req.header("user-agent").map(Text::from),
            request_id: Some(request_id),
            trace_id: trace.as_ref().map(|t| t.trace_id.clone()),
            span_id: trace.map(|t| t.span_id),
            headers: into_text(inner.capture.headers(req)),
        };
        let token = match (&path, policy.auth) {
            // Refused before any token is looked at.
            (Err(_), _) | (_, AuthMode::Public) => Ok(None),
            _ => authn::find_token(&inner.authenticator, req, inner.realm.as_deref()),
        };
        let exchange = Exchange::new(self.clone(), now, request, policy, token);
        if let Err(rejection) = path {
            exchange.refuse(rejection);
        }
        exchange
    }
}

/// The request's canonical path, or the `400 invalid_path` refusal. An absolute-form target
/// (`GET http://host/x HTTP/1.1`) must already be canonical and name the authority its `Host`
/// header names: a client that spells one request two ways is refused, not interpreted.
fn target_path(req: &dyn RequestView) -> Result<std::borrow::Cow<'_, str>, Rejection> {
    let raw = req.path();
    let canonical = canonical_path(raw).map_err(|e| Rejection::invalid_path(e.to_string()))?;
    if let Some(authority) = req.absolute_form_authority() {
        if canonical != raw {
            return Err(Rejection::invalid_path(
                "an absolute-form request target (`GET http://host/path`) must carry its path in \
                 canonical form",
            ));
        }
        let mut other_host = false;
        req.for_each_header("host", &mut |host| {
            other_host |= !host.eq_ignore_ascii_case(authority);
        });
        if other_host {
            return Err(Rejection::invalid_path(
                "the authority of the absolute-form request target differs from the Host header",
            ));
        }
    }
    Ok(canonical)
}

fn into_text(
    map: std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, Text> {
    map.into_iter().map(|(k, v)| (k, Text::Plain(v))).collect()
}

/// Configures an [`Engine`]; each method changes one thing.
#[must_use = "call .build() to get the engine"]
pub struct EngineBuilder {
    inner: EngineInner,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder").finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The policy of routes not listed with [`route`](Self::route) (default: a valid token is
    /// required, `Async` recording).
    pub fn default_policy(mut self, policy: RoutePolicy) -> Self {
        self.inner.routes.set_default(policy);
        self
    }

    /// The policy of `route` (a route template such as `/orders/{id}`, or a literal path when
    /// the framework matches none), for every method.
    pub fn route(mut self, route: impl Into<String>, policy: RoutePolicy) -> Self {
        self.inner.routes.insert(route, policy);
        self
    }

    /// The policy of `route` for `method` only.
    pub fn route_method(
        mut self,
        method: &str,
        route: impl Into<String>,
        policy: RoutePolicy,
    ) -> Self {
        self.inner.routes.insert_method(method, route, policy);
        self
    }

    /// Believes the forwarding header (`X-Forwarded-For` unless
    /// [`TrustedProxies::header`] says `Forwarded`) from peers in these networks; the other
    /// header is never read.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.inner.proxies = proxies;
        self
    }

    /// Records these allow-listed headers and query parameters.
    pub fn capture(mut self, capture: CaptureRules) -> Self {
        self.inner.capture = capture;
        self
    }

    /// Reads and answers the request id in this header (default `x-request-id`).
    pub fn request_id_header(mut self, name: &str) -> Self {
        self.inner.request_id_header = name.to_ascii_lowercase();
        self
    }

    /// Whether an incoming request id is kept (the library's default, so that a gateway in
    /// front of the service can correlate its logs) or always replaced by a fresh one. A
    /// client can put any id it likes there, so an event's request id identifies the event
    /// only when every caller is trusted, or a trusted gateway sets the header; turn it off
    /// for services facing clients directly (`veritrail proxy` does by default).
    pub fn trust_request_id(mut self, trust: bool) -> Self {
        self.inner.trust_request_id = trust;
        self
    }

    /// What of the token the event keeps (default: its SHA-256 fingerprint).
    pub fn evidence(mut self, mode: EvidenceMode) -> Self {
        self.inner.evidence = mode;
        self
    }

    /// The `realm` of the engine's `WWW-Authenticate` challenges.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.inner.realm = Some(realm.into());
        self
    }

    /// Custom claims copied into the event's actor (`actor.claims`); none by default.
    pub fn actor_claim(mut self, claim: impl Into<String>) -> Self {
        self.inner.actor_claims.push(claim.into());
        self
    }

    /// Whether the engine records the public keys its tokens are verified with (default:
    /// yes): a `keyset` event per issuer when it is built, and another whenever a changing key
    /// source (a JWKS URL, OpenID Connect discovery) brings a new set into force, each queued
    /// before any token is verified with that set. With those records and
    /// [`EvidenceMode::Full`], `veritrail verify --tokens` re-verifies every stored token from
    /// the log alone. Shared secrets are never recorded. Turn it off only when something else
    /// records the key sets in the same log.
    pub fn archive_keysets(mut self, archive: bool) -> Self {
        self.inner.archive_keysets = archive;
        self
    }

    /// The engine. Records the key sets in force first (see
    /// [`archive_keysets`](Self::archive_keysets)).
    pub fn build(mut self) -> Engine {
        for name in authn::token_headers(&self.inner.authenticator) {
            self.inner.capture = self.inner.capture.deny_header(&name);
        }
        for name in authn::token_query_params(&self.inner.authenticator) {
            self.inner.capture = self.inner.capture.deny_query_param(&name);
        }
        if self.inner.archive_keysets {
            keysets::archive(&self.inner.authenticator, &self.inner.recorder);
        }
        Engine {
            inner: Arc::new(self.inner),
        }
    }
}
