//! A writer reopening a tampered log refuses it rather than sign over what was forged: the
//! red team's laundering attack (a record changed with a correct checksum, the checkpoint
//! files deleted, the log reopened for append), its variants, and the `--recover` way out.

mod tamper_util;

use std::path::Path;

use tamper_util::{Snapshot, build, copy_dir, frames, put, record, rewrite_segment, signer};
use veritrail_log::merkle;
use veritrail_log::note::NoteSigner;
use veritrail_log::store::LogError;
use veritrail_log::verify::{VerifyOptions, verify_dir};
use veritrail_log::{Checkpoint, Log, LogOptions};

const RECORDS: u64 = 24;

fn opts() -> LogOptions {
    LogOptions::default().segment_bytes(160)
}

fn records() -> Vec<Vec<u8>> {
    (0..RECORDS).map(record).collect()
}

/// The log with `signed` of the 24 records under its last checkpoint (several segments).
fn fixture(signed: usize) -> (tempfile::TempDir, NoteSigner, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    build(dir.path(), &signer, &records(), signed, opts());
    let snap = Snapshot::take(dir.path());
    assert!(snap.segments().len() >= 4);
    (dir, signer, snap)
}

/// Changes record `index` in its segment (same length, frame checksum made valid), as an
/// attacker without the key would.
fn forge(dir: &Path, snap: &Snapshot, index: u64) {
    let mut first = 0u64;
    for seg in snap.segments() {
        let mut recs = frames(&snap.0[&seg]);
        let n = recs.len() as u64;
        if index < first + n {
            let r = &mut recs[(index - first) as usize];
            let at = r.iter().position(u8::is_ascii_digit).unwrap();
            r[at] = if r[at] == b'9' { b'8' } else { b'9' };
            rewrite_segment(&seg, &recs);
            return;
        }
        first += n;
    }
    panic!("no record {index} in {}", dir.display());
}

