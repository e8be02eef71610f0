//! What `veritrail token verify` prints: the verdict of exactly the middleware's code path.

use serde_json::{Value, json};

use super::authenticator::Authenticator;
use super::error::AuthError;
use super::identity::Identity;
use super::keyset::alg_name;

/// The verdict on one token, for people (`line`) and programs (`to_json`, `exit_code`).
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The identity, or why the token would be refused.
    pub outcome: Result<Identity, AuthError>,
}

impl Explanation {
    /// 0 when the token would be accepted, 1 when not.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.outcome.is_err())
    }

    /// One line: `accepted: sub=… iss=… alg=… kid=…` or `refused: <code>: <explanation>`.
    pub fn line(&self) -> String {
        match &self.outcome {
            Ok(id) => format!(
                "accepted: sub={} iss={} alg={} kid={}",
                id.sub().unwrap_or("-"),
                id.iss(),
                alg_name(id.alg()),
                id.kid().unwrap_or("-")
            ),
            Err(e) => format!("refused: {}: {e}", e.code()),
        }
    }

    /// `{"accepted":true,"claims":{…}}` or `{"accepted":false,"code":…,"status":…,"message":…}`.
    pub fn to_json(&self) -> Value {
        match &self.outcome {
            Ok(id) => json!({
                "accepted": true,
                "alg": alg_name(id.alg()),
                "kid": id.kid(),
                "key_thumbprint": id.key_thumbprint(),
                "scopes": id.scopes(),
                "roles": id.roles(),
                "claims": id.claims(),
            }),
            Err(e) => json!({
                "accepted": false,
                "code": e.code(),
                "status": e.status(),
                "message": e.to_string(),
            }),
        }
    }
}

/// Verifies `token` with `auth` (the same call the middleware makes) and explains the verdict.
pub async fn explain(auth: &Authenticator, token: &str) -> Explanation {
    Explanation {
        outcome: auth.verify(token.trim()).await,
    }
}
