//! `veritrail token verify`: the real binary against tokens minted here with jsonwebtoken and
//! the core crate's fixture keys; keys from a JWKS file, a JWKS URL and OIDC discovery served
//! by a small axum server started by the test, and a shared-secret file.

mod common;

use std::process::Output;

use axum::Router;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use common::{Env, fixture, jwks, stderr, stdout};

const ISSUER: &str = "https://idp.token.test";
const AUDIENCE: &str = "orders-api";
const SECRET: &str = "hs-secret-that-must-never-leak-0123456789abcdef";

fn rsa(file: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture(file)).unwrap()
}

/// A token with these claims, signed with `key` under `kid` `rsa1` for RS256.
fn mint(claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    // Under --all-features both jsonwebtoken backends are on: select ours before signing.
    veritrail_core::auth::backend::install_default_provider();
    let mut header = Header::new(alg);
    if alg == Algorithm::RS256 {
        header.kid = Some("rsa1".into());
    }
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Standard claims for `alice`, expiring `exp_in` seconds from now.
fn claims(iss: &str, aud: &str, exp_in: i64) -> Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    json!({"iss": iss, "aud": aud, "sub": "alice", "iat": now - 10, "exp": now + exp_in,
        "scope": "orders:read"})
}

/// A valid RS256 token of `iss` signed with the fixture key `rsa.pem`.
fn rs256(iss: &str) -> String {
    mint(
        &claims(iss, AUDIENCE, 300),
        Algorithm::RS256,
        &rsa("rsa.pem"),
    )
}

/// An environment holding `jwks.json` and the shared secret in `secret`.
fn env() -> Env {
    let env = Env::new();
    env.write("jwks.json", jwks());
    env.write("secret", format!("{SECRET}\n"));
    env
}

/// `token verify TOKEN --jwks jwks.json --issuer ISSUER --audience AUDIENCE` plus `extra`.
fn verify_file(env: &Env, code: i32, token: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "token",
        "verify",
        token,
        "--jwks",
        "jwks.json",
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
    ];
    args.extend_from_slice(extra);
    env.expect(code, &args, b"")
}

/// The reason code of a refused token, from the human line and from `--json` (which must
/// agree), after checking both exit 1.
fn refusal(env: &Env, token: &str) -> String {
    let out = verify_file(env, 1, token, &[]);
    let text = stdout(&out);
    let line = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("not one line: {text:?}"));
    let rest = line
        .strip_prefix("refused: ")
        .unwrap_or_else(|| panic!("not a refusal: {line:?}"));
    let (code, why) = rest.split_once(": ").unwrap();
    assert!(!why.trim().is_empty() && !why.contains('\n'), "{line:?}");
    let json: Value = serde_json::from_str(&stdout(&verify_file(env, 1, token, &["--json"])))
        .expect("--json prints one JSON object");
    assert_eq!(json["accepted"], false);
    assert_eq!(json["code"], code, "{json}");
    code.to_owned()
}

#[test]
fn a_valid_token_prints_its_claims_and_json_parses() {
    let env = env();
    let token = rs256(ISSUER);
    let out = verify_file(&env, 0, &token, &[]);
    let text = stdout(&out);
    let (first, rest) = text.split_once('\n').unwrap();
    assert_eq!(
        first,
        format!("accepted: sub=alice iss={ISSUER} alg=RS256 kid=rsa1")
    );
    let printed: Value = serde_json::from_str(rest).expect("the claims as JSON");
    assert_eq!(printed, claims_of(&token));

    let json: Value =
        serde_json::from_str(&stdout(&verify_file(&env, 0, &token, &["--json"]))).unwrap();
    assert_eq!(json["accepted"], true);
    assert_eq!(json["claims"], claims_of(&token));
    assert_eq!(json["claims"]["sub"], "alice");
    assert_eq!(json["alg"], "RS256");
    assert_eq!(json["scopes"], json!(["orders:read"]));
}

