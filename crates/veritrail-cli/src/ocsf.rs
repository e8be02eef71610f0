//! Audit events as OCSF 1.3.0 events (<https://schema.ocsf.io/1.3.0/>), for a SIEM.
//!
//! Each `http` event becomes one **API Activity** event (class 6003, category 6, Application
//! Activity), and — when a token was checked (authentication allowed or denied it; not for an
//! anonymous request to a public route) — one **Authentication** event (class 3002, category
//! 3, Identity & Access Management; activity Logon), so that failed logins show up where a
//! SIEM's identity rules look for them. System records have no OCSF
//! class and are not exported.
//!
//! | OCSF | from the event |
//! | --- | --- |
//! | `activity_id` (6003) | the method: POST → 1 Create, GET/HEAD → 2 Read, PUT/PATCH → 3 Update, DELETE → 4 Delete, else 99 Other |
//! | `activity_id` (3002) | 1 Logon |
//! | `type_uid` | `class_uid * 100 + activity_id` |
//! | `time` | `time`, milliseconds since the epoch (`metadata.original_time` keeps the RFC 3339 text) |
//! | `status_id` | 1 Success when the outcome is `success` (3002: when authentication allowed the token), else 2 Failure; `status_detail` the reason code |
//! | `severity_id` | 1 Informational on success; 2 Low for failure, denied and cancelled; 3 Medium for a server error |
//! | `metadata.uid` | the event id; `metadata.sequence` the log index; `metadata.log_name` the log's origin |
//! | `actor.user.uid` (and `user.uid` in 3002) | `actor.sub` (a pseudonym as `hmac:KID:VALUE`; an encrypted subject is left out) |
//! | `actor.session` | `iss` as `issuer`, `jti` as `uid`, `iat`/`exp` as `created_time`/`expiration_time` (ms) |
//! | `src_endpoint.ip` | `request.client_address` when it is an IP address |
//! | `api.operation` | the handler's `action`, else `METHOD route` |
//! | `http_request` | `http_method`, `url.path` (the canonical path), `user_agent`, `uid` (request id) |
//! | `unmapped.veritrail` | `index`, `origin`, `kind`, `phase`, `route`, `raw_path` (the path as sent, where it differed), `outcome`, `authn`, `authz`, `token_sha256`, `trace_id` — the way back to the record and its proof (`veritrail prove LOG INDEX`) |

use std::net::IpAddr;

use serde_json::{Map, Value, json};
use veritrail_core::event::{Actor, AuditEvent, AuthnDecision, HttpEvent, Outcome, Text};

use crate::events::{outcome_name, rfc3339};

/// The OCSF schema version written in `metadata.version`.
pub(crate) const OCSF_VERSION: &str = "1.3.0";

/// API Activity.
const API_ACTIVITY: u32 = 6003;
/// Authentication.
const AUTHENTICATION: u32 = 3002;

/// The OCSF events for the audit event stored at `index` of the log `origin` (none for a
/// system record).
pub(crate) fn events(index: u64, event: &AuditEvent, origin: &str) -> Vec<Value> {
    let Some(http) = event.as_http() else {
        return Vec::new();
    };
    let common = Common::new(index, event, http, origin);
    let mut out = vec![api_activity(&common, http)];
    // An anonymous request on a public route presented no credentials: no logon to report.
    if http
        .authn
        .as_ref()
        .is_some_and(|a| a.decision != AuthnDecision::Anonymous)
    {
        out.push(authentication(&common, http));
    }
    out
}

/// What both classes carry.
struct Common {
    time_ms: i64,
    metadata: Value,
    user: Value,
    session: Option<Value>,
    src_endpoint: Value,
    http_request: Value,
    unmapped: Value,
}

