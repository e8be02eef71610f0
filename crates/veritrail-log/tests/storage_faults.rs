//! Fault injection at the file layer: a write failing with `EIO` or `ENOSPC`, a short write,
//! an fdatasync failing with `EIO` — on the segment, the stored hashes, the checkpoint
//! history and the checkpoint file, and across a segment rotation. In every case the log
//! enters its failed state and never reports success afterwards, nothing acknowledged (synced
//! without error) is lost, and reopening recovers a log that verifies.

mod tamper_util;

use tamper_util::{record, signer};
use veritrail_log::store::{LogError, StorageFault};
use veritrail_log::verify::{VerifyOptions, verify_dir};
use veritrail_log::{Log, LogOptions};

const FAULTS: [StorageFault; 4] = [
    StorageFault::Write,
    StorageFault::NoSpace,
    StorageFault::ShortWrite,
    StorageFault::Sync,
];

/// Where in the log's life the fault fires.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// A sync of a small batch (the segment write and fdatasync).
    Sync,
    /// A checkpoint (a barrier: hashes and offsets, then the history and checkpoint file).
    Checkpoint,
    /// An append that rotates to a new segment.
    Rotation,
    /// A batch large enough to be written out before the sync.
    LargeBatch,
}

fn opts() -> LogOptions {
    LogOptions::default().segment_bytes(4096)
}

#[test]
fn after_any_storage_fault_the_log_fails_closed_and_recovers_on_reopen() {
    let moments = [
        Moment::Sync,
        Moment::Checkpoint,
        Moment::Rotation,
        Moment::LargeBatch,
    ];
    for fault in FAULTS {
        for moment in moments {
            let what = format!("{fault:?} at {moment:?}");
            run(fault, moment, &what);
        }
    }
}

fn run(fault: StorageFault, moment: Moment, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let mut log = Log::open(dir.path(), signer.clone(), opts()).unwrap();
    // Acknowledged: synced without error (and partly signed).
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(record(i));
        log.append(&record(i)).unwrap();
    }
    log.checkpoint().unwrap();
    for i in 20..30 {
        acked.push(record(i));
        log.append(&record(i)).unwrap();
    }
    log.sync().unwrap();

    log.inject_fault(fault);
    let failed = match moment {
        Moment::Sync => log.append(&record(100)).and_then(|_| log.sync()),
        Moment::Checkpoint => log
            .append(&record(100))
            .and_then(|_| log.checkpoint().map(drop)),
        Moment::Rotation => {
            // Fill the segment until the next record rotates.
            let mut r = Ok(());
            for i in 100..2000 {
                r = log.append(&record(i)).map(drop);
                if r.is_err() {
                    break;
                }
            }
            r.and_then(|()| log.sync())
        }
        Moment::LargeBatch => {
            let big = vec![b'x'; 300 << 10];
            let rec = [b"{\"big\":\"".as_slice(), &big, b"\"}"].concat();
            log.append(&rec).and_then(|_| log.sync())
        }
    };
    let err = failed.expect_err(what);
    assert!(matches!(err, LogError::Io(_)), "{what}: {err}");
    let expected_errno = match fault {
        StorageFault::Write | StorageFault::Sync => 5,
        StorageFault::NoSpace | StorageFault::ShortWrite => 28,
    };
    let LogError::Io(io) = &err else {
        unreachable!()
    };
    assert_eq!(
        io.raw_os_error(),
        None,
        "{what}: the path is in the message"
    );
    assert!(
        io.to_string()
            .contains(&std::io::Error::from_raw_os_error(expected_errno).to_string()),
        "{what}: {io}"
    );
    // Failed for good: nothing reports success any more.
    assert!(log.is_failed(), "{what}");
    assert!(
        matches!(log.append(b"{}"), Err(LogError::Failed { .. })),
        "{what}"
    );
    assert!(matches!(log.sync(), Err(LogError::Failed { .. })), "{what}");
    assert!(
        matches!(log.checkpoint(), Err(LogError::Failed { .. })),
        "{what}"
    );
    assert!(
        matches!(log.close(), Err(LogError::Failed { .. })),
        "{what}"
    );

    // Reopening recovers from what is on disk: every acknowledged record is there, intact.
    let mut log =
        Log::open(dir.path(), signer.clone(), opts()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        log.size() >= acked.len() as u64,
        "{what}: size {}",
        log.size()
    );
    for (i, r) in acked.iter().enumerate() {
        assert_eq!(&log.read(i as u64).unwrap(), r, "{what}: record {i}");
    }
    log.append(b"{\"after\":\"reopen\"}").unwrap();
    log.close().unwrap();
    let report = verify_dir(dir.path(), &signer.verifier(), &VerifyOptions::default())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(report.records > acked.len() as u64, "{what}");
}
