//! `veritrail witness`, `keygen --witness`, `append --witness`, and `verify` / `verify-proof`
//! with `--witness` and `--min-witnesses`, on real processes over loopback.

mod common;

use veritrail_log::Log;
use veritrail_log::witness::{CosignatureVerifier, cosignatures};

use common::{Env, WitnessProc, events, join, start_witness, stderr, stdout};

fn witness(env: &Env, name: &str) -> WitnessProc {
    start_witness(env, name, "key.pub", "127.0.0.1:0")
}

fn target(w: &WitnessProc, name: &str) -> String {
    format!("{}={name}.key.pub", w.url)
}

#[test]
fn two_witnesses_cosign_and_verify_requires_them() {
    let env = Env::new();
    env.keygen();
    let w1 = witness(&env, "w1");
    let w2 = witness(&env, "w2");
    let (t1, t2) = (target(&w1, "w1"), target(&w2, "w2"));

    let out = env.ok(
        &[
            "append",
            "log",
            "--key",
            "key",
            "--witness",
            &t1,
            "--witness",
            &t2,
        ],
        join(&events(0..5)).as_bytes(),
    );
    let err = stderr(&out);
    assert!(
        err.contains("witness w1 cosigned") && err.contains("witness w2 cosigned"),
        "{err}"
    );
    let both = [
        "verify",
        "log",
        "--key",
        "key.pub",
        "--witness",
        "w1.key.pub",
        "--witness",
        "w2.key.pub",
    ];
    let out = env.ok(&both, b"");
    assert!(stdout(&out).contains("2/2 cosigned"), "{}", stdout(&out));

    // Grown with w1 only (w2 is down): the append succeeds, the checkpoint lacks w2.
    drop(w2);
    let out = env.ok(
        &[
            "append",
            "log",
            "--key",
            "key",
            "--witness",
            &t1,
            "--witness",
            &t2,
        ],
        join(&events(5..9)).as_bytes(),
    );
    assert!(
        stderr(&out).contains("no cosignature from witness"),
        "{}",
        stderr(&out)
    );
    // Verify with both: the newest checkpoint both cosigned is size 5's, and it says so.
    let out = env.ok(&both, b"");
    assert!(
        stdout(&out).contains("the newest checkpoint so cosigned has size 5"),
        "{}",
        stdout(&out)
    );
    let mut one = both.to_vec();
    one.extend(["--min-witnesses", "1"]);
    let out = env.ok(&one, b"");
    assert!(
        !stdout(&out).contains("newest checkpoint so cosigned"),
        "{}",
        stdout(&out)
    );
    // The witness held size 5: it was sent the consistency proof 5 → 9, and cosigned 9.
    let cp = env.checkpoint();
    assert!(
        cp.starts_with(&format!("{}\n9\n", common::KEY_NAME)),
        "{cp}"
    );

    // A proof file carries the cosigned checkpoint.
    env.ok(&["prove", "log", "7", "--out", "seven.tlog-proof"], b"");
    env.ok(
        &[
            "verify-proof",
            "seven.tlog-proof",
            "--key",
            "key.pub",
            "--witness",
            "w1.key.pub",
        ],
        b"",
    );
    let out = env.expect(
        1,
        &[
            "verify-proof",
            "seven.tlog-proof",
            "--key",
            "key.pub",
            "--witness",
            "w1.key.pub",
            "--witness",
            "w2.key.pub",
        ],
        b"",
    );
    assert!(stderr(&out).contains("missing: w2"), "{}", stderr(&out));
    // The log itself still verifies without witnesses, cosignatures and all.
    env.ok(&["verify", "log", "--key", "key.pub"], b"");
}

#[test]
fn a_forked_log_is_refused_even_by_a_witness_killed_and_restarted() {
    let env = Env::new();
    env.keygen();
    let w = witness(&env, "w1");
    let t = target(&w, "w1");
    env.ok(
        &["append", "log", "--key", "key", "--witness", &t],
        join(&events(0..3)).as_bytes(),
    );
    // SIGKILL: its state was made durable before it answered.
    drop(w);
    let w = witness(&env, "w1");
    let t = target(&w, "w1");

    // A second history under the same key and origin: 3 other records, then a 4th.
    let fork: Vec<String> = (100..104).map(common::event).collect();
    let out = env.ok(
        &["append", "fork", "--key", "key", "--witness", &t],
        join(&fork[..3]).as_bytes(),
    );
    assert!(stderr(&out).contains("fork"), "{}", stderr(&out));
    let out = env.ok(
        &["append", "fork", "--key", "key", "--witness", &t],
        join(&fork[3..]).as_bytes(),
    );
    assert!(stderr(&out).contains("no cosignature"), "{}", stderr(&out));
    env.expect(
        1,
        &[
            "verify",
            "fork",
            "--key",
            "key.pub",
            "--witness",
            "w1.key.pub",
        ],
        b"",
    );
    // The genuine log goes on being cosigned.
    env.ok(
        &["append", "log", "--key", "key", "--witness", &t],
        join(&events(3..4)).as_bytes(),
    );
    env.ok(
        &[
            "verify",
            "log",
            "--key",
            "key.pub",
            "--witness",
            "w1.key.pub",
        ],
        b"",
    );
}

