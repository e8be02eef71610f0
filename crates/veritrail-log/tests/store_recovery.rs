//! Crash recovery: a torn final record is cut (and reported), anything else is refused.

mod tamper_util;

use tamper_util::{HEADER, Snapshot, build, frame, put, record, signer};
use veritrail_log::merkle;
use veritrail_log::store::LogError;
use veritrail_log::verify::{VerifyOptions, verify_dir};
use veritrail_log::{Log, LogOptions};

fn records(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(record).collect()
}

/// One segment, 8 records: 5 signed by a checkpoint, 3 synced after it.
fn torn_tail_setup() -> (tempfile::TempDir, Vec<Vec<u8>>, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(8);
    build(
        dir.path(),
        &signer_for(&dir),
        &recs,
        5,
        LogOptions::default(),
    );
    let snap = Snapshot::take(dir.path());
    (dir, recs, snap)
}

// One key per test directory, kept beside it so reopening uses the same key.
fn signer_for(dir: &tempfile::TempDir) -> veritrail_log::NoteSigner {
    let path = dir.path().with_extension("key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return veritrail_log::NoteSigner::from_text(&text).unwrap();
    }
    let s = signer();
    put(&path, s.to_text().as_str());
    s
}

#[test]
fn a_torn_last_record_is_cut_at_every_byte_offset() {
    let (dir, recs, snap) = torn_tail_setup();
    let signer = signer_for(&dir);
    let seg = snap.segments()[0].clone();
    let full = snap.0[&seg].clone();
    let last_start = full.len() - frame(&recs[7]).len();
    let expected_root = merkle::root_of_leaves(&tamper_util::leaves(&recs[..7]));
    for cut in last_start..full.len() {
        snap.restore(dir.path());
        put(&seg, &full[..cut]);

        // The verifier reports the tail and verifies the rest.
        let report = verify_dir(dir.path(), &signer.verifier(), &VerifyOptions::default())
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(report.records, 7, "cut at {cut}");
        assert!(report.recovered_tail, "cut at {cut}");
        assert_eq!(report.root, expected_root);

        // A read-only open sees the same and changes nothing.
        let ro = Log::open_read_only(dir.path()).unwrap();
        assert_eq!((ro.size(), ro.root()), (7, expected_root));
        drop(ro);
        assert_eq!(std::fs::read(&seg).unwrap().len(), cut);

        // The writer cuts it, reports it, and appends after it.
        let mut log = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap();
        let rec = log.recovered().expect("recovery reported").clone();
        assert_eq!(rec.segment, seg);
        assert_eq!(rec.offset, last_start as u64, "cut at {cut}");
        assert_eq!(rec.bytes_cut, (cut - last_start) as u64, "cut at {cut}");
        // The record had been synced, so its stored hash is dropped too.
        assert_eq!(rec.hashes_dropped, 1, "cut at {cut}");
        assert_eq!(
            std::fs::read(&seg).unwrap().len(),
            last_start,
            "truncated on disk"
        );
        assert_eq!((log.size(), log.root()), (7, expected_root));
        log.append(b"{\"recovered\":true}").unwrap();
        log.close().unwrap();
        let log = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap();
        assert_eq!(log.recovered(), None);
        assert_eq!(log.read(7).unwrap(), b"{\"recovered\":true}");
        drop(log);
        let report = verify_dir(dir.path(), &signer.verifier(), &VerifyOptions::default()).unwrap();
        assert_eq!((report.records, report.recovered_tail), (8, false));
    }
}

#[test]
fn a_crash_mid_append_leaves_a_tail_that_is_cut_or_kept_whole() {
    // What a crash really leaves: part of a frame past the last synced record, no hashes.
    let (dir, recs, snap) = torn_tail_setup();
    let signer = signer_for(&dir);
    let seg = snap.segments()[0].clone();
    let extra = frame(b"{\"never\":\"synced\"}");
    for cut in 1..=extra.len() {
        snap.restore(dir.path());
        let mut data = snap.0[&seg].clone();
        data.extend(&extra[..cut]);
        put(&seg, &data);
        let log = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap();
        if cut == extra.len() {
            // The whole frame reached the disk: it is a record, its hashes are rebuilt.
            assert_eq!(log.recovered(), None);
            assert_eq!(log.size(), 9);
            assert_eq!(log.read(8).unwrap(), b"{\"never\":\"synced\"}");
        } else {
            let rec = log.recovered().expect("torn tail");
            assert_eq!((rec.bytes_cut, rec.hashes_dropped), (cut as u64, 0));
            assert_eq!(log.size(), 8);
            let all = tamper_util::leaves(&recs);
            assert_eq!(log.root(), merkle::root_of_leaves(&all));
        }
    }
    // A zero-filled tail (a file extended, never written) is torn too.
    snap.restore(dir.path());
    let mut data = snap.0[&seg].clone();
    data.extend([0u8; 4096]);
    put(&seg, &data);
    let log = Log::open(dir.path(), signer, LogOptions::default()).unwrap();
    assert_eq!(log.recovered().map(|r| r.bytes_cut), Some(4096));
    assert_eq!(log.size(), 8);
}

