//! Valid tokens for every algorithm, identities, scopes and roles, custom checks, the cache,
//! dynamic key sources, several issuers.

#[path = "fixtures/support.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::json;
use support::*;
use veritrail_core::auth::{
    AuthError, Authenticator, HeaderPairs, Issuer, KeySet, KeySetFuture, KeySource, ManualClock,
    SourceUnavailable, TokenSource,
};
use veritrail_core::event::Actor;

#[test]
fn every_algorithm_verifies() {
    for &(alg, private, public) in ALGORITHMS {
        let kid = format!("kid-{}", alg_str(alg));
        let auth = builder_with(key_set(alg, public, &kid), |i| i)
            .0
            .build()
            .unwrap();
        let t = token(alg, private, &kid, &claims());
        let id = block_on(auth.verify(&t)).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(
            (id.alg(), id.kid(), id.sub()),
            (alg, Some(kid.as_str()), Some("alice"))
        );
        // A one-bit change of the signature fails.
        let mut bad = t.into_bytes();
        let i = bad.len() - 5;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(code(&auth, &bad), "bad_signature", "{alg:?}");
    }
}

#[test]
fn tokens_minted_by_jsonwebtoken_encode_verify() {
    // The ordinary jsonwebtoken API (process-wide provider installed by the builder).
    let auth = rsa_authenticator();
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let t = jsonwebtoken::encode(
        &header,
        &claims(),
        &encoding_key(Algorithm::RS256, "rsa.pem"),
    )
    .unwrap();
    assert_eq!(code(&auth, &t), "ok");
}

#[test]
fn identity_carries_claims_scopes_and_roles() {
    let keys = key_set(Algorithm::ES256, "ec256.pub.pem", "e1");
    let auth = builder_with(keys, |i| {
        i.role_claim("realm_access.roles")
            .scope_claim("permissions")
    })
    .0
    .build()
    .unwrap();
    let mut c = claims();
    c["scope"] = json!("orders:read  orders:write");
    c["scp"] = json!(["profile"]);
    c["roles"] = json!(["auditor"]);
    c["realm_access"] = json!({"roles": ["admin", "user"]});
    c["permissions"] = json!("billing:read");
    c["tenant"] = json!("acme");
    c["aud"] = json!([AUD, "other"]);
    let id = block_on(auth.verify(&token(Algorithm::ES256, "ec256.pem", "e1", &c))).unwrap();
    assert_eq!(
        id.scopes(),
        ["orders:read", "orders:write", "profile", "billing:read"]
    );
    assert_eq!(id.roles(), ["auditor", "admin", "user"]);
    assert!(id.has_role("admin") && !id.has_role("root"));
    assert_eq!(id.require_scopes(&["orders:read"]), Ok(()));
    let denied = id.require_scopes(&["orders:delete"]).unwrap_err();
    assert_eq!(
        (denied.code(), denied.status()),
        ("insufficient_scope", 403)
    );
    assert_eq!(
        (id.iss(), id.aud(), id.jti()),
        (ISS, &[AUD.to_owned(), "other".to_owned()][..], Some("t-1"))
    );
    assert_eq!((id.iat(), id.exp()), (Some(NOW - 10), Some(NOW + 300)));
    assert_eq!(id.claim("tenant"), Some(&json!("acme")));

    #[derive(Deserialize)]
    struct Mine {
        tenant: String,
        realm_access: RealmAccess,
    }
    #[derive(Deserialize)]
    struct RealmAccess {
        roles: Vec<String>,
    }
    let mine: Mine = id.claims_as().unwrap();
    assert_eq!(
        (mine.tenant.as_str(), mine.realm_access.roles.len()),
        ("acme", 2)
    );

    let actor = id.to_actor(&["tenant", "absent"]);
    assert_eq!(actor.iss.as_deref(), Some(ISS));
    assert_eq!(actor.alg.as_deref(), Some("ES256"));
    assert_eq!(actor.kid.as_deref(), Some("e1"));
    assert_eq!(actor.roles, ["auditor", "admin", "user"]);
    assert_eq!(actor.claims.keys().collect::<Vec<_>>(), ["tenant"]);
    assert!(Actor::from(&id).claims.is_empty());
    // The shared actor is built once per identity and allow-list, and equals the copy.
    let shared = id.shared_actor(&["tenant", "absent"]);
    assert_eq!(*shared, actor);
    assert!(Arc::ptr_eq(
        &shared,
        &id.clone().shared_actor(&["tenant", "absent"])
    ));
    let other = id.shared_actor::<&str>(&[]);
    assert!(other.claims.is_empty() && !Arc::ptr_eq(&shared, &other));
    // Debug shows who, never the claims.
    assert!(!format!("{id:?}").contains("acme"));
}

