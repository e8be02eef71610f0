//! `veritrail verify` (a whole log) and `veritrail verify-proof` (one `.tlog-proof` file).
//!
//! The report follows `aws cloudtrail validate-logs`: what was checked, `N/M` valid, and on
//! failure the first bad record by index, segment and byte offset, with exit code 1.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use veritrail_log::verify::{VerifyError, VerifyOptions, VerifyReport, verify_dir};

use crate::cli::{VerifyArgs, VerifyProofArgs};
use crate::exit::{INVALID, Reported, invalid};
use crate::keys;
use crate::logdir::require_dir;
use crate::output::write_stdout;

/// Verifies a log directory and prints the report (human or `--json`).
pub(crate) fn verify(args: &VerifyArgs) -> Result<()> {
    let verifier = keys::read_verifier(&args.key)?;
    require_dir(&args.log)?;
    let against = args
        .against
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the --against checkpoint {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let opts = VerifyOptions { against, threads };
    let dir = args.log.display();
    match verify_dir(&args.log, &verifier, &opts) {
        Ok(report) => {
            let text = if args.json {
                json_valid(&args.log, &report)
            } else {
                human_valid(&args.log, &report, args.against.len())
            };
            write_stdout(text.as_bytes())
        }
        Err(err) if is_io(&err) => {
            Err(anyhow::Error::new(err).context(format!("cannot verify {dir}")))
        }
        Err(err) => {
            let text = if args.json {
                let value = serde_json::json!({
                    "valid": false,
                    "log": dir.to_string(),
                    "error": err.to_string(),
                });
                format!("{value}\n")
            } else {
                format!("{dir} is INVALID: {err}\n")
            };
            write_stdout(text.as_bytes())?;
            Err(Reported(INVALID).into())
        }
    }
}

/// Whether the verifier failed to read the log (exit 2) rather than found it invalid (exit 1).
fn is_io(err: &VerifyError) -> bool {
    matches!(err, VerifyError::Io { .. })
}

fn human_valid(dir: &Path, report: &VerifyReport, against_given: usize) -> String {
    let mut out = format!(
        "{} is valid\n\
         records:      {} checked (framing, checksums, indexes, RFC 6962 tree)\n\
         checkpoints:  {}/{} valid (signature, and root at their size)\n",
        dir.display(),
        report.records,
        report.checkpoints_checked,
        report.checkpoints_checked,
    );
    if against_given == 0 {
        out.push_str(
            "against:      none given — a truncated or wholly rewritten log is caught only \
             with --against CHECKPOINT held elsewhere\n",
        );
    } else {
        out.push_str(&format!(
            "against:      {}/{} proven (the log extends each)\n",
            report.against_checked, against_given
        ));
    }
    out.push_str(&format!(
        "root:         {} at size {}\n",
        BASE64.encode(report.root),
        report.records
    ));
    if report.recovered_tail {
        out.push_str(
            "note:         the log records a repaired torn tail (a crash while writing)\n",
        );
    }
    out
}

fn json_valid(dir: &Path, report: &VerifyReport) -> String {
    let value = serde_json::json!({
        "valid": true,
        "log": dir.display().to_string(),
        "records": report.records,
        "root": BASE64.encode(report.root),
        "checkpoints_checked": report.checkpoints_checked,
        "against_checked": report.against_checked,
        "recovered_tail": report.recovered_tail,
    });
    format!("{value}\n")
}

/// Checks a `.tlog-proof` file offline: prints the record on stdout, the verdict on stderr.
pub(crate) fn verify_proof(args: &VerifyProofArgs) -> Result<()> {
    let verifier = keys::read_verifier(&args.key)?;
    let name = args.proof.display();
    let bytes =
        std::fs::read(&args.proof).with_context(|| format!("cannot read the proof file {name}"))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        invalid(format!(
            "{name} is not a tlog-proof file: it is not UTF-8 text"
        ))
    })?;
    let proof = veritrail_log::proof::InclusionProofFile::parse(&text)
        .map_err(|e| invalid(format!("{name} is not a valid tlog-proof file: {e}")))?;
    let checkpoint = proof
        .verify(&verifier)
        .map_err(|e| invalid(format!("{name} does NOT verify: {e}")))?;
    let mut record = proof.record;
    record.push(b'\n');
    write_stdout(&record)?;
    eprintln!(
        "valid: record {} is in the log {:?}, under its checkpoint of size {} signed by {}",
        proof.index,
        checkpoint.origin,
        checkpoint.size,
        verifier.name()
    );
    Ok(())
}
