//! Every example in `examples/` runs as its doc comment says, twice in a row, and leaves
//! nothing in its working directory: a development identity provider's directory is made as
//! `veritrail dev-idp --dir DIR --token alice=orders:read,orders:refund` makes it, each
//! example runs in its self-check mode (`VERITRAIL_EXAMPLE_CHECK=1`: it serves on a free port,
//! sends itself a few requests, checks the answers and stops cleanly), and the logs the two
//! runs grew are verified. The example binaries are the ones `cargo test` builds beside this
//! test.

use std::path::{Path, PathBuf};
use std::process::Command;

use veritrail::core::dev::DevIdp;
use veritrail::log::NoteVerifier;
use veritrail::log::verify::{VerifyOptions, verify_dir};

/// target/<profile>/examples/NAME, beside this test's own binary (target/<profile>/deps/).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test --all-features` builds the examples",
        path.display()
    );
    path
}

/// The directory `veritrail dev-idp --dir DIR --token alice=orders:read,orders:refund` makes.
fn dev_idp(dir: &Path) {
    let idp = DevIdp::open(dir).unwrap();
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let token = idp
        .mint("alice", "orders-api", "orders:read orders:refund", 3600)
        .unwrap();
    std::fs::write(tokens.join("alice.jwt"), format!("{token}\n")).unwrap();
}

/// Runs the example twice in an empty working directory; each run must succeed and leave
/// the directory empty.
fn run_twice(name: &str, args: &[&Path]) {
    let cwd = tempfile::tempdir().unwrap();
    for run in 1..=2 {
        let out = Command::new(example(name))
            .args(args)
            .env("VERITRAIL_EXAMPLE_CHECK", "1")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .current_dir(cwd.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}, run {run}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
        assert!(left.is_empty(), "{name} left files behind: {left:?}");
    }
}

/// Verifies the log an example keeps in DIR/NAME and returns its number of records.
fn verified_records(dir: &Path, name: &str) -> u64 {
    let work = dir.join(name);
    let vkey = std::fs::read_to_string(work.join("audit.key.pub")).unwrap();
    let verifier = NoteVerifier::from_text(vkey.trim()).unwrap();
    verify_dir(
        &work.join("audit-log"),
        &verifier,
        &VerifyOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{name}'s log: {e}"))
    .records
}

#[test]
fn the_web_examples_run_twice_in_a_row_and_their_logs_verify() {
    let idp = tempfile::tempdir().unwrap();
    dev_idp(idp.path());
    // Per run: `start`, `keyset`, one event per self-check request, `stop`.
    for (name, requests) in [
        ("axum_quickstart", 3),
        ("actix_quickstart", 3),
        ("hyper_tower", 3),
        ("otel", 2),
    ] {
        run_twice(name, &[idp.path()]);
        assert_eq!(
            verified_records(idp.path(), name),
            2 * (3 + requests),
            "{name}"
        );
    }
}

#[test]
fn an_example_given_no_directory_says_how_to_make_one_and_a_missing_file_is_named() {
    let out = Command::new(example("axum_quickstart")).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dev-idp --dir DIR"), "{stderr}");

    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(example("axum_quickstart"))
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let jwks = empty.path().join("jwks.json");
    assert!(stderr.contains(&jwks.display().to_string()), "{stderr}");
}

#[test]
fn the_nats_example_runs_twice_in_a_row() {
    run_twice("nats_replicas", &[]);
}
