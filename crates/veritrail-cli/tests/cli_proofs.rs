//! `veritrail checkpoint`, `prove`, `verify-proof` and `consistency`.

mod common;

use common::{Env, KEY_NAME, event, events, stderr, stdout};
use veritrail_log::proof::{ConsistencyBody, InclusionProofFile};
use veritrail_log::{Checkpoint, NoteVerifier, merkle};

fn root_of(range: std::ops::Range<u64>) -> veritrail_log::Hash {
    let leaves: Vec<_> = range
        .map(|i| merkle::leaf_hash(event(i).as_bytes()))
        .collect();
    merkle::root_of_leaves(&leaves)
}

#[test]
fn checkpoint_prints_the_signed_checkpoint_verbatim() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..6));
    let text = env.checkpoint();
    let verifier = NoteVerifier::from_text(&vkey).unwrap();
    let cp = Checkpoint::open(&text, &verifier).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), (KEY_NAME, 6));
    assert_eq!(cp.root, root_of(0..6));
    // C2SP form: origin, size, base64 root, blank line, one signature line by the key.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], KEY_NAME);
    assert_eq!(lines[1], "6");
    assert_eq!(lines[3], "");
    assert!(lines[4].starts_with(&format!("\u{2014} {KEY_NAME} ")));
    assert!(text.ends_with('\n'));
}

#[test]
fn prove_and_verify_proof_round_trip() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..11));
    for index in [0u64, 5, 10] {
        let file = format!("r{index}.tlog-proof");
        env.ok(&["prove", "log", &index.to_string(), "--out", &file], b"");
        let text = env.read(&file);
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\n"), "{text}");
        // stdout and --out give the same file.
        assert_eq!(
            stdout(&env.ok(&["prove", "log", &index.to_string()], b"")),
            text
        );

        // The library's parser and the RFC 6962 check agree with the command.
        let proof = InclusionProofFile::parse(&text).unwrap();
        assert_eq!(proof.index, index);
        assert_eq!(proof.record, event(index).as_bytes());
        merkle::verify_inclusion(
            &merkle::leaf_hash(&proof.record),
            index,
            11,
            &proof.proof,
            &root_of(0..11),
        )
        .unwrap();

        let out = env.ok(&["verify-proof", &file, "--key", &vkey], b"");
        assert_eq!(stdout(&out), format!("{}\n", event(index)));
        assert!(
            stderr(&out).contains(&format!("record {index}")),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("size 11"), "{}", stderr(&out));
        // The key can also be given as a file.
        env.ok(&["verify-proof", &file, "--key", "key.pub"], b"");
    }
    let out = env.expect(2, &["prove", "log", "11"], b"");
    assert!(stderr(&out).contains("indexes 0..=10"), "{}", stderr(&out));
}

#[test]
fn tampered_proofs_are_refused() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..9));
    env.ok(&["prove", "log", "4", "--out", "p"], b"");
    let good = env.read("p");
    let proof = InclusionProofFile::parse(&good).unwrap();

    let mut tampered = Vec::new();
    // Another record under the same proof.
    let mut other = proof.clone();
    other.record = event(5).into_bytes();
    tampered.push(("record", other.to_text()));
    // Another index.
    let mut other = proof.clone();
    other.index = 5;
    tampered.push(("index", other.to_text()));
    // A flipped bit in one proof hash.
    let mut other = proof.clone();
    other.proof[1][7] ^= 0x01;
    tampered.push(("hash", other.to_text()));
    // A checkpoint whose body was edited (the signature no longer matches).
    let size_line = "\n9\n";
    tampered.push(("checkpoint", good.replacen(size_line, "\n10\n", 1)));
    // A truncated file.
    tampered.push(("truncated", good[..good.len() / 2].to_owned()));

    for (what, text) in tampered {
        assert_ne!(text, good, "{what}: not tampered");
        env.write("bad", &text);
        let out = env.expect(1, &["verify-proof", "bad", "--key", &vkey], b"");
        assert!(stdout(&out).is_empty(), "{what}: printed a record");
        assert!(stderr(&out).contains("bad"), "{what}: {}", stderr(&out));
    }

    // A valid proof checked with another log's key.
    let other_key = env.keygen_as("other.example/log", "other");
    env.expect(1, &["verify-proof", "p", "--key", &other_key], b"");
}

