//! One request's passage through the engine, and the [`AuditContext`] handlers fill in.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::{
    Actor, AuditEvent, Authn, AuthnDecision, Authz, AuthzDecision, EventBody, HttpEvent, Outcome,
    Phase, Request, Text, TokenEvidence,
};
use crate::recorder::{Durability, Receipt, RecordError, RecordFuture};

use super::Engine;
use super::authn::{self, Identity};
use super::ids::{self, TraceParent};
use super::policy::{AuthMode, RoutePolicy, RouteRequirements};
use super::rejection::{Rejection, RejectionKind};
use crate::auth::{AuthError, FoundToken, TokenSource, bearer_challenge};

/// A boxed, `Send` future the engine returns for its asynchronous steps.
pub type EngineFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the handler says about its request, shared through the request extensions.
///
/// Cheap to clone; every clone fills the same event. The adapters put one into each request;
/// handlers name the action and its target, add fields, and may state the business outcome:
///
/// ```
/// # use veritrail_core::engine::AuditContext;
/// fn refund(ctx: &AuditContext, order: u64) {
///     ctx.set_action("order.refund");
///     ctx.set_target(format!("order:{order}"));
///     ctx.insert("amount_cents", 1250);
/// }
/// ```
#[derive(Clone)]
pub struct AuditContext {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("AuditContext")
            .field("request_id", &self.shared.request_id.as_str())
            .field("action", &s.action)
            .field("outcome", &s.outcome)
            .finish_non_exhaustive()
    }
}

struct Shared {
    engine: Engine,
    start: Instant,
    time: OffsetDateTime,
    request_id: ids::InlineId,
    state: Mutex<State>,
}

struct State {
    request: Request,
    policy: Arc<RoutePolicy>,
    token: Option<FoundToken>,
    /// Where the verified token came from, once verified.
    token_source: Option<TokenSource>,
    evidence: Option<TokenEvidence>,
    identity: Option<Identity>,
    actor: Option<Arc<Actor>>,
    authn: Option<Authn>,
    authz: Option<Authz>,
    /// Set once the request was refused by the engine (its event is recorded with that).
    token_error: Option<Rejection>,
    /// A refusal decided before any token is read (a path without a canonical form).
    refusal: Option<Rejection>,
    intent_id: Option<Uuid>,
    action: Option<String>,
    target: Option<String>,
    extra: BTreeMap<String, Value>,
    outcome: Option<Outcome>,
    /// The final event, once the recorder took it.
    recorded: Option<AuditRecordInfo>,
}

/// The request's final audit event as the recorder took it: what an outer layer (an
/// OpenTelemetry span, an access log) needs to point at it. Adapters put it into the
/// response's extensions; it is absent when the event could not be recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecordInfo {
    /// The event's id.
    pub event_id: Uuid,
    /// Its log index, when the recorder told it (always for `Durable` and `WriteAhead`).
    pub index: Option<u64>,
    /// The caller's `sub` as the event holds it in plain text (absent for anonymous callers
    /// and protected fields); outer layers report it only when configured to.
    pub subject: Option<String>,
    /// The client address as resolved through the trusted proxies, when held in plain text.
    pub client_address: Option<String>,
    /// The event's outcome.
    pub outcome: Option<Outcome>,
}

impl AuditContext {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain data: a panic elsewhere cannot leave it half-written.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names the action, e.g. `order.refund`.
    pub fn set_action(&self, action: impl Into<String>) {
        self.lock().action = Some(action.into());
    }

    /// Names what the action was applied to, e.g. `order:42`.
    pub fn set_target(&self, target: impl Into<String>) {
        self.lock().target = Some(target.into());
    }

    /// Adds an application field to the event's `extra`.
    pub fn insert(&self, name: impl Into<String>, value: impl Into<Value>) {
        self.lock().extra.insert(name.into(), value.into());
    }

    /// States the business outcome (e.g. [`Outcome::Failure`] for a declined payment answered
    /// with 200). It applies unless the request ends in a server error, a refusal by the engine
    /// or a cancellation, which take precedence.
    pub fn set_outcome(&self, outcome: Outcome) {
        self.lock().outcome = Some(outcome);
    }

