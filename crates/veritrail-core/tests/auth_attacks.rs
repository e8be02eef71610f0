//! The attack suite: one test per case, each asserting the exact reason code.

#[path = "fixtures/support.rs"]
mod support;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use support::*;
use veritrail_core::auth::{AuthError, HeaderPairs, Issuer, KeySet};

fn rs256(claims: &serde_json::Value) -> String {
    token(Algorithm::RS256, "rsa.pem", "k1", claims)
}

#[test]
fn a_valid_token_passes_the_same_setup() {
    // The control for every case below: the setup accepts a good token.
    assert_eq!(code(&rsa_authenticator(), &rs256(&claims())), "ok");
}

#[test]
fn alg_none_is_refused() {
    let auth = rsa_authenticator();
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({"alg": alg, "kid": "k1"}).to_string().as_bytes());
        let payload = b64(claims().to_string().as_bytes());
        assert_eq!(
            code(&auth, &format!("{header}.{payload}.")),
            "alg_none",
            "{alg}"
        );
    }
}

#[test]
fn algorithm_confusion_hs256_with_the_rsa_public_key_is_refused() {
    let auth = rsa_authenticator();
    // The classic attack: HMAC "signed" with the verifier's public key as the secret.
    let public_pem = EncodingKey::from_secret(&fixture("rsa.pub.pem"));
    for header in [
        json!({"alg": "HS256", "kid": "k1"}),
        json!({"alg": "HS256"}),
    ] {
        let forged = sign_raw(&header, &claims(), Algorithm::HS256, &public_pem);
        assert_eq!(code(&auth, &forged), "alg_mismatch", "{header}");
    }
}

#[test]
fn jwk_alg_different_from_header_alg_is_refused() {
    // The JWK says RS256; the token claims PS256 with the same RSA key (validly signed).
    let set =
        KeySet::from_pem(&fixture("rsa.pub.pem"), Algorithm::RS256, Some("k1".into())).unwrap();
    let jwk = set.to_public_jwks()["keys"][0].to_string();
    let keys = KeySet::from_jwk(jwk.as_bytes(), None).unwrap();
    let auth = builder_with(keys, |i| i).0.build().unwrap();
    assert_eq!(
        code(&auth, &token(Algorithm::RS256, "rsa.pem", "k1", &claims())),
        "ok"
    );
    assert_eq!(
        code(&auth, &token(Algorithm::PS256, "rsa.pem", "k1", &claims())),
        "alg_mismatch"
    );
}

/// A token validly signed by the attacker's own key, naming that key in the header.
fn self_signed_with(member: &str, value: serde_json::Value) -> String {
    let header = json!({"alg": "RS256", "kid": "k1", member: value});
    sign_raw(
        &header,
        &claims(),
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa2.pem"),
    )
}

#[test]
fn embedded_jwk_is_refused() {
    let attacker = KeySet::from_pem(&fixture("rsa2.pub.pem"), Algorithm::RS256, None).unwrap();
    let jwk = attacker.to_public_jwks()["keys"][0].clone();
    assert_eq!(
        code(&rsa_authenticator(), &self_signed_with("jwk", jwk)),
        "embedded_key"
    );
}

#[test]
fn jku_is_refused() {
    let t = self_signed_with("jku", json!("https://attacker.example/jwks.json"));
    assert_eq!(code(&rsa_authenticator(), &t), "embedded_key");
}

#[test]
fn x5u_is_refused() {
    let t = self_signed_with("x5u", json!("https://attacker.example/cert.pem"));
    assert_eq!(code(&rsa_authenticator(), &t), "embedded_key");
}

#[test]
fn x5c_is_refused() {
    let t = self_signed_with(
        "x5c",
        json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
    );
    assert_eq!(code(&rsa_authenticator(), &t), "embedded_key");
}

#[test]
fn unknown_kid_is_refused() {
    let t = token(Algorithm::RS256, "rsa.pem", "k-unknown", &claims());
    assert_eq!(code(&rsa_authenticator(), &t), "unknown_kid");
}

#[test]
fn right_kid_wrong_key_is_refused() {
    let t = token(Algorithm::RS256, "rsa2.pem", "k1", &claims());
    assert_eq!(code(&rsa_authenticator(), &t), "bad_signature");
}

#[test]
fn payload_swapped_under_a_valid_signature_is_refused() {
    let good = rs256(&claims());
    let mut evil_claims = claims();
    evil_claims["sub"] = json!("admin");
    let evil = rs256(&evil_claims);
    let g: Vec<&str> = good.split('.').collect();
    let e: Vec<&str> = evil.split('.').collect();
    let swapped = format!("{}.{}.{}", g[0], e[1], g[2]);
    assert_eq!(code(&rsa_authenticator(), &swapped), "bad_signature");
}