#[test]
fn sync_and_async_custom_checks_run() {
    let revoked = Arc::new(Mutex::new(vec!["t-revoked".to_owned()]));
    let seen = Arc::new(Mutex::new(std::collections::HashSet::<String>::new()));
    let keys = key_set(Algorithm::RS256, "rsa.pub.pem", "k1");
    let (b, _) = builder_with(keys, |i| i);
    let r = revoked.clone();
    let s = seen.clone();
    let auth = b
        .check(move |id: &veritrail_core::auth::Identity| {
            if id
                .jti()
                .is_some_and(|j| r.lock().unwrap().iter().any(|x| x == j))
            {
                Err(AuthError::Rejected {
                    code: "token_revoked".into(),
                    description: "the token was revoked".into(),
                })
            } else {
                Ok(())
            }
        })
        .async_check(move |id: veritrail_core::auth::Identity| {
            let s = s.clone();
            async move {
                let jti = id.jti().unwrap_or_default().to_owned();
                if s.lock().unwrap().insert(jti) {
                    Ok(())
                } else {
                    Err(AuthError::Rejected {
                        code: "token_replayed".into(),
                        description: "jti seen before".into(),
                    })
                }
            }
        })
        .build()
        .unwrap();
    let mut c = claims();
    c["jti"] = json!("t-revoked");
    assert_eq!(
        code(&auth, &token(Algorithm::RS256, "rsa.pem", "k1", &c)),
        "token_revoked"
    );
    c["jti"] = json!("t-once");
    let t = token(Algorithm::RS256, "rsa.pem", "k1", &c);
    assert_eq!(code(&auth, &t), "ok");
    assert_eq!(code(&auth, &t), "token_replayed");
}

fn cached(keys: KeySet) -> (Authenticator, ManualClock) {
    let (b, clock) = builder_with(keys, |i| i);
    (b.cache_capacity(100).build().unwrap(), clock)
}

#[test]
fn the_cache_serves_hits_but_still_checks_time() {
    let (auth, clock) = cached(key_set(Algorithm::RS256, "rsa.pub.pem", "k1"));
    let t = token(Algorithm::RS256, "rsa.pem", "k1", &claims());
    let first = block_on(auth.verify(&t)).unwrap();
    assert_eq!(auth.cached_tokens(), 1);
    let second = block_on(auth.verify(&t)).unwrap();
    assert_eq!(first.token_sha256(), second.token_sha256());
    assert!(first.token_sha256().is_some());
    clock.advance(300 + 61);
    assert_eq!(code(&auth, &t), "expired");
}

#[test]
fn custom_checks_run_on_cache_hits() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let (b, _) = builder_with(key_set(Algorithm::RS256, "rsa.pub.pem", "k1"), |i| i);
    let auth = b
        .cache_capacity(10)
        .check(move |_: &veritrail_core::auth::Identity| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .build()
        .unwrap();
    let t = token(Algorithm::RS256, "rsa.pem", "k1", &claims());
    for _ in 0..3 {
        assert_eq!(code(&auth, &t), "ok");
    }
    assert_eq!((calls.load(Ordering::SeqCst), auth.cached_tokens()), (3, 1));
}

