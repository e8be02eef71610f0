//! Tokens minted by an independent implementation (PyJWT + cryptography, through
//! `scripts/mint_tokens.py`) and verified by our authenticator.
//!
//! Needs `python3` with PyJWT: `python3 -m pip install 'pyjwt[crypto]'` (scripts/test does it).

#[path = "fixtures/support.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::*;

/// Runs the PyJWT script on `requests` and returns the tokens.
fn mint(requests: &[Value]) -> Vec<String> {
    let script = format!(
        "{}/../../scripts/mint_tokens.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed for this test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(requests.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mint_tokens.py failed (is PyJWT installed? python3 -m pip install 'pyjwt[crypto]'): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn request(alg: jsonwebtoken::Algorithm, private: &str, kid: &str, claims: &Value) -> Value {
    let mut r = json!({"alg": alg_str(alg), "claims": claims, "headers": {"kid": kid}});
    if is_hmac(alg) {
        r["secret_hex"] = json!(hex::encode(HMAC_SECRET));
    } else {
        r["key_file"] = json!(fixture_path(private));
    }
    r
}

#[test]
fn pyjwt_tokens_of_every_algorithm_verify() {
    let requests: Vec<Value> = ALGORITHMS
        .iter()
        .map(|&(alg, private, _)| request(alg, private, &format!("py-{}", alg_str(alg)), &claims()))
        .collect();
    let tokens = mint(&requests);
    assert_eq!(tokens.len(), ALGORITHMS.len());
    for (&(alg, _, public), t) in ALGORITHMS.iter().zip(&tokens) {
        let kid = format!("py-{}", alg_str(alg));
        let auth = builder_with(key_set(alg, public, &kid), |i| i)
            .0
            .build()
            .unwrap();
        let id = block_on(auth.verify(t)).unwrap_or_else(|e| panic!("{alg:?}: {} {e}", e.code()));
        assert_eq!(
            (id.alg(), id.sub(), id.kid()),
            (alg, Some("alice"), Some(kid.as_str()))
        );
    }
}

#[test]
fn pyjwt_tokens_are_refused_for_the_right_reasons() {
    use jsonwebtoken::Algorithm::{ES256, RS256};
    let mut expired = claims();
    expired["exp"] = json!(NOW - 3600);
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("someone-else");
    let mut embedded = request(RS256, "rsa2.pem", "k1", &claims());
    embedded["headers"]["jku"] = json!("https://attacker.example/jwks");
    let cases = [
        (request(RS256, "rsa.pem", "k1", &expired), "expired"),
        (
            request(RS256, "rsa.pem", "k1", &wrong_aud),
            "wrong_audience",
        ),
        (request(RS256, "rsa2.pem", "k1", &claims()), "bad_signature"),
        (request(ES256, "ec256.pem", "k1", &claims()), "alg_mismatch"),
        (embedded, "embedded_key"),
    ];
    let tokens = mint(&cases.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>());
    let auth = rsa_authenticator();
    for ((_, expected), t) in cases.iter().zip(&tokens) {
        assert_eq!(code(&auth, t), *expected);
    }
}
