//! `veritrail append`: one stdin line, one JSON object, one record, exact bytes.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Env, KEY_NAME, event, events, join, stderr, stdout};
use veritrail_log::{Checkpoint, NoteVerifier, merkle};

/// The record bytes the proof of `index` carries (its `extra` line).
fn record(env: &Env, index: u64) -> Vec<u8> {
    let proof = stdout(&env.ok(&["prove", "log", &index.to_string()], b""));
    let extra = proof
        .lines()
        .find_map(|l| l.strip_prefix("extra "))
        .unwrap_or_else(|| panic!("no extra line in\n{proof}"));
    BASE64.decode(extra).unwrap()
}

fn opened_checkpoint(env: &Env, verifier: &str) -> Checkpoint {
    let verifier = NoteVerifier::from_text(verifier).unwrap();
    Checkpoint::open(&env.checkpoint(), &verifier).unwrap()
}

#[test]
fn a_bad_line_stops_the_append_and_keeps_the_lines_before_it() {
    let env = Env::new();
    let vkey = env.keygen();
    let input = format!("{}\n{}\nnot json\n{}\n", event(0), event(1), event(2));
    let out = env.expect(1, &["append", "log", "--key", "key"], input.as_bytes());
    let err = stderr(&out);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("not a JSON object"), "{err}");
    assert!(err.contains("tail -n +3"), "{err}");

    // Lines 1-2 are appended, synced and signed; line 4 was not read.
    let cp = opened_checkpoint(&env, &vkey);
    assert_eq!(cp.size, 2);
    let leaves: Vec<_> = (0..2)
        .map(|i| merkle::leaf_hash(event(i).as_bytes()))
        .collect();
    assert_eq!(cp.root, merkle::root_of_leaves(&leaves));
    let out = env.ok(&["verify", "log", "--key", &vkey], b"");
    assert!(stdout(&out).contains("2 checked"), "{}", stdout(&out));
}

#[test]
fn a_bad_first_line_creates_and_changes_nothing() {
    let env = Env::new();
    let vkey = env.keygen();
    for input in [&b"{oops\n"[..], b"\n  \n[1]\n{\"a\":1}\n"] {
        let out = env.expect(1, &["append", "log", "--key", "key"], input);
        assert!(stderr(&out).contains("was not appended") || stderr(&out).contains("not appended"));
        assert!(!env.path("log").exists(), "{}", stderr(&out));
    }
    // On an existing log: nothing appended, nothing signed.
    env.append(&events(0..2));
    let before = env.checkpoint();
    env.expect(1, &["append", "log", "--key", "key"], b"{oops\n{\"a\":1}\n");
    assert_eq!(env.checkpoint(), before);
    assert_eq!(opened_checkpoint(&env, &vkey).size, 2);
    env.ok(&["verify", "log", "--key", &vkey], b"");
}

#[test]
fn a_private_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.keygen();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(env.path("key"), std::fs::Permissions::from_mode(mode)).unwrap();
        let out = env.expect(2, &["append", "log", "--key", "key"], b"{}\n");
        let err = stderr(&out);
        assert!(
            err.contains("chmod 600") && err.contains("key"),
            "{mode:o}: {err}"
        );
        assert!(!err.contains("PRIVATE+KEY"), "{err}");
        assert!(!env.path("log").exists());
    }
    std::fs::set_permissions(env.path("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&["append", "log", "--key", "key"], b"{}\n");
}

#[test]
fn recover_adopts_a_log_whose_checkpoints_were_lost_and_records_it() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..3));
    std::fs::remove_file(env.path("log/checkpoint")).unwrap();
    std::fs::remove_file(env.path("log/checkpoints")).unwrap();
    let out = env.expect(1, &["append", "log", "--key", "key"], b"{\"a\":1}\n");
    assert!(stderr(&out).contains("--recover"), "{}", stderr(&out));
    let out = env.ok(
        &["append", "log", "--key", "key", "--recover"],
        b"{\"a\":1}\n",
    );
    assert!(
        stderr(&out).contains("adopted 3 records"),
        "{}",
        stderr(&out)
    );
    // The recovered record, then the line.
    assert_eq!(opened_checkpoint(&env, &vkey).size, 5);
    let record = env.ok(&["events", "log", "--json"], b"");
    assert!(
        stdout(&record).contains("\"unsigned_adopted\":3"),
        "{}",
        stdout(&record)
    );
    env.ok(&["verify", "log", "--key", &vkey], b"");
}

#[test]
fn json_values_that_are_not_objects_are_refused() {
    for (line, kind) in [
        ("[1,2]", "array"),
        ("\"text\"", "string"),
        ("42", "number"),
        ("null", "null"),
        ("{\"a\":1} {\"b\":2}", "invalid JSON"),
        ("{\"a\":1", "invalid JSON"),
    ] {
        let env = Env::new();
        env.keygen();
        let input = format!("{}\n{line}\n", event(0));
        let out = env.expect(1, &["append", "log", "--key", "key"], input.as_bytes());
        let err = stderr(&out);
        assert!(
            err.contains("line 2") && err.contains(kind),
            "{line}: {err}"
        );
    }
}

