//! `veritrail verify --tokens`: stored tokens re-verified against the keysets the log archived,
//! as of each event's time, and matched against the event's actor.

mod common;
#[path = "cli_events_fixture/mod.rs"]
mod fixture;

use common::{Env, stdout};
use fixture::{AuditLog, TestKey, actor_for, keyset_record};
use serde_json::Value;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use veritrail_core::event::{Actor, AuditEvent, TokenEvidence};

/// Long ago: every token in these logs expired years before the test runs.
const T: OffsetDateTime = datetime!(2024-03-01 10:00:00 UTC);

fn minutes(m: i64) -> OffsetDateTime {
    T + Duration::minutes(m)
}

/// An event for a request made with `token` at `at`, with the actor the engine records.
fn request(token: &str, key: &TestKey, at: OffsetDateTime) -> AuditEvent {
    request_as(token, actor_for(token, key, at), at)
}

/// The same, with the actor given (to record one that does not match the token).
fn request_as(token: &str, actor: Actor, at: OffsetDateTime) -> AuditEvent {
    AuditEvent::http("GET", "/orders/7")
        .time(at)
        .route("/orders/{id}")
        .client_address("203.0.113.9")
        .actor(actor)
        .token(TokenEvidence::full(token))
        .authn_allowed()
        .status(200)
        .build()
}

fn verify_tokens(env: &Env, log: &AuditLog, extra: &[&str], code: i32) -> (String, Value) {
    let mut args = vec!["verify", "log", "--key", &log.vkey, "--tokens"];
    args.extend_from_slice(extra);
    let human = stdout(&env.expect(code, &args, b""));
    args.push("--json");
    let json = serde_json::from_slice(&env.expect(code, &args, b"").stdout).unwrap();
    (human, json)
}

#[test]
fn a_good_log_verifies_with_counts_for_each_kind_of_evidence() {
    let env = Env::new();
    let rsa = TestKey::new("rsa", "k1");
    let ec = TestKey::new("ec256", "k2");
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&keyset_record(&[&rsa, &ec], T));
    log.append(&request(&rsa.mint("alice", minutes(1)), &rsa, minutes(1)));
    log.append(&request(&ec.mint("bob", minutes(2)), &ec, minutes(2)));
    let token = rsa.mint("carol", minutes(3));
    log.append(
        &AuditEvent::http("GET", "/orders/8")
            .time(minutes(3))
            .actor(actor_for(&token, &rsa, minutes(3)))
            .token(TokenEvidence::fingerprint(&token))
            .authn_allowed()
            .status(200)
            .build(),
    );
    let token = rsa.mint("dave", minutes(4));
    log.append(
        &AuditEvent::http("GET", "/orders/9")
            .time(minutes(4))
            .actor(actor_for(&token, &rsa, minutes(4)))
            .token(TokenEvidence::None)
            .authn_allowed()
            .status(200)
            .build(),
    );
    log.append(
        &AuditEvent::http("GET", "/health")
            .time(minutes(5))
            .anonymous()
            .status(200)
            .build(),
    );
    log.commit();

    let (human, json) = verify_tokens(&env, &log, &[], 0);
    assert!(human.contains("is valid"), "{human}");
    assert!(
        human.contains("2 verified") && human.contains("1 fingerprint-only"),
        "{human}"
    );
    assert!(
        human.contains("1 with no evidence") && human.contains("0 failed"),
        "{human}"
    );
    assert!(human.contains("1 request without a token"), "{human}");
    assert!(!human.contains("FAILED"), "{human}");
    let tokens = &json["tokens"];
    assert_eq!(json["valid"], true);
    assert_eq!(tokens["valid"], true, "{json}");
    assert_eq!(tokens["verified"], 2);
    assert_eq!(tokens["fingerprint_only"], 1);
    assert_eq!(tokens["no_evidence"], 1);
    assert_eq!(tokens["without_token"], 1);
    assert_eq!(tokens["keyset_records"], 1);
    assert_eq!(tokens["failed"], 0);

    // The same tokens are long expired now: only "as of the event" makes them verify, and a
    // token presented after its expiry fails even with the right key.
    let late = minutes(60);
    log.append(&request_as(
        &rsa.mint("erin", minutes(6)),
        Actor::default(),
        late,
    ));
    log.commit();
    let (human, json) = verify_tokens(&env, &log, &[], 1);
    assert!(human.contains("index 6: expired"), "{human}");
    assert_eq!(json["tokens"]["failures"][0]["index"], 6, "{json}");
}