#[test]
fn the_cache_is_bounded() {
    let (auth, _) = cached(key_set(Algorithm::HS256, "", "h"));
    for i in 0..500 {
        let mut c = claims();
        c["jti"] = json!(format!("t-{i}"));
        assert_eq!(code(&auth, &token(Algorithm::HS256, "", "h", &c)), "ok");
    }
    let n = auth.cached_tokens();
    assert!(n > 0 && n <= 112, "{n} cached"); // 16 shards × ceil(100 / 16)
}

/// A dynamic key source whose keys the test swaps, counting refreshes.
struct SwappableKeys {
    current: Mutex<Option<Arc<KeySet>>>,
    on_refresh: Mutex<Option<Arc<KeySet>>>,
    refreshes: AtomicUsize,
}

impl SwappableKeys {
    fn new(current: Option<KeySet>) -> Arc<Self> {
        Arc::new(SwappableKeys {
            current: Mutex::new(current.map(Arc::new)),
            on_refresh: Mutex::new(None),
            refreshes: AtomicUsize::new(0),
        })
    }
    fn set(&self, keys: KeySet) {
        *self.current.lock().unwrap() = Some(Arc::new(keys));
    }
}

impl KeySource for SwappableKeys {
    fn current(&self) -> Result<Arc<KeySet>, SourceUnavailable> {
        self.current
            .lock()
            .unwrap()
            .clone()
            .ok_or(SourceUnavailable {
                reason: "not loaded".into(),
                retry_after: Some(std::time::Duration::from_secs(7)),
            })
    }
    fn refresh_for_unknown_kid<'a>(&'a self, _kid: &'a str) -> KeySetFuture<'a> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        if let Some(next) = self.on_refresh.lock().unwrap().take() {
            *self.current.lock().unwrap() = Some(next);
        }
        Box::pin(std::future::ready(self.current()))
    }
}

#[test]
fn a_cached_token_is_dropped_when_its_key_leaves_the_set() {
    let k1 = key_set(Algorithm::RS256, "rsa.pub.pem", "k1");
    let source = SwappableKeys::new(Some(k1.clone()));
    let auth = with_source(source.clone(), 100);
    let t = token(Algorithm::RS256, "rsa.pem", "k1", &claims());
    assert_eq!(code(&auth, &t), "ok");
    // Rotation that keeps k1: still served (set id changed, key still present).
    source.set(KeySet::merge([
        k1,
        key_set(Algorithm::RS256, "rsa2.pub.pem", "k2"),
    ]));
    assert_eq!(code(&auth, &t), "ok");
    // k1 retired: the cached token is verified afresh and refused.
    source.set(key_set(Algorithm::RS256, "rsa2.pub.pem", "k2"));
    assert_eq!(code(&auth, &t), "unknown_kid");
    assert_eq!(auth.cached_tokens(), 0);
}

#[test]
fn an_unknown_kid_triggers_one_refresh() {
    let source = SwappableKeys::new(Some(key_set(Algorithm::RS256, "rsa.pub.pem", "k1")));
    *source.on_refresh.lock().unwrap() =
        Some(Arc::new(key_set(Algorithm::RS256, "rsa2.pub.pem", "k2")));
    let auth = with_source(source.clone(), 0);
    assert_eq!(
        code(&auth, &token(Algorithm::RS256, "rsa.pem", "k1", &claims())),
        "ok"
    );
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 0);
    assert_eq!(
        code(&auth, &token(Algorithm::RS256, "rsa2.pem", "k2", &claims())),
        "ok"
    );
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(
        code(&auth, &token(Algorithm::RS256, "rsa2.pem", "k9", &claims())),
        "unknown_kid"
    );
    assert_eq!(source.refreshes.load(Ordering::SeqCst), 2);
}

#[test]
fn no_keys_at_all_is_a_503_not_a_401() {
    let source = SwappableKeys::new(None);
    let auth = with_source(source, 0);
    let err =
        block_on(auth.verify(&token(Algorithm::RS256, "rsa.pem", "k1", &claims()))).unwrap_err();
    assert_eq!(
        (err.code(), err.status(), err.retry_after_secs()),
        ("keys_unavailable", 503, Some(7))
    );
    assert_eq!(err.www_authenticate(None), None);
}

