//! JWKS documents and single JWKs (`KeySet::from_jwks`, `KeySet::from_jwk`).
//!
//! Properties: nothing panics; a parsed set's public JWKS parses back to a set with the same
//! asymmetric keys.

#![no_main]

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use veritrail_core::auth::KeySet;

const DEFAULTS: [Option<Algorithm>; 5] = [
    None,
    Some(Algorithm::RS256),
    Some(Algorithm::ES256),
    Some(Algorithm::EdDSA),
    Some(Algorithm::HS256),
];

fuzz_target!(|data: &[u8]| {
    if let Ok((set, _skipped)) = KeySet::from_jwks(data) {
        let public = set.to_public_jwks().to_string();
        let (again, skipped) = KeySet::from_jwks(public.as_bytes()).expect("own JWKS parses");
        assert!(skipped.is_empty(), "own JWKS skips keys: {skipped:?}");
        let asymmetric = |s: &KeySet| -> Vec<(String, Algorithm, Option<String>)> {
            let mut keys: Vec<_> = s
                .keys()
                .iter()
                .filter(|k| !k.is_symmetric())
                .map(|k| (k.thumbprint.clone(), k.alg, k.kid.clone()))
                .collect();
            keys.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
            keys
        };
        assert_eq!(asymmetric(&again), asymmetric(&set));
    }
    let default = DEFAULTS[data.first().map_or(0, |b| usize::from(*b)) % DEFAULTS.len()];
    let _ = KeySet::from_jwk(data, default);
});
