//! The tamper suite: every alteration of a log is detected by the verifier, with the record
//! index or the checkpoint named; truncation and corruption at every byte offset either
//! recover (a torn tail) or are reported — never a panic, never silent acceptance.

mod tamper_util;

use std::path::{Path, PathBuf};

use tamper_util::{
    Snapshot, build, copy_dir, frames, leaves, put, record, rewrite_segment, signer,
};
use veritrail_log::merkle::{self, Hash};
use veritrail_log::note::{NoteSigner, NoteVerifier};
use veritrail_log::store::LogError;
use veritrail_log::verify::{VerifyError, VerifyOptions, VerifyReport, verify_dir};
use veritrail_log::{Log, LogOptions};

const RECORDS: u64 = 24;

struct Fixture {
    dir: tempfile::TempDir,
    signer: NoteSigner,
    records: Vec<Vec<u8>>,
    /// The last checkpoint, as an auditor would hold it.
    held: String,
    snap: Snapshot,
}

fn opts() -> LogOptions {
    LogOptions::default().segment_bytes(160)
}

/// 24 records in several segments, all signed.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let records: Vec<Vec<u8>> = (0..RECORDS).map(record).collect();
    let held = build(dir.path(), &signer, &records, records.len(), opts());
    let snap = Snapshot::take(dir.path());
    assert!(snap.segments().len() >= 4);
    Fixture {
        dir,
        signer,
        records,
        held,
        snap,
    }
}

impl Fixture {
    fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    fn verify(&self) -> Result<VerifyReport, VerifyError> {
        verify_dir(self.dir.path(), &self.verifier(), &VerifyOptions::default())
    }

    fn verify_against(&self) -> Result<VerifyReport, VerifyError> {
        let opts = VerifyOptions::default().against(vec![self.held.clone()]);
        verify_dir(self.dir.path(), &self.verifier(), &opts)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The records of every segment, by segment.
    fn segment_records(&self) -> Vec<(PathBuf, Vec<Vec<u8>>)> {
        self.snap
            .segments()
            .into_iter()
            .map(|p| {
                let recs = frames(&self.snap.0[&p]);
                (p, recs)
            })
            .collect()
    }

    /// Replaces the records with `records` and rebuilds every derived file (hashes, offsets,
    /// segments) consistently, as an attacker without the key would; the signed checkpoints
    /// stay.
    fn rewrite_records_and_hashes(&self, records: &[Vec<u8>]) {
        let scratch = tempfile::tempdir().unwrap();
        let mut log = Log::open(scratch.path(), self.signer.clone(), opts()).unwrap();
        for r in records {
            log.append(r).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        for sub in ["segments", "tree"] {
            std::fs::remove_dir_all(self.path(sub)).unwrap();
            copy_dir(&scratch.path().join(sub), &self.path(sub));
        }
        std::fs::copy(scratch.path().join("offsets"), self.path("offsets")).unwrap();
    }
}

fn expect_record(result: Result<VerifyReport, VerifyError>, index: u64, what: &str) {
    match result {
        // Records removed from the end: the checkpoint that covers them is named.
        Err(VerifyError::Checkpoint { size: Some(s), .. }) if s > index => {}
        Err(e) => assert_eq!(e.index(), Some(index), "{what}: wrong index in {e}"),
        Ok(r) => panic!("{what}: accepted ({r:?})"),
    }
}

fn expect_checkpoint(result: Result<VerifyReport, VerifyError>, what: &str) {
    match result {
        Err(VerifyError::Checkpoint { which, .. }) => assert!(!which.is_empty()),
        Err(e) => panic!("{what}: expected a checkpoint failure, got {e}"),
        Ok(r) => panic!("{what}: accepted ({r:?})"),
    }
}

fn expect_against(result: Result<VerifyReport, VerifyError>, what: &str) {
    match result {
        Err(VerifyError::Against { position, .. }) => assert_eq!(position, 1, "{what}"),
        Err(e) => panic!("{what}: expected an --against failure, got {e}"),
        Ok(r) => panic!("{what}: accepted ({r:?})"),
    }
}

#[test]
fn the_untouched_log_verifies() {
    let f = fixture();
    let report = f.verify_against().unwrap();
    assert_eq!(report.records, RECORDS);
    assert_eq!(report.root, merkle::root_of_leaves(&leaves(&f.records)));
    assert_eq!(report.against_checked, 1);
    assert_eq!(report.checkpoints_checked, 3); // the empty tree, size 24, and the latest
    assert!(!report.recovered_tail);
    // One thread gives the same answer.
    let one = VerifyOptions::default().threads(1);
    let one = one.against(vec![f.held.clone()]);
    assert_eq!(
        verify_dir(f.dir.path(), &f.verifier(), &one).unwrap(),
        report
    );
}

#[test]
fn flipping_any_byte_of_a_record_is_detected() {
    let f = fixture();
    let mut first = 0u64;
    for (seg, recs) in f.segment_records() {
        let data = &f.snap.0[&seg];
        let mut pos = tamper_util::HEADER;
        for (k, r) in recs.iter().enumerate() {
            let index = first + k as u64;
            for at in pos..pos + 8 + r.len() {
                let mut bad = data.clone();
                bad[at] ^= 0x01;
                put(&seg, &bad);
                expect_record(
                    f.verify(),
                    index,
                    &format!("byte {at} of {}", seg.display()),
                );
            }
            pos += 8 + r.len();
        }
        put(&seg, data);
        first += recs.len() as u64;
    }
}

#[test]
fn flipping_any_byte_of_a_stored_hash_is_detected() {
    let f = fixture();
    let level_files: Vec<PathBuf> = f
        .snap
        .0
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "hashes"))
        .cloned()
        .collect();
    assert!(level_files.len() >= 5);
    for path in level_files {
        let data = &f.snap.0[&path];
        let level: u32 = path.file_name().unwrap().to_str().unwrap()[6..8]
            .parse()
            .unwrap();
        for at in 0..data.len() {
            let mut bad = data.clone();
            bad[at] ^= 0x80;
            put(&path, &bad);
            let entry = (at / 32) as u64;
            match f.verify() {
                Err(VerifyError::StoredHash {
                    first_index,
                    entry: e,
                    ..
                }) => {
                    // The lowest stored hash that disagrees: this one, or (for a leaf) the
                    // record it should describe.
                    assert_eq!(first_index, entry << level, "{} byte {at}", path.display());
                    assert_eq!(e, entry);
                }
                Err(e @ VerifyError::Record { .. }) if level == 0 => {
                    assert_eq!(e.index(), Some(entry), "{} byte {at}", path.display());
                }
                other => panic!("{} byte {at}: {other:?}", path.display()),
            }
        }
        put(&path, data);
    }
}