#[test]
fn lost_hashes_are_rebuilt_from_the_records() {
    let (dir, recs, snap) = torn_tail_setup();
    let signer = signer_for(&dir);
    let expected = merkle::root_of_leaves(&tamper_util::leaves(&recs));
    // Hashes and offsets of the unsigned records never reached the disk.
    let level0 = dir.path().join("tree/level-00.hashes");
    put(&level0, &snap.0[&level0][..5 * 32]);
    let offsets = dir.path().join("offsets");
    put(&offsets, &snap.0[&offsets][..6 * 8]);
    let report = verify_dir(dir.path(), &signer.verifier(), &VerifyOptions::default()).unwrap();
    assert_eq!((report.records, report.unhashed_records), (8, 3));
    assert_eq!(report.root, expected);
    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!((log.size(), log.root()), (8, expected));
    let log = Log::open(dir.path(), signer, LogOptions::default()).unwrap();
    assert_eq!(log.recovered(), None);
    assert_eq!(log.root(), expected);
    for i in 0..8 {
        assert_eq!(log.read(i).unwrap(), recs[i as usize]);
    }
    drop(log);
    assert_eq!(std::fs::read(&level0).unwrap(), snap.0[&level0]);
}

#[test]
fn hashes_a_sync_deferred_are_rebuilt_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer_for(&dir);
    let recs = records(10);
    let mut log = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap();
    for r in &recs {
        log.append(r).unwrap();
    }
    log.sync().unwrap();
    // Synced, so every record is durable; read back and proven from memory.
    assert_eq!(log.read(9).unwrap(), recs[9]);
    let expected = merkle::root_of_leaves(&tamper_util::leaves(&recs));
    assert_eq!(log.root(), expected);
    // The process dies now: no drop, no close. Small syncs leave the hashes and offsets of
    // the newest segment to a later write.
    std::mem::forget(log);
    let level0 = std::fs::metadata(dir.path().join("tree/level-00.hashes")).map_or(0, |m| m.len());
    assert!(level0 < 10 * 32, "level 0 holds {level0} bytes");

    let report = verify_dir(dir.path(), &signer.verifier(), &VerifyOptions::default()).unwrap();
    assert_eq!((report.records, report.root), (10, expected));
    let log = Log::open_read_only(dir.path()).unwrap();
    assert_eq!((log.size(), log.root()), (10, expected));
    drop(log);
    // The dead process's lock is still held in this one: reopen a copy, as a restarted
    // writer would find the files.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let log = Log::open(copy.path(), signer, LogOptions::default()).unwrap();
    assert_eq!(log.recovered(), None);
    assert_eq!((log.size(), log.root()), (10, expected));
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(&log.read(i as u64).unwrap(), r);
    }
    // Closing writes them.
    log.close().unwrap();
    let level0 = std::fs::metadata(copy.path().join("tree/level-00.hashes"))
        .unwrap()
        .len();
    assert_eq!(level0, 10 * 32);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn damage_that_is_not_a_torn_tail_is_an_error_naming_the_place() {
    let (dir, recs, snap) = torn_tail_setup();
    let signer = signer_for(&dir);
    let seg = snap.segments()[0].clone();
    let full = snap.0[&seg].clone();
    // A bad checksum in the middle of the newest segment: record 6, followed by record 7.
    let at = full.len() - frame(&recs[7]).len() - 2;
    let mut data = full.clone();
    data[at] ^= 0x01;
    put(&seg, &data);
    match Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap_err() {
        LogError::Corrupt {
            segment,
            offset,
            index,
            ..
        } => {
            assert_eq!((segment, index), (seg.clone(), 6));
            assert_eq!(
                offset as usize,
                full.len() - frame(&recs[7]).len() - frame(&recs[6]).len()
            );
        }
        other => panic!("{other}"),
    }
    // Nothing was changed by the refused open.
    assert_eq!(std::fs::read(&seg).unwrap(), data);

    // A cut inside the signed records (checkpoint at 5): refused, not "recovered".
    snap.restore(dir.path());
    let signed_end = HEADER + (0..5).map(|i| frame(&recs[i]).len()).sum::<usize>();
    put(&seg, &full[..signed_end - 3]);
    let err = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { index: 4, .. }), "{err}");
    // Cut exactly at a frame boundary inside the signed part: records missing.
    put(&seg, &full[..signed_end - frame(&recs[4]).len()]);
    let err = Log::open(dir.path(), signer, LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { index: 4, .. }), "{err}");
}

#[test]
fn an_interrupted_rotation_and_an_interrupted_checkpoint_recover() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer_for(&dir);
    let opts = LogOptions::default().segment_bytes(100);
    let recs = records(6);
    build(dir.path(), &signer, &recs, 6, opts.clone());
    let snap = Snapshot::take(dir.path());
    let expected = merkle::root_of_leaves(&tamper_util::leaves(&recs));

    // A new segment whose header never reached the disk.
    let next = dir.path().join("segments/00000000000000000006.seg");
    put(&next, [b'V', b'T', b'L']);
    let mut log = Log::open(dir.path(), signer.clone(), opts.clone()).unwrap();
    assert_eq!(log.recovered().map(|r| r.bytes_cut), Some(3));
    assert_eq!((log.size(), log.root()), (6, expected));
    log.append(b"{\"after\":1}").unwrap();
    log.close().unwrap();
    assert_eq!(
        Log::open_read_only(dir.path()).unwrap().read(6).unwrap(),
        b"{\"after\":1}"
    );

    // A checkpoint whose history entry was cut short: dropped, the previous one stands.
    snap.restore(dir.path());
    let history = dir.path().join("checkpoints");
    let mut h = snap.0[&history].clone();
    h.extend(b"checkpoint 180\nexample.com/tamper\n7\n");
    put(&history, &h);
    let log = Log::open(dir.path(), signer.clone(), opts).unwrap();
    assert_eq!(log.checkpoint_history().unwrap().len(), 2); // the empty tree, then size 6
    drop(log);
    assert_eq!(std::fs::read(&history).unwrap(), snap.0[&history]);
    verify_dir(dir.path(), &signer.verifier(), &VerifyOptions::default()).unwrap();
}