#[test]
fn consistency_proves_the_latest_checkpoint_extends_an_old_one() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..3));
    env.write("old.cp", env.checkpoint());
    env.append(&events(3..10));

    let text = stdout(&env.ok(&["consistency", "log", "--from", "old.cp"], b""));
    assert!(text.starts_with("old 3\n"), "{text}");
    let body = ConsistencyBody::parse(&text).unwrap();
    assert_eq!(body.old_size, 3);
    assert_eq!(body.checkpoint, env.checkpoint());
    let verifier = NoteVerifier::from_text(&vkey).unwrap();
    let new = Checkpoint::open(&body.checkpoint, &verifier).unwrap();
    assert_eq!(new.size, 10);
    merkle::verify_consistency(3, 10, &body.proof, &root_of(0..3), &new.root).unwrap();
    // Blank line between the proof and the checkpoint.
    assert!(text.contains(&format!("\n\n{}", body.checkpoint)));

    // From the latest checkpoint itself: no proof lines.
    env.write("now.cp", env.checkpoint());
    let text = stdout(&env.ok(&["consistency", "log", "--from", "now.cp"], b""));
    assert_eq!(text, format!("old 10\n\n{}", env.checkpoint()));
}

#[test]
fn consistency_refuses_a_checkpoint_the_log_does_not_extend() {
    let env = Env::new();
    env.keygen();
    env.append(&events(0..4));
    // A checkpoint of a log with the same origin and different records: a rewrite.
    env.ok(
        &["append", "rewritten", "--key", "key"],
        common::join(&events(100..104)).as_bytes(),
    );
    env.append(&events(4..6));
    env.write(
        "rewritten.cp",
        stdout(&env.ok(&["checkpoint", "rewritten"], b"")),
    );
    let out = env.expect(1, &["consistency", "log", "--from", "rewritten.cp"], b"");
    assert!(stderr(&out).contains("does not extend"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    // A checkpoint larger than the log.
    env.ok(
        &["append", "longer", "--key", "key"],
        common::join(&events(0..20)).as_bytes(),
    );
    env.write("longer.cp", stdout(&env.ok(&["checkpoint", "longer"], b"")));
    let out = env.expect(1, &["consistency", "log", "--from", "longer.cp"], b"");
    assert!(stderr(&out).contains("size 20"), "{}", stderr(&out));

    // Another log's checkpoint.
    env.keygen_as("other.example/log", "other");
    env.ok(
        &["append", "otherlog", "--key", "other"],
        common::join(&events(0..2)).as_bytes(),
    );
    env.write(
        "other.cp",
        stdout(&env.ok(&["checkpoint", "otherlog"], b"")),
    );
    let out = env.expect(1, &["consistency", "log", "--from", "other.cp"], b"");
    assert!(
        stderr(&out).contains("other.example/log"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn consistency_from_the_empty_tree_has_no_proof_lines() {
    let env = Env::new();
    let vkey = env.keygen();
    // Empty input makes a new log, which signs the empty tree (size 0) when it is created.
    env.ok(&["append", "log", "--key", "key"], b"");
    env.write("empty.cp", env.checkpoint());
    env.append(&events(0..3));
    let text = stdout(&env.ok(&["consistency", "log", "--from", "empty.cp"], b""));
    assert_eq!(text, format!("old 0\n\n{}", env.checkpoint()));
    // The library's tlog-witness check accepts it.
    let verifier = NoteVerifier::from_text(&vkey).unwrap();
    let old = Checkpoint::open(&env.read("empty.cp"), &verifier).unwrap();
    let body = ConsistencyBody::parse(&text).unwrap();
    assert_eq!(body.verify(&old, &verifier).unwrap().size, 3);
}
