//! `veritrail export --format ocsf`: OCSF 1.3.0 API Activity (6003) and Authentication (3002)
//! objects, checked field by field against what OCSF requires.

mod common;
#[path = "cli_events_fixture/mod.rs"]
mod fixture;

use common::{Env, stderr};
use fixture::{AuditLog, TestKey, actor, actor_for, json_lines, keyset_record, missing_scope};
use serde_json::Value;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use veritrail_core::event::{AuditEvent, TokenEvidence};

const T: OffsetDateTime = datetime!(2026-11-27 12:00:00.123456 UTC);

fn at(seconds: i64) -> OffsetDateTime {
    T + Duration::seconds(seconds)
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

struct Sample {
    env: Env,
    events: Vec<AuditEvent>,
}

/// 0 keyset; 1..=7 requests (see each).
fn sample() -> Sample {
    let env = Env::new();
    let key = TestKey::new("rsa", "k1");
    let token = key.mint("alice", at(1));
    let events = vec![
        keyset_record(&[&key], T),
        AuditEvent::http("GET", "/orders/7")
            .time(at(1))
            .route("/orders/{id}")
            .client_address("203.0.113.9")
            .user_agent("curl/8.5")
            .request_id("req-1")
            .actor(actor_for(&token, &key, at(1)))
            .token(TokenEvidence::fingerprint(&token))
            .authn_allowed()
            .action("order.read")
            .target("order:7")
            .status(200)
            .latency_us(2_500)
            .build(),
        AuditEvent::http("POST", "/orders")
            .time(at(2))
            .route("/orders")
            .client_address("2001:db8::1")
            .actor(actor("bob"))
            .authn_allowed()
            .status(201)
            .build(),
        AuditEvent::http("GET", "/admin")
            .time(at(3))
            .client_address("198.51.100.4")
            .authn_denied("expired")
            .status(401)
            .build(),
        AuditEvent::http("DELETE", "/orders/7")
            .time(at(4))
            .route("/orders/{id}")
            .client_address("203.0.113.9")
            .actor(actor("alice"))
            .authn_allowed()
            .authz(missing_scope())
            .status(403)
            .build(),
        AuditEvent::http("GET", "/health")
            .time(at(5))
            .route("/health")
            .client_address("203.0.113.10")
            .anonymous()
            .status(200)
            .build(),
        AuditEvent::http("PUT", "/orders/7")
            .time(at(6))
            .route("/orders/{id}")
            .client_address("203.0.113.9")
            .actor(actor("alice"))
            .authn_allowed()
            .status(500)
            .build(),
        AuditEvent::http("OPTIONS", "/orders")
            .time(at(7))
            .route("/orders")
            .client_address("203.0.113.9")
            .anonymous()
            .status(204)
            .build(),
    ];
    let mut log = AuditLog::create(&env.path("log"));
    for event in &events {
        log.append(event);
    }
    log.commit();
    Sample { env, events }
}

/// The fields every OCSF event of these classes must have, whatever the event.
fn assert_required(o: &Value) {
    let class = o["class_uid"].as_u64().unwrap_or_else(|| panic!("{o}"));
    let activity = o["activity_id"].as_u64().unwrap();
    assert!(matches!(class, 6003 | 3002), "{o}");
    assert_eq!(o["type_uid"].as_u64(), Some(class * 100 + activity), "{o}");
    let category = if class == 6003 { 6 } else { 3 };
    assert_eq!(o["category_uid"], category, "{o}");
    assert!((1..=6).contains(&o["severity_id"].as_u64().unwrap()), "{o}");
    assert!(o["time"].is_i64(), "{o}");
    assert!(matches!(o["status_id"].as_u64(), Some(1 | 2)), "{o}");
    let metadata = &o["metadata"];
    assert_eq!(metadata["version"], "1.3.0", "{o}");
    assert_eq!(metadata["product"]["name"], "veritrail", "{o}");
    assert_eq!(metadata["product"]["vendor_name"], "veritrail", "{o}");
    assert!(metadata["product"]["version"].is_string(), "{o}");
    assert!(metadata["uid"].is_string(), "{o}");
    assert_eq!(metadata["log_name"], "test.example/audit", "{o}");
    assert!(o["actor"]["user"].is_object(), "{o}");
    assert!(o["src_endpoint"].is_object(), "{o}");
    assert!(o["http_request"]["http_method"].is_string(), "{o}");
    assert_eq!(
        o["unmapped"]["veritrail"]["index"], metadata["sequence"],
        "{o}"
    );
    if class == 6003 {
        assert!(o["api"]["operation"].is_string(), "{o}");
    } else {
        assert_eq!(activity, 1, "Logon: {o}");
        assert!(o["user"].is_object(), "{o}");
        assert!(
            o["service"].is_object() || o["dst_endpoint"].is_object(),
            "{o}"
        );
    }
}

/// The objects exported for the event stored at `index`.
fn objects_of(all: &[Value], index: u64) -> Vec<&Value> {
    all.iter()
        .filter(|o| o["metadata"]["sequence"] == index)
        .collect()
}

#[test]
fn every_request_becomes_api_activity_and_every_token_check_authentication() {
    let s = sample();
    let out = s.env.ok(&["export", "log", "--format", "ocsf"], b"");
    let all = json_lines(&out.stdout);
    for o in &all {
        assert_required(o);
    }
    // 7 requests → 7 API Activity; 5 of them checked a token → 5 Authentication.
    let classes: Vec<u64> = all
        .iter()
        .map(|o| o["class_uid"].as_u64().unwrap())
        .collect();
    assert_eq!(
        classes,
        [
            6003, 3002, 6003, 3002, 6003, 3002, 6003, 3002, 6003, 6003, 3002, 6003
        ]
    );
    assert!(
        objects_of(&all, 0).is_empty(),
        "system records have no OCSF class"
    );

    let read = objects_of(&all, 1);
    let (api, auth) = (read[0], read[1]);
    let event = &s.events[1];
    assert_eq!(api["class_uid"], 6003);
    assert_eq!(api["activity_id"], 2);
    assert_eq!(api["activity_name"], "Read");
    assert_eq!(api["type_uid"], 600302);
    assert_eq!(api["time"], ms(at(1)));
    assert_eq!(api["metadata"]["uid"], event.id.to_string());
    assert_eq!(api["metadata"]["sequence"], 1);
    assert_eq!(api["actor"]["user"]["uid"], "alice");
    assert_eq!(api["actor"]["session"]["issuer"], fixture::ISS);
    assert_eq!(api["src_endpoint"]["ip"], "203.0.113.9");
    assert_eq!(api["api"]["operation"], "order.read");
    assert_eq!(api["api"]["request"]["uid"], "req-1");
    assert_eq!(api["http_request"]["http_method"], "GET");
    assert_eq!(api["http_request"]["url"]["path"], "/orders/7");
    assert_eq!(api["http_request"]["user_agent"], "curl/8.5");
    assert_eq!(api["http_response"]["code"], 200);
    assert_eq!(api["status_id"], 1);
    assert_eq!(api["severity_id"], 1);
    assert_eq!(api["duration"], 2);
    assert_eq!(api["resources"][0]["uid"], "order:7");
    let veritrail = &api["unmapped"]["veritrail"];
    assert_eq!(veritrail["index"], 1);
    assert_eq!(veritrail["route"], "/orders/{id}");
    assert_eq!(
        veritrail["token_sha256"].as_str().map(str::len),
        Some(64),
        "{api}"
    );
    assert_eq!(auth["class_uid"], 3002);
    assert_eq!(auth["type_uid"], 300201);
    assert_eq!(auth["activity_name"], "Logon");
    assert_eq!(auth["user"]["uid"], "alice");
    assert_eq!(auth["actor"]["user"]["uid"], "alice");
    assert_eq!(auth["status_id"], 1);
    assert_eq!(auth["src_endpoint"]["ip"], "203.0.113.9");
    assert_eq!(auth["metadata"]["uid"], event.id.to_string());
    assert_eq!(auth["time"], ms(at(1)));

    let create = objects_of(&all, 2)[0];
    assert_eq!(
        (create["activity_id"].as_u64(), create["type_uid"].as_u64()),
        (Some(1), Some(600301))
    );
    assert_eq!(create["src_endpoint"]["ip"], "2001:db8::1");
    assert_eq!(create["api"]["operation"], "POST /orders");

    let refused = objects_of(&all, 3);
    assert_eq!(refused[0]["status_id"], 2);
    assert_eq!(refused[0]["status_detail"], "expired");
    assert_eq!(refused[1]["class_uid"], 3002);
    assert_eq!(refused[1]["status_id"], 2);
    assert_eq!(refused[1]["status"], "Failure");
    assert_eq!(refused[1]["status_detail"], "expired");
    assert!(
        refused[1]["user"].get("uid").is_none(),
        "no subject is known: {}",
        refused[1]
    );

    // Authenticated, then refused by the route's policy.
    let delete = objects_of(&all, 4);
    assert_eq!(delete[0]["activity_id"], 4);
    assert_eq!(delete[0]["status_id"], 2);
    assert_eq!(delete[0]["status_detail"], "missing_scope");
    assert_eq!(delete[1]["status_id"], 1);

    let anonymous = objects_of(&all, 5);
    assert_eq!(anonymous.len(), 1, "no logon without a token");
    assert_eq!(anonymous[0]["status_id"], 1);

    let update = objects_of(&all, 6)[0];
    assert_eq!(update["activity_id"], 3);
    assert_eq!(update["type_uid"], 600303);
    assert_eq!(update["severity_id"], 3, "a server error: {update}");
    let other = objects_of(&all, 7)[0];
    assert_eq!(other["activity_id"], 99);
    assert_eq!(other["type_uid"], 600399);
}

#[test]
fn out_writes_the_same_lines_to_a_file_and_filters_apply() {
    let s = sample();
    let out = s.env.ok(&["export", "log", "--format", "ocsf"], b"");
    let written = s.env.ok(
        &["export", "log", "--format", "ocsf", "--out", "events.jsonl"],
        b"",
    );
    assert!(written.stdout.is_empty());
    assert_eq!(s.env.read("events.jsonl").as_bytes(), out.stdout);
    let note = stderr(&written);
    assert!(
        note.contains("12 objects") && note.contains("7 requests"),
        "{note}"
    );

    let out = s.env.ok(
        &["export", "log", "--format", "ocsf", "--sub", "alice"],
        b"",
    );
    let all = json_lines(&out.stdout);
    let indexes: Vec<u64> = all
        .iter()
        .map(|o| o["metadata"]["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 1, 4, 4, 6, 6]);

    s.env.expect(2, &["export", "log"], b"");
    s.env.expect(2, &["export", "log", "--format", "cef"], b"");
}
