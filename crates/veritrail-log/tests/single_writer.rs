//! One writer per log, and only through the log's own files: the lock cannot be pulled away
//! (`rm LOCK`), a writer notices a directory replaced behind it or a second process writing,
//! and no file of the log is followed through a symbolic link.

mod tamper_util;

use std::os::unix::fs::symlink;
use std::path::Path;

use tamper_util::{record, signer};
use veritrail_log::note::NoteSigner;
use veritrail_log::store::LogError;
use veritrail_log::verify::{VerifyOptions, verify_dir};
use veritrail_log::{Log, LogOptions};

fn open(dir: &Path, signer: &NoteSigner) -> Result<Log, LogError> {
    Log::open(dir, signer.clone(), LogOptions::default())
}

fn verify(dir: &Path, signer: &NoteSigner) -> u64 {
    verify_dir(dir, &signer.verifier(), &VerifyOptions::default())
        .unwrap()
        .records
}

#[test]
fn removing_the_lock_file_does_not_let_a_second_writer_in() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let mut a = open(dir.path(), &signer).unwrap();
    a.append(&record(0)).unwrap();
    a.checkpoint().unwrap();
    std::fs::remove_file(dir.path().join("LOCK")).unwrap();
    let err = open(dir.path(), &signer).unwrap_err();
    assert!(matches!(err, LogError::Locked { .. }), "{err}");
    // A goes on, and nothing it acknowledged is overwritten.
    a.append(&record(1)).unwrap();
    a.close().unwrap();
    assert_eq!(verify(dir.path(), &signer), 2);
    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(log.read(0).unwrap(), record(0));
    assert_eq!(log.read(1).unwrap(), record(1));
}

#[test]
fn a_directory_replaced_behind_the_writer_stops_it() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let signer = signer();
    let mut a = open(&dir, &signer).unwrap();
    a.append(&record(0)).unwrap();
    a.sync().unwrap();
    // Moved away and replaced by a copy, which a second writer then opens.
    let moved = parent.path().join("moved");
    std::fs::rename(&dir, &moved).unwrap();
    tamper_util::copy_dir(&moved, &dir);
    let mut b = open(&dir, &signer).unwrap();
    a.append(&record(1)).unwrap();
    let err = a.sync().unwrap_err();
    assert!(err.to_string().contains("no longer the directory"), "{err}");
    assert!(a.is_failed());
    assert!(matches!(a.checkpoint(), Err(LogError::Failed { .. })));
    b.append(&record(2)).unwrap();
    b.close().unwrap();
    drop(a);
    assert_eq!(verify(&dir, &signer), 2);
    assert_eq!(
        Log::open_read_only(&dir).unwrap().read(1).unwrap(),
        record(2)
    );
}

#[test]
fn bytes_written_by_another_process_are_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let mut a = open(dir.path(), &signer).unwrap();
    a.append(&record(0)).unwrap();
    a.sync().unwrap();
    let segment = dir.path().join("segments/00000000000000000000.seg");
    let before = std::fs::read(&segment).unwrap();
    let mut theirs = before.clone();
    theirs.extend(tamper_util::frame(b"{\"someone\":\"else\"}"));
    tamper_util::put(&segment, &theirs);
    a.append(&record(1)).unwrap();
    let err = a.sync().unwrap_err();
    assert!(err.to_string().contains("another process"), "{err}");
    assert!(a.is_failed());
    drop(a);
    assert_eq!(std::fs::read(&segment).unwrap(), theirs);
}

#[test]
fn no_file_of_the_log_is_followed_through_a_symlink() {
    let signer = signer();
    for name in [
        "LOCK",
        "checkpoints",
        "checkpoint",
        "offsets",
        "tree/level-00.hashes",
        "segments/00000000000000000000.seg",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), &signer).unwrap();
        log.append(&record(0)).unwrap();
        log.close().unwrap();
        let target = dir.path().join("elsewhere");
        let path = dir.path().join(name);
        std::fs::rename(&path, &target).unwrap();
        let victim = std::fs::read(&target).unwrap();
        symlink(&target, &path).unwrap();
        let err = open(dir.path(), &signer).expect_err(name);
        assert!(err.to_string().contains("symbolic link"), "{name}: {err}");
        assert_eq!(std::fs::read(&target).unwrap(), victim, "{name}");
    }
    // Directories too.
    for name in ["segments", "tree"] {
        let dir = tempfile::tempdir().unwrap();
        open(dir.path(), &signer).unwrap().close().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::rename(dir.path().join(name), &target).unwrap();
        symlink(&target, dir.path().join(name)).unwrap();
        let err = open(dir.path(), &signer).expect_err(name);
        assert!(err.to_string().contains("symbolic link"), "{name}: {err}");
    }
    // A planted temporary of the checkpoint file is replaced, not written through.
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let mut log = open(dir.path(), &signer).unwrap();
    symlink(&victim, dir.path().join(".checkpoint.tmp")).unwrap();
    log.append(&record(0)).unwrap();
    log.close().unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(verify(dir.path(), &signer), 1);
}
