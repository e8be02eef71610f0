//! The record layout: write_json bytes, reading them back, times and version.

use serde_json::{Value, json};
use time::macros::datetime;
use uuid::Uuid;
use veritrail_core::event::{
    Actor, AuditEvent, AuthnDecision, EventBody, EventError, Kind, Outcome, Phase, Text,
    TokenEvidence,
};

fn bytes(event: &AuditEvent, index: u64) -> Vec<u8> {
    let mut out = Vec::new();
    event.write_json(index, &mut out);
    out
}

fn sample() -> AuditEvent {
    AuditEvent::http("GET", "/orders/7")
        .id(Uuid::parse_str("01936f3e-8b7a-7c3d-9e4f-0123456789ab").unwrap())
        .time(datetime!(2026-11-27 13:04:05.123_456_789 +01:00))
        .route("/orders/{id}")
        .actor(Actor {
            sub: Some("alice".into()),
            aud: vec!["api".into()],
            ..Actor::default()
        })
        .authn_allowed()
        .status(200)
        .latency_us(830)
        .build()
}

#[test]
fn record_bytes_are_compact_ordered_and_exact() {
    let record = String::from_utf8(bytes(&sample(), 42)).unwrap();
    assert_eq!(
        record,
        concat!(
            r#"{"v":1,"id":"01936f3e-8b7a-7c3d-9e4f-0123456789ab","index":42,"#,
            r#""time":"2026-11-27T12:04:05.123456Z","kind":"http","phase":"complete","#,
            r#""actor":{"sub":"alice","aud":["api"]},"request":{"method":"GET","#,
            r#""route":"/orders/{id}","path":"/orders/7"},"authn":{"decision":"allowed"},"#,
            r#""status":200,"latency_us":830,"outcome":"success"}"#
        )
    );
    assert!(!record.contains("null"));
    assert!(!record.ends_with('\n'));
}

#[test]
fn write_json_appends_and_uses_the_given_index() {
    let mut event = sample();
    event.index = Some(7);
    let mut out = b"prefix".to_vec();
    event.write_json(99, &mut out);
    assert!(out.starts_with(b"prefix{"));
    let value: Value = serde_json::from_slice(&out[6..]).unwrap();
    assert_eq!(value["index"], 99);
}