    /// The request id (taken from the request or generated).
    pub fn request_id(&self) -> &str {
        self.shared.request_id.as_str()
    }

    /// The verified identity, if the request was authenticated.
    pub fn identity(&self) -> Option<Identity> {
        self.lock().identity.clone()
    }

    /// Where the verified token was found (the `Authorization` header, a cookie, …), if the
    /// request was authenticated with one: a proxy forwards that credential and no other.
    pub fn token_source(&self) -> Option<TokenSource> {
        self.lock().token_source.clone()
    }

    /// The final event, once it was recorded (see [`AuditRecordInfo`]).
    pub fn record_info(&self) -> Option<AuditRecordInfo> {
        self.lock().recorded.clone()
    }

    /// Records the final `event`; once the recorder took it, [`record_info`](Self::record_info)
    /// tells about it.
    fn record_final(&self, event: AuditEvent, durability: Durability) -> Recording {
        let http = event.as_http();
        let plain = |t: Option<&Text>| t.and_then(Text::as_plain).map(str::to_owned);
        let info = AuditRecordInfo {
            event_id: event.id,
            index: None,
            subject: plain(http.and_then(|h| h.actor.as_ref()?.sub.as_ref())),
            client_address: plain(http.and_then(|h| h.request.client_address.as_ref())),
            outcome: http.and_then(|h| h.outcome),
        };
        let answer = self
            .shared
            .engine
            .inner
            .recorder
            .record_now(event, durability);
        Recording {
            answer: match answer {
                Ok(answer) => Answer::Ready(Some(answer)),
                Err(future) => Answer::Waiting(future),
            },
            ctx: self.clone(),
            info: Some(info),
        }
    }

    /// Notes the outcome of the token's verification in the event and authorises the caller.
    fn verified(
        &self,
        found: FoundToken,
        result: Result<Identity, AuthError>,
    ) -> Result<(), Rejection> {
        let FoundToken { token, source } = found;
        let engine = &self.shared.engine;
        let mut s = self.lock();
        let mode = engine.inner.evidence;
        // The authenticator's cache already hashed the token: reuse its digest.
        let digest = result.as_ref().ok().and_then(Identity::token_sha256);
        s.evidence = Some(TokenEvidence::capture_hashed(mode, &token, digest));
        match result {
            Ok(identity) => {
                s.actor = Some(authn::actor(&identity, &engine.inner.actor_claims));
                s.authn = Some(Authn {
                    decision: AuthnDecision::Allowed,
                    reason: None,
                });
                s.identity = Some(identity);
                s.token_source = Some(source);
                engine.authorize(&mut s)
            }
            Err(err) => {
                let rejection = authn::rejection(&err, engine.inner.realm.as_deref());
                s.authn = Some(Authn {
                    decision: AuthnDecision::Denied,
                    reason: Some(rejection.code().to_owned()),
                });
                Err(rejection)
            }
        }
    }

    /// For adapters whose exchange goes on after its response head (an HTTP upgrade: the
    /// connection becomes a tunnel; a response body hashed as it streams): a [`FollowUp`] that
    /// records, when that later part ends, a second `http` event of the same request — the
    /// same request (and `request_id`), caller and decisions, with the fields then known.
    ///
    /// Take it before the request's own event is recorded (from the inner service, before it
    /// answers): that event takes what the follow-up copies.
    pub fn follow_up(&self) -> FollowUp {
        let s = self.lock();
        FollowUp {
            ctx: self.clone(),
            template: HttpEvent {
                phase: Phase::Complete,
                intent_id: None,
                actor: s.actor.clone(),
                token: s.evidence.clone(),
                request: s.request.clone(),
                authn: s.authn.clone(),
                authz: s.authz.clone(),
                action: s.action.clone(),
                target: s.target.clone().map(Text::Plain),
                extra: BTreeMap::new(),
                status: None,
                latency_us: None,
                outcome: None,
            },
            durability: match s.policy.durability {
                // The request's own event already held the request back; nothing waits on this.
                Durability::WriteAhead => Durability::Durable,
                other => other,
            },
        }
    }