#[test]
fn flipping_any_byte_of_a_checkpoint_is_detected() {
    let f = fixture();
    for name in ["checkpoint", "checkpoints"] {
        let path = f.path(name);
        let data = &f.snap.0[&path];
        for at in 0..data.len() {
            let mut bad = data.clone();
            bad[at] ^= 0x01;
            put(&path, &bad);
            expect_checkpoint(f.verify(), &format!("{name} byte {at}"));
        }
        put(&path, data);
    }
    // The metadata file: the verifier key or the origin changed, or unreadable.
    let meta = f.path("LOG");
    let data = &f.snap.0[&meta];
    for at in 0..data.len() {
        let mut bad = data.clone();
        bad[at] ^= 0x01;
        put(&meta, &bad);
        let err = f.verify().expect_err("LOG byte flipped");
        assert!(
            matches!(
                err,
                VerifyError::Layout { .. }
                    | VerifyError::WrongKey { .. }
                    | VerifyError::Checkpoint { .. }
            ),
            "LOG byte {at}: {err}"
        );
    }
}

#[test]
fn deleting_swapping_inserting_or_duplicating_a_record_is_detected() {
    let f = fixture();
    let n = f.records.len();
    let alterations: Vec<(&str, u64, Vec<Vec<u8>>)> = (0..n)
        .flat_map(|i| {
            let mut deleted = f.records.clone();
            deleted.remove(i);
            let mut inserted = f.records.clone();
            inserted.insert(i, b"{\"forged\":true}".to_vec());
            let mut duplicated = f.records.clone();
            duplicated.insert(i, f.records[i].clone());
            let mut out = vec![
                ("delete", i as u64, deleted),
                ("insert", i as u64, inserted),
                ("duplicate", i as u64 + 1, duplicated),
            ];
            if i + 1 < n {
                let mut swapped = f.records.clone();
                swapped.swap(i, i + 1);
                out.push(("swap", i as u64, swapped));
            }
            out
        })
        .collect();
    for (what, index, records) in alterations {
        // 1. Only the segments rewritten (framing and checksums made valid).
        f.snap.restore(f.dir.path());
        let mut rest = records.as_slice();
        let segs = f.segment_records();
        for (k, (seg, recs)) in segs.iter().enumerate() {
            let take = if k + 1 == segs.len() {
                rest.len()
            } else {
                recs.len()
            };
            rewrite_segment(seg, &rest[..take]);
            rest = &rest[take..];
        }
        // A duplicated last record is a distinct leaf at index n: the signed part is intact
        // and the extra record is simply unsigned. Every other alteration is named.
        if what == "duplicate" && index == n as u64 {
            let report = f.verify().unwrap_or_else(|e| panic!("{what} {index}: {e}"));
            assert_eq!(report.records, n as u64 + 1);
        } else {
            expect_record(f.verify(), index, &format!("{what} {index}"));
        }

        // 2. Hashes and offsets rebuilt to match: the signed checkpoints catch it.
        f.snap.restore(f.dir.path());
        f.rewrite_records_and_hashes(&records);
        if what == "duplicate" && index == n as u64 {
            f.verify_against().unwrap();
        } else {
            expect_checkpoint(f.verify(), &format!("{what} {index}, hashes rebuilt"));
        }
    }
}