#[test]
fn every_kind_round_trips() {
    let events = [
        sample(),
        AuditEvent::http("PUT", "/x").intent().build(),
        AuditEvent::keyset(Some("iss".into()), "ks1", json!({"keys": []})),
        AuditEvent::start("origin.example/log"),
        AuditEvent::recovered("00000001.seg", 10, 3),
        AuditEvent::stop(5, 1),
        AuditEvent::gap(
            4,
            "queue_full",
            datetime!(2026-01-01 0:00:00.000_001 UTC),
            datetime!(2026-01-01 0:00:02 UTC),
        ),
        AuditEvent::checkpoint(8, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    ];
    let kinds = [
        Kind::Http,
        Kind::Http,
        Kind::Keyset,
        Kind::Start,
        Kind::Recovered,
        Kind::Stop,
        Kind::Gap,
        Kind::Checkpoint,
    ];
    for (i, (event, kind)) in events.iter().zip(kinds).enumerate() {
        assert_eq!(event.kind(), kind);
        assert_eq!(kind.is_system(), kind != Kind::Http);
        let record = bytes(event, i as u64);
        let value: Value = serde_json::from_slice(&record).unwrap();
        assert_eq!(value["kind"], kind.as_str());
        let back = AuditEvent::from_json(&record).unwrap();
        assert_eq!(back.index, Some(i as u64));
        let mut expected = event.clone();
        expected.index = Some(i as u64);
        assert_eq!(back, expected, "{}", String::from_utf8_lossy(&record));
        // Re-serialising what was read gives the same bytes: readers can re-hash.
        assert_eq!(bytes(&back, i as u64), record);
    }
}

#[test]
fn serde_impls_agree_with_write_json() {
    let mut event = sample();
    assert!(
        !serde_json::to_string(&event).unwrap().contains("\"index\""),
        "an unwritten event has no index"
    );
    event.index = Some(3);
    assert_eq!(serde_json::to_vec(&event).unwrap(), bytes(&event, 3));
    let back: AuditEvent = serde_json::from_slice(&bytes(&event, 3)).unwrap();
    assert_eq!(back, event);
}

#[test]
fn times_are_utc_microseconds() {
    let event = AuditEvent::stop(0, 0);
    assert_eq!(event.time.offset(), time::UtcOffset::UTC);
    assert_eq!(event.time.nanosecond() % 1000, 0);
    let value: Value = serde_json::from_slice(&bytes(&event, 0)).unwrap();
    let time = value["time"].as_str().unwrap();
    assert_eq!(time.len(), 27, "{time}");
    assert!(time.ends_with('Z'));
    // Readers accept any RFC 3339 offset and normalise to UTC.
    let other = r#"{"v":1,"id":"01936f3e-8b7a-7c3d-9e4f-0123456789ab","index":0,"time":"2026-11-27T14:00:00.5+02:00","kind":"stop","flushed":1,"dropped":0}"#;
    let back = AuditEvent::from_json(other.as_bytes()).unwrap();
    assert_eq!(back.time, datetime!(2026-11-27 12:00:00.5 UTC));
}

#[test]
fn ids_are_fresh_v7() {
    let a = AuditEvent::stop(0, 0);
    let b = AuditEvent::http("GET", "/").build();
    assert_ne!(a.id, b.id);
    assert_eq!(a.id.get_version_num(), 7);
    assert_eq!(b.id.get_version_num(), 7);
    assert!(a.id < b.id, "v7 ids are time-ordered");
}

#[test]
fn reading_refuses_other_versions_and_garbage() {
    let mut value: Value = serde_json::from_slice(&bytes(&sample(), 1)).unwrap();
    value["v"] = json!(2);
    let err = AuditEvent::from_json(&serde_json::to_vec(&value).unwrap()).unwrap_err();
    assert!(matches!(err, EventError::Version(2)), "{err}");
    assert!(AuditEvent::from_json(b"{}").is_err());
    assert!(AuditEvent::from_json(b"not json").is_err());
    let unknown_kind = r#"{"v":1,"id":"01936f3e-8b7a-7c3d-9e4f-0123456789ab","time":"2026-11-27T12:00:00.000000Z","kind":"party"}"#;
    assert!(AuditEvent::from_json(unknown_kind.as_bytes()).is_err());
}

#[test]
fn builder_sets_each_part() {
    let intent = AuditEvent::http("POST", "/pay")
        .intent()
        .status(202)
        .build();
    let http = intent.as_http().unwrap();
    assert_eq!(http.phase, Phase::Intent);
    assert_eq!(http.outcome, None, "intent records carry no outcome");

    let event = AuditEvent::http("post", "/pay")
        .completes(intent.id)
        .header("X-Request-Source", "batch")
        .query("page", "2")
        .anonymous()
        .extra("n", 3)
        .latency(std::time::Duration::from_micros(1234))
        .status(404)
        .build();
    let http = event.as_http().unwrap();
    assert_eq!(http.phase, Phase::Complete);
    assert_eq!(http.intent_id, Some(intent.id));
    assert_eq!(http.request.method, "post");
    assert_eq!(
        http.request.headers.get("x-request-source"),
        Some(&Text::from("batch"))
    );
    assert_eq!(http.request.query["page"].as_plain(), Some("2"));
    assert_eq!(
        http.authn.as_ref().unwrap().decision,
        AuthnDecision::Anonymous
    );
    assert_eq!(http.extra["n"], json!(3));
    assert_eq!(http.latency_us, Some(1234));
    assert_eq!(http.outcome, Some(Outcome::Failure));

    let explicit = AuditEvent::http("GET", "/")
        .status(200)
        .outcome(Outcome::Error)
        .build();
    assert_eq!(explicit.as_http().unwrap().outcome, Some(Outcome::Error));

    let token = AuditEvent::http("GET", "/")
        .token(TokenEvidence::None)
        .build();
    assert_eq!(token.as_http().unwrap().token, Some(TokenEvidence::None));
    assert!(
        matches!(AuditEvent::stop(1, 2).body, EventBody::Stop(s) if s.flushed == 1 && s.dropped == 2)
    );
    assert!(AuditEvent::stop(1, 2).as_http().is_none());
}

#[test]
fn outcome_from_status() {
    let cases = [
        (101, Outcome::Success),
        (200, Outcome::Success),
        (304, Outcome::Success),
        (400, Outcome::Failure),
        (401, Outcome::Denied),
        (403, Outcome::Denied),
        (404, Outcome::Failure),
        (499, Outcome::Failure),
        (500, Outcome::Error),
        (503, Outcome::Error),
        (0, Outcome::Error),
    ];
    for (status, outcome) in cases {
        assert_eq!(Outcome::from_status(status), outcome, "{status}");
    }
}

#[test]
fn start_record_describes_this_process() {
    let event = AuditEvent::start("o");
    let EventBody::Start(start) = &event.body else {
        panic!("not a start record")
    };
    assert_eq!(start.origin, "o");
    assert_eq!(start.pid, Some(std::process::id()));
    assert_eq!(start.version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn keyset_record_never_keeps_private_or_symmetric_keys() {
    let event = AuditEvent::keyset(
        None,
        "ks",
        json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB", "d": "x", "p": "x", "q": "x",
             "dp": "x", "dq": "x", "qi": "x"},
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": "eA", "d": "x"}
        ]}),
    );
    let EventBody::Keyset(keyset) = &event.body else {
        panic!("not a keyset record")
    };
    assert_eq!(
        keyset.jwks,
        json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": "eA"}
        ]})
    );
}

