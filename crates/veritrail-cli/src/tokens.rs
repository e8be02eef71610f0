//! `verify --tokens`: re-verifies every stored token against the keys the log itself archived.
//!
//! A writer appends a `keyset` record (the issuer's public JWKS) whenever the keys in force
//! change, before any token they verify is used. Reading the records in order, this keeps the
//! latest key set per issuer (a record without an issuer serves every issuer that has none of
//! its own), and for each `http` event that kept the full token (`token.mode == "full"`):
//!
//! 1. the token must match the event's own fingerprint (`token.sha256`);
//! 2. it must pass veritrail's [`Authenticator`] — the middleware's own code path: RFC 8725
//!    header rules, the algorithm taken from the key, the signature checked with the archived
//!    public key — configured with that issuer's archived key set, a clock standing at the
//!    event's time (the token was valid then; it has long expired now), no cache, and the
//!    `--issuer` / `--audience` rules if given (`exp` is not required: the service's policy is
//!    not in the log; when present it is checked);
//! 3. the event's actor must say what the token says: `sub`, `iss`, `aud`, `jti`, `iat`, `exp`
//!    from the verified claims, `kid` and `alg` from its header. A protected (encrypted or
//!    pseudonymised) `sub` or `jti` cannot be compared and is skipped.
//!
//! Events that kept only the fingerprint, or no evidence, are counted; so are tokens whose
//! `jwt` field is encrypted (they need the field key, which this command does not take).

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use veritrail_core::auth::keyset::alg_name;
use veritrail_core::auth::{Authenticator, Identity, Issuer, KeySet, ManualClock};
use veritrail_core::event::{
    Actor, AuditEvent, AuthnDecision, EventBody, HttpEvent, Text, TokenEvidence,
};

use crate::events::rfc3339;
use crate::output::plural;

/// Failures kept for the report (all are counted).
const MAX_FAILURES_KEPT: usize = 1000;
/// Failures printed in the human report.
const MAX_FAILURES_SHOWN: usize = 20;

/// The policy flags of `verify --tokens`.
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenRules {
    /// Accept only tokens of this issuer.
    pub(crate) issuer: Option<String>,
    /// Require one of these audiences (none: no audience policy).
    pub(crate) audiences: Vec<String>,
}

/// One event whose token did not check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenFailure {
    /// The event's log index.
    pub(crate) index: u64,
    /// Why, for people.
    pub(crate) reason: String,
}

/// A key set the log archived.
struct Archived {
    /// The index of its `keyset` record.
    index: u64,
    keys: Result<KeySet, String>,
}

/// An authenticator for one issuer's archived key set, with its clock.
struct Verifier {
    keyset_index: u64,
    auth: Authenticator,
    clock: ManualClock,
}

/// The running state and counts of a token audit over a log's records, in order.
pub(crate) struct TokenAudit {
    rules: TokenRules,
    keysets: HashMap<Option<String>, Archived>,
    verifiers: HashMap<String, Verifier>,
    keyset_records: u64,
    verified: u64,
    fingerprint_only: u64,
    no_evidence: u64,
    without_token: u64,
    encrypted: u64,
    refused: u64,
    failed: u64,
    failures: Vec<TokenFailure>,
}

impl TokenAudit {
    /// A new audit under `rules`.
    pub(crate) fn new(rules: TokenRules) -> Self {
        TokenAudit {
            rules,
            keysets: HashMap::new(),
            verifiers: HashMap::new(),
            keyset_records: 0,
            verified: 0,
            fingerprint_only: 0,
            no_evidence: 0,
            without_token: 0,
            encrypted: 0,
            refused: 0,
            failed: 0,
            failures: Vec::new(),
        }
    }

    /// Takes the next record of the log (records that are not audit events are ignored).
    pub(crate) fn check_record(&mut self, index: u64, record: &[u8]) {
        let Ok(event) = AuditEvent::from_json(record) else {
            return;
        };
        match &event.body {
            EventBody::Keyset(keyset) => {
                self.keyset_records += 1;
                let keys = serde_json::to_vec(&keyset.jwks)
                    .map_err(|e| e.to_string())
                    .and_then(|doc| KeySet::from_jwks(&doc).map_err(|e| e.to_string()))
                    .map(|(keys, _skipped)| keys);
                self.keysets
                    .insert(keyset.issuer.clone(), Archived { index, keys });
            }
            EventBody::Http(http) => {
                if let Err(reason) = self.check_event(event.time, http) {
                    self.fail(index, reason);
                }
            }
            _ => {}
        }
    }

    /// The number of events whose token failed.
    pub(crate) fn failed(&self) -> u64 {
        self.failed
    }