#[test]
fn records_are_the_exact_line_bytes() {
    let env = Env::new();
    env.keygen();
    // Spacing and key order are kept; CRLF and LF terminators are not part of the record;
    // blank lines are skipped; the last line needs no newline.
    let spaced = "  { \"b\" : 2,  \"a\":[1, 2 ] }\t";
    let unicode = r#"{"who":"Zoë","emoji":"🔏","esc":"\u00e9"}"#;
    let input = format!("{spaced}\r\n\n   \n{unicode}\n{}", event(7));
    let out = env.ok(&["append", "log", "--key", "key"], input.as_bytes());
    let err = stderr(&out);
    assert!(err.contains("appended 3 records"), "{err}");
    assert!(err.contains("skipped 2 blank lines"), "{err}");
    assert_eq!(record(&env, 0), spaced.as_bytes());
    assert_eq!(record(&env, 1), unicode.as_bytes());
    assert_eq!(record(&env, 2), event(7).as_bytes());
}

#[test]
fn appends_extend_the_log_and_each_signs_a_checkpoint() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..3));
    let first = env.checkpoint();
    let out = env.append(&events(3..5));
    assert!(stderr(&out).contains("indexes 3..=4"), "{}", stderr(&out));
    let cp = opened_checkpoint(&env, &vkey);
    assert_eq!(cp.size, 5);
    assert_eq!(cp.origin, KEY_NAME, "the origin defaults to the key name");
    assert_ne!(env.checkpoint(), first);
    let leaves: Vec<_> = (0..5)
        .map(|i| merkle::leaf_hash(event(i).as_bytes()))
        .collect();
    assert_eq!(cp.root, merkle::root_of_leaves(&leaves));
}

#[test]
fn origin_names_a_new_log_and_cannot_change_an_existing_one() {
    let env = Env::new();
    let vkey = env.keygen();
    let input = join(&events(0..2));
    let origin = "audit.example.com/billing";
    env.ok(
        &["append", "log", "--key", "key", "--origin", origin],
        input.as_bytes(),
    );
    assert_eq!(opened_checkpoint(&env, &vkey).origin, origin);

    let out = env.expect(
        2,
        &[
            "append",
            "log",
            "--key",
            "key",
            "--origin",
            "other.example/x",
        ],
        input.as_bytes(),
    );
    assert!(stderr(&out).contains(origin), "{}", stderr(&out));
    assert_eq!(opened_checkpoint(&env, &vkey).size, 2);
    // Without --origin, the existing origin stands.
    env.ok(&["append", "log", "--key", "key"], input.as_bytes());
    let cp = opened_checkpoint(&env, &vkey);
    assert_eq!((cp.origin.as_str(), cp.size), (origin, 4));
}

#[test]
fn a_missing_key_file_says_how_to_make_one() {
    let env = Env::new();
    let out = env.expect(2, &["append", "log", "--key", "nokey"], b"{}\n");
    assert!(
        stderr(&out).contains("veritrail keygen"),
        "{}",
        stderr(&out)
    );
    assert!(!env.path("log").exists(), "a log was created without a key");
}

#[test]
fn a_verifier_key_is_not_a_signing_key() {
    let env = Env::new();
    env.keygen();
    let out = env.expect(2, &["append", "log", "--key", "key.pub"], b"{}\n");
    assert!(
        stderr(&out).contains("not a private key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_existing_empty_directory_becomes_a_log() {
    let env = Env::new();
    let vkey = env.keygen();
    std::fs::create_dir(env.path("log")).unwrap();
    env.append(&events(0..2));
    assert_eq!(opened_checkpoint(&env, &vkey).size, 2);
    env.write("file", "x");
    let out = env.expect(2, &["append", "file", "--key", "key"], b"{}\n");
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
}

#[test]
fn a_torn_last_write_is_reported_then_cut_by_the_next_append() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..3));
    // A crash in the middle of writing a frame: a few bytes of a length and checksum.
    let segment = common::files_under(&env.path("log/segments"))
        .pop()
        .expect("a segment file");
    let clean_len = std::fs::metadata(&segment).unwrap().len();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 0xde, 0xad]);
    std::fs::write(&segment, bytes).unwrap();

    // Not tampering: verify passes and says what the next append will cut.
    let report = stdout(&env.ok(&["verify", "log", "--key", &vkey], b""));
    assert!(report.contains("torn write"), "{report}");
    assert!(report.contains("3 checked"), "{report}");

    let out = env.append(&events(3..4));
    assert!(stderr(&out).contains("cut 6 bytes"), "{}", stderr(&out));
    assert!(std::fs::metadata(&segment).unwrap().len() > clean_len);
    let report = stdout(&env.ok(&["verify", "log", "--key", &vkey], b""));
    assert!(!report.contains("torn"), "{report}");
    assert_eq!(opened_checkpoint(&env, &vkey).size, 4);
    assert_eq!(record(&env, 3), event(3).as_bytes());
}
