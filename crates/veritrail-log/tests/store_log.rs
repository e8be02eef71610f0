//! The on-disk log: append, reopen, read, proofs, rotation, checkpoints, failure.

use std::path::Path;

use veritrail_log::checkpoint::Checkpoint;
use veritrail_log::merkle::{self, Hash};
use veritrail_log::note::NoteSigner;
use veritrail_log::store::{LogError, StorageFault};
use veritrail_log::{Log, LogOptions};

fn signer() -> NoteSigner {
    NoteSigner::generate("example.com/test-log").unwrap()
}

fn record(i: u64) -> Vec<u8> {
    // Varying lengths, including empty records.
    let len = (i * 7 % 23) as usize;
    let mut r = format!("{{\"i\":{i}}}").into_bytes();
    r.extend(std::iter::repeat_n(b'x', len));
    if i % 11 == 5 {
        r.clear();
    }
    r
}

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| merkle::leaf_hash(&record(i))).collect()
}

fn small_segments() -> LogOptions {
    LogOptions::default().segment_bytes(200)
}

/// Checks every read and proof of a log holding records 0..n.
fn check_everything(log: &Log, n: u64) {
    let all = leaves(n);
    assert_eq!(log.size(), n);
    assert_eq!(log.root(), merkle::root_of_leaves(&all));
    for i in 0..n {
        assert_eq!(log.read(i).unwrap(), record(i), "read {i}");
    }
    let listed: Vec<(u64, Vec<u8>)> = log.records(0).map(Result::unwrap).collect();
    assert_eq!(listed.len() as u64, n);
    for (i, r) in listed {
        assert_eq!(r, record(i));
    }
    for size in 1..=n {
        let root = merkle::root_of_leaves(&all[..size as usize]);
        assert_eq!(log.root_at(size).unwrap(), root, "root at {size}");
        for index in 0..size {
            let proof = log.inclusion_proof(index, size).unwrap();
            merkle::verify_inclusion(&all[index as usize], index, size, &proof, &root)
                .unwrap_or_else(|e| panic!("inclusion {index} in {size}: {e}"));
        }
        for old in 1..size {
            let proof = log.consistency_proof(old, size).unwrap();
            let old_root = merkle::root_of_leaves(&all[..old as usize]);
            merkle::verify_consistency(old, size, &proof, &old_root, &root)
                .unwrap_or_else(|e| panic!("consistency {old} -> {size}: {e}"));
        }
    }
}

#[test]
fn append_reopen_and_prove_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let n = 40;
    {
        let mut log = Log::open(dir.path(), signer.clone(), small_segments()).unwrap();
        for i in 0..n {
            assert_eq!(log.append(&record(i)).unwrap(), i);
            // Before and after syncing, at every size: proofs see buffered data too.
            if i % 3 == 0 {
                log.sync().unwrap();
            }
            check_everything(&log, i + 1);
        }
        log.close().unwrap();
    }
    let segments = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .count();
    assert!(
        segments > 5,
        "rotation at 200 bytes made {segments} segments"
    );
    let log = Log::open(dir.path(), signer.clone(), small_segments()).unwrap();
    assert_eq!(log.recovered(), None);
    check_everything(&log, n);
    drop(log);
    let ro = Log::open_read_only(dir.path()).unwrap();
    check_everything(&ro, n);
    assert!(matches!(ro.read(n), Err(LogError::OutOfRange { .. })));
}

#[test]
fn batches_and_single_appends_build_the_same_tree() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let signer = signer();
    let records: Vec<Vec<u8>> = (0..3000).map(|i| vec![i as u8; 100 + i % 300]).collect();
    let mut one = Log::open(a.path(), signer.clone(), LogOptions::default()).unwrap();
    for r in &records {
        one.append(r).unwrap();
    }
    let mut batched = Log::open(b.path(), signer, LogOptions::default()).unwrap();
    // Large enough (> 256 KiB) to take the two-thread hashing path.
    let range = batched
        .append_batch(records.iter().map(Vec::as_slice))
        .unwrap();
    assert_eq!(range, 0..3000);
    assert_eq!(one.root(), batched.root());
    let all: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
    assert_eq!(one.root(), merkle::root_of_leaves(&all));
    batched.sync().unwrap();
    assert_eq!(batched.read(2999).unwrap(), records[2999]);
}

