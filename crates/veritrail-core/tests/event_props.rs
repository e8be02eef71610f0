//! Arbitrary events: the record bytes read back to the same event, re-serialise to the same
//! bytes, validate against the schema, and protection round-trips through them.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};
use veritrail_core::event::protect::{FieldKeys, Protection};
use veritrail_core::event::{
    Actor, AuditEvent, Authn, AuthnDecision, Authz, AuthzDecision, EventBody, FullTokenRefused,
    Outcome, Text, TokenEvidence,
};

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(include_str!("../../../schema/audit-event-v1.schema.json"))
                .unwrap();
        jsonschema::draft202012::new(&schema).unwrap()
    })
}

fn keys() -> FieldKeys {
    FieldKeys::new()
        .with_encryption_key("k1", &[5; 32])
        .unwrap()
        .with_pseudonym_key("k2", &[6; 32])
        .unwrap()
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        proptest::collection::vec(any::<String>(), 0..3).prop_map(|v| json!(v)),
    ]
}

prop_compose! {
    fn arb_event()(
        method in "[A-Z]{1,7}",
        path in any::<String>(),
        raw_path in proptest::option::of(any::<String>()),
        route in proptest::option::of(any::<String>()),
        sub in proptest::option::of(any::<String>()),
        aud in proptest::collection::vec(any::<String>(), 0..3),
        iat in proptest::option::of(any::<i64>()),
        claims in proptest::collection::btree_map(any::<String>(), json_leaf(), 0..3),
        query in proptest::collection::btree_map(any::<String>(), any::<String>(), 0..3),
        headers in proptest::collection::btree_map("[a-z0-9-]{1,12}", any::<String>(), 0..3),
        client in proptest::option::of(any::<String>()),
        trace in proptest::option::of(("[0-9a-f]{32}", "[0-9a-f]{16}")),
        token in proptest::option::of("[A-Za-z0-9_-]{1,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{1,40}"),
        extra in proptest::collection::btree_map(any::<String>(), json_leaf(), 0..3),
        status in proptest::option::of(100u16..=999),
        latency in proptest::option::of(any::<u64>()),
        intent in any::<bool>(),
        cancelled in any::<bool>(),
        time_us in 0i64..253_402_300_799_000_000,
    ) -> AuditEvent {
        let mut b = AuditEvent::http(method, path)
            .time(time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_us) * 1000).unwrap())
            .actor(Actor { sub: sub.map(Into::into), aud, iat, claims, ..Actor::default() });
        if let Some(route) = route { b = b.route(route); }
        if let Some(raw) = raw_path { b = b.raw_path(raw); }
        for (k, v) in query { b = b.query(k, v); }
        for (k, v) in headers { b = b.header(k, v); }
        if let Some(c) = client { b = b.client_address(c); }
        if let Some((t, s)) = trace { b = b.trace(t, s); }
        if let Some(t) = token { b = b.token(TokenEvidence::full(&t)); }
        for (k, v) in extra { b = b.extra(k, v); }
        if intent {
            b = b.intent();
        } else {
            if let Some(s) = status { b = b.status(s); }
            if let Some(l) = latency { b = b.latency_us(l); }
            if cancelled { b = b.outcome(Outcome::Cancelled); }
        }
        b.build()
    }
}