#[test]
fn a_sub_altered_before_append_passes_the_log_check_but_not_the_token_check() {
    let env = Env::new();
    let rsa = TestKey::new("rsa", "k1");
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&keyset_record(&[&rsa], T));
    log.append(&request(&rsa.mint("alice", minutes(1)), &rsa, minutes(1)));
    // The service (or whoever fed the writer) names someone else than the token did.
    let token = rsa.mint("alice", minutes(2));
    let mut forged = actor_for(&token, &rsa, minutes(2));
    forged.sub = Some("mallory".into());
    log.append(&request_as(&token, forged, minutes(2)));
    // Another field: the expiry stretched by a day.
    let token = rsa.mint("bob", minutes(3));
    let mut stretched = actor_for(&token, &rsa, minutes(3));
    stretched.exp = stretched.exp.map(|e| e + 86_400);
    log.append(&request_as(&token, stretched, minutes(3)));
    log.commit();

    // The log itself is intact: every record is the one appended.
    let plain = stdout(&env.ok(&["verify", "log", "--key", &log.vkey], b""));
    assert!(plain.contains("is valid"), "{plain}");

    let (human, json) = verify_tokens(&env, &log, &[], 1);
    assert!(human.contains("is valid"), "{human}");
    assert!(human.contains("TOKEN CHECK FAILED for 2 events"), "{human}");
    let line = human
        .lines()
        .find(|l| l.contains("index 2:"))
        .unwrap_or_else(|| panic!("index 2 not named: {human}"));
    assert!(
        line.contains(r#"sub: event "mallory", token "alice""#),
        "{line}"
    );
    let line = human.lines().find(|l| l.contains("index 3:")).unwrap();
    assert!(line.contains("exp: event"), "{line}");
    assert!(human.contains("1 verified"), "{human}");
    let tokens = &json["tokens"];
    assert_eq!(json["valid"], true, "the log itself is valid: {json}");
    assert_eq!(tokens["valid"], false);
    assert_eq!(tokens["failed"], 2);
    assert_eq!(tokens["failures"][0]["index"], 2);
    assert_eq!(tokens["failures"][1]["index"], 3);
    assert!(
        tokens["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("mallory")
    );
}

#[test]
fn tokens_signed_by_keys_outside_the_recorded_keyset_fail() {
    let env = Env::new();
    let rsa = TestKey::new("rsa", "k1");
    // The right kid, another key.
    let impostor = TestKey::new("rsa2", "k1");
    // A key the log never recorded.
    let unrecorded = TestKey::new("ec256", "k9");
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&keyset_record(&[&rsa], T));
    log.append(&request(&rsa.mint("alice", minutes(1)), &rsa, minutes(1)));
    let token = impostor.mint("alice", minutes(2));
    log.append(&request(&token, &impostor, minutes(2)));
    let token = unrecorded.mint("alice", minutes(3));
    log.append(&request(&token, &unrecorded, minutes(3)));
    log.commit();

    let (human, json) = verify_tokens(&env, &log, &[], 1);
    assert!(human.contains("1 verified"), "{human}");
    assert!(human.contains("index 2: bad_signature"), "{human}");
    assert!(human.contains("index 3: unknown_kid"), "{human}");
    assert!(
        human.contains("keyset recorded at index 0"),
        "the archived keyset is not named: {human}"
    );
    assert_eq!(json["tokens"]["failed"], 2);
}

#[test]
fn each_token_is_checked_against_the_keyset_in_force_when_it_was_used() {
    let env = Env::new();
    let old = TestKey::new("rsa", "k1");
    let new = TestKey::new("ec256", "k2");
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&keyset_record(&[&old], T));
    log.append(&request(&old.mint("alice", minutes(1)), &old, minutes(1)));
    // A token of the next key, used before the log recorded it.
    log.append(&request(&new.mint("bob", minutes(2)), &new, minutes(2)));
    // Rotation: k1 retired.
    log.append(&keyset_record(&[&new], minutes(10)));
    log.append(&request(&new.mint("bob", minutes(11)), &new, minutes(11)));
    log.append(&request(&old.mint("carol", minutes(12)), &old, minutes(12)));
    log.commit();

    let (human, json) = verify_tokens(&env, &log, &[], 1);
    assert!(human.contains("2 verified"), "{human}");
    assert!(human.contains("index 2: unknown_kid"), "{human}");
    assert!(human.contains("index 5: unknown_kid"), "{human}");
    assert!(human.contains("2 keyset records read"), "{human}");
    let failed: Vec<u64> = json["tokens"]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, [2, 5]);
}

