//! Usage errors exit 2 and say what to do.

mod common;

use common::{Env, events, stderr};

#[test]
fn malformed_command_lines_exit_2() {
    let env = Env::new();
    for args in [
        &[][..],
        &["frobnicate"],
        &["keygen"],
        &["keygen", "name"],
        &["append", "log"],
        &["prove", "log", "first"],
        &["prove", "log", "-1"],
        &["verify", "log"],
        &["verify", "log", "--key", "k", "--tokens"],
        &["verify-proof", "p"],
        &["consistency", "log"],
    ] {
        env.expect(2, args, b"");
    }
    env.ok(&["--help"], b"");
    env.ok(&["verify", "--help"], b"");
}

#[test]
fn read_commands_on_a_missing_or_empty_log_say_how_to_make_one() {
    let env = Env::new();
    for args in [
        &["checkpoint", "log"][..],
        &["prove", "log", "0"],
        &["consistency", "log", "--from", "key.pub"],
    ] {
        let out = env.expect(2, args, b"");
        assert!(
            stderr(&out).contains("veritrail append"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    env.keygen();
    std::fs::create_dir(env.path("empty")).unwrap();
    let out = env.expect(2, &["checkpoint", "empty"], b"");
    assert!(
        stderr(&out).contains("veritrail append"),
        "{}",
        stderr(&out)
    );
    env.write("file", "x");
    let out = env.expect(2, &["checkpoint", "file"], b"");
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
}

#[test]
fn missing_proof_or_checkpoint_files_exit_2() {
    let env = Env::new();
    let vkey = env.keygen();
    env.append(&events(0..2));
    let out = env.expect(2, &["verify-proof", "nope.tlog-proof", "--key", &vkey], b"");
    assert!(stderr(&out).contains("nope.tlog-proof"), "{}", stderr(&out));
    let out = env.expect(2, &["consistency", "log", "--from", "nope.cp"], b"");
    assert!(stderr(&out).contains("nope.cp"), "{}", stderr(&out));
}