#[test]
fn ecdsa_zero_signature_is_refused() {
    let keys = KeySet::from_pem(
        &fixture("ec256.pub.pem"),
        Algorithm::ES256,
        Some("e1".into()),
    )
    .unwrap();
    let auth = builder_with(keys, |i| i).0.build().unwrap();
    assert_eq!(
        code(
            &auth,
            &token(Algorithm::ES256, "ec256.pem", "e1", &claims())
        ),
        "ok"
    );
    let header = b64(json!({"alg": "ES256", "kid": "e1"}).to_string().as_bytes());
    let payload = b64(claims().to_string().as_bytes());
    let mut r_zero = vec![0u8; 64];
    r_zero[63] = 1;
    let mut s_zero = vec![0u8; 64];
    s_zero[0] = 1;
    for sig in [vec![0u8; 64], r_zero, s_zero] {
        let t = format!("{header}.{payload}.{}", b64(&sig));
        assert_eq!(code(&auth, &t), "ecdsa_zero_signature");
    }
}

#[test]
fn unknown_crit_is_refused() {
    let header = json!({"alg": "RS256", "kid": "k1", "crit": ["exp"], "exp": NOW + 60});
    let t = sign_raw(
        &header,
        &claims(),
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa.pem"),
    );
    assert_eq!(code(&rsa_authenticator(), &t), "crit_unsupported");
}

#[test]
fn expired_token_is_refused() {
    let mut c = claims();
    c["exp"] = json!(NOW - 61); // beyond the 60 s default leeway
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "expired");
    c["exp"] = json!(NOW - 30); // within the leeway
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "ok");
}

#[test]
fn not_yet_valid_token_is_refused() {
    let mut c = claims();
    c["nbf"] = json!(NOW + 120);
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "not_yet_valid");
}

#[test]
fn token_without_exp_is_refused() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "missing_exp");
}

#[test]
fn wrong_issuer_is_refused() {
    let mut c = claims();
    c["iss"] = json!("https://evil.example");
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "wrong_issuer");
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "missing_iss");
}

#[test]
fn wrong_audience_is_refused() {
    let mut c = claims();
    c["aud"] = json!(["billing-api", "other"]);
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "wrong_audience");
    c["aud"] = json!(["billing-api", AUD]);
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "ok");
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "missing_aud");
}

#[test]
fn malformed_base64_is_refused() {
    let good = rs256(&claims());
    let (h, rest) = good.split_once('.').unwrap();
    let auth = rsa_authenticator();
    assert_eq!(code(&auth, &format!("{h}!.{rest}")), "token_malformed");
    assert_eq!(code(&auth, &format!("{h}=.{rest}")), "token_malformed"); // padding
    let (msg, sig) = good.rsplit_once('.').unwrap();
    assert_eq!(code(&auth, &format!("{msg}.{sig}*")), "token_malformed");
}

#[test]
fn malformed_json_is_refused() {
    let auth = rsa_authenticator();
    let good = rs256(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let bad_header = b64(b"{\"alg\":\"RS256\",");
    assert_eq!(
        code(&auth, &format!("{bad_header}.{}.{}", parts[1], parts[2])),
        "token_malformed"
    );
    let bad_payload = b64(b"{\"iss\":");
    assert_eq!(
        code(&auth, &format!("{}.{bad_payload}.{}", parts[0], parts[2])),
        "token_malformed"
    );
}

/// Signs exactly these header and claims texts (which a `Value` could not hold: repeated
/// names) with the RSA fixture key.
fn rs256_raw(header: &str, claims: &str) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let key = encoding_key(Algorithm::RS256, "rsa.pem");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).unwrap();
    format!("{message}.{signature}")
}