impl Common {
    fn new(index: u64, event: &AuditEvent, http: &HttpEvent, origin: &str) -> Self {
        let id = event.id.to_string();
        let metadata = json!({
            "version": OCSF_VERSION,
            "product": {
                "name": "veritrail",
                "vendor_name": "veritrail",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "uid": id,
            "correlation_uid": id,
            "sequence": index,
            "log_name": origin,
            "log_provider": "veritrail",
            "original_time": rfc3339(event.time),
        });
        let actor = http.actor.as_deref();
        Common {
            time_ms: i64::try_from(event.time.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX),
            metadata,
            user: user(actor),
            session: actor.and_then(session),
            src_endpoint: src_endpoint(http.request.client_address.as_ref()),
            http_request: http_request(http),
            unmapped: json!({ "veritrail": veritrail_fields(index, http, origin) }),
        }
    }

    fn actor(&self) -> Value {
        let mut actor = Map::new();
        actor.insert("user".into(), self.user.clone());
        if let Some(session) = &self.session {
            actor.insert("session".into(), session.clone());
        }
        Value::Object(actor)
    }
}

/// The class-independent head of an OCSF event.
fn head(
    class_uid: u32,
    activity_id: u32,
    activity_name: &str,
    status: Status,
) -> Map<String, Value> {
    let (class_name, category_uid, category_name) = match class_uid {
        API_ACTIVITY => ("API Activity", 6, "Application Activity"),
        _ => ("Authentication", 3, "Identity & Access Management"),
    };
    let mut head = Map::new();
    let mut put = |k: &str, v: Value| {
        head.insert(k.to_owned(), v);
    };
    put("class_uid", class_uid.into());
    put("class_name", class_name.into());
    put("category_uid", category_uid.into());
    put("category_name", category_name.into());
    put("activity_id", activity_id.into());
    put("activity_name", activity_name.into());
    put(
        "type_uid",
        (u64::from(class_uid) * 100 + u64::from(activity_id)).into(),
    );
    put("type_name", format!("{class_name}: {activity_name}").into());
    put("severity_id", status.severity.0.into());
    put("severity", status.severity.1.into());
    put("status_id", if status.success { 1 } else { 2 }.into());
    put(
        "status",
        if status.success { "Success" } else { "Failure" }.into(),
    );
    if let Some(detail) = status.detail {
        put("status_detail", detail.into());
    }
    head
}

struct Status {
    success: bool,
    severity: (u8, &'static str),
    detail: Option<String>,
}

fn api_activity(common: &Common, http: &HttpEvent) -> Value {
    let (activity_id, activity_name) = api_activity_id(&http.request.method);
    let success = http.outcome == Some(Outcome::Success);
    let severity = match http.outcome {
        Some(Outcome::Success) => (1, "Informational"),
        Some(Outcome::Error) => (3, "Medium"),
        _ => (2, "Low"),
    };
    let detail = http
        .authz
        .as_ref()
        .and_then(|a| a.reason.clone())
        .or_else(|| http.authn.as_ref().and_then(|a| a.reason.clone()))
        .or_else(|| http.outcome.map(|o| outcome_name(o).to_owned()));
    let mut event = head(
        API_ACTIVITY,
        activity_id,
        activity_name,
        Status {
            success,
            severity,
            detail,
        },
    );
    let mut put = |k: &str, v: Value| {
        event.insert(k.to_owned(), v);
    };
    put("time", common.time_ms.into());
    put("metadata", common.metadata.clone());
    put("actor", common.actor());
    put("src_endpoint", common.src_endpoint.clone());
    let operation = http.action.clone().unwrap_or_else(|| {
        format!(
            "{} {}",
            http.request.method,
            http.request
                .route
                .clone()
                .or_else(|| http.request.path.as_plain().map(str::to_owned))
                .unwrap_or_default()
        )
    });
    let mut api = json!({ "operation": operation });
    if let Some(request_id) = &http.request.request_id {
        api["request"] = json!({ "uid": request_id });
    }
    if let Some(status) = http.status {
        api["response"] = json!({ "code": status });
    }
    put("api", api);
    put("http_request", common.http_request.clone());
    if let Some(status) = http.status {
        put("http_response", json!({ "code": status }));
    }
    if let Some(latency) = http.latency_us {
        put("duration", (latency / 1000).into());
    }
    if let Some(target) = http.target.as_ref().and_then(plain_or_pseudonym) {
        put("resources", json!([{ "uid": target }]));
    }
    put("unmapped", common.unmapped.clone());
    Value::Object(event)
}

fn authentication(common: &Common, http: &HttpEvent) -> Value {
    let authn = http.authn.as_ref().expect("called for events with authn");
    let success = authn.decision == AuthnDecision::Allowed;
    let detail = authn
        .reason
        .clone()
        .or_else(|| Some(if success { "allowed" } else { "denied" }.to_owned()));
    let mut event = head(
        AUTHENTICATION,
        1,
        "Logon",
        Status {
            success,
            severity: if success {
                (1, "Informational")
            } else {
                (2, "Low")
            },
            detail,
        },
    );
    let mut put = |k: &str, v: Value| {
        event.insert(k.to_owned(), v);
    };
    put("time", common.time_ms.into());
    put("metadata", common.metadata.clone());
    put("user", common.user.clone());
    put("actor", common.actor());
    put("src_endpoint", common.src_endpoint.clone());
    // OCSF asks for the service or the destination: the log's origin names the service.
    put(
        "service",
        json!({ "name": common.metadata["log_name"].clone() }),
    );
    put("auth_protocol_id", 99.into());
    put("auth_protocol", "JWT bearer token (RFC 6750)".into());
    put("is_remote", true.into());
    if let Some(session) = &common.session {
        put("session", session.clone());
    }
    put("http_request", common.http_request.clone());
    put("unmapped", common.unmapped.clone());
    Value::Object(event)
}

/// POST → Create, GET/HEAD → Read, PUT/PATCH → Update, DELETE → Delete, else Other.
fn api_activity_id(method: &str) -> (u32, &'static str) {
    match method.to_ascii_uppercase().as_str() {
        "POST" => (1, "Create"),
        "GET" | "HEAD" => (2, "Read"),
        "PUT" | "PATCH" => (3, "Update"),
        "DELETE" => (4, "Delete"),
        _ => (99, "Other"),
    }
}

/// The OCSF user: `uid` from `sub`; type Unknown (the token does not say).
fn user(actor: Option<&Actor>) -> Value {
    let mut user = json!({ "type_id": 0, "type": "Unknown" });
    if let Some(sub) = actor
        .and_then(|a| a.sub.as_ref())
        .and_then(plain_or_pseudonym)
    {
        user["uid"] = sub.into();
    }
    user
}

fn session(actor: &Actor) -> Option<Value> {
    let mut session = Map::new();
    if let Some(iss) = &actor.iss {
        session.insert("issuer".into(), iss.clone().into());
    }
    if let Some(jti) = actor.jti.as_ref().and_then(plain_or_pseudonym) {
        session.insert("uid".into(), jti.into());
    }
    if let Some(iat) = actor.iat {
        session.insert("created_time".into(), iat.saturating_mul(1000).into());
    }
    if let Some(exp) = actor.exp {
        session.insert("expiration_time".into(), exp.saturating_mul(1000).into());
    }
    (!session.is_empty()).then_some(Value::Object(session))
}

fn src_endpoint(address: Option<&Text>) -> Value {
    match address.and_then(Text::as_plain) {
        Some(ip) if ip.parse::<IpAddr>().is_ok() => json!({ "ip": ip }),
        Some(other) => json!({ "name": other }),
        None => match address.and_then(plain_or_pseudonym) {
            Some(pseudonym) => json!({ "uid": pseudonym }),
            None => json!({ "name": "unknown" }),
        },
    }
}

fn http_request(http: &HttpEvent) -> Value {
    let mut request = json!({ "http_method": http.request.method });
    if let Some(path) = http.request.path.as_plain() {
        request["url"] = json!({ "path": path });
    }
    if let Some(agent) = http.request.user_agent.as_ref().and_then(Text::as_plain) {
        request["user_agent"] = agent.into();
    }
    if let Some(id) = &http.request.request_id {
        request["uid"] = id.clone().into();
    }
    request
}

fn veritrail_fields(index: u64, http: &HttpEvent, origin: &str) -> Value {
    let mut fields = json!({
        "index": index,
        "origin": origin,
        "kind": "http",
        "phase": serde_json::to_value(http.phase).unwrap_or(Value::Null),
    });
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            fields[k] = v;
        }
    };
    put("route", http.request.route.clone().map(Value::from));
    put(
        "raw_path",
        http.request
            .raw_path
            .as_ref()
            .and_then(Text::as_plain)
            .map(Value::from),
    );
    put("outcome", http.outcome.map(|o| outcome_name(o).into()));
    put(
        "authn",
        http.authn
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok()),
    );
    put(
        "authz",
        http.authz
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok()),
    );
    put(
        "token_sha256",
        http.token
            .as_ref()
            .and_then(|t| t.sha256())
            .map(Value::from),
    );
    put("trace_id", http.request.trace_id.clone().map(Value::from));
    fields
}