/// A keyset record and one request by alice with a good token.
fn one_request(env: &Env) -> AuditLog {
    let rsa = TestKey::new("rsa", "k1");
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&keyset_record(&[&rsa], T));
    log.append(&request(&rsa.mint("alice", minutes(1)), &rsa, minutes(1)));
    log.commit();
    log
}

#[test]
fn issuer_and_audience_rules_and_a_log_without_keysets() {
    let env = Env::new();
    let log = one_request(&env);
    verify_tokens(&env, &log, &["--audience", fixture::AUD], 0);
    verify_tokens(&env, &log, &["--issuer", fixture::ISS], 0);
    let (human, _) = verify_tokens(&env, &log, &["--audience", "billing-api"], 1);
    assert!(human.contains("index 1: wrong_audience"), "{human}");
    let (human, _) = verify_tokens(&env, &log, &["--issuer", "https://other.example"], 1);
    assert!(human.contains("index 1: wrong_issuer"), "{human}");
    // --issuer and --audience only make sense with --tokens.
    env.expect(
        2,
        &["verify", "log", "--key", &log.vkey, "--audience", "x"],
        b"",
    );

    let env = Env::new();
    let rsa = TestKey::new("rsa", "k1");
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&request(&rsa.mint("alice", minutes(1)), &rsa, minutes(1)));
    log.commit();
    let (human, _) = verify_tokens(&env, &log, &[], 1);
    assert!(
        human.contains("index 0: no keyset record for issuer"),
        "{human}"
    );
}

#[test]
fn a_record_altered_after_append_fails_the_log_check_and_tokens_are_not_trusted() {
    let env = Env::new();
    let log = one_request(&env);
    let record = log.records[1].clone();
    let at = record.windows(7).position(|w| w == b"\"alice\"").unwrap();
    let mut forged = record.clone();
    forged[at + 1..at + 6].copy_from_slice(b"oscar");
    let mut changed = 0;
    for path in common::files_under(&env.path("log")) {
        let bytes = std::fs::read(&path).unwrap();
        if let Some(pos) = bytes.windows(record.len()).position(|w| w == record) {
            let mut bytes = bytes;
            bytes[pos..pos + record.len()].copy_from_slice(&forged);
            std::fs::write(&path, bytes).unwrap();
            changed += 1;
        }
    }
    assert_eq!(changed, 1);
    let mut args = vec!["verify", "log", "--key", &log.vkey, "--tokens"];
    let out = stdout(&env.expect(1, &args, b""));
    assert!(out.contains("INVALID") && out.contains("index 1"), "{out}");
    assert!(out.contains("tokens: not checked"), "{out}");
    args.push("--json");
    let json: Value = serde_json::from_slice(&env.expect(1, &args, b"").stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["index"], 1);
}

/// An event for a request the service refused at the door, keeping the presented token.
fn refused(token: &str, reason: &str, at: OffsetDateTime) -> AuditEvent {
    AuditEvent::http("GET", "/orders/7")
        .time(at)
        .route("/orders/{id}")
        .token(TokenEvidence::full(token))
        .authn_denied(reason)
        .status(401)
        .build()
}

#[test]
fn a_token_refused_at_the_door_must_be_refused_again() {
    let env = Env::new();
    let rsa = TestKey::new("rsa", "k1");
    let stranger = TestKey::new("rsa2", "k1"); // same kid, another key: a forgery
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&keyset_record(&[&rsa], T));
    log.append(&request(&rsa.mint("alice", minutes(1)), &rsa, minutes(1)));
    // Presented an hour after it was minted: expired at the event's time.
    log.append(&refused(
        &rsa.mint("bob", minutes(2)),
        "expired",
        minutes(62),
    ));
    log.append(&refused(
        &stranger.mint("eve", minutes(3)),
        "bad_signature",
        minutes(3),
    ));
    log.commit();
    let (human, json) = verify_tokens(&env, &log, &[], 0);
    assert!(
        human.contains("2 refused by the service and by re-verification"),
        "{human}"
    );
    assert_eq!(json["tokens"]["refused"], 2, "{json}");
    assert_eq!(json["tokens"]["verified"], 1, "{json}");
    assert_eq!(json["tokens"]["failed"], 0, "{json}");

    // A record that claims a refusal of a token that was in fact good is caught.
    log.append(&refused(
        &rsa.mint("carol", minutes(4)),
        "expired",
        minutes(4),
    ));
    log.commit();
    let (human, json) = verify_tokens(&env, &log, &[], 1);
    assert!(
        human.contains("index 4: the event says the token was refused (expired)"),
        "{human}"
    );
    assert_eq!(json["tokens"]["failures"][0]["index"], 4, "{json}");
}