    fn fail(&mut self, index: u64, reason: String) {
        self.failed += 1;
        if self.failures.len() < MAX_FAILURES_KEPT {
            self.failures.push(TokenFailure { index, reason });
        }
    }

    fn check_event(&mut self, time: OffsetDateTime, http: &HttpEvent) -> Result<(), String> {
        let (sha256, jwt) = match &http.token {
            None | Some(TokenEvidence::None) => {
                if http.actor.is_some() {
                    self.no_evidence += 1;
                } else {
                    self.without_token += 1;
                }
                return Ok(());
            }
            Some(TokenEvidence::Fingerprint { .. }) => {
                self.fingerprint_only += 1;
                return Ok(());
            }
            Some(TokenEvidence::Full { sha256, jwt }) => (sha256, jwt),
        };
        let Text::Plain(token) = jwt else {
            self.encrypted += 1;
            return Ok(());
        };
        if TokenEvidence::fingerprint(token).sha256() != Some(sha256.as_str()) {
            return Err("the stored token does not match the event's token.sha256".into());
        }
        let refused = http
            .authn
            .as_ref()
            .is_some_and(|authn| authn.decision == AuthnDecision::Denied);
        if refused {
            // The service refused this token (expired, forged, ...) and said so: the log is
            // consistent when re-verification refuses it too. A refused token that now
            // verifies is reported: the record claims a refusal the token does not explain.
            return match self.verify_as_of(token, time) {
                Err(_) => {
                    self.refused += 1;
                    Ok(())
                }
                Ok(_) => Err(format!(
                    "the event says the token was refused ({}), but it verifies against the \
                     archived keys as of the event's time",
                    http.authn
                        .as_ref()
                        .and_then(|a| a.reason.as_deref())
                        .unwrap_or("no reason")
                )),
            };
        }
        let identity = self.verify_as_of(token, time)?;
        let Some(actor) = &http.actor else {
            return Err("the event keeps a token but names no actor".into());
        };
        let differences = differences(actor, &identity);
        if !differences.is_empty() {
            return Err(format!(
                "the event's actor differs from the token's claims: {}",
                differences.join("; ")
            ));
        }
        self.verified += 1;
        Ok(())
    }

    /// Verifies `token` as the service would have at `time`, with the keys archived for its
    /// issuer by the records read so far.
    fn verify_as_of(&mut self, token: &str, time: OffsetDateTime) -> Result<Identity, String> {
        let iss = unverified_issuer(token)?;
        if let Some(want) = &self.rules.issuer
            && *want != iss
        {
            return Err(format!(
                "wrong_issuer: the token's issuer is {iss:?}, not the --issuer {want:?}"
            ));
        }
        let archived = self
            .keysets
            .get(&Some(iss.clone()))
            .or_else(|| self.keysets.get(&None))
            .ok_or_else(|| {
                format!(
                    "no keyset record for issuer {iss:?} precedes this event: the log does not \
                     say which keys were in force"
                )
            })?;
        let keys = archived.keys.as_ref().map_err(|e| {
            format!(
                "the keyset record at index {} cannot be read: {e}",
                archived.index
            )
        })?;
        let keyset_index = archived.index;
        let stale = self
            .verifiers
            .get(&iss)
            .is_none_or(|v| v.keyset_index != keyset_index);
        if stale {
            let verifier = Verifier::new(&self.rules, &iss, keys.clone(), keyset_index)?;
            self.verifiers.insert(iss.clone(), verifier);
        }
        let verifier = &self.verifiers[&iss];
        verifier.clock.set(time.unix_timestamp());
        block_on(verifier.auth.verify(token)).map_err(|e| {
            format!(
                "{}: {e} (checked as of {}, with the keyset recorded at index {keyset_index})",
                e.code(),
                rfc3339(time)
            )
        })
    }
}

impl Verifier {
    /// The authenticator for `iss` with its archived `keys`, under `rules`.
    fn new(rules: &TokenRules, iss: &str, keys: KeySet, keyset_index: u64) -> Result<Self, String> {
        let mut issuer = Issuer::new(iss).keys(keys).require_exp(false);
        if rules.audiences.is_empty() {
            issuer = issuer.skip_audience_check();
        }
        for audience in &rules.audiences {
            issuer = issuer.audience(audience.clone());
        }
        let clock = ManualClock::new(0);
        let auth = Authenticator::builder()
            .issuer(issuer)
            .clock(Arc::new(clock.clone()))
            .cache_capacity(0)
            .build()
            .map_err(|e| format!("cannot configure verification for {iss:?}: {e}"))?;
        Ok(Verifier {
            keyset_index,
            auth,
            clock,
        })
    }
}

