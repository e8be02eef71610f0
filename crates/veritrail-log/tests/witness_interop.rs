//! Interoperability of witness cosigning with an implementation nobody on this project wrote
//! against veritrail's code: `tests/witness_interop/cosig.py`, written from the C2SP spec text
//! with Python's `cryptography` (installed by `scripts/test` with PyJWT).
//!
//! - cosignatures made by veritrail verify there;
//! - an `add-checkpoint` body built there by hand (its own log key, signed note and body
//!   framing) is accepted by veritrail's witness, and the cosignature it answers verifies there.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use veritrail_log::witness::{CosignerKey, Witness};
use veritrail_log::{Checkpoint, NoteSigner, NoteVerifier, merkle};

fn python(args: &[&str], stdin: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/witness_interop/cosig.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs `cryptography`)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cosig.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn veritrail_cosignatures_verify_with_an_independent_implementation() {
    let log = NoteSigner::generate("example.com/audit").unwrap();
    let witness = CosignerKey::generate("witness.example/w1").unwrap();
    let leaves: Vec<_> = [b"a".as_slice(), b"b", b"c"]
        .iter()
        .map(|r| merkle::leaf_hash(r))
        .collect();
    let checkpoint = Checkpoint {
        origin: "example.com/audit".into(),
        size: 3,
        root: merkle::root_of_leaves(&leaves),
        extensions: vec!["extension line".into()],
    };
    let line = witness
        .cosign(&checkpoint.to_body(), 1_700_000_123)
        .unwrap();
    let note = format!("{}{line}", checkpoint.sign(&log).unwrap());
    let printed = python(&["verify", &witness.verifier().to_text()], &note);
    assert_eq!(printed.trim(), "1700000123");

    // And an altered body fails there too.
    let altered = note.replacen("\n3\n", "\n4\n", 1);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/witness_interop/cosig.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["verify", &witness.verifier().to_text()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(altered.as_bytes())
        .unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "an altered checkpoint verified"
    );
}

#[test]
fn a_hand_built_add_checkpoint_request_is_cosigned() {
    let out = python(&["request", "0"], "");
    let (vkey, body) = out.split_once('\n').unwrap();
    let log = NoteVerifier::from_text(vkey).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = CosignerKey::generate("witness.example/w1").unwrap();
    let witness = Witness::open(dir.path(), key.clone(), [log]).unwrap();
    let line = witness.add_checkpoint(body, 1_700_000_500).unwrap();
    assert_eq!(witness.latest("interop.example/log").unwrap().size, 1);

    // The answer, appended to the checkpoint, verifies with the independent reader.
    let checkpoint = body.split_once("\n\n").unwrap().1;
    let printed = python(
        &["verify", &key.verifier().to_text()],
        &format!("{checkpoint}{line}"),
    );
    assert_eq!(printed.trim(), "1700000500");
}