#[test]
fn checkpoints_are_signed_stored_and_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let verifier = signer.verifier();
    let opts = LogOptions::default()
        .origin(Some("example.com/audit/api-1".into()))
        .checkpoint_every(Some(10));
    let mut log = Log::open(dir.path(), signer.clone(), opts.clone()).unwrap();
    // A new log starts with a signed checkpoint of the empty tree.
    let empty = log
        .latest_checkpoint()
        .unwrap()
        .expect("the empty tree is signed");
    let empty = Checkpoint::open(&empty, &verifier).unwrap();
    assert_eq!((empty.size, empty.root), (0, merkle::empty_root()));
    for i in 0..25 {
        log.append(&record(i)).unwrap();
        log.sync().unwrap();
    }
    // Every 10 records, during sync.
    let history = log.checkpoint_history().unwrap();
    let sizes: Vec<u64> = history
        .iter()
        .map(|t| Checkpoint::open(t, &verifier).unwrap().size)
        .collect();
    assert_eq!(sizes, vec![0, 10, 20]);
    let text = log.checkpoint().unwrap();
    let cp = Checkpoint::open(&text, &verifier).unwrap();
    assert_eq!(cp.origin, "example.com/audit/api-1");
    assert_eq!((cp.size, cp.root), (25, log.root()));
    assert_eq!(
        log.latest_checkpoint().unwrap().as_deref(),
        Some(text.as_str())
    );
    // Nothing new: the same checkpoint, no new history entry.
    assert_eq!(log.checkpoint().unwrap(), text);
    assert_eq!(log.checkpoint_history().unwrap().len(), 4);
    log.close().unwrap();
    let on_disk = std::fs::read_to_string(dir.path().join("checkpoint")).unwrap();
    assert_eq!(on_disk, text);

    // The private key is never stored.
    let secret = signer.to_text();
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(secret.as_str()),
            "{} holds the private key",
            entry.display()
        );
        assert!(!hay.contains("PRIVATE+KEY"), "{}", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn refuses_to_sign_a_checkpoint_inconsistent_with_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let mut log = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap();
    for i in 0..8 {
        log.append(&record(i)).unwrap();
    }
    log.close().unwrap();
    // Replace the stored checkpoint with one (validly signed) for a different tree of size 5.
    let forged = Checkpoint {
        origin: "example.com/test-log".into(),
        size: 5,
        root: merkle::leaf_hash(b"another history"),
        extensions: vec![],
    }
    .sign(&signer)
    .unwrap();
    let mut history = std::fs::read(dir.path().join("checkpoints")).unwrap();
    history.extend(format!("checkpoint {}\n{forged}", forged.len()).into_bytes());
    std::fs::write(dir.path().join("checkpoints"), history).unwrap();
    std::fs::write(dir.path().join("checkpoint"), &forged).unwrap();
    // Opening notices the stored tree disagrees with the latest checkpoint.
    let err = Log::open(dir.path(), signer, LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Damaged { .. }), "{err}");
}

#[test]
fn wrong_key_wrong_origin_and_second_writer_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let log = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap();
    let err = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Locked { .. }), "{err}");
    // Readers are welcome while the writer runs.
    Log::open_read_only(dir.path()).unwrap();
    drop(log);
    let other = NoteSigner::generate("example.com/test-log").unwrap();
    let err = Log::open(dir.path(), other, LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::KeyMismatch { .. }), "{err}");
    let opts = LogOptions::default().origin(Some("elsewhere".into()));
    let err = Log::open(dir.path(), signer, opts).unwrap_err();
    assert!(matches!(err, LogError::OriginMismatch { .. }), "{err}");
    let err = Log::open_read_only(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, LogError::NotALog { .. }), "{err}");
}

#[test]
fn read_only_log_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    Log::open(dir.path(), signer(), LogOptions::default())
        .unwrap()
        .close()
        .unwrap();
    let mut ro = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.size(), 0);
    assert_eq!(ro.root(), merkle::empty_root());
    assert!(matches!(ro.append(b"x"), Err(LogError::ReadOnly)));
    assert!(matches!(ro.sync(), Err(LogError::ReadOnly)));
    assert!(matches!(ro.checkpoint(), Err(LogError::ReadOnly)));
}

#[test]
fn a_failed_fsync_fails_the_log_for_good() {
    for fault in [StorageFault::Sync, StorageFault::Write] {
        let dir = tempfile::tempdir().unwrap();
        let signer = signer();
        let mut log = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap();
        log.append(b"{\"a\":1}").unwrap();
        log.sync().unwrap();
        log.append(b"{\"a\":2}").unwrap();
        log.inject_fault(fault);
        let err = log.sync().unwrap_err();
        assert!(matches!(err, LogError::Io(_)), "{fault:?}: {err}");
        assert!(log.is_failed());
        // No retry: every later write is refused.
        assert!(matches!(log.sync(), Err(LogError::Failed { .. })));
        assert!(matches!(log.append(b"{}"), Err(LogError::Failed { .. })));
        assert!(matches!(log.checkpoint(), Err(LogError::Failed { .. })));
        assert!(matches!(log.close(), Err(LogError::Failed { .. })));
        // Reopening recovers what reached the disk: at least the synced record.
        let log = Log::open(dir.path(), signer, LogOptions::default()).unwrap();
        assert!(log.size() >= 1, "{fault:?}");
        assert_eq!(log.read(0).unwrap(), b"{\"a\":1}");
    }
}

