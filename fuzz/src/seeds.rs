//! The seed inputs of every target, built from the fixtures and the test vectors with the
//! project's own code: valid tokens, JWKS documents, signed notes and checkpoints, proof files,
//! segment files and audit events. Each target's input layout (its leading mode byte) is
//! described in its own file under `fuzz_targets/`.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::Algorithm;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;
use veritrail_core::auth::KeySet;
use veritrail_core::event::{AuditEvent, TokenEvidence};
use veritrail_log::proof::{ConsistencyBody, InclusionProofFile};
use veritrail_log::{Checkpoint, Log, LogOptions};

use crate::{
    authenticator, block_on, claims, claims2, fixture, key_set, note_signer, scratch_dir,
    segment_files, sign_hs256, template_log, valid_tokens,
};

/// One seed: the target it is for, a file name, the bytes.
pub type Seed = (&'static str, String, Vec<u8>);

fn with_mode(mode: u8, bytes: impl AsRef<[u8]>) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(bytes.as_ref());
    out
}

/// Every seed of every target. `vectors` is the test vector folder (`vectors/`).
pub fn all(vectors: &Path) -> Vec<Seed> {
    let mut seeds = Vec::new();
    jwt(&mut seeds);
    jwks(&mut seeds);
    notes(&mut seeds, vectors);
    proofs(&mut seeds);
    segments(&mut seeds);
    events(&mut seeds);
    paths(&mut seeds);
    seeds
}

fn paths(seeds: &mut Vec<Seed>) {
    // The path tricks of issue 12 (hole 1) and their relatives.
    let paths = [
        "/orders/7",
        "/health/../admin/x",
        "//admin/x",
        "/%61dmin/x",
        "/foo/../admin/x",
        "/healthz-anything",
        "/health/%2e%2e/admin",
        "/files/a%2Fb",
        "/admin;x",
        "/health/..;/admin",
        "/caf%c3%a9/%C0%AE",
        "/admin./x%20",
        "/a/./b/../../c/",
        "/%00\\x",
    ];
    for (i, path) in paths.iter().enumerate() {
        let mut input = path.as_bytes().to_vec();
        if i % 2 == 1 {
            input.extend_from_slice(b"\0/health");
        }
        seeds.push(("path", format!("path-{i}"), input));
    }
}

