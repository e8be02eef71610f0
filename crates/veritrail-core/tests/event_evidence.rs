//! Token evidence modes; HMAC-signed tokens are never kept whole.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use veritrail_core::event::{EvidenceMode, FullTokenRefused, Text, TokenEvidence};

fn token(alg: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice"}"#);
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

fn hex_sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[test]
fn fingerprint_is_hex_sha256_of_the_compact_token() {
    let t = token("ES256");
    let evidence = TokenEvidence::fingerprint(&t);
    assert_eq!(evidence.mode(), EvidenceMode::Fingerprint);
    assert_eq!(evidence.sha256(), Some(hex_sha256(&t).as_str()));
    // Independent check against a known digest: SHA-256("abc").
    assert_eq!(
        TokenEvidence::fingerprint("abc").sha256(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(EvidenceMode::default(), EvidenceMode::Fingerprint);
}

#[test]
fn full_keeps_asymmetric_tokens() {
    for alg in ["RS256", "PS384", "ES256", "ES384", "EdDSA"] {
        let t = token(alg);
        match TokenEvidence::full(&t) {
            TokenEvidence::Full { sha256, jwt } => {
                assert_eq!(jwt, Text::Plain(t.clone()));
                assert_eq!(sha256, hex_sha256(&t));
            }
            other => panic!("{alg}: {other:?}"),
        }
    }
}

#[test]
fn full_refuses_hmac_tokens_and_says_so() {
    for alg in ["HS256", "HS384", "HS512", "hs256"] {
        let t = token(alg);
        let evidence = TokenEvidence::capture(EvidenceMode::Full, &t);
        assert_eq!(
            evidence,
            TokenEvidence::Fingerprint {
                sha256: hex_sha256(&t),
                full_refused: Some(FullTokenRefused::HmacAlg)
            },
            "{alg}"
        );
        let json = serde_json::to_string(&evidence).unwrap();
        assert!(!json.contains(&t), "{alg} token kept whole: {json}");
        assert!(json.contains(r#""full_refused":"hmac_alg""#), "{json}");
    }
}

#[test]
fn full_refuses_what_it_cannot_read() {
    let unreadable = [
        "not-a-jwt",
        "a.b",
        "a.b.c.d.e",
        "!!!.e30.c2ln",
        &format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode("{\"typ\":\"JWT\"}")),
    ];
    for t in unreadable {
        assert_eq!(
            TokenEvidence::full(t),
            TokenEvidence::Fingerprint {
                sha256: hex_sha256(t),
                full_refused: Some(FullTokenRefused::UnreadableHeader)
            },
            "{t}"
        );
    }
}

#[test]
fn none_keeps_nothing() {
    let evidence = TokenEvidence::capture(EvidenceMode::None, &token("ES256"));
    assert_eq!(evidence, TokenEvidence::None);
    assert_eq!(evidence.sha256(), None);
    assert_eq!(
        serde_json::to_string(&evidence).unwrap(),
        r#"{"mode":"none"}"#
    );
}

#[test]
fn evidence_json_shapes() {
    let t = token("ES256");
    let full = serde_json::to_value(TokenEvidence::full(&t)).unwrap();
    assert_eq!(full["mode"], "full");
    assert_eq!(full["jwt"], t);
    let fp = serde_json::to_value(TokenEvidence::fingerprint(&t)).unwrap();
    assert_eq!(fp.as_object().unwrap().len(), 2, "{fp}");
    let back: TokenEvidence = serde_json::from_value(full).unwrap();
    assert_eq!(back, TokenEvidence::full(&t));
}
