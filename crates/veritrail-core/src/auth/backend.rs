//! The crypto backend behind jsonwebtoken, chosen at build time through this crate's features.
//!
//! - `aws-lc-rs` (default): AWS-LC through `aws-lc-rs`. Several times faster for RSA and ECDSA
//!   (RS256 ≈ 26 µs vs 219 µs, ES256 ≈ 61 µs vs 310 µs per verification, measured for
//!   jsonwebtoken), FIPS-capable; needs a C toolchain and CMake to build.
//! - `rust-crypto`: pure Rust (RustCrypto `rsa`, `p256`, `p384`, `ed25519-dalek`, `hmac`).
//!   Trade-off: the `rsa` crate is subject to RUSTSEC-2023-0071 (Marvin attack: a timing
//!   side channel in RSA *decryption and signing* with the private key). Verification only
//!   uses public keys, so a verifier is not exposed by it, but the advisory stays in
//!   `cargo audit` output and must be acknowledged there.
//! - Both on (as under `--all-features`): aws-lc-rs is used.
//! - Neither: a compile error, rather than jsonwebtoken's panic at first use.
//!
//! jsonwebtoken 11 selects its backend through a process-wide `CryptoProvider` and panics at
//! first use when both of its backend features are on and none was installed. This crate never
//! relies on that global: it calls the chosen provider directly. [`install_default_provider`]
//! additionally installs it as jsonwebtoken's process default (the authenticator builder does
//! so), so that `jsonwebtoken::encode`/`decode` elsewhere in the program work too.

use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, DecodingKey};

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "veritrail-core needs a JWT crypto backend: enable the feature `aws-lc-rs` (the fast default) \
     or `rust-crypto` (pure Rust; see RUSTSEC-2023-0071), e.g. \
     `veritrail-core = { version = \"0.1\", features = [\"aws-lc-rs\"] }`"
);

/// The name of the backend in use: `"aws-lc-rs"` or `"rust-crypto"`.
pub const BACKEND: &str = if cfg!(feature = "aws-lc-rs") {
    "aws-lc-rs"
} else {
    "rust-crypto"
};

/// The provider selected by this crate's features.
pub fn provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    {
        unreachable!("no crypto backend (compile_error above)")
    }
}

/// Installs [`provider`] as jsonwebtoken's process-wide default, unless one is installed
/// already (then that one stays: this crate does not use the global anyway).
pub fn install_default_provider() {
    let _already_installed = provider().install_default();
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureFailure {
    /// The signature does not verify.
    Invalid,
    /// ECDSA with r or s zero.
    EcdsaZero,
    /// The backend refused the key (a configuration error).
    KeyUnusable,
}

/// Verifies `signature` (raw bytes) over `message` with `key` under `alg`.
// jsonwebtoken's verifiers take `&Vec<u8>` (`signature::Verifier<Vec<u8>>`).
#[allow(clippy::ptr_arg)]
pub(crate) fn verify(
    alg: Algorithm,
    key: &DecodingKey,
    message: &[u8],
    signature: &Vec<u8>,
) -> Result<(), SignatureFailure> {
    let scalar = match alg {
        Algorithm::ES256 => Some(32),
        Algorithm::ES384 => Some(48),
        _ => None,
    };
    if let Some(n) = scalar {
        // JWS ECDSA signatures are r || s, fixed width (RFC 7518 §3.4). A zero r or s must
        // never verify (CVE-2022-21449); refuse it here whatever the backend does.
        if signature.len() != 2 * n {
            return Err(SignatureFailure::Invalid);
        }
        let (r, s) = signature.split_at(n);
        if r.iter().all(|&b| b == 0) || s.iter().all(|&b| b == 0) {
            return Err(SignatureFailure::EcdsaZero);
        }
    }
    let verifier =
        (provider().verifier_factory)(&alg, key).map_err(|_| SignatureFailure::KeyUnusable)?;
    verifier
        .verify(message, signature)
        .map_err(|_| SignatureFailure::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, Validation};

    #[test]
    fn jsonwebtoken_works_after_installation_whatever_the_features() {
        // With both backend features on (as under --all-features) jsonwebtoken alone would
        // panic here; installing our provider first makes its own API usable.
        install_default_provider();
        install_default_provider(); // idempotent
        let secret = [3u8; 32];
        let claims = serde_json::json!({"sub": "a", "exp": 4_000_000_000u64});
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        let key = DecodingKey::from_secret(&secret);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).is_ok());
        assert_eq!(
            BACKEND,
            if cfg!(feature = "aws-lc-rs") {
                "aws-lc-rs"
            } else {
                "rust-crypto"
            }
        );
    }

    #[test]
    fn ecdsa_signatures_of_the_wrong_width_or_zero_are_refused_early() {
        let key = DecodingKey::from_ec_der(&[4; 65]);
        assert_eq!(
            verify(Algorithm::ES256, &key, b"m", &vec![1; 63]),
            Err(SignatureFailure::Invalid)
        );
        assert_eq!(
            verify(Algorithm::ES384, &key, b"m", &vec![0; 96]),
            Err(SignatureFailure::EcdsaZero)
        );
    }
}