prop_compose! {
    /// `arb_event` with the fields it leaves out filled in at random.
    fn arb_full_event()(
        mut event in arb_event(),
        strings in proptest::collection::vec(proptest::option::of(any::<String>()), 8),
        lists in proptest::collection::vec(proptest::collection::vec(any::<String>(), 0..3), 4),
        exp in proptest::option::of(any::<i64>()),
        choice in 0u8..6,
        intent_id in proptest::option::of(any::<u128>()),
    ) -> AuditEvent {
        let EventBody::Http(http) = &mut event.body else { unreachable!() };
        let actor = std::sync::Arc::make_mut(http.actor.get_or_insert_with(Default::default));
        actor.iss = strings[0].clone();
        actor.jti = strings[1].clone().map(Text::Plain);
        actor.kid = strings[2].clone();
        actor.alg = strings[3].clone();
        actor.exp = exp;
        actor.scopes = lists[0].clone();
        actor.roles = lists[1].clone();
        http.action = strings[4].clone();
        http.target = strings[5].clone().map(Text::Plain);
        http.request.user_agent = strings[6].clone().map(Text::Plain);
        http.intent_id = intent_id.map(uuid::Uuid::from_u128);
        http.authn = (choice % 2 == 0).then(|| Authn {
            decision: [AuthnDecision::Allowed, AuthnDecision::Denied, AuthnDecision::Anonymous]
                [usize::from(choice % 3)],
            reason: strings[7].clone(),
        });
        http.authz = (choice % 3 != 0).then(|| Authz {
            decision: [AuthzDecision::Allowed, AuthzDecision::Denied][usize::from(choice % 2)],
            required_scopes: lists[2].clone(),
            required_roles: lists[3].clone(),
            reason: strings[7].clone(),
        });
        match choice {
            0 => http.token = Some(TokenEvidence::None),
            1 => http.token = Some(TokenEvidence::Fingerprint {
                sha256: "ab".repeat(32),
                full_refused: Some(FullTokenRefused::HmacAlg),
            }),
            2 => http.token = Some(TokenEvidence::Fingerprint {
                sha256: "cd".repeat(32),
                full_refused: Some(FullTokenRefused::UnreadableHeader),
            }),
            _ => {}
        }
        if choice == 3 { http.actor = None; }
        if choice == 4 { http.outcome = Some(Outcome::ALL[usize::from(choice) % 5]); }
        event
    }
}

/// What serde writes for the event at `index`: the reference the hand-written writer matches.
fn serde_record(event: &AuditEvent, index: u64) -> Vec<u8> {
    let mut event = event.clone();
    event.index = Some(index);
    serde_json::to_vec(&event).unwrap()
}

fn record(event: &AuditEvent, index: u64) -> Vec<u8> {
    let mut out = Vec::new();
    event.write_json(index, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn record_bytes_are_what_serde_writes(event in arb_full_event(), index in any::<u64>()) {
        let bytes = record(&event, index);
        prop_assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            String::from_utf8(serde_record(&event, index)).unwrap()
        );
        let mut protected = event.clone();
        Protection::new(keys())
            .encrypt("actor.sub", "k1").unwrap()
            .encrypt("target", "k1").unwrap()
            .pseudonymise("request.client_address", "k2").unwrap()
            .apply(&mut protected).unwrap();
        prop_assert_eq!(record(&protected, index), serde_record(&protected, index));
    }

    #[test]
    fn records_round_trip_and_validate(event in arb_event(), index in any::<u64>()) {
        let bytes = record(&event, index);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let errors: Vec<String> = validator().iter_errors(&value).map(|e| e.to_string()).collect();
        prop_assert!(errors.is_empty(), "{:?}\n{}", errors, value);
        let back = AuditEvent::from_json(&bytes).unwrap();
        let mut expected = event.clone();
        expected.index = Some(index);
        prop_assert_eq!(&back, &expected);
        prop_assert_eq!(record(&back, index), bytes);
    }

    #[test]
    fn protection_round_trips_through_the_record(event in arb_event()) {
        let protection = Protection::new(keys())
            .encrypt("actor.sub", "k1").unwrap()
            .encrypt("request.path", "k1").unwrap()
            .encrypt("token.jwt", "k1").unwrap()
            .pseudonymise("request.client_address", "k2").unwrap();
        let mut protected = event.clone();
        protection.apply(&mut protected).unwrap();
        let bytes = record(&protected, 1);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert!(validator().is_valid(&value), "{}", value);
        let mut read = AuditEvent::from_json(&bytes).unwrap();
        keys().reveal(&mut read).unwrap();
        let (got, want) = (read.as_http().unwrap(), event.as_http().unwrap());
        prop_assert_eq!(&got.request.path, &want.request.path);
        // The path as sent is protected along with the canonical one.
        let stored = protected.as_http().unwrap();
        prop_assert!(stored.request.raw_path.as_ref().is_none_or(|raw| raw.is_protected()));
        prop_assert_eq!(&got.request.raw_path, &want.request.raw_path);
        prop_assert_eq!(&got.token, &want.token);
        prop_assert_eq!(
            got.actor.as_ref().unwrap().sub.as_ref(),
            want.actor.as_ref().unwrap().sub.as_ref()
        );
        if let Some(address) = &want.request.client_address {
            let wanted = keys().pseudonym("k2", &json!(address.as_plain().unwrap())).unwrap();
            prop_assert_eq!(
                got.request.client_address.clone().unwrap(),
                veritrail_core::event::Text::Pseudonym(wanted)
            );
        }
    }
}
