//! Refusals the engine answers itself: a status, an RFC 6750 challenge and an RFC 9457
//! problem body, rendered the same way by every adapter.

use std::fmt;

/// Why the engine refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    /// The token is missing, malformed or invalid (400 / 401), or the key source is down (503).
    Authentication,
    /// The caller lacks a required scope or role (403).
    Authorization,
    /// The event could not be recorded with the durability the route asks for (503).
    AuditUnavailable,
    /// The request path has no canonical form, so no route policy can be matched to it
    /// (400 `invalid_path`; see [`canonical_path`](super::canonical_path)).
    InvalidPath,
    /// The request itself is malformed or asks for something not served (400, 405, 414,
    /// 431): refused before any authentication.
    InvalidRequest,
}

/// A refusal, ready to render: status, `WWW-Authenticate` challenge, `Retry-After`, and a
/// problem+json body. Carries no token content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    status: u16,
    code: String,
    detail: String,
    challenge: Option<String>,
    retry_after: Option<u32>,
}

impl Rejection {
    /// A refusal with this status and machine-readable code, explained by `detail`.
    pub fn new(
        kind: RejectionKind,
        status: u16,
        code: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Rejection {
            kind,
            status,
            code: code.into(),
            detail: detail.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// Sets the `WWW-Authenticate` value.
    pub fn with_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.challenge = Some(challenge.into());
        self
    }

    /// Sets `Retry-After`, in seconds.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 503: the audit event could not be recorded as the route requires.
    pub fn audit_unavailable(detail: impl Into<String>) -> Self {
        Rejection::new(
            RejectionKind::AuditUnavailable,
            503,
            "audit_unavailable",
            detail,
        )
        .with_retry_after(1)
    }

    /// 500: route-level requirements or an extractor run without the audit layer (or
    /// middleware) around them — refusing beats letting requests through unchecked.
    /// `setup` says what to add.
    pub fn audit_layer_missing(setup: impl Into<String>) -> Self {
        Rejection::new(
            RejectionKind::AuditUnavailable,
            500,
            "audit_layer_missing",
            setup,
        )
    }

    /// 400 `invalid_path`: the request path has no canonical form (`detail` says why).
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Rejection::new(
            RejectionKind::InvalidPath,
            400,
            super::PathError::CODE,
            detail,
        )
    }

    /// 403: the token's claims do not have the shape the handler asks for.
    pub fn invalid_claims() -> Self {
        Rejection::new(
            RejectionKind::Authorization,
            403,
            "invalid_claims",
            "the token's claims do not match what this route expects",
        )
    }

    /// What kind of refusal this is.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The machine-readable code (the audit event's reason).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The explanation for a person.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The `WWW-Authenticate` header value, if any.
    pub fn www_authenticate(&self) -> Option<&str> {
        self.challenge.as_deref()
    }

    /// The `Retry-After` header value in seconds, if any.
    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    /// The content type of [`body`](Self::body).
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    /// The RFC 9457 problem details body:
    /// `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"…","code":"…"}`.
    pub fn body(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Problem<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            title: &'a str,
            status: u16,
            detail: &'a str,
            code: &'a str,
        }
        serde_json::to_vec(&Problem {
            kind: "about:blank",
            title: status_title(self.status),
            status: self.status,
            detail: &self.detail,
            code: &self.code,
        })
        .expect("problem details serialise")
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl std::error::Error for Rejection {}

fn status_title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body() {
        let r = Rejection::audit_unavailable("the audit log cannot record");
        assert_eq!(r.status(), 503);
        assert_eq!(r.retry_after(), Some(1));
        let v: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["title"], "Service Unavailable");
        assert_eq!(v["status"], 503);
        assert_eq!(v["code"], "audit_unavailable");
        assert_eq!(v["detail"], "the audit log cannot record");
    }
}
