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
    let said = stderr(&out);
    assert!(said.contains("does not exist"), "{said}");
    // Checking the path comes before making a log there.
    let check = said.find("check the path").expect(&said);
    assert!(check < said.find("append").expect(&said), "{said}");
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

#[test]
fn an_older_checkpoint_file_fails_verification() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..2));
    let older = env.checkpoint();
    env.append(&events(2..4));
    env.append(&events(4..6));
    env.ok(&["verify", "log", "--key", &vkey], b"");
    env.write("log/checkpoint", &older);
    let out = env.expect(1, &["verify", "log", "--key", &vkey], b"");
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("not the latest"), "{said}");
}

#[test]
fn a_record_forged_with_the_checkpoints_deleted_is_not_signed_by_append() {
    // The red team's laundering attack: a record changed keeping its checksum valid (the
    // same change in every file that holds it), the checkpoint files deleted, then `append`.
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..4));
    let segment = env.path("log/segments/00000000000000000000.seg");
    let mut data = std::fs::read(&segment).unwrap();
    let needle = event(1).into_bytes();
    let at = data
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    data[at + 5] ^= 0x02;
    // Recompute the frame's crc32c (length ‖ record), as an attacker would.
    let start = at - 8;
    let len = u32::from_le_bytes(data[start..start + 4].try_into().unwrap()) as usize;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&data[start..start + 4]), &data[at..at + len]);
    data[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, data).unwrap();
    for name in ["log/checkpoint", "log/checkpoints"] {
        std::fs::remove_file(env.path(name)).unwrap();
    }
    for extra in [&[][..], &["--recover"][..]] {
        let mut args = vec!["append", "log", "--key", "key"];
        args.extend(extra);
        let out = env.expect(1, &args, b"{\"after\":1}\n");
        assert!(stderr(&out).contains("record 1"), "{}", stderr(&out));
    }
    // Nothing was signed: the verifier still sees no checkpoint over the forged record.
    assert!(std::fs::read(env.path("log/checkpoints")).map_or(true, |h| h.is_empty()));
    let _ = vkey;
}