#[test]
fn truncating_the_tail_is_detected() {
    let f = fixture();
    for keep in [0usize, 1, 10, 23] {
        f.snap.restore(f.dir.path());
        f.rewrite_records_and_hashes(&f.records[..keep]);
        // The stored checkpoints still cover the removed records.
        expect_checkpoint(f.verify(), &format!("truncated to {keep}"));
        // The attacker removes the checkpoints too: a log with records and no checkpoint at
        // all is refused (a writer signs the empty tree when it creates a log); an empty one
        // is self-consistent, and only an outside checkpoint can tell.
        std::fs::remove_file(f.path("checkpoint")).unwrap();
        std::fs::remove_file(f.path("checkpoints")).unwrap();
        if keep == 0 {
            assert_eq!(f.verify().unwrap().records, 0);
            expect_against(f.verify_against(), "truncated to 0");
        } else {
            let what = format!("truncated to {keep}, checkpoints removed");
            expect_checkpoint(f.verify(), &what);
            expect_checkpoint(f.verify_against(), &what);
        }
    }
}

#[test]
fn rewriting_the_whole_log_under_a_new_key_is_detected() {
    let f = fixture();
    let mut records = f.records.clone();
    records[3] = b"{\"event\":\"rewritten\"}".to_vec();
    let attacker = NoteSigner::generate("example.com/tamper").unwrap();
    std::fs::remove_dir_all(f.dir.path()).unwrap();
    build(f.dir.path(), &attacker, &records, records.len(), opts());
    // Under the genuine key: the log says it belongs to another key.
    assert!(matches!(f.verify(), Err(VerifyError::WrongKey { .. })));
    // Under the attacker's key it is self-consistent...
    let forged_key = attacker.verifier();
    let report = verify_dir(f.dir.path(), &forged_key, &VerifyOptions::default()).unwrap();
    assert_eq!(report.records, RECORDS);
    // ...but does not extend the checkpoint the auditor held.
    let held = VerifyOptions::default().against(vec![f.held.clone()]);
    expect_against(
        verify_dir(f.dir.path(), &forged_key, &held),
        "rewritten log",
    );

    // The same rewrite, re-signed with the genuine key (a stolen key): still caught by the
    // held checkpoint, naming it.
    std::fs::remove_dir_all(f.dir.path()).unwrap();
    build(f.dir.path(), &f.signer, &records, records.len(), opts());
    f.verify().unwrap();
    expect_against(f.verify_against(), "rewritten under the genuine key");
}

/// Whether a result is acceptable for a damaged log: an error, a reported torn tail, or the
/// exact original content.
fn acceptable(
    result: &Result<VerifyReport, VerifyError>,
    records: &[Vec<u8>],
    root: &Hash,
) -> bool {
    match result {
        Err(_) => true,
        Ok(r) if r.recovered_tail => root_prefix_matches(r, records),
        Ok(r) => r.records == records.len() as u64 && r.root == *root,
    }
}

/// A report after a cut tail must describe a prefix of the original records.
fn root_prefix_matches(r: &VerifyReport, records: &[Vec<u8>]) -> bool {
    let n = r.records as usize;
    n <= records.len() && r.root == merkle::root_of_leaves(&leaves(&records[..n]))
}

/// Opens the damaged log for writing; if that succeeds, every record it serves must be the
/// original one (or an error).
fn writer_is_safe(dir: &Path, signer: &NoteSigner, records: &[Vec<u8>]) {
    if let Ok(log) = Log::open(dir, signer.clone(), opts()) {
        assert!(log.size() as usize <= records.len());
        for i in 0..log.size() {
            if let Ok(r) = log.read(i) {
                assert_eq!(r, records[i as usize], "record {i} served altered");
            }
        }
    }
    if let Ok(log) = Log::open_read_only(dir) {
        for i in 0..log.size().min(records.len() as u64) {
            if let Ok(r) = log.read(i) {
                assert_eq!(
                    r, records[i as usize],
                    "record {i} served altered (read-only)"
                );
            }
        }
    }
}

