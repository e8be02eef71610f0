//! JWT verification, side by side in one run:
//!
//! - per algorithm: our uncached `Authenticator::verify` against a bare
//!   `jsonwebtoken::decode::<serde_json::Value>` with the same `DecodingKey` and the same
//!   checks (iss, aud, exp) prepared once;
//! - RS256: the verified-token cache (hit) against the uncached path;
//! - RS256: a peer middleware's per-request work, replicated: tower-oauth2-resource-server
//!   (`src/jwt.rs`, `OnlyJwtValidator::validate`) decodes the header, looks the `kid` up in a
//!   lock-protected map, builds a new `Validation` from the header's `alg` and calls
//!   `jsonwebtoken::decode` on every request.
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall-clock
//! time: on a shared machine, wall-clock time mostly measures the other processes.
//!
//! `cargo bench -p veritrail-core --bench auth`

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

#[path = "support/cpu_time.rs"]
mod cpu_time;
use cpu_time::ThreadCpuTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::measurement::WallTime;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde_json::{Value, json};
use veritrail_core::auth::keyset::alg_name;
use veritrail_core::auth::{Authenticator, Issuer, KeySet};

type Bench = Criterion<ThreadCpuTime>;

const ISS: &str = "https://idp.example.com/";
const AUD: &str = "orders-api";
const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The futures measured here are ready on their first poll (static keys, no async checks).
fn ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a ready future"),
    }
}

struct Setup {
    token: String,
    key: DecodingKey,
    keys: KeySet,
}

fn setup(alg: Algorithm) -> Setup {
    veritrail_core::auth::backend::install_default_provider();
    let (private, public) = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => ("", ""),
        Algorithm::ES256 => ("ec256.pem", "ec256.pub.pem"),
        Algorithm::ES384 => ("ec384.pem", "ec384.pub.pem"),
        Algorithm::EdDSA => ("ed25519.pem", "ed25519.pub.pem"),
        _ => ("rsa.pem", "rsa.pub.pem"),
    };
    let (encoding, keys) = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => (
            EncodingKey::from_secret(HMAC_SECRET),
            KeySet::from_hmac_secret(HMAC_SECRET, alg, Some("k1".into())).unwrap(),
        ),
        _ => {
            let pem = fixture(private);
            let enc = match alg {
                Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                _ => EncodingKey::from_rsa_pem(&pem),
            };
            (
                enc.unwrap(),
                KeySet::from_pem(&fixture(public), alg, Some("k1".into())).unwrap(),
            )
        }
    };
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "iss": ISS, "aud": AUD, "sub": "user-8c1f2a", "jti": "3f9d2c51-7e0b-4c7a",
        "iat": now, "exp": now + 24 * 3600, "scope": "orders:read orders:write",
    });
    let header = json!({"alg": alg_name(alg), "typ": "JWT", "kid": "k1"});
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let message = format!("{}.{}", b64(&header), b64(&claims));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &encoding, alg).unwrap();
    let key = keys.keys()[0].key.clone();
    Setup {
        token: format!("{message}.{signature}"),
        key,
        keys,
    }
}

fn authenticator(keys: KeySet, cache: usize) -> Authenticator {
    Authenticator::builder()
        .issuer(Issuer::new(ISS).keys(keys).audience(AUD).allow_hmac())
        .cache_capacity(cache)
        .build()
        .unwrap()
}

fn bare_validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v
}

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn per_algorithm(c: &mut Bench) {
    for alg in ALGORITHMS {
        let s = setup(alg);
        let auth = authenticator(s.keys.clone(), 0);
        let validation = bare_validation(alg);
        assert!(ready(auth.verify(&s.token)).is_ok());
        assert!(jsonwebtoken::decode::<Value>(&s.token, &s.key, &validation).is_ok());
        let mut g = c.benchmark_group(format!("verify/{}", alg_name(alg)));
        g.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Value>(black_box(&s.token), &s.key, &validation).unwrap()
            })
        });
        g.bench_function("veritrail_uncached", |b| {
            b.iter(|| ready(auth.verify(black_box(&s.token))).unwrap())
        });
        g.finish();
    }
}

/// tower-oauth2-resource-server's per-request work (replicated, see the file docs).
struct PeerValidator {
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
}

impl PeerValidator {
    fn validate(&self, headers: &http::HeaderMap) -> Option<Value> {
        let token = headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .to_owned();
        let header = jsonwebtoken::decode_header(&token).ok()?;
        let kid = header.kid?;
        let key = self.keys.read().ok()?.get(&kid).cloned()?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[ISS]);
        validation.validate_exp = true;
        validation.set_audience(&[AUD]);
        validation.set_required_spec_claims(&["iss", "exp", "aud"]);
        jsonwebtoken::decode::<Value>(&token, &key, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

fn cache_and_peer(c: &mut Bench) {
    let s = setup(Algorithm::RS256);
    let uncached = authenticator(s.keys.clone(), 0);
    let cached = authenticator(s.keys.clone(), 10_000);
    assert!(ready(cached.verify(&s.token)).is_ok());
    let peer = PeerValidator {
        keys: RwLock::new(HashMap::from([("k1".to_owned(), Arc::new(s.key.clone()))])),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {}", s.token).parse().unwrap(),
    );
    assert!(peer.validate(&headers).is_some());

    let mut g = c.benchmark_group("verify_rs256_paths");
    g.bench_function("veritrail_uncached", |b| {
        b.iter(|| ready(uncached.verify(black_box(&s.token))).unwrap())
    });
    g.bench_function("veritrail_cached", |b| {
        b.iter(|| ready(cached.verify(black_box(&s.token))).unwrap())
    });
    g.bench_function("peer_tower_oauth2_resource_server", |b| {
        b.iter(|| peer.validate(black_box(&headers)).unwrap())
    });
    // The floor of a hit: the SHA-256 of the token, which is the cache's key.
    g.bench_function("sha256_of_token", |b| {
        b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(black_box(s.token.as_bytes())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(ThreadCpuTime(WallTime))
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = per_algorithm, cache_and_peer
}
criterion_main!(benches);
