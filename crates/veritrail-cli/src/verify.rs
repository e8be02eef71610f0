//! `veritrail verify` (a whole log) and `veritrail verify-proof` (one `.tlog-proof` file).
//!
//! The report follows `aws cloudtrail validate-logs`: what was checked, `N/M` valid, and on
//! failure the first bad record by index, segment and byte offset, with exit code 1.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use veritrail_log::verify::{
    VerifyError, VerifyOptions, VerifyReport, verify_dir, verify_dir_with,
};

use veritrail_log::witness::{CosignatureError, CosignatureVerifier, require_cosignatures};

use crate::cli::{VerifyArgs, VerifyProofArgs};
use crate::exit::{INVALID, Reported, invalid};
use crate::keys;
use crate::logdir::require_dir;
use crate::output::{for_terminal, plural, write_stdout};
use crate::progress::{self, Results};
use crate::tokens::{TokenAudit, TokenRules};

/// Verifies a log directory and prints the report (human or `--json`).
pub(crate) fn verify(args: &VerifyArgs) -> Result<()> {
    #[cfg(feature = "postgres")]
    if let Some(loc) = crate::logdir::postgres_location(&args.log)? {
        if !args.witness.is_empty() {
            bail!("--witness is checked on directory logs only, so far");
        }
        return crate::verify_pg::verify(args, &loc);
    }
    require_dir(&args.log)?;
    let verifiers = read_verifiers(&args.key)?;
    let verifier = if verifiers.len() == 1 {
        verifiers[0].clone()
    } else {
        // The key the log names, if it is among those given.
        let stored = crate::logdir::open_read_only(&args.log)?.verifier().clone();
        verifiers
            .iter()
            .find(|v| **v == stored)
            .unwrap_or(&verifiers[0])
            .clone()
    };
    let against = read_against(&args.against)?;
    let (keys, min) = read_witnesses(&args.witness, args.min_witnesses)?;
    let opts = VerifyOptions::default().against(against);
    let dir = args.log.display();
    let mut tokens = args.tokens.then(|| {
        TokenAudit::new(TokenRules {
            issuer: args.issuer.clone(),
            audiences: args.audience.clone(),
        })
    });
    let spinner = progress::spinner("verifying", Results::Elsewhere);
    // With --tokens the records' contents are checked in the same call, record by record.
    let result = match tokens.as_mut() {
        Some(audit) => verify_dir_with(&args.log, &verifier, &opts, |index, record| {
            if index % 4096 == 0 {
                spinner.set_message(format!("checking tokens: record {index}"));
            }
            audit.check_record(index, record);
            Ok(())
        }),
        None => verify_dir(&args.log, &verifier, &opts),
    };
    spinner.finish_and_clear();
    let result = result.and_then(|report| Ok((report, witnessed_latest(&args.log, &keys, min)?)));
    match result {
        Ok((report, witnessed)) => {
            let text = if args.json {
                let mut value = json_valid(&args.log, &report);
                if let Some(line) = &witnessed {
                    value["witnesses"] = line.trim_start_matches("witnesses:").trim().into();
                }
                if let Some(audit) = &tokens {
                    value["tokens"] = audit.to_json();
                }
                format!("{value}\n")
            } else {
                let mut text = human_valid(&args.log, &report, args.against.len());
                if let Some(line) = &witnessed {
                    text.push_str(line);
                    text.push('\n');
                }
                if let Some(audit) = &tokens {
                    text.push_str(&audit.human());
                }
                for_terminal(&text, true).into_owned()
            };
            write_stdout(text.as_bytes())?;
            match &tokens {
                Some(audit) if audit.failed() > 0 => Err(Reported(INVALID).into()),
                _ => Ok(()),
            }
        }
        Err(err) if err.is_io() => {
            Err(anyhow::Error::new(err).context(format!("cannot verify {dir}")))
        }
        Err(VerifyError::Layout { path, reason }) if path == args.log => bail!(
            "{dir}: {reason} — check the path; a log is made with \
             `veritrail append {dir} --key KEYFILE`"
        ),
        Err(err) => {
            let text = if args.json {
                json_invalid(&args.log, &err, &args.against)
            } else {
                let mut text = human_invalid(&args.log, &err, &args.against);
                if args.tokens {
                    text.push_str("tokens: not checked (the records themselves are not trusted)\n");
                }
                for_terminal(&text, true).into_owned()
            };
            write_stdout(text.as_bytes())?;
            Err(Reported(INVALID).into())
        }
    }
}