#[test]
fn truncating_or_corrupting_any_file_at_every_byte_offset_is_never_accepted_silently() {
    // A small log with an unsigned tail, so that cuts there recover and cuts elsewhere fail.
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let records: Vec<Vec<u8>> = (0..10).map(record).collect();
    let opts = LogOptions::default().segment_bytes(120);
    build(dir.path(), &signer, &records, 7, opts);
    let snap = Snapshot::take(dir.path());
    let root = merkle::root_of_leaves(&leaves(&records));
    let verifier = signer.verifier();
    let (mut cases, mut recovered, mut refused) = (0, 0, 0);
    for (path, data) in &snap.0 {
        for at in 0..=data.len() {
            for flip in [false, true] {
                if flip && at == data.len() {
                    continue;
                }
                let mut bad = data.clone();
                if flip {
                    bad[at] ^= 0x01;
                } else {
                    bad.truncate(at);
                }
                if bad == *data {
                    continue;
                }
                put(path, &bad);
                let result = verify_dir(dir.path(), &verifier, &VerifyOptions::default());
                assert!(
                    acceptable(&result, &records, &root),
                    "{} {} at {at}: accepted {result:?}",
                    if flip { "flip" } else { "cut" },
                    path.display()
                );
                match &result {
                    Err(_) => refused += 1,
                    Ok(r) if r.recovered_tail => recovered += 1,
                    Ok(_) => {}
                }
                writer_is_safe(dir.path(), &signer, &records);
                snap.restore(dir.path());
                cases += 1;
            }
        }
    }
    assert!(cases > 1000, "{cases} cases");
    assert!(
        recovered > 0 && refused > 0,
        "{recovered} recovered, {refused} refused"
    );
}

#[test]
fn verify_dir_with_sees_every_record_in_order_and_can_refuse_one() {
    let f = fixture();
    let mut seen = Vec::new();
    let report = veritrail_log::verify::verify_dir_with(
        f.dir.path(),
        &f.verifier(),
        &VerifyOptions::default(),
        |i, r| {
            seen.push((i, r.to_vec()));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(report.records, RECORDS);
    let expected: Vec<(u64, Vec<u8>)> = f
        .records
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, r)| (i as u64, r))
        .collect();
    assert_eq!(seen, expected);
    let err = veritrail_log::verify::verify_dir_with(
        f.dir.path(),
        &f.verifier(),
        &VerifyOptions::default(),
        |i, _| {
            if i == 13 {
                Err("token signature invalid".into())
            } else {
                Ok(())
            }
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::Rejected { index: 13, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("token signature invalid"));
}

#[test]
fn an_empty_log_verifies_and_extends_its_empty_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let mut log = Log::open(dir.path(), signer.clone(), opts()).unwrap();
    let empty = log.checkpoint().unwrap();
    log.close().unwrap();
    let against = VerifyOptions::default().against(vec![empty.clone()]);
    let report = verify_dir(dir.path(), &signer.verifier(), &against).unwrap();
    assert_eq!((report.records, report.root), (0, merkle::empty_root()));
    // It grows, and still extends the empty checkpoint.
    let mut log = Log::open(dir.path(), signer.clone(), opts()).unwrap();
    log.append(b"{}").unwrap();
    log.close().unwrap();
    let report = verify_dir(dir.path(), &signer.verifier(), &against).unwrap();
    assert_eq!((report.records, report.against_checked), (1, 1));
}

#[test]
fn a_sealed_segment_removed_or_cut_is_refused_on_open_and_named_by_the_verifier() {
    let f = fixture();
    let segs = f.segment_records();
    let (middle, recs) = &segs[1];
    let first_of_next = segs[0].1.len() + recs.len();

    // A whole sealed segment deleted.
    std::fs::remove_file(middle).unwrap();
    let err = Log::open(f.dir.path(), f.signer.clone(), opts()).unwrap_err();
    assert!(
        matches!(err, LogError::Corrupt { index, .. } if index == first_of_next as u64 - 1),
        "{err}"
    );
    expect_record(f.verify(), segs[0].1.len() as u64, "segment deleted");
    f.snap.restore(f.dir.path());

    // Its last record cut off (at a frame boundary, so the framing is intact).
    let data = &f.snap.0[middle];
    let last_frame = tamper_util::frame(recs.last().unwrap()).len();
    put(middle, &data[..data.len() - last_frame]);
    let err = Log::open(f.dir.path(), f.signer.clone(), opts()).unwrap_err();
    assert!(
        matches!(err, LogError::Corrupt { index, .. } if index == first_of_next as u64 - 1),
        "{err}"
    );
    expect_record(
        f.verify(),
        first_of_next as u64 - 1,
        "last record of a sealed segment cut",
    );
    f.snap.restore(f.dir.path());
    Log::open(f.dir.path(), f.signer.clone(), opts()).unwrap();
}
