//! `veritrail verify`: valid logs pass, tampered, truncated and rewritten ones do not.

mod common;

use common::{Env, copy_dir, event, events, files_under, stderr, stdout};

/// Flips one byte of record `index`'s JSON in whichever log file stores it.
fn flip_record_byte(env: &Env, index: u64) -> std::path::PathBuf {
    let needle = event(index).into_bytes();
    for path in files_under(&env.path("log")) {
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            // Inside the record: the `1` of `"v":1`.
            bytes[at + 5] ^= 0x02;
            std::fs::write(&path, bytes).unwrap();
            return path;
        }
    }
    panic!("record {index} not found in any file of the log");
}

#[test]
fn a_valid_log_verifies_with_the_key_as_text_or_file() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..20));
    env.append(&events(20..25));
    for key in [vkey.as_str(), "key.pub"] {
        let out = env.ok(&["verify", "log", "--key", key], b"");
        let report = stdout(&out);
        assert!(report.contains("is valid"), "{report}");
        assert!(report.contains("25 checked"), "{report}");
        assert!(report.contains("none given"), "{report}");
    }

    let out = env.ok(&["verify", "log", "--key", &vkey, "--json"], b"");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["records"], 25);
    let checkpoints = json["checkpoints_checked"].as_u64().unwrap();
    assert!(
        checkpoints >= 2,
        "two appends signed two checkpoints: {json}"
    );
    assert_eq!(json["against_checked"], 0);
}

#[test]
fn a_flipped_byte_in_a_segment_is_reported_by_index() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..12));
    let file = flip_record_byte(&env, 7);

    let out = env.expect(1, &["verify", "log", "--key", &vkey], b"");
    let report = stdout(&out);
    assert!(report.contains("INVALID"), "{report}");
    assert!(report.contains("index 7"), "{report}");
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(report.contains(&name), "the segment is not named: {report}");

    let out = env.expect(1, &["verify", "log", "--key", &vkey, "--json"], b"");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["index"], 7, "{json}");
    assert!(json["segment"].as_str().unwrap().ends_with(&name), "{json}");
    assert!(json["offset"].is_u64(), "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("record 7"),
        "{json}"
    );

    // Commands that serve records refuse damaged data too (exit 1), never a bad proof.
    let out = env.expect(1, &["prove", "log", "7"], b"");
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("veritrail verify"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn against_catches_a_log_rolled_back_to_an_earlier_state() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..5));
    copy_dir(&env.path("log"), &env.path("snapshot"));
    env.append(&events(5..9));
    // An auditor keeps this checkpoint somewhere the writer does not control.
    env.write("held.cp", env.checkpoint());
    env.write(
        "early.cp",
        stdout(&env.ok(&["checkpoint", "snapshot"], b"")),
    );

    env.ok(
        &["verify", "log", "--key", &vkey, "--against", "held.cp"],
        b"",
    );
    let out = env.ok(
        &[
            "verify",
            "log",
            "--key",
            &vkey,
            "--against",
            "held.cp",
            "--against",
            "early.cp",
        ],
        b"",
    );
    assert!(stdout(&out).contains("2/2 proven"), "{}", stdout(&out));

    // Truncate the tail: put back the earlier state, checkpoints and all.
    std::fs::remove_dir_all(env.path("log")).unwrap();
    copy_dir(&env.path("snapshot"), &env.path("log"));
    // On its own the truncated log is self-consistent: only --against catches it.
    env.ok(&["verify", "log", "--key", &vkey], b"");
    let out = env.expect(
        1,
        &["verify", "log", "--key", &vkey, "--against", "held.cp"],
        b"",
    );
    assert!(stdout(&out).contains("INVALID"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains('9'),
        "the held size is not named: {}",
        stdout(&out)
    );
}

#[test]
fn against_catches_a_rewritten_log() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..6));
    env.write("held.cp", env.checkpoint());
    // Rewritten with the same key: different records, more of them, all signed.
    std::fs::remove_dir_all(env.path("log")).unwrap();
    env.append(&events(50..58));
    env.ok(&["verify", "log", "--key", &vkey], b"");
    env.expect(
        1,
        &["verify", "log", "--key", &vkey, "--against", "held.cp"],
        b"",
    );
}

#[test]
fn another_key_does_not_verify_the_log() {
    let env = Env::new();
    env.keygen();
    env.append(&events(0..3));
    let other = env.keygen_as(common::KEY_NAME, "impostor");
    let out = env.expect(1, &["verify", "log", "--key", &other], b"");
    assert!(stdout(&out).contains("INVALID"), "{}", stdout(&out));
}

#[test]
fn io_and_usage_problems_exit_2() {
    let env = Env::new();
    let vkey = env.keygen();
    let out = env.expect(2, &["verify", "nolog", "--key", &vkey], b"");
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    env.append(&events(0..2));
    let out = env.expect(
        2,
        &["verify", "log", "--key", &vkey, "--against", "missing.cp"],
        b"",
    );
    assert!(stderr(&out).contains("missing.cp"), "{}", stderr(&out));
    let out = env.expect(2, &["verify", "log", "--key", "key"], b"");
    assert!(stderr(&out).contains("private key"), "{}", stderr(&out));
    let out = env.expect(2, &["verify", "log", "--key", "nonsense"], b"");
    assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));
}
