//! The read-side commands that hand evidence to someone else: `checkpoint`, `prove` and
//! `consistency`. None needs a key; each checks what it prints against the checkpoint's root
//! before printing it, so a damaged log yields an error, never a proof that will not verify.

use anyhow::{Context, Result, bail};
use veritrail_log::merkle;
use veritrail_log::proof::{ConsistencyBody, InclusionProofFile};

use crate::cli::{CheckpointArgs, ConsistencyArgs, ProveArgs};
use crate::exit::invalid;
use crate::logdir::{latest_checkpoint, open_read_only, unverified_body};
use crate::output::write_stdout;

/// Prints the latest signed checkpoint verbatim.
pub(crate) fn checkpoint(args: &CheckpointArgs) -> Result<()> {
    let log = open_read_only(&args.log)?;
    let signed = latest_checkpoint(&log, &args.log)?;
    write_stdout(signed.as_bytes())
}

/// Prints (or writes to `--out`) a `c2sp.org/tlog-proof@v1` file for one record.
pub(crate) fn prove(args: &ProveArgs) -> Result<()> {
    let log = open_read_only(&args.log)?;
    let signed = latest_checkpoint(&log, &args.log)?;
    let checkpoint = unverified_body(&signed, "the latest checkpoint")?;
    let (index, size) = (args.index, checkpoint.size);
    if index >= size {
        bail!(
            "there is no record {index} under the latest checkpoint of {}: it covers {}",
            args.log.display(),
            match size {
                0 => "no records yet".to_owned(),
                n => format!("indexes 0..={}", n - 1),
            }
        );
    }
    let record = log
        .read(index)
        .with_context(|| format!("cannot read record {index} of {}", args.log.display()))?;
    let proof = log.inclusion_proof(index, size).with_context(|| {
        format!(
            "cannot build the inclusion proof of record {index} in {}",
            args.log.display()
        )
    })?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(&record),
        index,
        size,
        &proof,
        &checkpoint.root,
    )
    .map_err(|e| {
        invalid(format!(
            "record {index} of {} does not match the log's latest checkpoint ({e}); the log \
                 is damaged — run `veritrail verify {} --key VKEY` to find where",
            args.log.display(),
            args.log.display()
        ))
    })?;
    let text = InclusionProofFile {
        index,
        record,
        proof,
        checkpoint: signed,
    }
    .to_text();
    match &args.out {
        None => write_stdout(text.as_bytes()),
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write the proof to {}", path.display()))?;
            eprintln!(
                "wrote the proof of record {index} under the checkpoint of size {size} to {}\n\
                 anyone with the verifier key can check it: `veritrail verify-proof {} --key VKEY`",
                path.display(),
                path.display()
            );
            Ok(())
        }
    }
}

/// Prints the tlog-witness `add-checkpoint` body proving the latest checkpoint extends `--from`.
pub(crate) fn consistency(args: &ConsistencyArgs) -> Result<()> {
    let log = open_read_only(&args.log)?;
    let signed = latest_checkpoint(&log, &args.log)?;
    let from = args.from.display().to_string();
    let old_text = std::fs::read_to_string(&args.from)
        .with_context(|| format!("cannot read the old checkpoint {from}"))?;
    let old = unverified_body(&old_text, &from)?;
    let new = unverified_body(&signed, "the latest checkpoint")?;
    let dir = args.log.display();
    if old.origin != new.origin {
        return Err(invalid(format!(
            "{from} is a checkpoint of the log {:?}, but {dir} is the log {:?}",
            old.origin, new.origin
        )));
    }
    if old.size > new.size {
        return Err(invalid(format!(
            "{from} has size {} but the latest checkpoint of {dir} has size {}: the log is \
             shorter than a checkpoint it signed (truncated or replaced)",
            old.size, new.size
        )));
    }
    let proof = if old.size == 0 || old.size == new.size {
        Vec::new()
    } else {
        log.consistency_proof(old.size, new.size).with_context(|| {
            format!(
                "cannot build the consistency proof from size {} to {} in {dir}",
                old.size, new.size
            )
        })?
    };
    check_extends(&old, &new, &proof).map_err(|reason| {
        invalid(format!(
            "{dir} does not extend {from}: {reason}; the log was rewritten, or {from} is not \
             one of its checkpoints"
        ))
    })?;
    let body = ConsistencyBody {
        old_size: old.size,
        proof,
        checkpoint: signed,
    };
    write_stdout(body.to_text().as_bytes())
}

/// Checks that `new` extends `old` under `proof` (size 0 is extended by every tree).
fn check_extends(
    old: &veritrail_log::Checkpoint,
    new: &veritrail_log::Checkpoint,
    proof: &[veritrail_log::Hash],
) -> Result<(), String> {
    if old.size == 0 {
        if old.root != merkle::empty_root() {
            return Err("its size is 0 but its root is not the empty tree's".to_owned());
        }
        return Ok(());
    }
    merkle::verify_consistency(old.size, new.size, proof, &old.root, &new.root)
        .map_err(|e| e.to_string())
}