fn human_valid(dir: &Path, report: &VerifyReport, against_given: usize) -> String {
    let mut out = format!(
        "{} is valid\n\
         records:      {} checked in {} (framing, checksums, indexes, RFC 6962 tree)\n\
         checkpoints:  {}/{} valid (signature, and root at their size)\n",
        dir.display(),
        report.records,
        plural(report.segments as u64, "segment"),
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
    if report.records > report.signed_size {
        out.push_str(&format!(
            "unsigned:     records {}..{} come after the latest signed checkpoint: checked \
             and hashed, but no signature vouches for them yet\n",
            report.signed_size, report.records
        ));
    }
    if let Some(tail) = &report.tail {
        out.push_str(&format!(
            "note:         {} ends in a torn write after the last checkpoint (a crash): {} \
             bytes from byte {}; no signed data is affected, and the next append cuts it\n",
            tail.segment.display(),
            tail.bytes_cut,
            tail.offset
        ));
    }
    out
}

fn json_valid(dir: &Path, report: &VerifyReport) -> serde_json::Value {
    serde_json::json!({
        "valid": true,
        "log": dir.display().to_string(),
        "records": report.records,
        "root": BASE64.encode(report.root),
        "segments": report.segments,
        "bytes": report.bytes,
        "checkpoints_checked": report.checkpoints_checked,
        "against_checked": report.against_checked,
        "signed_size": report.signed_size,
        "torn_tail": report.tail.as_ref().map(|t| serde_json::json!({
            "segment": t.segment.display().to_string(),
            "offset": t.offset,
            "bytes": t.bytes_cut,
        })),
    })
}

/// The verdict, the first failure, and where to look.
pub(crate) fn human_invalid(dir: &Path, err: &VerifyError, against: &[PathBuf]) -> String {
    let mut out = format!("{} is INVALID\nfirst failure: {err}\n", dir.display());
    if let Some(index) = err.index() {
        out.push_str(&format!("first bad record: index {index}\n"));
    }
    if let Some(path) = against_file(err, against) {
        out.push_str(&format!("against file: {}\n", path.display()));
    }
    out
}

pub(crate) fn json_invalid(dir: &Path, err: &VerifyError, against: &[PathBuf]) -> String {
    let mut value = serde_json::json!({
        "valid": false,
        "log": dir.display().to_string(),
        "error": err.to_string(),
        "index": err.index(),
    });
    if let VerifyError::Record {
        segment, offset, ..
    } = err
    {
        value["segment"] = segment.display().to_string().into();
        value["offset"] = (*offset).into();
    }
    if let Some(path) = against_file(err, against) {
        value["against"] = path.display().to_string().into();
    }
    format!("{value}\n")
}

/// The `--against` file a failure is about (the library numbers them from 1).
fn against_file<'a>(err: &VerifyError, against: &'a [PathBuf]) -> Option<&'a PathBuf> {
    match err {
        VerifyError::Against { position, .. } => against.get(position.checked_sub(1)?),
        _ => None,
    }
}

/// Every `--key` given.
pub(crate) fn read_verifiers(keys: &[String]) -> Result<Vec<veritrail_log::NoteVerifier>> {
    keys.iter().map(|k| keys::read_verifier(k)).collect()
}

/// The `--against` files' texts.
pub(crate) fn read_against(paths: &[PathBuf]) -> Result<Vec<String>> {
    paths
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the --against checkpoint {}", path.display()))
        })
        .collect()
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
    let (keys, min) = read_witnesses(&args.witness, args.min_witnesses)?;
    let witnessed = witness_line(&proof.checkpoint, &keys, min)
        .map_err(|e| invalid(format!("{name} does NOT verify: its checkpoint: {e}")))?;
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
    if let Some(line) = witnessed {
        eprintln!("{line}");
    }
    Ok(())
}

/// The `--witness` keys and how many must have cosigned (default: all of them).
pub(crate) fn read_witnesses(
    witnesses: &[String],
    min: Option<usize>,
) -> Result<(Vec<CosignatureVerifier>, usize)> {
    let keys = witnesses
        .iter()
        .map(|w| keys::read_witness_verifier(w))
        .collect::<Result<Vec<_>>>()?;
    let min = min.unwrap_or(keys.len());
    if min > keys.len() {
        bail!(
            "--min-witnesses {min} is more than the {} --witness key(s) given",
            keys.len()
        );
    }
    Ok((keys, min))
}

/// Checks that `note` carries valid cosignatures by at least `min` of `keys`, and says which
/// (`None` when no witness was asked for).
pub(crate) fn witness_line(
    note: &str,
    keys: &[CosignatureVerifier],
    min: usize,
) -> Result<Option<String>, CosignatureError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let found = require_cosignatures(note, keys, min)?;
    let names: Vec<String> = found
        .iter()
        .map(|c| format!("{} at {}", c.name, c.timestamp))
        .collect();
    Ok(Some(format!(
        "witnesses:    {}/{} cosigned the checkpoint ({}; {min} required)",
        found.len(),
        keys.len(),
        names.join(", "),
    )))
}

/// With `--witness`: the newest checkpoint of the history that carries the cosignatures asked
/// for (a running writer's latest checkpoint is often not cosigned yet). Fails when none does,
/// or when any checkpoint carries a cosignature by a named witness that does not verify.
fn witnessed_latest(
    dir: &Path,
    keys: &[CosignatureVerifier],
    min: usize,
) -> Result<Option<String>, VerifyError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let fail = |which: String, reason: String| VerifyError::Checkpoint {
        which,
        size: None,
        reason,
    };
    let log = veritrail_log::Log::open_read_only(dir)
        .map_err(|e| fail("checkpoints".into(), e.to_string()))?;
    let history = log
        .checkpoint_history()
        .map_err(|e| fail("checkpoints".into(), e.to_string()))?;
    let mut shortfall = None;
    for (i, note) in history.iter().enumerate().rev() {
        let which = format!("checkpoints entry {}", i + 1);
        match witness_line(note, keys, min) {
            Ok(line) => {
                let size = note.split('\n').nth(1).unwrap_or("?");
                let line = line.map(|l| {
                    if i + 1 == history.len() {
                        l
                    } else {
                        format!(
                            "{l}\n              (the newest checkpoint so cosigned has size {size}; \
                             the later ones are signed by the log only)"
                        )
                    }
                });
                return Ok(line);
            }
            Err(e @ CosignatureError::TooFew { .. }) => {
                shortfall.get_or_insert(e.to_string());
            }
            Err(e) => return Err(fail(which, e.to_string())),
        }
    }
    Err(fail(
        "checkpoint (latest)".into(),
        shortfall.unwrap_or_else(|| "the log has no checkpoint to be cosigned".into()),
    ))
}