impl TokenAudit {
    /// The report lines added to `verify`'s human report.
    pub(crate) fn human(&self) -> String {
        let mut out = format!(
            "tokens:       {} verified against the log's archived keysets (signature and times \
             as of each event; actor matches the claims), {} fingerprint-only, {} with no \
             evidence, {} refused by the service and by re-verification, {} failed\n",
            self.verified, self.fingerprint_only, self.no_evidence, self.refused, self.failed
        );
        let mut notes = vec![format!(
            "{} read",
            plural(self.keyset_records, "keyset record")
        )];
        if self.without_token > 0 {
            notes.push(format!(
                "{} without a token",
                plural(self.without_token, "request")
            ));
        }
        if self.encrypted > 0 {
            notes.push(format!(
                "{} encrypted, not checked (needs the field key)",
                plural(self.encrypted, "stored token")
            ));
        }
        out.push_str(&format!("              ({})\n", notes.join("; ")));
        if self.failed > 0 {
            out.push_str(&format!(
                "TOKEN CHECK FAILED for {}:\n",
                plural(self.failed, "event")
            ));
            for failure in self.failures.iter().take(MAX_FAILURES_SHOWN) {
                out.push_str(&format!("  index {}: {}\n", failure.index, failure.reason));
            }
            if self.failed > MAX_FAILURES_SHOWN as u64 {
                out.push_str(&format!(
                    "  … and {} more (--json lists up to {MAX_FAILURES_KEPT})\n",
                    self.failed - MAX_FAILURES_SHOWN as u64
                ));
            }
        }
        out
    }

    /// The `tokens` member of `verify --json`.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "valid": self.failed == 0,
            "verified": self.verified,
            "fingerprint_only": self.fingerprint_only,
            "no_evidence": self.no_evidence,
            "without_token": self.without_token,
            "encrypted": self.encrypted,
            "refused": self.refused,
            "keyset_records": self.keyset_records,
            "failed": self.failed,
            "failures": self.failures.iter().map(|f| json!({
                "index": f.index,
                "reason": f.reason,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The `iss` claim of a compact JWT, read without verification (to choose the archived keys;
/// the authenticator then checks it again).
fn unverified_issuer(token: &str) -> Result<String, String> {
    let malformed = |why: &str| format!("token_malformed: the stored token is not a JWT ({why})");
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| malformed("no payload"))?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| malformed("payload is not base64url"))?;
    let claims: Value =
        serde_json::from_slice(&json).map_err(|_| malformed("payload is not JSON"))?;
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        Some(_) => Err("invalid_claim: the token's iss is not a string".into()),
        None => Err("missing_iss: the token names no issuer".into()),
    }
}

/// Where the event's actor and the verified token disagree, one phrase each.
fn differences(actor: &Actor, id: &Identity) -> Vec<String> {
    let mut out = Vec::new();
    let mut compare = |field: &str, event: Option<String>, token: Option<String>| {
        if event != token {
            let show =
                |v: Option<String>| v.map_or_else(|| "absent".to_owned(), |v| format!("{v:?}"));
            out.push(format!(
                "{field}: event {}, token {}",
                show(event),
                show(token)
            ));
        }
    };
    // A protected sub/jti cannot be compared without its key.
    if let Some(sub) = plain_or_absent(actor.sub.as_ref()) {
        compare("sub", sub, id.sub().map(str::to_owned));
    }
    if let Some(jti) = plain_or_absent(actor.jti.as_ref()) {
        compare("jti", jti, id.jti().map(str::to_owned));
    }
    compare("iss", actor.iss.clone(), Some(id.iss().to_owned()));
    let mut event_aud = actor.aud.clone();
    let mut token_aud = id.aud().to_vec();
    event_aud.sort();
    token_aud.sort();
    compare(
        "aud",
        (!event_aud.is_empty()).then(|| event_aud.join(" ")),
        (!token_aud.is_empty()).then(|| token_aud.join(" ")),
    );
    compare(
        "iat",
        actor.iat.map(|t| t.to_string()),
        id.iat().map(|t| t.to_string()),
    );
    compare(
        "exp",
        actor.exp.map(|t| t.to_string()),
        id.exp().map(|t| t.to_string()),
    );
    compare("kid", actor.kid.clone(), id.kid().map(str::to_owned));
    compare(
        "alg",
        actor.alg.clone(),
        Some(alg_name(id.alg()).to_owned()),
    );
    out
}

/// `Some(value)` for a clear or absent field, `None` for a protected one.
fn plain_or_absent(text: Option<&Text>) -> Option<Option<String>> {
    match text {
        None => Some(None),
        Some(Text::Plain(s)) => Some(Some(s.clone())),
        Some(_) => None,
    }
}

/// Polls a future to completion on this thread. The authenticator's future with static keys
/// and no async checks is ready on its first poll; no runtime is needed.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::yield_now();
    }
}