    /// The action named so far.
    pub fn action(&self) -> Option<String> {
        self.lock().action.clone()
    }

    /// The policy in force for this request (the route's, tightened by [`require`](Self::require)).
    pub fn policy(&self) -> RoutePolicy {
        RoutePolicy::clone(&self.lock().policy)
    }

    /// The 401 this request gets when something needs a caller and there is none (an
    /// extractor on a route where the token is optional).
    pub fn unauthenticated(&self) -> Rejection {
        self.shared.engine.missing_token()
    }

    /// For route-level middleware: checks further requirements against the caller (401 when
    /// there is no authenticated caller, 403 `insufficient_scope` when scopes or roles are
    /// missing), records the decision in the event, and tightens the request's policy.
    pub fn require(&self, policy: &RoutePolicy) -> Result<(), Rejection> {
        let mut s = self.lock();
        let tightened = Arc::make_mut(&mut s.policy);
        tightened.scopes.extend(policy.scopes.iter().cloned());
        tightened.roles.extend(policy.roles.iter().cloned());
        if policy.auth == AuthMode::Required && tightened.auth != AuthMode::Required {
            tightened.auth = AuthMode::Required;
            if s.identity.is_none() {
                let rejection = self.shared.engine.missing_token();
                s.authn = Some(Authn {
                    decision: AuthnDecision::Denied,
                    reason: Some(rejection.code().to_owned()),
                });
                return Err(rejection);
            }
        }
        self.shared.engine.authorize(&mut s)
    }

    /// For route-level middleware: records the request's event with this durability.
    pub fn set_durability(&self, durability: Durability) {
        Arc::make_mut(&mut self.lock().policy).durability = durability;
    }

    /// For route-level middleware: applies `requirements` ([`require`](Self::require), then
    /// the durability). `Ok` holds the write-ahead step to await before the handler runs;
    /// `Err` (and an `Err` from that step) is the refusal to answer instead of calling it.
    pub fn enforce(
        &self,
        requirements: &RouteRequirements,
    ) -> Result<EngineFuture<Result<(), Rejection>>, Rejection> {
        self.require(&requirements.policy)?;
        if let Some(durability) = requirements.durability {
            self.set_durability(durability);
        }
        Ok(self.write_ahead())
    }

    /// For adapters: when the route is [`Durability::WriteAhead`], records the intent event and
    /// waits until it is durable; a failure is a 503 the adapter must answer without calling
    /// the handler. Resolves at once otherwise, or when the intent is already recorded.
    pub fn write_ahead(&self) -> EngineFuture<Result<(), Rejection>> {
        match self.write_ahead_step() {
            Some(step) => step,
            None => Box::pin(std::future::ready(Ok(()))),
        }
    }

    /// The write-ahead step, `None` when there is nothing to wait for.
    fn write_ahead_step(&self) -> Option<EngineFuture<Result<(), Rejection>>> {
        let event = {
            let mut s = self.lock();
            if s.policy.durability != Durability::WriteAhead || s.intent_id.is_some() {
                return None;
            }
            let event = self.build(&mut s, None, None, true);
            s.intent_id = Some(event.id);
            event
        };
        let record = self
            .shared
            .engine
            .inner
            .recorder
            .record(event, Durability::WriteAhead);
        Some(Box::pin(async move {
            record.await.map(drop).map_err(|e| {
                Rejection::audit_unavailable(format!(
                    "the request was not run because its write-ahead audit record failed: {}",
                    record_error_summary(&e)
                ))
            })
        }))
    }