fn remove_checkpoints(dir: &Path) {
    for name in ["checkpoint", "checkpoints"] {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
}

/// The history is missing or empty.
fn no_checkpoint_signed(dir: &Path) -> bool {
    std::fs::read(dir.join("checkpoints")).map_or(true, |h| h.is_empty())
}

fn open(dir: &Path, signer: &NoteSigner) -> Result<Log, LogError> {
    Log::open(dir, signer.clone(), opts())
}

fn open_recover(dir: &Path, signer: &NoteSigner) -> Result<Log, LogError> {
    let opts = opts().recover(true);
    Log::open(dir, signer.clone(), opts)
}

#[test]
fn a_forged_record_with_the_checkpoints_deleted_is_not_signed() {
    // The red team's attack, on a record in a sealed segment and in the newest one.
    let (dir, signer, snap) = fixture(RECORDS as usize);
    for index in [3, RECORDS - 1] {
        snap.restore(dir.path());
        forge(dir.path(), &snap, index);
        remove_checkpoints(dir.path());
        // Refused, naming the record (with or without --recover).
        for recover in [false, true] {
            let opened = if recover {
                open_recover(dir.path(), &signer)
            } else {
                open(dir.path(), &signer)
            };
            match opened.unwrap_err() {
                LogError::Corrupt { index: i, .. } => assert_eq!(i, index),
                e => panic!("record {index}, recover {recover}: {e}"),
            }
        }
        // Nothing was written: no checkpoint appeared.
        assert!(no_checkpoint_signed(dir.path()));
    }
}

#[test]
fn a_forged_record_and_its_hashes_under_the_kept_checkpoints_is_refused() {
    // The variant: records and every derived file rebuilt consistently; the writer's own
    // signed checkpoint disagrees with the stored tree, so it would sign an inconsistent one.
    let (dir, signer, _snap) = fixture(RECORDS as usize);
    let mut forged = records();
    forged[5] = b"{\"forged\":true}".to_vec();
    let scratch = tempfile::tempdir().unwrap();
    build(scratch.path(), &signer, &forged, forged.len(), opts());
    for sub in ["segments", "tree"] {
        std::fs::remove_dir_all(dir.path().join(sub)).unwrap();
        copy_dir(&scratch.path().join(sub), &dir.path().join(sub));
    }
    std::fs::copy(scratch.path().join("offsets"), dir.path().join("offsets")).unwrap();
    let err = open(dir.path(), &signer).unwrap_err();
    assert!(matches!(err, LogError::Damaged { .. }), "{err}");
    // With the checkpoints removed as well: refused (only an explicit --recover would adopt
    // it, and record that it did).
    remove_checkpoints(dir.path());
    assert!(matches!(
        open(dir.path(), &signer),
        Err(LogError::NoCheckpointHistory { .. })
    ));
}

#[test]
fn recover_adopts_a_log_without_history_and_says_so() {
    let (dir, signer, _snap) = fixture(RECORDS as usize);
    remove_checkpoints(dir.path());
    let err = open(dir.path(), &signer).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::NoCheckpointHistory {
                records: RECORDS,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--recover"), "{err}");
    assert!(no_checkpoint_signed(dir.path()));
    let mut log = open_recover(dir.path(), &signer).unwrap();
    let r = log.recovered().expect("reported");
    assert_eq!((r.unsigned_adopted, r.bytes_cut), (RECORDS, 0));
    log.append(b"{\"after\":\"recovery\"}").unwrap();
    log.close().unwrap();
    let report = verify_dir(dir.path(), &signer.verifier(), &VerifyOptions::default()).unwrap();
    assert_eq!(report.records, RECORDS + 1);
    // Once signed again, the log opens normally.
    let log = open(dir.path(), &signer).unwrap();
    assert_eq!(log.recovered(), None);
}

#[test]
fn records_altered_after_the_last_checkpoint_are_refused() {
    // 5 records signed, 19 synced after (their hashes stored): a record after the checkpoint
    // changed in a sealed segment and in the newest one.
    let (dir, signer, snap) = fixture(5);
    for index in [8, RECORDS - 2] {
        snap.restore(dir.path());
        forge(dir.path(), &snap, index);
        match open(dir.path(), &signer).unwrap_err() {
            LogError::Corrupt { index: i, .. } => assert_eq!(i, index),
            e => panic!("record {index}: {e}"),
        }
    }
    // A stored interior hash changed after the checkpoint.
    snap.restore(dir.path());
    let level1 = dir.path().join("tree/level-01.hashes");
    let mut data = snap.0[&level1].clone();
    let last = data.len() - 1;
    data[last] ^= 1;
    put(&level1, &data);
    let err = open(dir.path(), &signer).unwrap_err();
    assert!(matches!(err, LogError::Damaged { .. }), "{err}");
    // Zero bytes after the stored hashes (a crash extended the file) are not tampering.
    snap.restore(dir.path());
    let level0 = dir.path().join("tree/level-00.hashes");
    let mut data = snap.0[&level0].clone();
    data.extend([0u8; 40]);
    put(&level0, &data);
    let log = open(dir.path(), &signer).unwrap();
    assert_eq!(log.size(), RECORDS);
}

#[test]
fn a_checkpoint_the_log_did_not_sign_is_refused() {
    // An attacker appends a checkpoint of a forged tree, signed by a key of their own with
    // the log's name, to the history and as the latest.
    let (dir, signer, _snap) = fixture(RECORDS as usize);
    let attacker = NoteSigner::generate(signer.name()).unwrap();
    let origin = Log::open_read_only(dir.path()).unwrap().origin().to_owned();
    let forged = Checkpoint {
        origin,
        size: RECORDS,
        root: merkle::leaf_hash(b"forged"),
        extensions: Vec::new(),
    }
    .sign(&attacker)
    .unwrap();
    let mut history = std::fs::read(dir.path().join("checkpoints")).unwrap();
    history.extend(format!("checkpoint {}\n{forged}", forged.len()).bytes());
    put(&dir.path().join("checkpoints"), &history);
    put(&dir.path().join("checkpoint"), &forged);
    let err = open(dir.path(), &signer).unwrap_err();
    assert!(
        matches!(&err, LogError::Damaged { reason, .. } if reason.contains("does not verify")),
        "{err}"
    );
}

#[test]
fn an_older_checkpoint_file_is_refused_by_the_writer_and_the_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let mut log = open(dir.path(), &signer).unwrap();
    let mut signed = vec![log.latest_checkpoint().unwrap().unwrap()];
    for i in 0..3 {
        log.append(&record(i)).unwrap();
        signed.push(log.checkpoint().unwrap());
    }
    drop(log);
    let latest = dir.path().join("checkpoint");
    let verify = || verify_dir(dir.path(), &signer.verifier(), &VerifyOptions::default());
    verify().unwrap();

    // Replaced by an older signed one: both refuse, naming it.
    put(&latest, &signed[1]);
    let err = verify().unwrap_err();
    assert!(err.to_string().contains("not the latest"), "{err}");
    let err = open(dir.path(), &signer).unwrap_err();
    assert!(
        matches!(&err, LogError::Damaged { path, .. } if path == &latest),
        "{err}"
    );
    // Removed while the history holds several: refused.
    std::fs::remove_file(&latest).unwrap();
    assert!(open(dir.path(), &signer).is_err());
    // The one before the last is what a crash between the two writes leaves: the writer
    // repairs it.
    put(&latest, &signed[2]);
    drop(open(dir.path(), &signer).unwrap());
    assert_eq!(std::fs::read_to_string(&latest).unwrap(), signed[3]);
    verify().unwrap();
}
