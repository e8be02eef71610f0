//! Test keys and tokens.

use std::sync::Arc;

use veritrail_core::engine::Authenticator;

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

pub fn authenticator() -> Arc<Authenticator> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["orders-api"]);
    Arc::new(Authenticator::new(
        jsonwebtoken::DecodingKey::from_secret(SECRET),
        v,
    ))
}

pub fn token(scopes: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "sub": "alice", "iss": "https://idp.test", "aud": "orders-api",
        "exp": now + 600, "iat": now, "scope": scopes.join(" "),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}