#[test]
fn a_pem_key_without_kid_serves_tokens_with_and_without_kid() {
    let keys = KeySet::from_pem(&fixture("ed25519.pub.pem"), Algorithm::EdDSA, None).unwrap();
    let auth = builder_with(keys, |i| i).0.build().unwrap();
    assert_eq!(
        code(
            &auth,
            &token(Algorithm::EdDSA, "ed25519.pem", "any", &claims())
        ),
        "ok"
    );
    let header = json!({"alg": "EdDSA"});
    let t = sign_raw(
        &header,
        &claims(),
        Algorithm::EdDSA,
        &encoding_key(Algorithm::EdDSA, "ed25519.pem"),
    );
    assert_eq!(code(&auth, &t), "ok");
}

#[test]
fn skipping_the_audience_check_is_explicit() {
    let keys = key_set(Algorithm::RS256, "rsa.pub.pem", "k1");
    let err = Authenticator::builder()
        .issuer(Issuer::new(ISS).keys(keys.clone()))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("audience"), "{err}");
    let auth = Authenticator::builder()
        .issuer(Issuer::new(ISS).keys(keys).skip_audience_check())
        .clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        code(&auth, &token(Algorithm::RS256, "rsa.pem", "k1", &c)),
        "ok"
    );
}

#[test]
fn token_sources_in_configured_order() {
    let (b, _) = builder_with(key_set(Algorithm::RS256, "rsa.pub.pem", "k1"), |i| i);
    let auth = b
        .token_sources([
            TokenSource::AuthorizationBearer,
            TokenSource::Header("X-Access-Token".into()),
            TokenSource::Cookie("access_token".into()),
            TokenSource::Query("access_token".into()),
        ])
        .build()
        .unwrap();
    let t = token(Algorithm::RS256, "rsa.pem", "k1", &claims());
    let cookie = format!("theme=dark; access_token={t}");
    let query = format!("x=1&access_token={t}");
    let bearer = format!("Bearer {t}");
    for req in [
        HeaderPairs {
            headers: &[("Authorization", &bearer)],
            query: None,
        },
        HeaderPairs {
            headers: &[("x-access-token", &t)],
            query: None,
        },
        HeaderPairs {
            headers: &[("Cookie", &cookie)],
            query: None,
        },
        HeaderPairs {
            headers: &[],
            query: Some(&query),
        },
    ] {
        assert_eq!(
            block_on(auth.authenticate(&req)).unwrap().sub(),
            Some("alice")
        );
    }
    let two = HeaderPairs {
        headers: &[("Authorization", &bearer)],
        query: Some(&query),
    };
    let err = block_on(auth.authenticate(&two)).unwrap_err();
    assert_eq!((err.code(), err.status()), ("multiple_tokens", 400));
    assert_eq!(
        auth.token_headers(),
        ["authorization", "x-access-token", "cookie"]
    );
    assert_eq!(auth.token_query_params(), ["access_token"]);
}

#[test]
fn explain_reports_the_middlewares_verdict() {
    let auth = rsa_authenticator();
    let ok = block_on(veritrail_core::auth::explain(
        &auth,
        &token(Algorithm::RS256, "rsa.pem", "k1", &claims()),
    ));
    assert_eq!(ok.exit_code(), 0);
    assert!(
        ok.line().starts_with("accepted: sub=alice"),
        "{}",
        ok.line()
    );
    assert_eq!(ok.to_json()["claims"]["sub"], "alice");
    let mut c = claims();
    c["exp"] = json!(NOW - 3600);
    let refused = block_on(veritrail_core::auth::explain(
        &auth,
        &token(Algorithm::RS256, "rsa.pem", "k1", &c),
    ));
    assert_eq!(refused.exit_code(), 1);
    assert_eq!(refused.line(), "refused: expired: the token has expired");
    assert_eq!(refused.to_json()["code"], "expired");
}