    /// The event for the request's state. The final event takes the state's parts (nothing
    /// reads them afterwards); a write-ahead intent copies them.
    fn build(
        &self,
        s: &mut State,
        status: Option<u16>,
        outcome: Option<Outcome>,
        intent: bool,
    ) -> AuditEvent {
        fn part<T: Clone + Default>(value: &mut T, take: bool) -> T {
            if take {
                std::mem::take(value)
            } else {
                value.clone()
            }
        }
        let take = !intent;
        let outcome = (!intent).then(|| {
            outcome.unwrap_or_else(|| {
                let from_status = status.map_or(Outcome::Error, Outcome::from_status);
                match (s.outcome, from_status) {
                    (Some(own), Outcome::Success | Outcome::Failure) => own,
                    _ => from_status,
                }
            })
        });
        let latency = u64::try_from(self.shared.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let http = HttpEvent {
            phase: if intent {
                Phase::Intent
            } else {
                Phase::Complete
            },
            intent_id: if intent { None } else { s.intent_id },
            actor: part(&mut s.actor, take),
            token: part(&mut s.evidence, take),
            request: part(&mut s.request, take),
            authn: part(&mut s.authn, take),
            authz: part(&mut s.authz, take),
            action: part(&mut s.action, take),
            target: part(&mut s.target, take).map(Text::Plain),
            extra: part(&mut s.extra, take),
            status: if intent { None } else { status },
            latency_us: (!intent).then_some(latency),
            outcome,
        };
        AuditEvent {
            id: ids::fresh_uuid_at(ids::unix_millis(self.shared.time)),
            index: None,
            time: self.shared.time,
            body: EventBody::Http(Box::new(http)),
        }
    }
}

/// The second event of a request whose exchange went on after its response head (see
/// [`AuditContext::follow_up`]). Recorded once, by [`record`](Self::record); dropped unused,
/// it records nothing.
///
/// The event is an ordinary `complete` `http` event: the request's method, path,
/// `request_id`, client address, caller, token evidence and decisions as in the request's own
/// event; its own time (when it is recorded) and id; `latency_us` from the start of the
/// request to now; and in `extra`, `follow_up` (what part of the exchange it records, e.g.
/// `upgrade_closed`), `follows` (the id of the request's own event, when that was recorded)
/// and the caller's fields. A reader that counts requests skips events with
/// `extra.follow_up`.
pub struct FollowUp {
    ctx: AuditContext,
    template: HttpEvent,
    durability: Durability,
}

impl std::fmt::Debug for FollowUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowUp")
            .field("request_id", &self.ctx.shared.request_id.as_str())
            .finish_non_exhaustive()
    }
}

impl FollowUp {
    /// The request id both events carry.
    pub fn request_id(&self) -> &str {
        self.ctx.request_id()
    }

    /// Records the follow-up event: `kind` goes into `extra.follow_up`, `fields` into
    /// `extra`, with this status and outcome; with the route's durability (`Durable` for a
    /// `write-ahead` route). Resolves when the recorder took it (on disk for `Durable`).
    pub fn record(
        self,
        kind: &str,
        status: Option<u16>,
        outcome: Outcome,
        fields: BTreeMap<String, Value>,
    ) -> EngineFuture<Result<(), RecordError>> {
        let mut http = self.template;
        http.extra = fields;
        http.extra.insert("follow_up".into(), Value::from(kind));
        if let Some(info) = self.ctx.record_info() {
            http.extra
                .insert("follows".into(), Value::from(info.event_id.to_string()));
        }
        http.status = status;
        http.outcome = Some(outcome);
        http.latency_us =
            Some(u64::try_from(self.ctx.shared.start.elapsed().as_micros()).unwrap_or(u64::MAX));
        let time = crate::event::now();
        let event = AuditEvent {
            id: ids::fresh_uuid_at(ids::unix_millis(time)),
            index: None,
            time,
            body: EventBody::Http(Box::new(http)),
        };
        let record = self
            .ctx
            .shared
            .engine
            .inner
            .recorder
            .record(event, self.durability);
        Box::pin(async move { record.await.map(drop) })
    }
}

fn record_error_summary(e: &RecordError) -> &'static str {
    match e {
        RecordError::Overflow => "the audit queue is full",
        RecordError::Failed(_) => "the audit writer has failed",
        RecordError::Closed => "the audit writer is shut down",
        RecordError::TimedOut(_) => "the audit log's store did not confirm the event in time",
    }
}