fn jwt(seeds: &mut Vec<Seed>) {
    for (i, token) in valid_tokens().into_iter().enumerate() {
        seeds.push(("jwt", format!("token-{i}"), with_mode(0, &token)));
        seeds.push((
            "jwt",
            format!("bearer-{i}"),
            with_mode(2, format!("Bearer {token}")),
        ));
    }
    let signed = [
        (json!({"alg": "HS256", "kid": "h1"}), claims()),
        (
            json!({"alg": "HS256", "kid": "h1", "typ": "at+jwt"}),
            claims2(),
        ),
        (
            json!({"alg": "HS256"}),
            json!({"iss": crate::ISS, "aud": [crate::AUD], "exp": 1.8e9}),
        ),
        (json!({"alg": "HS256", "crit": ["b64"]}), claims()),
        (json!({"alg": "none"}), claims()),
    ];
    for (i, (header, claims)) in signed.iter().enumerate() {
        let mut input = header.to_string().into_bytes();
        input.push(0);
        input.extend_from_slice(claims.to_string().as_bytes());
        seeds.push(("jwt", format!("signed-{i}"), with_mode(1, input)));
    }
    let unsigned = sign_hs256(br#"{"alg":"none"}"#, claims().to_string().as_bytes());
    seeds.push(("jwt", "alg-none".into(), with_mode(0, unsigned)));
}

fn jwks(seeds: &mut Vec<Seed>) {
    let public = key_set().to_public_jwks();
    seeds.push((
        "jwks",
        "fixture-keys".into(),
        public.to_string().into_bytes(),
    ));
    for (i, key) in public["keys"].as_array().unwrap().iter().enumerate() {
        seeds.push(("jwks", format!("jwk-{i}"), key.to_string().into_bytes()));
    }
    let hmac = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "alg": "HS256", "kid": "o"},
        {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": "AA"}]});
    seeds.push(("jwks", "odd-keys".into(), hmac.to_string().into_bytes()));
    let pem_set = KeySet::from_pem(&fixture("rsa2.pub.pem"), Algorithm::PS512, None).unwrap();
    seeds.push((
        "jwks",
        "kidless".into(),
        pem_set.to_public_jwks().to_string().into_bytes(),
    ));
}

/// The signed notes, keys and texts in the signed-note vectors: every line of
/// `VECTORS.md` between backquotes, and the fenced blocks.
fn note_vectors(vectors: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(vectors.join("signed-note/VECTORS.md")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            match block.take() {
                Some(b) => out.push(b),
                None => block = Some(String::new()),
            }
            continue;
        }
        if let Some(b) = &mut block {
            b.push_str(trimmed);
            b.push('\n');
            continue;
        }
        out.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    out
}

fn notes(seeds: &mut Vec<Seed>, vectors: &Path) {
    for (i, text) in note_vectors(vectors).into_iter().enumerate() {
        for mode in 0..4u8 {
            seeds.push(("note", format!("vector-{i}-{mode}"), with_mode(mode, &text)));
        }
    }
    let checkpoint = Checkpoint {
        origin: "fuzz.example/log".into(),
        size: 7,
        root: [7; 32],
        extensions: vec!["extension line".into()],
    };
    let body = checkpoint.to_body();
    let signed = checkpoint.sign(&note_signer()).unwrap();
    seeds.push(("note", "checkpoint-signed".into(), with_mode(0, &signed)));
    seeds.push(("note", "checkpoint-text".into(), with_mode(1, &body)));
    seeds.push(("note", "checkpoint-body".into(), with_mode(2, &body)));
    let signer = note_signer();
    seeds.push((
        "note",
        "signer".into(),
        with_mode(3, signer.to_text().as_bytes()),
    ));
    seeds.push((
        "note",
        "verifier".into(),
        with_mode(3, signer.verifier().to_text()),
    ));
}

fn proofs(seeds: &mut Vec<Seed>) {
    // The proof target's fixed tree: records `record 0` .. `record 6`, origin fuzz.example/log.
    let scratch = scratch_dir();
    let mut log = Log::open(
        scratch.path(),
        note_signer(),
        LogOptions::default().origin(Some("fuzz.example/log".into())),
    )
    .unwrap();
    let records: Vec<Vec<u8>> = (0..7).map(|i| format!("record {i}").into_bytes()).collect();
    for r in &records {
        log.append(r).unwrap();
    }
    log.sync().unwrap();
    let checkpoint = log.checkpoint().unwrap();
    for index in [0u64, 3, 6] {
        let file = InclusionProofFile {
            index,
            record: records[index as usize].clone(),
            proof: log.inclusion_proof(index, 7).unwrap(),
            checkpoint: checkpoint.clone(),
        };
        for mode in [0u8, 2] {
            seeds.push((
                "proof",
                format!("inclusion-{index}-{mode}"),
                with_mode(mode, file.to_text()),
            ));
        }
    }
    for old in [0u64, 3] {
        let body = ConsistencyBody {
            old_size: old,
            // From the empty tree the proof is empty (tlog-witness).
            proof: if old == 0 {
                Vec::new()
            } else {
                log.consistency_proof(old, 7).unwrap()
            },
            checkpoint: checkpoint.clone(),
        };
        for mode in [1u8, 3] {
            seeds.push((
                "proof",
                format!("consistency-{old}-{mode}"),
                with_mode(mode, body.to_text()),
            ));
        }
    }
    log.close().unwrap();
}

fn segments(seeds: &mut Vec<Seed>) {
    let scratch = scratch_dir();
    template_log(scratch.path());
    for (i, path) in segment_files(scratch.path()).iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        let choice = u8::try_from(i).unwrap();
        seeds.push(("segment", format!("segment-{i}"), with_mode(choice, &bytes)));
        seeds.push((
            "segment",
            format!("header-{i}"),
            with_mode(choice, &bytes[..24]),
        ));
        // A torn tail: half a frame after the last record.
        let frame = &bytes[24..bytes.len().min(24 + 12)];
        seeds.push((
            "segment",
            format!("tail-{i}"),
            with_mode(choice | 0x80, frame),
        ));
    }
}

fn events(seeds: &mut Vec<Seed>) {
    let time = OffsetDateTime::from_unix_timestamp(crate::NOW).unwrap();
    let auth = authenticator();
    let token = &valid_tokens()[1];
    let identity = block_on(auth.verify(token)).unwrap();
    let mut list = vec![
        AuditEvent::http("GET", "/orders/42")
            .id(Uuid::from_u128(1))
            .time(time)
            .route("/orders/{id}")
            .query("q", "a b")
            .client_address("203.0.113.7")
            .user_agent("curl/8\u{202e}")
            .request_id("req-1")
            .trace("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
            .header("x-tenant", "acme")
            .actor(identity.shared_actor(&["realm_access"]))
            .token(TokenEvidence::full(token))
            .authn_allowed()
            .action("orders.read")
            .target("order:42")
            .extra("n", 1.5)
            .status(200)
            .latency_us(1234)
            .build(),
        AuditEvent::http("POST", "/admin/x")
            .id(Uuid::from_u128(2))
            .time(time)
            .intent()
            .authn_denied("expired")
            .build(),
        AuditEvent::keyset(
            Some(crate::ISS.into()),
            "ab".repeat(32),
            key_set().to_public_jwks(),
        ),
        AuditEvent::start("fuzz.example/log"),
        AuditEvent::recovered("segments/00000000000000000000.seg", 24, 7),
        AuditEvent::stop(10, 2),
        AuditEvent::gap(3, "queue_full", time, time),
        AuditEvent::checkpoint(7, STANDARD.encode([1u8; 32])),
    ];
    for (i, event) in list.iter_mut().enumerate() {
        event.time = time;
        let mut record = Vec::new();
        event.write_json(i as u64, &mut record);
        seeds.push(("event", format!("event-{i}"), record));
    }
}
