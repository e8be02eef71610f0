//! Test keys and tokens.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use veritrail_core::auth::{Authenticator, Issuer, KeySet};

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

pub(crate) fn authenticator() -> Authenticator {
    let keys = KeySet::from_hmac_secret(SECRET, Algorithm::HS256, None).unwrap();
    Authenticator::builder()
        .issuer(
            Issuer::new("https://idp.test")
                .keys(keys)
                .allow_hmac()
                .audience("orders-api"),
        )
        .build()
        .unwrap()
}

pub(crate) fn token(scopes: &[&str]) -> String {
    // With every feature on, jsonwebtoken has two backends and no default: a test that mints
    // a token before any authenticator was built (tests run in parallel) must pick one.
    veritrail_core::auth::backend::install_default_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "sub": "alice", "iss": "https://idp.test", "aud": "orders-api",
        "exp": now + 600, "iat": now, "scope": scopes.join(" "),
    });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}