/// One request in flight: created by [`Engine::start`], driven by an adapter, and finished
/// exactly once — by [`finish`](Self::finish), [`fail`](Self::fail) or
/// [`reject`](Self::reject). Dropped unfinished (the client went away, a timeout fired), it
/// records the event with outcome `cancelled` — or `error` when dropped while a panic unwinds.
pub struct Exchange {
    ctx: AuditContext,
    finished: bool,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("ctx", &self.ctx)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Exchange {
    pub(super) fn new(
        engine: Engine,
        time: OffsetDateTime,
        request: Request,
        policy: Arc<RoutePolicy>,
        token: Result<Option<FoundToken>, Rejection>,
    ) -> Self {
        let (token, token_error) = match token {
            Ok(t) => (t, None),
            Err(e) => (None, Some(e)),
        };
        let shared = Shared {
            engine,
            start: Instant::now(),
            time,
            request_id: ids::InlineId::new(request.request_id.as_deref().unwrap_or_default()),
            state: Mutex::new(State {
                request,
                policy,
                token,
                token_source: None,
                evidence: None,
                identity: None,
                actor: None,
                authn: None,
                authz: None,
                token_error,
                refusal: None,
                intent_id: None,
                action: None,
                target: None,
                extra: BTreeMap::new(),
                outcome: None,
                recorded: None,
            }),
        };
        Exchange {
            ctx: AuditContext {
                shared: Arc::new(shared),
            },
            finished: false,
        }
    }

    /// Makes [`authenticate`](Self::authenticate) refuse the request with `rejection` before
    /// any token is looked at; the event records it as an authorization decision (`denied`,
    /// reason: the rejection's code).
    pub(super) fn refuse(&self, rejection: Rejection) {
        self.ctx.lock().refusal = Some(rejection);
    }

    /// Records `rejection` as the request's (denied) authorization decision and the request as
    /// refused with it; resolves to it for the adapter to render. For requests an adapter
    /// refuses itself, before the engine looks at them (a `CONNECT`, a request head the HTTP
    /// server could not parse).
    pub fn refuse_now(self, rejection: Rejection) -> EngineFuture<Rejection> {
        self.ctx.lock().authz = Some(Authz {
            decision: AuthzDecision::Denied,
            required_scopes: Vec::new(),
            required_roles: Vec::new(),
            reason: Some(rejection.code().to_owned()),
        });
        self.reject(rejection)
    }

    /// The handle handlers use; put it into the request's extensions.
    pub fn context(&self) -> &AuditContext {
        &self.ctx
    }

    /// The request id (taken from the request or generated).
    pub fn request_id(&self) -> &str {
        self.ctx.shared.request_id.as_str()
    }

    /// Records `trace` as the request's trace context instead of its `traceparent` header:
    /// for adapters whose outer layer started the request's server span (put a
    /// [`TraceParent`] with that span's ids into the request's extensions).
    pub fn set_trace(&self, trace: &TraceParent) {
        let mut s = self.ctx.lock();
        s.request.trace_id = Some(trace.trace_id.clone());
        s.request.span_id = Some(trace.span_id.clone());
    }

    /// The verified identity, once [`authenticate`](Self::authenticate) succeeded with a token.
    pub fn identity(&self) -> Option<Identity> {
        self.ctx.identity()
    }

    /// The durability the request's event is recorded with.
    pub fn durability(&self) -> Durability {
        self.ctx.lock().policy.durability
    }

    /// Authenticates the token found by [`Engine::start`] (if the route looks at tokens) and
    /// authorises the caller against the route's policy. On `Err`, answer the rejection and
    /// pass it to [`reject`](Self::reject).
    ///
    /// A recorder that can take nothing more ([`Recorder::health`](crate::recorder::Recorder::health):
    /// failed or shut down) fails it with a 503 `audit_unavailable` before anything else — and
    /// again after a token check that had to wait — so that no request runs whose event
    /// cannot be recorded, whatever the route's durability.
    pub fn authenticate(&self) -> EngineFuture<Result<(), Rejection>> {
        match self.authenticate_step() {
            Step::Ready(result) => Box::pin(std::future::ready(result)),
            Step::Waiting(future) => future,
        }
    }

    /// Admits the request: [`authenticate`](Self::authenticate), then, on a
    /// [`Durability::WriteAhead`] route, [`AuditContext::write_ahead`]. What both adapters do
    /// before they call the handler; on `Err`, answer the rejection after
    /// [`reject`](Self::reject). When nothing has to wait (a cached or synchronously verified
    /// token, no write-ahead) the answer is ready on the first poll and nothing is allocated.
    pub fn admit(&self) -> Admission {
        let state = match self.authenticate_step() {
            Step::Ready(Ok(())) => match self.ctx.write_ahead_step() {
                Some(future) => AdmissionState::WritingAhead(future),
                None => AdmissionState::Ready(Some(Ok(()))),
            },
            Step::Ready(Err(rejection)) => AdmissionState::Ready(Some(Err(rejection))),
            Step::Waiting(future) => AdmissionState::Authenticating(future, self.ctx.clone()),
        };
        Admission { state }
    }

    /// Authentication, at once when nothing has to wait.
    fn authenticate_step(&self) -> Step<Result<(), Rejection>> {
        let ctx = &self.ctx;
        if let Some(rejection) = ctx.shared.engine.recorder_unavailable() {
            return Step::Ready(Err(rejection));
        }
        let (token, mode) = {
            let mut s = ctx.lock();
            if let Some(rejection) = s.refusal.take() {
                s.authz = Some(Authz {
                    decision: AuthzDecision::Denied,
                    required_scopes: Vec::new(),
                    required_roles: Vec::new(),
                    reason: Some(rejection.code().to_owned()),
                });
                return Step::Ready(Err(rejection));
            }
            if let Some(rejection) = s.token_error.take() {
                s.authn = Some(Authn {
                    decision: AuthnDecision::Denied,
                    reason: Some(rejection.code().to_owned()),
                });
                return Step::Ready(Err(rejection));
            }
            (s.token.take(), s.policy.auth)
        };
        let engine = &ctx.shared.engine;
        match (token, mode) {
            (_, AuthMode::Public) => Step::Ready(Ok(())),
            (None, AuthMode::Optional) => {
                let mut s = ctx.lock();
                s.authn = Some(Authn {
                    decision: AuthnDecision::Anonymous,
                    reason: None,
                });
                Step::Ready(engine.authorize(&mut s))
            }
            (None, AuthMode::Required) => {
                let rejection = engine.missing_token();
                ctx.lock().authn = Some(Authn {
                    decision: AuthnDecision::Denied,
                    reason: Some(rejection.code().to_owned()),
                });
                Step::Ready(Err(rejection))
            }
            (Some(found), _) => match engine.inner.authenticator.verify_now(&found.token) {
                Some(result) => Step::Ready(ctx.verified(found, result)),
                None => {
                    let ctx = ctx.clone();
                    Step::Waiting(Box::pin(async move {
                        let engine = &ctx.shared.engine;
                        let result = engine.inner.authenticator.verify(&found.token).await;
                        let admitted = ctx.verified(found, result);
                        // The key fetch may have taken a while: look again.
                        admitted.and_then(|()| engine.recorder_unavailable().map_or(Ok(()), Err))
                    }))
                }
            },
        }
    }

    /// Records the final event for a response with this status, with the route's durability.
    /// For `Durable` and `WriteAhead` it resolves once the event is on disk; `Err` means the
    /// event could not be recorded and the adapter must answer the 503 instead.
    pub fn finish(self, status: u16) -> EngineFuture<Result<(), Rejection>> {
        Box::pin(self.finishing(status))
    }

    /// [`finish`](Self::finish) as a named future, nothing boxed: what the adapters use.
    pub fn finishing(mut self, status: u16) -> Finishing {
        self.finished = true;
        let (event, durability) = {
            let mut s = self.ctx.lock();
            (
                self.ctx.build(&mut s, Some(status), None, false),
                s.policy.durability,
            )
        };
        Finishing {
            recording: self.ctx.record_final(event, durability),
        }
    }

    /// Records the final event for a request whose inner service failed (no response):
    /// outcome `error`. Resolves when recorded with the route's durability; the result only
    /// says whether recording worked.
    pub fn fail(mut self) -> EngineFuture<Result<(), RecordError>> {
        self.finished = true;
        let (event, durability) = {
            let mut s = self.ctx.lock();
            (
                self.ctx.build(&mut s, None, Some(Outcome::Error), false),
                s.policy.durability,
            )
        };
        let record = self.ctx.record_final(event, durability);
        Box::pin(async move { record.await.map(drop) })
    }

    /// Records the event of a request the engine refused (answered with `rejection`, which
    /// this resolves to so the adapter can render it). The event is queued (`Async`): a refused
    /// request ran nothing, and the refusal is answered even if the recorder cannot take it.
    pub fn reject(mut self, rejection: Rejection) -> EngineFuture<Rejection> {
        self.finished = true;
        let event = {
            let mut s = self.ctx.lock();
            let outcome = match rejection.kind() {
                RejectionKind::AuditUnavailable => Outcome::Error,
                _ if rejection.status() >= 500 => Outcome::Error,
                _ => Outcome::Denied,
            };
            self.ctx
                .build(&mut s, Some(rejection.status()), Some(outcome), false)
        };
        let record = self.ctx.record_final(event, Durability::Async);
        Box::pin(async move {
            // Whether the refusal itself was recorded does not change the answer.
            let _ = record.await;
            rejection
        })
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Unwinding from a panic in the handler is an error, not a client going away.
        let outcome = if std::thread::panicking() {
            Outcome::Error
        } else {
            Outcome::Cancelled
        };
        let event = {
            let mut s = self.ctx.lock();
            self.ctx.build(&mut s, None, Some(outcome), false)
        };
        // Nobody is left to wait: hand the event over without waiting. A full queue counts it
        // into a `gap` record (a `Block` queue's waiting future, dropped here, would have lost
        // it without a trace); a failed writer counts it as refused.
        let _ = self.ctx.shared.engine.inner.recorder.try_record(event);
    }
}

impl Engine {
    /// 503 `audit_unavailable` when the recorder can take nothing more (it failed, or it is
    /// shut down): the request must not run, since its event could not be recorded. The
    /// recorder's reason (a path, an OS error) is not sent to the client.
    fn recorder_unavailable(&self) -> Option<Rejection> {
        let err = self.inner.recorder.health().err()?;
        Some(Rejection::audit_unavailable(format!(
            "the request was not run because {}: nothing can be recorded until it is restarted",
            record_error_summary(&err)
        )))
    }

