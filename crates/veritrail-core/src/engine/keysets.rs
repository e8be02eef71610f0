//! Key-set archiving: the engine records the public keys each issuer's tokens are verified
//! with as `keyset` events — once when it is built, and again whenever a key source that
//! changes (a JWKS URL, OpenID Connect discovery) brings a new set into force — so that the
//! log alone can re-verify the tokens it holds (`veritrail verify --tokens`).
//!
//! Each record is handed over with [`Recorder::try_record`] (queued in order, never waiting):
//! a set is queued before the engine takes any request at start, and before a new set comes
//! into force afterwards, so every event whose token a set verified follows that set's record
//! in the log. Shared secrets (HMAC keys) have no public form and are never recorded.

use std::sync::{Arc, Weak};

use crate::auth::{Authenticator, KeySet};
use crate::event::AuditEvent;
use crate::recorder::Recorder;

/// Records every issuer's keys in force now, and registers a listener with each key source
/// whose keys change. The listeners hold the recorder weakly: they stop recording once every
/// clone of the engine is gone.
pub(super) fn archive(authenticator: &Authenticator, recorder: &Arc<dyn Recorder>) {
    for issuer in authenticator.issuers() {
        let Some(source) = &issuer.source else {
            continue;
        };
        if let Ok(keys) = source.current() {
            record(recorder.as_ref(), issuer.iss(), &keys);
        }
        let weak: Weak<dyn Recorder> = Arc::downgrade(recorder);
        let iss = issuer.iss().to_owned();
        source.watch(Arc::new(move |keys: &Arc<KeySet>| {
            if let Some(recorder) = weak.upgrade() {
                record(recorder.as_ref(), &iss, keys);
            }
        }));
    }
}

/// The `keyset` event for `keys` of issuer `iss`; `None` when the set has no public key (a
/// shared secret, or an empty set).
pub(crate) fn keyset_event(iss: &str, keys: &KeySet) -> Option<AuditEvent> {
    let jwks = keys.to_public_jwks();
    if jwks["keys"].as_array().is_none_or(Vec::is_empty) {
        return None;
    }
    Some(AuditEvent::keyset(
        Some(iss.to_owned()),
        hex::encode(keys.id()),
        jwks,
    ))
}

fn record(recorder: &dyn Recorder, iss: &str, keys: &KeySet) {
    if let Some(event) = keyset_event(iss, keys) {
        // A refusal here is the writer's failure or a full queue; both are reported to the
        // requests that follow (503, or a `gap` record in the log).
        let _ = recorder.try_record(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Issuer;
    use crate::engine::Engine;
    use crate::event::EventBody;
    use crate::recorder::MemoryRecorder;

    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA",
        "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn issuer(keys: KeySet) -> Authenticator {
        Authenticator::builder()
            .issuer(Issuer::new("https://idp.example").keys(keys).audience("a"))
            .build()
            .unwrap()
    }

    #[test]
    fn building_an_engine_records_the_public_keys_in_force_once() {
        let (keys, _) = KeySet::from_jwks(JWKS.as_bytes()).unwrap();
        let id = hex::encode(keys.id());
        let recorder = MemoryRecorder::new();
        let _engine = Engine::builder(issuer(keys), recorder.clone()).build();
        let events = recorder.events();
        assert_eq!(events.len(), 1);
        let EventBody::Keyset(k) = &events[0].body else {
            panic!("not a keyset record: {:?}", events[0]);
        };
        assert_eq!(k.issuer.as_deref(), Some("https://idp.example"));
        assert_eq!(k.keyset_id, id);
        assert_eq!(k.jwks["keys"][0]["kid"], "k1");
    }

    #[test]
    fn shared_secrets_are_never_recorded_and_archiving_can_be_turned_off() {
        let secret = KeySet::from_hmac_secret(&[7; 32], jsonwebtoken::Algorithm::HS256, None);
        let auth = Authenticator::builder()
            .issuer(
                Issuer::new("https://idp.example")
                    .keys(secret.unwrap())
                    .allow_hmac()
                    .audience("a"),
            )
            .build()
            .unwrap();
        let recorder = MemoryRecorder::new();
        let _engine = Engine::builder(auth, recorder.clone()).build();
        assert!(recorder.events().is_empty());

        let (keys, _) = KeySet::from_jwks(JWKS.as_bytes()).unwrap();
        let _engine = Engine::builder(issuer(keys), recorder.clone())
            .archive_keysets(false)
            .build();
        assert!(recorder.events().is_empty());
    }
}
