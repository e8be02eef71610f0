//! What the fuzz targets share: fixed keys, the authenticator they attack, a template log, and
//! the seed inputs of every target (written by `seed-corpus`).
//!
//! Everything here is deterministic, so a crash found on one machine reproduces on another.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::Sha256;
use veritrail_core::auth::{Authenticator, Issuer, KeySet, ManualClock};
use veritrail_log::{Log, LogOptions, NoteSigner, NoteVerifier};

pub mod seeds;

/// The issuer the authenticator trusts (HMAC and asymmetric keys).
pub const ISS: &str = "https://idp.example";
/// A second issuer: scopes and roles from nested claims, `jti` required, `typ` checked.
pub const ISS2: &str = "https://idp2.example";
/// The audience both issuers check.
pub const AUD: &str = "orders-api";
/// The fixed "now" (2027-01-15).
pub const NOW: i64 = 1_800_000_000;
/// The HMAC secret (kid `h1`) that the targets sign fuzzed headers and claims with.
pub const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The C2SP signed-note vector key that signs checkpoints and notes.
pub const NOTE_KEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/veritrail-core/tests/fixtures"
);

/// A file of veritrail-core's test fixtures (keys).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Polls a future to completion without a runtime (with static keys the authenticator's
/// futures are ready at once).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// The asymmetric keys: (algorithm, kid, private key file, public key file).
pub const ASYMMETRIC: &[(Algorithm, &str, &str, &str)] = &[
    (Algorithm::RS256, "r1", "rsa.pem", "rsa.pub.pem"),
    (Algorithm::PS384, "p1", "rsa2.pem", "rsa2.pub.pem"),
    (Algorithm::ES256, "e1", "ec256.pem", "ec256.pub.pem"),
    (Algorithm::ES384, "e3", "ec384.pem", "ec384.pub.pem"),
    (Algorithm::EdDSA, "d1", "ed25519.pem", "ed25519.pub.pem"),
];

/// The key set both issuers hold: HS256 `h1` and the [`ASYMMETRIC`] keys.
pub fn key_set() -> KeySet {
    let mut sets =
        vec![KeySet::from_hmac_secret(HMAC_SECRET, Algorithm::HS256, Some("h1".into())).unwrap()];
    for (alg, kid, _, public) in ASYMMETRIC {
        sets.push(KeySet::from_pem(&fixture(public), *alg, Some((*kid).into())).unwrap());
    }
    KeySet::merge(sets)
}

/// The authenticator under attack: two issuers over [`key_set`], a manual clock at [`NOW`],
/// a small verified-token cache (so cache hits are fuzzed too).
pub fn authenticator() -> Authenticator {
    Authenticator::builder()
        .issuer(Issuer::new(ISS).keys(key_set()).audience(AUD).allow_hmac())
        .issuer(
            Issuer::new(ISS2)
                .keys(key_set())
                .audience(AUD)
                .allow_hmac()
                .typ("at+jwt")
                .require_claim("jti")
                .scope_claim("scp")
                .role_claim("realm_access.roles"),
        )
        .clock(Arc::new(ManualClock::new(NOW)))
        .cache_capacity(64)
        .build()
        .unwrap()
}

/// Valid claims for [`ISS`] at [`NOW`].
pub fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "iat": NOW - 10, "exp": NOW + 300, "jti": "t-1"})
}

/// Valid claims for [`ISS2`] at [`NOW`] (scopes and roles in nested claims).
pub fn claims2() -> Value {
    json!({"iss": ISS2, "aud": [AUD, "other"], "sub": "bob", "iat": NOW - 10, "nbf": NOW - 10,
        "exp": NOW + 300, "jti": "t-2", "scp": ["read", "write"],
        "realm_access": {"roles": ["admin"]}})
}

/// `base64url(header).base64url(claims)` signed with HS256 under [`HMAC_SECRET`]: the texts are
/// used exactly as given, so fuzzed JSON reaches the claim checks behind the signature.
pub fn sign_hs256(header: &[u8], claims: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET).expect("any key length");
    mac.update(message.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{message}.{signature}")
}

/// A token for every key of [`key_set`] (and both issuers), each of which must be accepted.
pub fn valid_tokens() -> Vec<String> {
    veritrail_core::auth::backend::install_default_provider();
    let mut tokens = vec![
        sign_hs256(
            br#"{"alg":"HS256","kid":"h1","typ":"JWT"}"#,
            claims().to_string().as_bytes(),
        ),
        sign_hs256(
            br#"{"alg":"HS256","kid":"h1","typ":"at+jwt"}"#,
            claims2().to_string().as_bytes(),
        ),
    ];
    for (alg, kid, private, _) in ASYMMETRIC {
        let pem = fixture(private);
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            _ => EncodingKey::from_rsa_pem(&pem),
        }
        .unwrap();
        let alg_name = veritrail_core::auth::keyset::alg_name(*alg);
        let header = json!({"alg": alg_name, "kid": kid, "typ": "at+jwt"}).to_string();
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims2().to_string())
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, *alg).unwrap();
        tokens.push(format!("{message}.{signature}"));
    }
    tokens
}

/// The signer of notes and checkpoints ([`NOTE_KEY`]).
pub fn note_signer() -> NoteSigner {
    NoteSigner::from_text(NOTE_KEY).unwrap()
}

/// The verifier of [`note_signer`].
pub fn note_verifier() -> NoteVerifier {
    note_signer().verifier()
}

/// The records of [`template_log`].
pub fn template_records() -> Vec<Vec<u8>> {
    (0..7u32)
        .map(|i| format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(i as usize * 5)).into_bytes())
        .collect()
}

/// The options the template log is written and reopened with: small segments, so that it has
/// several.
pub fn log_options() -> LogOptions {
    LogOptions::default()
        .origin(Some("fuzz.example/log".into()))
        .segment_bytes(128)
}

/// A scratch directory in `$VERITRAIL_FUZZ_SCRATCH` (scripts/fuzz sets it, and removes it
/// afterwards: a target's fixture lives as long as the process and is never dropped), else on
/// tmpfs where there is one (a log's fsyncs cost nothing there).
pub fn scratch_dir() -> tempfile::TempDir {
    if let Some(dir) = std::env::var_os("VERITRAIL_FUZZ_SCRATCH") {
        std::fs::create_dir_all(&dir).unwrap();
        return tempfile::Builder::new()
            .prefix("veritrail-fuzz")
            .tempdir_in(dir)
            .unwrap();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("veritrail-fuzz")
            .tempdir_in(shm)
    {
        return dir;
    }
    tempfile::Builder::new()
        .prefix("veritrail-fuzz")
        .tempdir()
        .unwrap()
}

/// Writes a log of [`template_records`] in `dir` (several segments, two checkpoints).
pub fn template_log(dir: &Path) {
    let mut log = Log::open(dir, note_signer(), log_options()).unwrap();
    let records = template_records();
    for r in &records[..3] {
        log.append(r).unwrap();
    }
    log.sync().unwrap();
    log.checkpoint().unwrap();
    for r in &records[3..] {
        log.append(r).unwrap();
    }
    log.sync().unwrap();
    log.checkpoint().unwrap();
    log.close().unwrap();
}

/// The segment files of the log in `dir`, sorted.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

/// Copies a log directory's files and subdirectories, without its `LOCK`.
pub fn copy_log(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_log(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
