//! Every kind of event this crate produces validates against
//! `schema/audit-event-v1.schema.json`, and the schema refuses malformed events.

use serde_json::{Value, json};
use time::macros::datetime;
use veritrail_core::event::protect::{FieldKeys, Protection};
use veritrail_core::event::{
    Actor, AuditEvent, Authz, AuthzDecision, EvidenceMode, Outcome, TokenEvidence,
};

const SCHEMA: &str = include_str!("../../../schema/audit-event-v1.schema.json");
const ES256_TOKEN: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
const HS256_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    if let Err(e) = jsonschema::draft202012::meta::validator().validate(&schema) {
        panic!("schema does not validate against the 2020-12 meta-schema: {e}");
    }
    // Every kind the crate knows has a branch in the schema.
    let kinds: Vec<&str> = schema["properties"]["kind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let known: Vec<&str> = veritrail_core::event::Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(kinds, known);
    let outcomes = &schema["$defs"]["http"]["properties"]["outcome"]["enum"];
    let known: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(outcomes, &json!(known));
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn full_actor() -> Actor {
    Actor {
        sub: Some("alice".into()),
        iss: Some("https://idp.example".into()),
        aud: vec!["orders-api".into(), "billing".into()],
        jti: Some("jti-1".into()),
        iat: Some(1_795_000_000),
        exp: Some(1_795_003_600),
        kid: Some("k1".into()),
        alg: Some("ES256".into()),
        scopes: vec!["orders:read".into()],
        roles: vec!["clerk".into()],
        claims: [
            ("email".to_owned(), json!("alice@example.com")),
            ("tenant".to_owned(), json!({"id": 7, "tier": "gold"})),
        ]
        .into(),
    }
}

fn full_http() -> AuditEvent {
    AuditEvent::http("POST", "/orders/7/refund")
        .route("/orders/{id}/refund")
        .query("dry_run", "false")
        .client_address("203.0.113.9")
        .user_agent("curl/8.5.0")
        .request_id("req-1")
        .trace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
        .header("X-Tenant", "acme")
        .actor(full_actor())
        .token(TokenEvidence::full(ES256_TOKEN))
        .authn_allowed()
        .authz(Authz {
            decision: AuthzDecision::Allowed,
            required_scopes: vec!["orders:write".into()],
            required_roles: vec!["clerk".into()],
            reason: None,
        })
        .action("order.refund")
        .target("order:7")
        .extra("amount_cents", 1250)
        .extra("note", json!({"k": [1, 2]}))
        .status(200)
        .latency_us(830)
        .build()
}

fn keys() -> FieldKeys {
    FieldKeys::new()
        .with_encryption_key("k1", &[1u8; 32])
        .unwrap()
        .with_pseudonym_key("k2", &[2u8; 32])
        .unwrap()
}

/// Every shape of event the crate produces.
fn corpus() -> Vec<(&'static str, AuditEvent)> {
    let protection = Protection::new(keys())
        .encrypt("actor.sub", "k1")
        .unwrap()
        .encrypt("token.jwt", "k1")
        .unwrap()
        .encrypt("actor.claims.tenant", "k1")
        .unwrap()
        .pseudonymise("actor.claims.email", "k2")
        .unwrap()
        .pseudonymise("request.client_address", "k2")
        .unwrap()
        .encrypt("request.user_agent", "k1")
        .unwrap()
        .encrypt("request.path", "k1")
        .unwrap()
        .pseudonymise("request.query.dry_run", "k2")
        .unwrap()
        .encrypt("request.headers.x-tenant", "k1")
        .unwrap()
        .pseudonymise("target", "k2")
        .unwrap()
        .encrypt("extra.note", "k1")
        .unwrap()
        .pseudonymise("extra.amount_cents", "k2")
        .unwrap()
        .pseudonymise("actor.jti", "k2")
        .unwrap();
    let mut protected = full_http();
    protection.apply(&mut protected).unwrap();

    let intent = AuditEvent::http("DELETE", "/orders/7")
        .route("/orders/{id}")
        .actor(Actor {
            sub: Some("bob".into()),
            ..Actor::default()
        })
        .token(TokenEvidence::fingerprint(ES256_TOKEN))
        .authn_allowed()
        .intent()
        .build();
    let complete = AuditEvent::http("DELETE", "/orders/7")
        .completes(intent.id)
        .authn_allowed()
        .status(204)
        .build();

    vec![
        ("http, everything", full_http()),
        ("http, protected fields", protected),
        ("http, bare", AuditEvent::http("GET", "/").build()),
        ("http, intent", intent),
        ("http, complete of an intent", complete),
        (
            "http, denied",
            AuditEvent::http("GET", "/admin")
                .authn_denied("expired")
                .token(TokenEvidence::capture(EvidenceMode::None, ES256_TOKEN))
                .status(401)
                .build(),
        ),
        (
            "http, HS256 full refused",
            AuditEvent::http("GET", "/")
                .token(TokenEvidence::full(HS256_TOKEN))
                .anonymous()
                .authz(Authz {
                    decision: AuthzDecision::Denied,
                    required_scopes: vec![],
                    required_roles: vec!["admin".into()],
                    reason: Some("missing_role".into()),
                })
                .status(403)
                .build(),
        ),
        (
            "http, cancelled",
            AuditEvent::http("GET", "/slow")
                .outcome(Outcome::Cancelled)
                .latency(std::time::Duration::from_millis(1500))
                .build(),
        ),
        (
            "keyset",
            AuditEvent::keyset(
                Some("https://idp.example".into()),
                "5f2b",
                json!({"keys": [
                    {"kty": "EC", "crv": "P-256", "kid": "k1", "x": "eA", "y": "eQ", "d": "secret"},
                    {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
                ]}),
            ),
        ),
        (
            "keyset, no issuer",
            AuditEvent::keyset(None, "0", json!({"keys": []})),
        ),
        ("start", AuditEvent::start("audit.example/orders")),
        ("recovered", AuditEvent::recovered("00000003.seg", 4096, 37)),
        ("stop", AuditEvent::stop(12_000, 3)),
        (
            "gap",
            AuditEvent::gap(
                3,
                "queue_full",
                datetime!(2026-11-27 12:00:00.5 UTC),
                datetime!(2026-11-27 12:00:01 UTC),
            ),
        ),
        (
            "checkpoint",
            AuditEvent::checkpoint(1024, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        ),
    ]
}

fn record(event: &AuditEvent, index: u64) -> Value {
    let mut out = Vec::new();
    event.write_json(index, &mut out);
    serde_json::from_slice(&out).expect("record is JSON")
}

#[test]
fn every_produced_event_validates() {
    let validator = validator();
    let corpus = corpus();
    assert_eq!(corpus.len(), 15);
    for (i, (name, event)) in corpus.iter().enumerate() {
        let instance = record(event, i as u64);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}\n{instance}");
    }
}

#[test]
fn protected_corpus_really_is_protected() {
    let (_, event) = &corpus()[1];
    let text = String::from_utf8(event_bytes(event)).unwrap();
    for clear in [
        "alice",
        "203.0.113.9",
        "curl/8.5.0",
        "order:7",
        "acme",
        ES256_TOKEN,
    ] {
        assert!(!text.contains(clear), "{clear} leaked into {text}");
    }
    assert!(text.contains(r#""enc":"xchacha20poly1305""#));
    assert!(text.contains(r#""hmac":"k2""#));
}

fn event_bytes(event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::new();
    event.write_json(0, &mut out);
    out
}

fn valid_http() -> Value {
    record(&full_http(), 9)
}

#[test]
fn schema_rejects_missing_required_fields() {
    let validator = validator();
    assert!(validator.is_valid(&valid_http()));
    for field in ["v", "id", "kind", "time", "index"] {
        let mut bad = valid_http();
        bad.as_object_mut().unwrap().remove(field);
        assert!(
            !validator.is_valid(&bad),
            "accepted an event without `{field}`"
        );
    }
    let mut bad = valid_http();
    bad.as_object_mut().unwrap().remove("request");
    assert!(
        !validator.is_valid(&bad),
        "accepted an http event without a request"
    );
}

#[test]
fn schema_rejects_unknown_values() {
    let validator = validator();
    let cases: [(&str, Value); 8] = [
        ("outcome", json!("exploded")),
        ("kind", json!("audit")),
        ("v", json!(2)),
        ("phase", json!("during")),
        ("time", json!("2026-11-27T12:00:00Z")),
        ("id", json!("not-a-uuid")),
        ("unknown_field", json!(1)),
        ("status", json!("200")),
    ];
    for (field, value) in cases {
        let mut bad = valid_http();
        bad[field] = value.clone();
        assert!(!validator.is_valid(&bad), "accepted {field} = {value}");
    }
}

#[test]
fn schema_rejects_malformed_parts() {
    let validator = validator();
    type Mutation = (&'static str, fn(&mut Value));
    let mutations: Vec<Mutation> = vec![
        ("authn decision", |e| {
            e["authn"]["decision"] = json!("maybe")
        }),
        ("token mode", |e| e["token"]["mode"] = json!("partial")),
        ("full token without jwt", |e| {
            e["token"].as_object_mut().unwrap().remove("jwt");
        }),
        ("fingerprint length", |e| {
            *e = json!({"v":1,"id":e["id"],"index":0,"time":e["time"],"kind":"http","phase":"complete",
                "request":{"method":"GET","path":"/"},"token":{"mode":"fingerprint","sha256":"abc"}});
        }),
        ("aud not an array", |e| {
            e["actor"]["aud"] = json!("orders-api")
        }),
        ("encrypted field with extra member", |e| {
            e["request"]["path"] = json!({"enc":"xchacha20poly1305","kid":"k1",
                "nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ct":"AAAAAAAAAAAAAAAAAAAAAA","x":1});
        }),
        ("intent with an outcome", |e| e["phase"] = json!("intent")),
        ("stop field on an http event", |e| e["flushed"] = json!(3)),
    ];
    for (name, mutate) in mutations {
        let mut bad = valid_http();
        mutate(&mut bad);
        assert!(!validator.is_valid(&bad), "accepted: {name}\n{bad}");
    }
}

#[test]
fn schema_rejects_malformed_system_records() {
    let validator = validator();
    let gap = record(
        &AuditEvent::gap(
            2,
            "queue_full",
            datetime!(2026-11-27 12:00 UTC),
            datetime!(2026-11-27 12:01 UTC),
        ),
        5,
    );
    assert!(validator.is_valid(&gap));
    let mut bad = gap.clone();
    bad.as_object_mut().unwrap().remove("dropped");
    assert!(!validator.is_valid(&bad));
    let mut bad = gap.clone();
    bad["phase"] = json!("complete");
    assert!(
        !validator.is_valid(&bad),
        "http fields accepted on a gap record"
    );

    // A private key in a keyset record is refused by the schema (the constructor strips it).
    let mut keyset = record(
        &AuditEvent::keyset(
            None,
            "x",
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "eA"}]}),
        ),
        0,
    );
    assert!(validator.is_valid(&keyset));
    keyset["jwks"]["keys"][0]["d"] = json!("secret");
    assert!(!validator.is_valid(&keyset));
}
