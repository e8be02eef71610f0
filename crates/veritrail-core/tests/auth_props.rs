//! Property tests: no mutation of a valid token is accepted, and the verifier never panics on
//! arbitrary input.

#[path = "fixtures/support.rs"]
mod support;

use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use support::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn changing_any_byte_of_a_valid_token_is_refused(pos in any::<prop::sample::Index>(), byte in 0x21u8..0x7f) {
        let auth = builder_with(key_set(Algorithm::HS256, "", "h"), |i| i).0.build().unwrap();
        let good = token(Algorithm::HS256, "", "h", &claims());
        let i = pos.index(good.len());
        prop_assume!(good.as_bytes()[i] != byte);
        let mut bad = good.into_bytes();
        bad[i] = byte;
        let bad = String::from_utf8(bad).unwrap();
        let result = block_on(auth.verify(&bad));
        prop_assert!(result.is_err(), "accepted a token changed at byte {}", i);
    }

    #[test]
    fn arbitrary_input_is_refused_without_panic(input in "[A-Za-z0-9_.=-]{0,300}|\\PC{0,100}") {
        let auth = rsa_authenticator();
        let err = block_on(auth.verify(&input)).unwrap_err();
        prop_assert!(err.status() == 401, "{} -> {}", input, err.code());
    }
}
