//! Builds real audit logs for the `events`, `tail`, `export` and `verify --tokens` tests:
//! events from veritrail-core's builder, written with veritrail-log's `Log` (what the writer
//! does), and JWTs minted with jsonwebtoken and the core crate's test-only fixture keys.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::OffsetDateTime;
use veritrail_core::auth::{Authenticator, Issuer, KeySet, ManualClock};

use crate::common::fixture;
use veritrail_core::event::{Actor, AuditEvent, Authz, AuthzDecision};
use veritrail_log::{Log, LogOptions, NoteSigner};

/// The issuer of the test tokens.
pub(crate) const ISS: &str = "https://idp.example";
/// Their audience.
pub(crate) const AUD: &str = "orders-api";

/// A log directory being written, as the writer would.
pub(crate) struct AuditLog {
    log: Log,
    /// The verifier key text (`name+hexid+base64`).
    pub(crate) vkey: String,
    /// Every record appended, in order (index = position).
    pub(crate) records: Vec<Vec<u8>>,
}

impl AuditLog {
    /// A new log at `dir`.
    pub(crate) fn create(dir: &Path) -> Self {
        let signer = NoteSigner::generate("test.example/audit").unwrap();
        let vkey = signer.verifier().to_text();
        let log = Log::open(dir, signer, LogOptions::default()).unwrap();
        AuditLog {
            log,
            vkey,
            records: Vec::new(),
        }
    }

    /// Appends `event` at the next index (buffered; see [`commit`](Self::commit)); returns the
    /// index.
    pub(crate) fn append(&mut self, event: &AuditEvent) -> u64 {
        let index = self.log.size();
        let mut record = Vec::new();
        event.write_json(index, &mut record);
        self.append_raw(&record)
    }

    /// Appends raw record bytes; returns the index.
    pub(crate) fn append_raw(&mut self, record: &[u8]) -> u64 {
        let index = self.log.append(record).unwrap();
        assert_eq!(index as usize, self.records.len());
        self.records.push(record.to_vec());
        index
    }

    /// Syncs and signs a checkpoint.
    pub(crate) fn commit(&mut self) {
        self.log.checkpoint().unwrap();
    }

    /// The stored bytes of record `index` as text.
    pub(crate) fn text(&self, index: u64) -> String {
        String::from_utf8(self.records[index as usize].clone()).unwrap()
    }
}

/// A test key: private key for minting, public key set for the keyset record.
pub(crate) struct TestKey {
    pub(crate) alg: Algorithm,
    pub(crate) kid: String,
    encoding: EncodingKey,
    public_pem: Vec<u8>,
}

impl TestKey {
    /// `rsa`, `rsa2` (RS256), `ec256` (ES256) or `ed25519` (EdDSA) under `kid`.
    pub(crate) fn new(file: &str, kid: &str) -> Self {
        let private = fixture(&format!("{file}.pem"));
        let (alg, encoding) = match file {
            "ec256" => (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(&private).unwrap(),
            ),
            "ed25519" => (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(&private).unwrap(),
            ),
            _ => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(&private).unwrap(),
            ),
        };
        TestKey {
            alg,
            kid: kid.to_owned(),
            encoding,
            public_pem: fixture(&format!("{file}.pub.pem")),
        }
    }

    /// This key's public verification key set (veritrail-core's own key handling).
    pub(crate) fn key_set(&self) -> KeySet {
        KeySet::from_pem(&self.public_pem, self.alg, Some(self.kid.clone())).unwrap()
    }

    /// A token for `sub`, issued 60 s before `at` and valid for 5 minutes.
    pub(crate) fn mint(&self, sub: &str, at: OffsetDateTime) -> String {
        let iat = at.unix_timestamp() - 60;
        self.mint_claims(&json!({
            "iss": ISS, "aud": AUD, "sub": sub, "jti": format!("jti-{sub}-{iat}"),
            "iat": iat, "exp": iat + 300, "scope": "orders:read",
        }))
    }

    /// A token with exactly these claims.
    pub(crate) fn mint_claims(&self, claims: &Value) -> String {
        // Under --all-features both jsonwebtoken backends are on: select ours before signing.
        veritrail_core::auth::backend::install_default_provider();
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// An actor with just `sub` and `iss` (for events whose token does not matter).
pub(crate) fn actor(sub: &str) -> Actor {
    Actor {
        sub: Some(sub.into()),
        iss: Some(ISS.into()),
        ..Actor::default()
    }
}

/// The route's policy refused the request: the `orders:admin` scope was missing.
pub(crate) fn missing_scope() -> Authz {
    Authz {
        decision: AuthzDecision::Denied,
        required_scopes: vec!["orders:admin".into()],
        required_roles: Vec::new(),
        reason: Some("missing_scope".into()),
    }
}

/// A `keyset` record for `ISS` holding the public keys of `keys`.
pub(crate) fn keyset_record(keys: &[&TestKey], at: OffsetDateTime) -> AuditEvent {
    let set = KeySet::merge(keys.iter().map(|k| k.key_set()));
    let mut event = AuditEvent::keyset(Some(ISS.to_owned()), hex_id(&set), set.to_public_jwks());
    event.time = at;
    event
}

fn hex_id(set: &KeySet) -> String {
    hex::encode(set.id())
}

/// The actor the engine records for `token`, verified as of `at` with `keys` (the real
/// Authenticator and the real `Identity` → `Actor` conversion).
pub(crate) fn actor_for(token: &str, keys: &TestKey, at: OffsetDateTime) -> Actor {
    let auth = Authenticator::builder()
        .issuer(Issuer::new(ISS).keys(keys.key_set()).audience(AUD))
        .clock(Arc::new(ManualClock::new(at.unix_timestamp())))
        .build()
        .unwrap();
    let identity = block_on(auth.verify(token)).unwrap();
    Actor::from(&identity)
}

/// Polls a future that is ready at once (the authenticator with static keys).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Parses stdout lines as JSON objects.
pub(crate) fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The table rows of `events` output (the header dropped), as their index column.
pub(crate) fn row_indexes(stdout: &[u8]) -> Vec<u64> {
    let text = String::from_utf8_lossy(stdout);
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    assert!(header.starts_with("TIME"), "{header}");
    lines
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|i| i.parse().ok())
                .unwrap_or_else(|| panic!("no index column: {l}"))
        })
        .collect()
}