#[test]
fn claims_are_shown_escaped_and_exact_only_in_json() {
    // Bidi overrides, an ANSI sequence, DEL and a C1 CSI in the subject, a custom claim and a
    // key id: the human output shows them escaped; --json keeps them exact.
    let env = env();
    let hostile = "adm\u{202e}nimda\u{2066}\u{1b}[2J\u{9b}31m\u{7f}\u{200e}";
    let mut c = claims(ISSUER, AUDIENCE, 300);
    c["sub"] = json!(hostile);
    c["note"] = json!(hostile);
    let token = mint(&c, Algorithm::RS256, &rsa("rsa.pem"));
    let text = stdout(&verify_file(&env, 0, &token, &[]));
    assert!(
        !text.contains(|ch: char| (ch.is_control() && ch != '\n')
            || ('\u{202a}'..='\u{202e}').contains(&ch)
            || ('\u{2066}'..='\u{2069}').contains(&ch)
            || ch == '\u{200e}'),
        "{text:?}"
    );
    let shown = r"adm\u{202e}nimda\u{2066}\x1b[2J\u{9b}31m\x7f\u{200e}";
    assert!(
        text.starts_with(&format!("accepted: sub={shown} iss=")),
        "{text}"
    );
    // In the claims, JSON's own escape for ESC comes first; ours shows its backslash.
    assert!(
        text.contains(r#""note": "adm\u{202e}nimda\u{2066}\\u001b[2J"#),
        "{text}"
    );
    let json: Value =
        serde_json::from_str(&stdout(&verify_file(&env, 0, &token, &["--json"]))).unwrap();
    assert_eq!(
        (&json["claims"]["sub"], &json["claims"]["note"]),
        (&json!(hostile), &json!(hostile))
    );
}

/// The payload of `token`, decoded here independently of veritrail.
fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn refused_tokens_exit_1_with_the_authenticators_reason_code() {
    let env = env();
    let key = rsa("rsa.pem");
    let expired = mint(&claims(ISSUER, AUDIENCE, -3600), Algorithm::RS256, &key);
    assert_eq!(refusal(&env, &expired), "expired");
    let other_aud = mint(&claims(ISSUER, "billing", 300), Algorithm::RS256, &key);
    assert_eq!(refusal(&env, &other_aud), "wrong_audience");
    let other_iss = mint(
        &claims("https://evil.test", AUDIENCE, 300),
        Algorithm::RS256,
        &key,
    );
    assert_eq!(refusal(&env, &other_iss), "wrong_issuer");
    // Signed with another RSA key under the JWKS key's kid.
    let forged = mint(
        &claims(ISSUER, AUDIENCE, 300),
        Algorithm::RS256,
        &rsa("rsa2.pem"),
    );
    assert_eq!(refusal(&env, &forged), "bad_signature");
    assert_eq!(refusal(&env, "not-a-token"), "token_malformed");
}

#[test]
fn hs256_with_a_secret_file_and_the_secret_is_never_printed() {
    let env = env();
    let hs = |secret: &[u8], iss: &str| {
        mint(
            &claims(iss, AUDIENCE, 300),
            Algorithm::HS256,
            &EncodingKey::from_secret(secret),
        )
    };
    let run = |code: i32, token: &str, file: &str, json: bool| {
        let mut args = vec![
            "token",
            "verify",
            token,
            "--hs-secret-file",
            file,
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
        ];
        if json {
            args.push("--json");
        }
        let out = env.expect(code, &args, b"");
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains(SECRET), "the secret was printed: {all}");
        all
    };
    let good = hs(SECRET.as_bytes(), ISSUER);
    assert!(run(0, &good, "secret", false).starts_with("accepted: sub=alice"));
    let json: Value = serde_json::from_str(&run(0, &good, "secret", true)).unwrap();
    assert_eq!(json["alg"], "HS256");
    assert_eq!(json["claims"]["sub"], "alice");

    let forged = hs(b"another-secret-0123456789abcdefghij", ISSUER);
    assert!(run(1, &forged, "secret", false).starts_with("refused: bad_signature: "));
    let json: Value = serde_json::from_str(&run(1, &forged, "secret", true)).unwrap();
    assert_eq!(json["code"], "bad_signature");
    let expired = mint(
        &claims(ISSUER, AUDIENCE, -3600),
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    assert!(run(1, &expired, "secret", false).starts_with("refused: expired: "));
    // A secret too short to use: a usage error that names the file, not the secret.
    let short = &SECRET[..16];
    env.write("short", short);
    let out = run(2, &good, "short", false);
    assert!(out.contains("short"), "{out}");
    assert!(!out.contains(short), "the short secret was printed: {out}");
}

#[test]
fn the_token_can_come_from_stdin() {
    let env = env();
    let args = [
        "token",
        "verify",
        "-",
        "--jwks",
        "jwks.json",
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
    ];
    let out = env.expect(0, &args, format!("{}\n", rs256(ISSUER)).as_bytes());
    assert!(stdout(&out).starts_with("accepted: sub=alice"));
    let forged = mint(
        &claims(ISSUER, AUDIENCE, 300),
        Algorithm::RS256,
        &rsa("rsa2.pem"),
    );
    let out = env.expect(1, &args, forged.as_bytes());
    assert!(stdout(&out).starts_with("refused: bad_signature: "));
    let out = env.expect(1, &args, b"");
    assert!(stdout(&out).starts_with("refused: "), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_a_jwks_url_and_oidc_discovery() {
    let app = common::identity_provider(Router::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let outputs = tokio::task::spawn_blocking(move || {
        let env = Env::new();
        let url = format!("{base}/jwks.json");
        let by_url = |token: &str, code: i32| {
            env.expect(
                code,
                &[
                    "token",
                    "verify",
                    token,
                    "--jwks",
                    &url,
                    "--issuer",
                    ISSUER,
                    "--audience",
                    AUDIENCE,
                ],
                b"",
            )
        };
        let good = by_url(&rs256(ISSUER), 0);
        let forged = mint(
            &claims(ISSUER, AUDIENCE, 300),
            Algorithm::RS256,
            &rsa("rsa2.pem"),
        );
        let bad = by_url(&forged, 1);
        // OIDC: the issuer defaults to the discovery URL.
        let oidc = |token: &str, code: i32| {
            env.expect(
                code,
                &[
                    "token",
                    "verify",
                    token,
                    "--oidc",
                    &base,
                    "--audience",
                    AUDIENCE,
                ],
                b"",
            )
        };
        let oidc_good = oidc(&rs256(&base), 0);
        let oidc_other_iss = oidc(&rs256(ISSUER), 1);
        [good, bad, oidc_good, oidc_other_iss].map(|out| stdout(&out))
    })
    .await
    .unwrap();
    assert!(outputs[0].starts_with("accepted: sub=alice"), "{outputs:?}");
    assert!(
        outputs[1].starts_with("refused: bad_signature: "),
        "{outputs:?}"
    );
    assert!(outputs[2].starts_with("accepted: sub=alice"), "{outputs:?}");
    assert!(
        outputs[3].starts_with("refused: wrong_issuer: "),
        "{outputs:?}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let env = env();
    let token = rs256(ISSUER);
    let t = token.as_str();
    for args in [
        &["token"][..],
        &["token", "verify"],
        // No key source.
        &[
            "token",
            "verify",
            t,
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
        ],
        // Two key sources.
        &[
            "token",
            "verify",
            t,
            "--jwks",
            "jwks.json",
            "--hs-secret-file",
            "secret",
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
        ],
        // No issuer (only --oidc supplies a default), no audience.
        &[
            "token",
            "verify",
            t,
            "--jwks",
            "jwks.json",
            "--audience",
            AUDIENCE,
        ],
        &[
            "token",
            "verify",
            t,
            "--jwks",
            "jwks.json",
            "--issuer",
            ISSUER,
        ],
    ] {
        let out = env.expect(2, args, b"");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    // A key source that cannot be read is an I/O error, not a verdict on the token.
    let out = env.expect(
        2,
        &[
            "token",
            "verify",
            t,
            "--jwks",
            "missing.json",
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
        ],
        b"",
    );
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));
    env.ok(&["token", "verify", "--help"], b"");
}
