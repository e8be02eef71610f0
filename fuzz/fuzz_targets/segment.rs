//! Segment frames and log recovery: the input replaces one segment file of a small valid log
//! (several segments, two signed checkpoints), which is then verified, read and reopened for
//! writing.
//!
//! Input: one byte choosing the segment (and, with bit 0x80, appending the rest of the input to
//! that segment as a torn or forged tail instead of replacing it), then the bytes.
//!
//! Properties: nothing panics or hangs; a damaged segment is reported as evidence (naming where),
//! never as an I/O error; a log that verifies holds the original signed records; a writer that
//! reopens, appends to and signs a valid log leaves it valid, and one that reopens a damaged
//! log without recovering anything leaves it failing verification (no laundering: damage in a
//! sealed segment, which opening does not read, is still found by `verify`).

#![no_main]

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::{
    copy_log, log_options, note_signer, note_verifier, scratch_dir, segment_files, template_log,
    template_records,
};
use veritrail_log::verify::{VerifyError, VerifyOptions, verify_dir};
use veritrail_log::{Log, NoteVerifier};

struct Fixture {
    _scratch: tempfile::TempDir,
    template: PathBuf,
    work: PathBuf,
    segments: Vec<String>,
    records: Vec<Vec<u8>>,
    verifier: NoteVerifier,
}

static FIXTURE: LazyLock<Mutex<Fixture>> = LazyLock::new(|| {
    let scratch = scratch_dir();
    let template = scratch.path().join("template");
    template_log(&template);
    let segments: Vec<String> = segment_files(&template)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        segments.len() >= 3,
        "the template log has {} segments",
        segments.len()
    );
    Mutex::new(Fixture {
        work: scratch.path().join("work"),
        _scratch: scratch,
        template,
        segments,
        records: template_records(),
        verifier: note_verifier(),
    })
});

fn options() -> VerifyOptions {
    VerifyOptions::default().threads(1)
}

fuzz_target!(|data: &[u8]| {
    let fx = FIXTURE.lock().unwrap_or_else(|e| e.into_inner());
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let _ = std::fs::remove_dir_all(&fx.work);
    std::fs::create_dir_all(&fx.work).unwrap();
    copy_log(&fx.template, &fx.work);
    let segment = fx
        .work
        .join("segments")
        .join(&fx.segments[usize::from(choice & 0x7f) % fx.segments.len()]);
    if choice & 0x80 == 0x80 {
        let mut content = std::fs::read(&segment).unwrap();
        content.extend_from_slice(bytes);
        std::fs::write(&segment, content).unwrap();
    } else {
        std::fs::write(&segment, bytes).unwrap();
    }

    let valid_before = match verify_dir(&fx.work, &fx.verifier, &options()) {
        Ok(report) => {
            // Records after the last signed checkpoint (a valid frame appended to the newest
            // segment) are a log's unsigned tail: nothing vouches for them, and verify counts
            // them. Everything signed must be the original.
            assert!(report.records >= fx.records.len() as u64);
            let log = Log::open_read_only(&fx.work).expect("a verified log opens");
            let records: Vec<Vec<u8>> = log
                .records(0)
                .take(fx.records.len())
                .map(|r| r.expect("a verified log's records read").1)
                .collect();
            assert_eq!(
                records, fx.records,
                "a log verifies with other signed records"
            );
            true
        }
        Err(e) => {
            assert!(
                !e.is_io(),
                "a damaged segment is reported as an I/O error: {e}"
            );
            assert!(
                matches!(
                    e,
                    VerifyError::Record { .. }
                        | VerifyError::StoredHash { .. }
                        | VerifyError::Checkpoint { .. }
                        | VerifyError::Layout { .. }
                ),
                "{e}"
            );
            false
        }
    };

    if let Ok(log) = Log::open_read_only(&fx.work) {
        for item in log.records(0) {
            if item.is_err() {
                break;
            }
        }
        for index in [0, log.size().saturating_sub(1)] {
            let _ = log.read(index);
        }
    }

    if let Ok(mut log) = Log::open(&fx.work, note_signer(), log_options()) {
        let recovered = log.recovered().is_some();
        let appended = log
            .append(br#"{"n":"after"}"#)
            .and_then(|_| log.sync())
            .and_then(|()| log.checkpoint().map(drop))
            .and_then(|()| log.close());
        if appended.is_ok() {
            match verify_dir(&fx.work, &fx.verifier, &options()) {
                Err(e) if valid_before => {
                    panic!(
                        "a writer reopened, appended to and signed a valid log that now fails: {e}"
                    )
                }
                Ok(_) if !valid_before && !recovered => {
                    panic!("a writer reopened a damaged log and it now verifies (laundered)")
                }
                _ => {}
            }
        }
    }
});