#[test]
fn oversized_records_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), signer(), LogOptions::default()).unwrap();
    let big = vec![0u8; (64 << 20) + 1];
    let err = log
        .append_batch([b"ok".as_slice(), big.as_slice()])
        .unwrap_err();
    assert!(matches!(err, LogError::RecordTooLarge { .. }), "{err}");
    assert_eq!(log.size(), 0);
}

#[test]
fn a_log_can_move_to_the_writer_thread() {
    fn send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), signer(), LogOptions::default()).unwrap();
    send(&log);
    let handle = std::thread::spawn(move || {
        let mut log = log;
        log.append(b"{}").unwrap();
        log.close().unwrap();
    });
    handle.join().unwrap();
    assert_eq!(Log::open_read_only(dir.path()).unwrap().size(), 1);
}

mod reopening {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        Append(Vec<u8>),
        Sync,
        Checkpoint,
        /// Drop without close (a clean process exit that skipped `close`).
        Drop,
        Close,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => proptest::collection::vec(any::<u8>(), 0..90).prop_map(Step::Append),
            1 => Just(Step::Sync),
            1 => Just(Step::Checkpoint),
            1 => Just(Step::Drop),
            1 => Just(Step::Close),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any mix of appends, syncs, checkpoints, reopens and rotations keeps every record,
        /// the root and the proofs right.
        #[test]
        fn any_history_of_appends_and_reopens(
            steps in proptest::collection::vec(step(), 1..60),
            segment_bytes in 40u64..400,
            probe in any::<u64>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let signer = signer();
            let opts = LogOptions::default().segment_bytes(segment_bytes);
            let mut records: Vec<Vec<u8>> = Vec::new();
            let mut log = Some(Log::open(dir.path(), signer.clone(), opts.clone()).unwrap());
            for step in steps {
                let l = match log.as_mut() {
                    Some(l) => l,
                    None => {
                        let reopened = Log::open(dir.path(), signer.clone(), opts.clone());
                        log.insert(reopened.unwrap())
                    }
                };
                prop_assert_eq!(l.recovered(), None);
                match step {
                    Step::Append(r) => {
                        prop_assert_eq!(l.append(&r).unwrap(), records.len() as u64);
                        records.push(r);
                    }
                    Step::Sync => l.sync().unwrap(),
                    Step::Checkpoint => {
                        l.checkpoint().unwrap();
                    }
                    Step::Drop => drop(log.take()),
                    Step::Close => log.take().unwrap().close().unwrap(),
                }
            }
            drop(log);
            let log = Log::open_read_only(dir.path()).unwrap();
            let leaves: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
            prop_assert_eq!(log.size(), records.len() as u64);
            prop_assert_eq!(log.root(), merkle::root_of_leaves(&leaves));
            for (i, r) in records.iter().enumerate() {
                prop_assert_eq!(&log.read(i as u64).unwrap(), r);
            }
            if !records.is_empty() {
                let size = probe % records.len() as u64 + 1;
                let index = probe / 7 % size;
                let root = merkle::root_of_leaves(&leaves[..size as usize]);
                let proof = log.inclusion_proof(index, size).unwrap();
                let leaf = &leaves[index as usize];
                prop_assert!(merkle::verify_inclusion(leaf, index, size, &proof, &root).is_ok());
            }
            let report = veritrail_log::verify::verify_dir(
                dir.path(),
                &signer.verifier(),
                &veritrail_log::verify::VerifyOptions::default(),
            )
            .unwrap();
            prop_assert_eq!(report.records, records.len() as u64);
        }
    }
}

#[test]
fn segments_also_rotate_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions::default().segment_max_age(Some(std::time::Duration::from_millis(30)));
    let mut log = Log::open(dir.path(), signer(), opts).unwrap();
    log.append(b"{\"a\":1}").unwrap();
    log.sync().unwrap();
    log.append(b"{\"a\":2}").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(40));
    log.sync().unwrap();
    log.append(b"{\"a\":3}").unwrap();
    log.close().unwrap();
    // The record appended after the segment aged starts a new one (on a slow machine the
    // first sync may already have found the first segment old, which starts one at 1 too).
    assert!(
        dir.path()
            .join("segments/00000000000000000002.seg")
            .exists()
    );
    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!(log.read(2).unwrap(), b"{\"a\":3}");
}
