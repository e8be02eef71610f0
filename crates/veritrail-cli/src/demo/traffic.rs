//! The demo's requests: what each sends, what it must get back, and what its event must say.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::idp::{Alg, IdentityProvider, TokenClaims};

/// One request of the demo and what must come of it.
#[derive(Clone)]
pub(crate) struct Case {
    /// Sent as `x-request-id`, so that the request's event can be found.
    pub(crate) id: &'static str,
    /// What the request shows, for people.
    pub(crate) what: &'static str,
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) token: Option<String>,
    /// The status the server must answer.
    pub(crate) status: u16,
    /// The event's `outcome`.
    pub(crate) outcome: &'static str,
    /// The reason the event must give for a refusal (authentication's or authorization's).
    pub(crate) reason: Option<&'static str>,
    /// The action the handler names.
    pub(crate) action: Option<&'static str>,
}

/// The subject of every demo token.
pub(crate) const SUBJECT: &str = "alice";

/// Every request the demo sends, in order.
pub(crate) fn cases(idp: &IdentityProvider, now: i64) -> Result<Vec<Case>> {
    let claims = |scope, iat: i64, exp: i64, jti| TokenClaims {
        sub: SUBJECT,
        scope,
        iat,
        exp,
        jti,
    };
    let read = |alg, jti| idp.token(alg, &claims("orders:read", now, now + 300, jti));
    let base = Case {
        id: "",
        what: "",
        method: "GET",
        path: "/orders/7",
        token: None,
        status: 200,
        outcome: "success",
        reason: None,
        action: Some("order.read"),
    };
    let denied = |id, what, token, status, reason| Case {
        id,
        what,
        token,
        status,
        outcome: "denied",
        reason: Some(reason),
        action: None,
        ..base.clone()
    };
    Ok(vec![
        Case {
            id: "health",
            what: "public route, no token",
            path: "/health",
            action: None,
            ..base.clone()
        },
        Case {
            id: "read-rs256",
            what: "RS256 token with orders:read",
            token: Some(read(Alg::Rs256, "demo-1")?),
            ..base.clone()
        },
        Case {
            id: "read-es256",
            what: "ES256 token with orders:read",
            token: Some(read(Alg::Es256, "demo-2")?),
            ..base.clone()
        },
        Case {
            id: "read-eddsa",
            what: "EdDSA token with orders:read",
            token: Some(read(Alg::EdDsa, "demo-3")?),
            ..base.clone()
        },
        denied(
            "expired",
            "RS256 token that expired an hour ago",
            Some(idp.token(
                Alg::Rs256,
                &claims("orders:read", now - 7200, now - 3600, "demo-4"),
            )?),
            401,
            "expired",
        ),
        denied(
            "forged",
            "forged token: the RS256 kid, someone else's key",
            Some(idp.forged_token(&claims("orders:read", now, now + 300, "demo-5"))?),
            401,
            "bad_signature",
        ),
        denied("no-token", "no token at all", None, 401, "token_missing"),
        Case {
            method: "POST",
            path: "/orders/42/refund",
            ..denied(
                "no-scope",
                "valid token, but without orders:refund",
                Some(read(Alg::Es256, "demo-6")?),
                403,
                "missing_scope",
            )
        },
        Case {
            id: "refund",
            what: "durable route; the handler names the action",
            method: "POST",
            path: "/orders/42/refund",
            token: Some(idp.token(
                Alg::EdDsa,
                &claims("orders:read orders:refund", now, now + 300, "demo-7"),
            )?),
            action: Some("order.refund"),
            ..base.clone()
        },
    ])
}

/// Sends `case` to `addr` over a fresh HTTP/1.1 connection; returns the status.
pub(crate) async fn send(addr: SocketAddr, case: &Case) -> Result<u16> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to the demo server at {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake with the demo server failed")?;
    tokio::spawn(conn);
    let mut request = http::Request::builder()
        .method(case.method)
        .uri(case.path)
        .header("host", addr.to_string())
        .header(
            "user-agent",
            concat!("veritrail-demo/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-request-id", case.id);
    if let Some(token) = &case.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::<Bytes>::default())?;
    let response = sender
        .send_request(request)
        .await
        .with_context(|| format!("request {} got no answer", case.id))?;
    let status = response.status().as_u16();
    // Read the whole answer: the exchange is over only then.
    response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("the answer to {} broke off", case.id))?;
    Ok(status)
}
