//! The read-side commands that hand evidence to someone else: `checkpoint`, `prove` and
//! `consistency`. None needs a key; each checks what it prints against the checkpoint's root
//! before printing it, so a damaged log yields an error, never a proof that will not verify.

use std::path::Path;

use anyhow::{Context, Result, bail};
use veritrail_log::proof::{ConsistencyBody, InclusionProofFile};
use veritrail_log::source::LogSource;
use veritrail_log::{Checkpoint, merkle};

use crate::cli::{CheckpointArgs, ConsistencyArgs, ProveArgs};
use crate::exit::invalid;
use crate::logdir::{latest_checkpoint, open_source, unverified_body};
use crate::output::write_stdout;

/// Prints the latest signed checkpoint verbatim.
pub(crate) fn checkpoint(args: &CheckpointArgs) -> Result<()> {
    let log = open_source(&args.log)?;
    let signed = latest_checkpoint(&*log)?;
    write_stdout(signed.as_bytes())
}

/// Prints (or writes to `--out`) a `c2sp.org/tlog-proof@v1` file for one record.
pub(crate) fn prove(args: &ProveArgs) -> Result<()> {
    let log = open_source(&args.log)?;
    let signed = latest_checkpoint(&*log)?;
    let checkpoint = unverified_body(&signed, "the latest checkpoint")?;
    let file = inclusion_file(&*log, &args.log, signed, &checkpoint, args.index)?;
    let (index, size) = (file.index, checkpoint.size);
    check_inclusion(&file, &checkpoint).map_err(|e| {
        invalid(format!(
            "record {index} of {} does not match the log's latest checkpoint ({e}); the log \
                 is damaged — run `veritrail verify {} --key VKEY` to find where",
            args.log.display(),
            args.log.display()
        ))
    })?;
    let text = file.to_text();
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

/// The proof file of record `index` of `log` (at `location`) under `checkpoint`, whose signed
/// text is `signed`: the record as stored, its inclusion proof from the stored hashes, and the
/// checkpoint. Not checked: see [`check_inclusion`].
pub(crate) fn inclusion_file(
    log: &dyn LogSource,
    location: &Path,
    signed: String,
    checkpoint: &Checkpoint,
    index: u64,
) -> Result<InclusionProofFile> {
    let size = checkpoint.size;
    if index >= size {
        bail!(
            "there is no record {index} under the latest checkpoint of {}: it covers {}",
            location.display(),
            match size {
                0 => "no records yet".to_owned(),
                n => format!("indexes 0..={}", n - 1),
            }
        );
    }
    let record = log
        .read(index)
        .with_context(|| format!("cannot read record {index} of {}", location.display()))?;
    let proof = log.inclusion_proof(index, size).with_context(|| {
        format!(
            "cannot build the inclusion proof of record {index} in {}",
            location.display()
        )
    })?;
    Ok(InclusionProofFile {
        index,
        record,
        proof,
        checkpoint: signed,
    })
}

/// Whether `file`'s record and proof lead to `checkpoint`'s root (its signature is not
/// checked: whoever holds the verifier key does that).
pub(crate) fn check_inclusion(
    file: &InclusionProofFile,
    checkpoint: &Checkpoint,
) -> Result<(), merkle::ProofError> {
    merkle::verify_inclusion(
        &merkle::leaf_hash(&file.record),
        file.index,
        checkpoint.size,
        &file.proof,
        &checkpoint.root,
    )
}

/// Prints the tlog-witness `add-checkpoint` body proving the latest checkpoint extends `--from`.
pub(crate) fn consistency(args: &ConsistencyArgs) -> Result<()> {
    let log = open_source(&args.log)?;
    let signed = latest_checkpoint(&*log)?;
    let from = args.from.display().to_string();
    let old_text = std::fs::read_to_string(&args.from)
        .with_context(|| format!("cannot read the old checkpoint {from}"))?;
    let old = unverified_body(&old_text, &from)?;
    let new = unverified_body(&signed, "the latest checkpoint")?;
    let body = consistency_body(&*log, &args.log, (&old, &from), (&new, signed))?;
    write_stdout(body.to_text().as_bytes())
}

/// The consistency proof from `old` (named `from` in errors) to `new` (signed as `signed`) in
/// `log` (at `location`), checked before it is returned: a damaged or rewritten log yields an
/// error, never a body that will not verify.
pub(crate) fn consistency_body(
    log: &dyn LogSource,
    location: &Path,
    (old, from): (&Checkpoint, &str),
    (new, signed): (&Checkpoint, String),
) -> Result<ConsistencyBody> {
    let dir = location.display();
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
    check_extends(old, new, &proof).map_err(|reason| {
        invalid(format!(
            "{dir} does not extend {from}: {reason}; the log was rewritten, or {from} is not \
             one of its checkpoints"
        ))
    })?;
    Ok(ConsistencyBody {
        old_size: old.size,
        proof,
        checkpoint: signed,
    })
}

/// Checks that `new` extends `old` under `proof` (size 0 is extended by every tree).
fn check_extends(
    old: &Checkpoint,
    new: &Checkpoint,
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