#[test]
fn a_witness_key_is_not_a_log_key() {
    let env = Env::new();
    let out = env.ok(
        &["keygen", "w.example/w1", "--witness", "--out", "w.key"],
        b"",
    );
    let vkey = stdout(&out).trim().to_owned();
    // Type byte 0x04 (its first six bits, 000001, are base64 `B`; 0x01 would give `A`).
    assert!(vkey.split('+').nth(2).unwrap().starts_with('B'), "{vkey}");
    let out = env.expect(2, &["append", "log", "--key", "w.key"], b"{}\n");
    let err = stderr(&out);
    assert!(err.contains("not Ed25519 (0x01)"), "{err}");
    assert!(
        !err.contains(&vkey.split('+').nth(2).unwrap()[1..]),
        "{err}"
    );
    assert!(!env.path("log").exists(), "nothing was written");
}

/// Two histories of one log (same key and origin, different records) race to a witness that
/// is SIGKILLed at random moments, mid-request included, and restarted on its state: it never
/// cosigns both sides. (It persists before it answers; a restart reads that state back.)
#[test]
fn a_witness_killed_mid_request_never_cosigns_both_sides_of_a_fork() {
    use std::process::{Command, Stdio};
    let env = Env::new();
    env.keygen();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut w = Some(start_witness(&env, "w1", "key.pub", &listen));
    let target = format!("http://{listen}=w1.key.pub");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..8u64 {
        // Both sides append at once; the witness dies after a few milliseconds.
        let spawn = |log: &str, first: u64| {
            let mut child = Command::new(env!("CARGO_BIN_EXE_veritrail"))
                .current_dir(env.path(""))
                .args(["append", log, "--key", "key", "--witness", &target])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let lines = join(&events(first..first + 2));
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), lines.as_bytes()).unwrap();
            child
        };
        let mut a = spawn("a", round * 2);
        let mut b = spawn("b", 1_000 + round * 2);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(seed % 40));
        drop(w.take()); // SIGKILL
        assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
        w = Some(start_witness(&env, "w1", "key.pub", &listen));
    }
    // One last, undisturbed round: whichever side the witness has not seen yet is refused.
    for (log, first) in [("a", 500), ("b", 1_500)] {
        env.ok(
            &["append", log, "--key", "key", "--witness", &target],
            join(&events(first..first + 1)).as_bytes(),
        );
    }
    drop(w);
    // Which side holds a cosignature on a checkpoint that covers records?
    let w1 = CosignatureVerifier::from_text(&env.read("w1.key.pub")).unwrap();
    let cosigned_with_records = |log: &str| {
        let history = Log::open_read_only(&env.path(log))
            .unwrap()
            .checkpoint_history()
            .unwrap();
        history.iter().any(|note| {
            let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            size > 0
                && !cosignatures(note, std::slice::from_ref(&w1))
                    .unwrap()
                    .is_empty()
        })
    };
    let (a, b) = (cosigned_with_records("a"), cosigned_with_records("b"));
    assert!(a != b, "cosigned: a {a}, b {b}: exactly one side must be");
    // And verify agrees: at most one side verifies with the witness past size 0.
    for (log, cosigned) in [("a", a), ("b", b)] {
        let out = env.run(
            &["verify", log, "--key", "key.pub", "--witness", "w1.key.pub"],
            b"",
        );
        if cosigned {
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
}

/// `--access-log`: every request to the witness is recorded through the audit layer, with
/// the log it was for and the answer (cosigned, or refused as a fork).
#[test]
fn every_request_to_the_witness_is_recorded_in_its_access_log() {
    use std::process::{Command, Stdio};
    let env = Env::new();
    env.keygen();
    env.keygen_as("witness.example/access", "access.key");
    env.ok(&["keygen", "w1", "--witness", "--out", "w1.key"], b"");
    env.write(
        "w1-logs.toml",
        format!(
            "[[log]]\norigin = \"{}\"\nkey = \"{}\"\n",
            common::KEY_NAME,
            env.read("key.pub").trim()
        ),
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_veritrail"));
    command.current_dir(env.path("")).args([
        "witness",
        "--listen",
        "127.0.0.1:0",
        "--key",
        "w1.key",
        "--logs",
        "w1-logs.toml",
        "--state",
        "w1-state",
        "--access-log",
        "access",
        "--access-key",
        "access.key",
    ]);
    let (mut child, addr) = common::start_server(&mut command, "witness");
    let target = format!("http://{addr}=w1.key.pub");
    env.ok(
        &["append", "log", "--key", "key", "--witness", &target],
        join(&events(0..2)).as_bytes(),
    );
    // A fork of it is refused (409), and that is recorded too.
    env.ok(
        &["append", "fork", "--key", "key", "--witness", &target],
        join(&events(50..52)).as_bytes(),
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    env.ok(&["verify", "access", "--key", "access.key.pub"], b"");
    let out = env.ok(
        &[
            "events",
            "access",
            "--json",
            "--action",
            "witness.add_checkpoint",
        ],
        b"",
    );
    let statuses: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|e| assert_eq!(e["target"], common::KEY_NAME, "{e}"))
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&409), "{statuses:?}");
}