#[test]
fn repeated_claim_names_are_refused_not_read_last_wins() {
    // Validly signed, so only the repeated name can refuse it. serde_json keeps the last `sub`,
    // a first-wins parser upstream the first: the two would see different subjects.
    let auth = rsa_authenticator();
    let header = r#"{"alg":"RS256","kid":"k1"}"#;
    let base = format!(
        r#""iss":"{ISS}","aud":"{AUD}","iat":{},"exp":{},"jti":"t-1""#,
        NOW - 10,
        NOW + 300
    );
    let control = format!(r#"{{{base},"sub":"alice"}}"#);
    assert_eq!(code(&auth, &rs256_raw(header, &control)), "ok");
    for claims in [
        format!(r#"{{{base},"sub":"admin","sub":"alice"}}"#),
        format!(r#"{{"sub":"admin",{base},"sub":"alice"}}"#),
        // The same name in another spelling: names compare after unescaping.
        format!(r#"{{{base},"sub":"admin","s\u0075b":"alice"}}"#),
        format!(r#"{{{base},"sub":"alice","exp":1}}"#),
        format!(r#"{{"iss":"https://evil.example",{base},"sub":"alice"}}"#),
        // Inside a claim's value (`act`, `cnf`, custom objects) as well.
        format!(r#"{{{base},"sub":"alice","act":{{"sub":"admin","sub":"alice"}}}}"#),
        format!(r#"{{{base},"sub":"alice","roles":[{{"r":"a","r":"admin"}}]}}"#),
    ] {
        let t = rs256_raw(header, &claims);
        let err = block_on(auth.verify(&t)).unwrap_err();
        assert_eq!(
            (err.code(), err.status()),
            ("duplicate_name", 401),
            "{claims}"
        );
        assert!(!err.to_string().contains("admin"), "{err}");
    }
}

#[test]
fn repeated_header_parameter_names_are_refused() {
    let auth = rsa_authenticator();
    let claims = claims().to_string();
    assert_eq!(
        code(&auth, &rs256_raw(r#"{"alg":"RS256","kid":"k1"}"#, &claims)),
        "ok"
    );
    for header in [
        // `alg` first `none`, then a real one: refused rather than read by "last one wins".
        r#"{"alg":"none","alg":"RS256","kid":"k1"}"#,
        r#"{"alg":"RS256","kid":"k2","kid":"k1"}"#,
        r#"{"alg":"RS256","typ":"JWT","typ":"at+jwt","kid":"k1"}"#,
        // Names this crate does not read, and names spelled with escapes.
        r#"{"alg":"RS256","kid":"k1","x-tenant":"a","x-tenant":"b"}"#,
        r#"{"alg":"RS256","k\u0069d":"k2","kid":"k1"}"#,
    ] {
        let t = rs256_raw(header, &claims);
        assert_eq!(code(&auth, &t), "duplicate_name", "{header}");
    }
}

#[test]
fn wrong_segment_counts_are_refused() {
    let auth = rsa_authenticator();
    let good = rs256(&claims());
    let (msg, _) = good.rsplit_once('.').unwrap();
    for t in [
        msg.to_owned(),
        format!("{good}.x"),
        format!("{good}.x.y"),
        "abc".to_owned(),
        String::new(),
    ] {
        assert_eq!(
            code(&auth, &t),
            "token_malformed",
            "{} parts",
            t.split('.').count()
        );
    }
}

#[test]
fn json_array_payload_is_refused() {
    let header = json!({"alg": "RS256", "kid": "k1"});
    let t = sign_raw(
        &header,
        &json!([claims()]),
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa.pem"),
    );
    assert_eq!(code(&rsa_authenticator(), &t), "token_malformed");
}

#[test]
fn a_200_kb_token_is_refused_before_parsing() {
    let mut c = claims();
    c["padding"] = json!("x".repeat(200 * 1024));
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "token_too_large");
    // Also when it is not even a token.
    assert_eq!(
        code(&rsa_authenticator(), &"a".repeat(200 * 1024)),
        "token_too_large"
    );
}

#[test]
fn an_oversized_header_is_refused() {
    let header = json!({"alg": "RS256", "kid": "k1", "x-pad": "p".repeat(4000)});
    let t = sign_raw(
        &header,
        &claims(),
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa.pem"),
    );
    assert_eq!(code(&rsa_authenticator(), &t), "header_too_large");
}

#[test]
fn an_empty_bearer_is_a_bad_request() {
    let auth = rsa_authenticator();
    for value in ["Bearer", "Bearer ", "bearer    "] {
        let req = HeaderPairs {
            headers: &[("authorization", value)],
            query: None,
        };
        let err = block_on(auth.authenticate(&req)).unwrap_err();
        assert_eq!(
            (err.code(), err.status()),
            ("bearer_malformed", 400),
            "{value:?}"
        );
        assert!(
            err.www_authenticate(None)
                .unwrap()
                .contains(r#"error="invalid_request""#)
        );
    }
    let none = HeaderPairs {
        headers: &[],
        query: None,
    };
    let err = block_on(auth.authenticate(&none)).unwrap_err();
    assert_eq!((err.code(), err.status()), ("token_missing", 401));
    assert_eq!(
        err.www_authenticate(Some("api")).unwrap(),
        r#"Bearer realm="api""#
    );
}

#[test]
fn a_token_is_only_checked_against_its_own_issuers_keys() {
    // Issuer B's key signs a token that claims issuer A, with B's kid.
    let auth = veritrail_core::auth::Authenticator::builder()
        .issuer(
            Issuer::new(ISS)
                .keys(key_set(Algorithm::RS256, "rsa.pub.pem", "a1"))
                .audience(AUD),
        )
        .issuer(
            Issuer::new("https://b.example")
                .keys(key_set(Algorithm::RS256, "rsa2.pub.pem", "b1"))
                .audience(AUD),
        )
        .clock(std::sync::Arc::new(veritrail_core::auth::ManualClock::new(
            NOW,
        )))
        .build()
        .unwrap();
    let as_a = token(Algorithm::RS256, "rsa2.pem", "b1", &claims());
    assert_eq!(code(&auth, &as_a), "unknown_kid");
    let mut b_claims = claims();
    b_claims["iss"] = json!("https://b.example");
    assert_eq!(
        code(&auth, &token(Algorithm::RS256, "rsa2.pem", "b1", &b_claims)),
        "ok"
    );
    assert_eq!(
        code(&auth, &token(Algorithm::RS256, "rsa.pem", "a1", &claims())),
        "ok"
    );
}

#[test]
fn iat_in_the_future_and_max_age() {
    let mut c = claims();
    c["iat"] = json!(NOW + 3600);
    assert_eq!(code(&rsa_authenticator(), &rs256(&c)), "iat_in_future");
    let keys = key_set(Algorithm::RS256, "rsa.pub.pem", "k1");
    let aged = builder_with(keys, |i| i.max_age(std::time::Duration::from_secs(600)))
        .0
        .build()
        .unwrap();
    c["iat"] = json!(NOW - 3600);
    assert_eq!(code(&aged, &rs256(&c)), "token_too_old");
    c.as_object_mut().unwrap().remove("iat");
    assert_eq!(code(&aged, &rs256(&c)), "missing_iat");
    c["iat"] = json!(NOW - 100);
    assert_eq!(code(&aged, &rs256(&c)), "ok");
}

#[test]
fn typ_and_required_claims() {
    let keys = key_set(Algorithm::RS256, "rsa.pub.pem", "k1");
    let auth = builder_with(keys, |i| i.typ("at+jwt").require_claim("client_id"))
        .0
        .build()
        .unwrap();
    let key = encoding_key(Algorithm::RS256, "rsa.pem");
    let mut c = claims();
    c["client_id"] = json!("app");
    let jwt = sign_raw(
        &json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}),
        &c,
        Algorithm::RS256,
        &key,
    );
    assert_eq!(code(&auth, &jwt), "wrong_typ");
    let at = sign_raw(
        &json!({"alg": "RS256", "kid": "k1", "typ": "application/AT+JWT"}),
        &c,
        Algorithm::RS256,
        &key,
    );
    assert_eq!(code(&auth, &at), "ok");
    c.as_object_mut().unwrap().remove("client_id");
    let at = sign_raw(
        &json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}),
        &c,
        Algorithm::RS256,
        &key,
    );
    assert_eq!(code(&auth, &at), "missing_claim");
}

#[test]
fn claims_of_the_wrong_type_are_refused() {
    for (name, value) in [
        ("exp", json!("tomorrow")),
        ("aud", json!(7)),
        ("iss", json!(["a"])),
        ("sub", json!(1)),
    ] {
        let mut c = claims();
        c[name] = value;
        assert_eq!(
            code(&rsa_authenticator(), &rs256(&c)),
            "invalid_claim",
            "{name}"
        );
    }
}

#[test]
fn unsupported_algorithms_are_refused() {
    let header = b64(json!({"alg": "HS1024", "kid": "k1"}).to_string().as_bytes());
    let t = format!("{header}.{}.c2ln", b64(claims().to_string().as_bytes()));
    assert_eq!(code(&rsa_authenticator(), &t), "alg_unsupported");
}

#[test]
fn hmac_keys_need_explicit_opt_in() {
    let keys = KeySet::from_hmac_secret(HMAC_SECRET, Algorithm::HS256, None).unwrap();
    let err = veritrail_core::auth::Authenticator::builder()
        .issuer(Issuer::new(ISS).keys(keys).audience(AUD))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("allow_hmac"), "{err}");
}

#[test]
fn error_texts_never_echo_the_token() {
    let mut c = claims();
    c["iss"] = json!("https://evil.example/SECRET-MARKER");
    let t = rs256(&c);
    let err: AuthError = block_on(rsa_authenticator().verify(&t)).unwrap_err();
    for text in [
        err.to_string(),
        format!("{err:?}"),
        err.www_authenticate(Some("r")).unwrap(),
        err.problem_json().to_string(),
    ] {
        assert!(
            !text.contains("SECRET-MARKER") && !text.contains(&t[..20]),
            "{text}"
        );
    }
}
