//! `veritrail keygen`.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Env, KEY_NAME, stderr};
use veritrail_log::{NoteSigner, NoteVerifier};

#[test]
fn writes_a_private_key_with_mode_0600_and_prints_its_verifier() {
    let env = Env::new();
    let printed = env.keygen();

    let private = env.read("key");
    assert!(private.starts_with(&format!("PRIVATE+KEY+{KEY_NAME}+")));
    let mode = std::fs::metadata(env.path("key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    // The printed verifier is the private key's own verifier, in the signed-note text form.
    let signer = NoteSigner::from_text(&private).unwrap();
    let verifier = NoteVerifier::from_text(&printed).unwrap();
    assert_eq!(verifier, signer.verifier());
    assert!(printed.starts_with(&format!("{KEY_NAME}+")));
    assert!(!printed.contains("PRIVATE"));
    assert_eq!(env.read("key.pub"), format!("{printed}\n"));
}

#[test]
fn refuses_to_overwrite_a_key_unless_forced() {
    let env = Env::new();
    let first = env.keygen();
    let before = env.read("key");

    let out = env.expect(2, &["keygen", KEY_NAME, "--out", "key"], b"");
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"));
    assert_eq!(env.read("key"), before, "the key was changed");

    let out = env.ok(&["keygen", KEY_NAME, "--out", "key", "--force"], b"");
    let second = common::stdout(&out).trim().to_owned();
    assert_ne!(second, first, "a new key was not generated");
    assert_ne!(env.read("key"), before);
    assert_eq!(env.read("key.pub").trim(), second);
    let mode = std::fs::metadata(env.path("key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn refuses_when_only_the_pub_file_exists() {
    let env = Env::new();
    env.write("key.pub", "someone else's key\n");
    env.expect(2, &["keygen", KEY_NAME, "--out", "key"], b"");
    assert!(!env.path("key").exists());
    assert_eq!(env.read("key.pub"), "someone else's key\n");
}

#[test]
fn refuses_an_invalid_key_name() {
    let env = Env::new();
    let out = env.expect(2, &["keygen", "two words", "--out", "key"], b"");
    assert!(stderr(&out).contains("key name"), "{}", stderr(&out));
    assert!(!env.path("key").exists());
}
