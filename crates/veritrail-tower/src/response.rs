//! Rendering the engine's refusals as HTTP responses.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use veritrail_core::engine::{AuditContext, Rejection};

/// The response for a refusal: its status, the RFC 6750 `WWW-Authenticate` challenge,
/// `Retry-After` when set, and an RFC 9457 `application/problem+json` body.
pub fn rejection_response<B: From<Bytes>>(rejection: &Rejection) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::from(rejection.body())));
    *response.status_mut() =
        StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(Rejection::CONTENT_TYPE),
    );
    set_challenge(headers, rejection);
    response
}

/// Adds a refusal's RFC 6750 `WWW-Authenticate` challenge and `Retry-After`, when it has them.
pub(crate) fn set_challenge(headers: &mut http::HeaderMap, rejection: &Rejection) {
    if let Some(challenge) = rejection
        .www_authenticate()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
    if let Some(seconds) = rejection.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
}

/// Adds the request id to a response unless the handler set one.
pub(crate) fn set_request_id<B>(
    response: &mut Response<B>,
    request_id: &Option<(HeaderName, HeaderValue)>,
) {
    if let Some((name, value)) = request_id
        && !response.headers().contains_key(name)
    {
        response.headers_mut().insert(name.clone(), value.clone());
    }
}

/// Puts the recorded event's [`AuditRecordInfo`](veritrail_core::engine::AuditRecordInfo) into
/// the response's extensions, for outer layers (an OpenTelemetry span) to read.
pub(crate) fn set_record_info<B>(response: &mut Response<B>, context: &AuditContext) {
    // Copied, not moved: a follow-up event (an upgrade's close, a response body's digest)
    // reads the context's copy after the response to name the event it follows.
    if let Some(info) = context.record_info() {
        response.extensions_mut().insert(info);
    }
}
