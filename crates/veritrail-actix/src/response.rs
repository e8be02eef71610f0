//! Rendering the engine's refusals as actix responses.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use veritrail_core::engine::Rejection;

/// The response for a refusal: its status, the RFC 6750 `WWW-Authenticate` challenge,
/// `Retry-After` when set, and an RFC 9457 `application/problem+json` body.
pub fn rejection_response(rejection: &Rejection) -> HttpResponse {
    let status =
        StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    builder.insert_header((CONTENT_TYPE, Rejection::CONTENT_TYPE));
    if let Some(challenge) = rejection.www_authenticate() {
        builder.insert_header((WWW_AUTHENTICATE, challenge));
    }
    if let Some(seconds) = rejection.retry_after() {
        builder.insert_header((RETRY_AFTER, seconds.to_string()));
    }
    builder.body(rejection.body())
}