#[test]
fn protected_text_is_read_only_from_its_exact_object_forms() {
    let ok = [
        (json!("plain"), true),
        (json!({"hmac": "k", "v": "x"}), true),
        (
            json!({"enc": "xchacha20poly1305", "kid": "k", "nonce": "n", "ct": "c"}),
            true,
        ),
        (json!(["k", "x"]), false),
        (json!({"hmac": "k"}), false),
        (json!({"hmac": "k", "v": "x", "kid": "k"}), false),
        (json!({"hmac": "k", "v": "x", "other": 1}), false),
        (json!(7), false),
        (json!(null), false),
    ];
    for (value, accepted) in ok {
        let read = serde_json::from_value::<Text>(value.clone());
        assert_eq!(read.is_ok(), accepted, "{value}: {read:?}");
        if let Ok(text) = read {
            assert_eq!(serde_json::to_value(&text).unwrap(), value);
            assert_eq!(text.is_protected(), !value.is_string());
        }
    }
}

#[test]
fn kind_and_outcome_names_match_the_json() {
    for kind in Kind::ALL {
        assert_eq!(kind.as_str().parse::<Kind>().unwrap(), kind);
        assert_eq!(kind.to_string(), kind.as_str());
    }
    for outcome in Outcome::ALL {
        assert_eq!(outcome.as_str().parse::<Outcome>().unwrap(), outcome);
        assert_eq!(
            serde_json::to_value(outcome).unwrap(),
            json!(outcome.to_string())
        );
    }
    let err = "exploded".parse::<Outcome>().unwrap_err();
    assert!(err.to_string().contains("success, failure"), "{err}");
    assert!(matches!(
        "HTTP".parse::<Kind>(),
        Err(EventError::UnknownName { what: "kind", .. })
    ));
}