    /// 401 for a route that requires a token when none was sent (RFC 6750 §3.1: no error
    /// code).
    pub(super) fn missing_token(&self) -> Rejection {
        authn::rejection(&AuthError::TokenMissing, self.inner.realm.as_deref())
    }

    fn authorize(&self, s: &mut State) -> Result<(), Rejection> {
        let policy = &s.policy;
        if !policy.has_requirements() {
            return Ok(());
        }
        let none: &[String] = &[];
        let (scopes, roles) = s
            .actor
            .as_ref()
            .map_or((none, none), |a| (&a.scopes[..], &a.roles[..]));
        let result = policy.authorize(
            scopes.iter().map(String::as_str),
            roles.iter().map(String::as_str),
        );
        let reason = result.as_ref().err().map(|d| {
            if d.missing_scopes.is_empty() {
                "missing_role"
            } else {
                "missing_scope"
            }
        });
        s.authz = Some(Authz {
            decision: if result.is_ok() {
                AuthzDecision::Allowed
            } else {
                AuthzDecision::Denied
            },
            required_scopes: policy.scopes.clone(),
            required_roles: policy.roles.clone(),
            reason: reason.map(str::to_owned),
        });
        result.map_err(|denied| {
            if s.identity.is_none() {
                return self.missing_token();
            }
            let detail = denied.to_string();
            let mut params = Vec::new();
            if let Some(realm) = &self.inner.realm {
                params.push(("realm", realm.clone()));
            }
            params.push(("error", "insufficient_scope".to_owned()));
            params.push(("error_description", detail.clone()));
            if !denied.required_scopes.is_empty() {
                params.push(("scope", denied.required_scopes.join(" ")));
            }
            Rejection::new(
                RejectionKind::Authorization,
                403,
                "insufficient_scope",
                detail,
            )
            .with_challenge(bearer_challenge(&params))
        })
    }
}

/// An answer now, or a future to wait for it.
enum Step<T> {
    Ready(T),
    Waiting(EngineFuture<T>),
}

/// The future of [`Exchange::admit`]: authentication, then the write-ahead record where the
/// route asks for one. `Err` is the refusal to answer instead of calling the handler.
#[must_use = "futures do nothing unless polled"]
pub struct Admission {
    state: AdmissionState,
}

enum AdmissionState {
    Ready(Option<Result<(), Rejection>>),
    Authenticating(EngineFuture<Result<(), Rejection>>, AuditContext),
    WritingAhead(EngineFuture<Result<(), Rejection>>),
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            AdmissionState::Ready(_) => "ready",
            AdmissionState::Authenticating(..) => "authenticating",
            AdmissionState::WritingAhead(_) => "writing ahead",
        };
        f.debug_struct("Admission").field("state", &state).finish()
    }
}

