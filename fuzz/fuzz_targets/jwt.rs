//! The JWT header and claims path, through the public `Authenticator` API with a fixed key set.
//!
//! Input: one mode byte, then
//! - even mode: the token text, or an `Authorization` header value (mode & 2);
//! - odd mode: `header JSON` NUL `claims JSON`, signed here with the HMAC fixture key, so that
//!   fuzzed JSON gets past the signature to the claim checks.
//!
//! Properties: nothing panics; an accepted token's claims are the claims JSON as signed; the
//! valid fixture tokens are still accepted afterwards (nothing poisons the cache).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use veritrail_core::auth::{Authenticator, HeaderPairs, explain};
use veritrail_fuzz::{authenticator, block_on, sign_hs256, valid_tokens};

struct Fixture {
    auth: Authenticator,
    valid: Vec<String>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let auth = authenticator();
    let valid = valid_tokens();
    for token in &valid {
        if let Err(e) = block_on(auth.verify(token)) {
            panic!("the fixture token {token} is refused: {e}");
        }
    }
    Fixture { auth, valid }
});

fuzz_target!(|data: &[u8]| {
    let fx = &*FIXTURE;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut signed_claims = None;
    let result = if mode & 1 == 1 {
        let (header, claims) = match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&br#"{"alg":"HS256","kid":"h1"}"#[..], rest),
        };
        signed_claims = Some(claims);
        let token = sign_hs256(header, claims);
        block_on(fx.auth.verify(&token))
    } else {
        let text = String::from_utf8_lossy(rest);
        if mode & 2 == 2 {
            let headers = [("authorization", &*text)];
            let request = HeaderPairs {
                headers: &headers,
                query: None,
            };
            block_on(fx.auth.authenticate(&request))
        } else {
            let explanation = block_on(explain(&fx.auth, &text));
            let _ = explanation.line();
            let _ = explanation.to_json();
            explanation.outcome
        }
    };
    match result {
        Ok(identity) => {
            if let Some(claims) = signed_claims {
                let parsed: serde_json::Value =
                    serde_json::from_slice(claims).expect("accepted claims are JSON");
                assert_eq!(identity.claims(), parsed.as_object().expect("an object"));
            }
            let _ = identity.to_actor(&["tenant", "act"]);
        }
        Err(e) => {
            let _ = (
                e.code(),
                e.status(),
                e.www_authenticate(Some("fuzz")),
                e.problem_json(),
            );
        }
    }
    let index = usize::from(mode) % fx.valid.len();
    assert!(
        block_on(fx.auth.verify(&fx.valid[index])).is_ok(),
        "a valid token is refused after this input"
    );
});