/// The clear value, or a pseudonym as `hmac:KID:VALUE` (stable, so still searchable by
/// equality); `None` for an encrypted value.
fn plain_or_pseudonym(text: &Text) -> Option<String> {
    match text {
        Text::Plain(s) => Some(s.clone()),
        Text::Pseudonym(p) => Some(format!("hmac:{}:{}", p.hmac, p.v)),
        Text::Encrypted(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_crud_activities() {
        for (method, id) in [
            ("POST", 1),
            ("get", 2),
            ("HEAD", 2),
            ("PUT", 3),
            ("PATCH", 3),
            ("DELETE", 4),
            ("OPTIONS", 99),
            ("TRACE", 99),
        ] {
            assert_eq!(api_activity_id(method).0, id, "{method}");
        }
    }

    #[test]
    fn the_canonical_path_is_the_url_and_the_raw_one_is_kept() {
        let event = AuditEvent::http("GET", "/admin/x")
            .raw_path("//admin/./x")
            .status(403)
            .build();
        let out = events(3, &event, "o");
        assert_eq!(out[0]["http_request"]["url"]["path"], "/admin/x");
        assert_eq!(out[0]["unmapped"]["veritrail"]["raw_path"], "//admin/./x");
        let plain = AuditEvent::http("GET", "/admin/x").status(200).build();
        let out = events(4, &plain, "o");
        assert!(out[0]["unmapped"]["veritrail"].get("raw_path").is_none());
    }
}