impl Future for Admission {
    type Output = Result<(), Rejection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match &mut self.state {
                AdmissionState::Ready(answer) => {
                    return Poll::Ready(answer.take().expect("Admission polled after completion"));
                }
                AdmissionState::Authenticating(check, ctx) => {
                    match ready!(check.as_mut().poll(cx)) {
                        Ok(()) => match ctx.write_ahead_step() {
                            Some(future) => AdmissionState::WritingAhead(future),
                            None => AdmissionState::Ready(Some(Ok(()))),
                        },
                        Err(rejection) => AdmissionState::Ready(Some(Err(rejection))),
                    }
                }
                AdmissionState::WritingAhead(record) => {
                    AdmissionState::Ready(Some(ready!(record.as_mut().poll(cx))))
                }
            };
            self.state = next;
        }
    }
}

/// The future of [`Exchange::finishing`]: resolves once the final event is recorded with the
/// route's durability; `Err` is the 503 to answer instead of the response.
#[must_use = "futures do nothing unless polled"]
pub struct Finishing {
    recording: Recording,
}

impl std::fmt::Debug for Finishing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finishing").finish_non_exhaustive()
    }
}

impl Future for Finishing {
    type Output = Result<(), Rejection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = ready!(Pin::new(&mut self.recording).poll(cx));
        Poll::Ready(result.map(drop).map_err(|e| {
            Rejection::audit_unavailable(format!(
                "the response was withheld because its audit record failed: {}",
                record_error_summary(&e)
            ))
        }))
    }
}

/// The final event on its way into the recorder; notes the record's info in the context
/// once it is taken.
struct Recording {
    answer: Answer,
    ctx: AuditContext,
    info: Option<AuditRecordInfo>,
}

enum Answer {
    Ready(Option<Result<Receipt, RecordError>>),
    Waiting(RecordFuture),
}

impl Future for Recording {
    type Output = Result<Receipt, RecordError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = match &mut this.answer {
            Answer::Ready(answer) => answer.take().expect("Recording polled after completion"),
            Answer::Waiting(future) => ready!(future.as_mut().poll(cx)),
        };
        if let (Ok(receipt), Some(info)) = (&result, this.info.take()) {
            this.ctx.lock().recorded = Some(AuditRecordInfo {
                index: receipt.index,
                ..info
            });
        }
        Poll::Ready(result)
    }
}
