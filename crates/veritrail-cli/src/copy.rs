//! `veritrail copy SRC DST --key KEYFILE`: a log moved between a directory and PostgreSQL
//! (either way), verified before, during and after.
//!
//! The source is verified in full first (nothing is written if it does not verify). Records
//! are then appended to the new destination log and, at each of the source's checkpoint
//! sizes, the destination signs a checkpoint with the log's key: Ed25519 signatures are
//! deterministic, so each is the source's checkpoint byte for byte, which is checked as it
//! goes. A checkpoint held elsewhere therefore verifies against either store. Finally the
//! destination is verified. A PostgreSQL destination commits at the source's checkpoint
//! sizes (and every 100,000 records between two of them, which adds checkpoints the source
//! does not have, all consistent with it).

use std::path::Path;

use anyhow::{Context, Result, bail};
use veritrail_log::source::verify_source;
use veritrail_log::verify::VerifyOptions;
use veritrail_log::{Log, LogOptions, NoteSigner};
use veritrail_postgres::{PgLocation, PgLog};

use crate::cli::CopyArgs;
use crate::exit::invalid;
use crate::keys;
use crate::logdir::{self, unverified_body};
use crate::output::plural;
use crate::progress::{self, Results};

/// Records a PostgreSQL destination commits at most at once.
const MAX_COMMIT: u64 = 100_000;

/// Where the copy goes.
enum Destination {
    Dir(Box<Log>),
    Pg(Box<PgLog>),
}

impl Destination {
    fn append(&mut self, records: &[Vec<u8>]) -> Result<()> {
        let records = records.iter().map(Vec::as_slice);
        match self {
            Destination::Dir(log) => log.append_batch(records).map(drop)?,
            Destination::Pg(log) => log.append_batch(records).map(drop)?,
        }
        Ok(())
    }

    /// Makes everything appended durable and returns the checkpoint signed over it.
    fn checkpoint(&mut self) -> Result<String> {
        Ok(match self {
            Destination::Dir(log) => log.checkpoint()?,
            Destination::Pg(log) => {
                log.commit()?;
                log.latest_checkpoint().to_owned()
            }
        })
    }
}

pub(crate) fn run(args: &CopyArgs) -> Result<()> {
    let signer = keys::read_signer(&args.key)?;
    let verifier = signer.verifier();
    let src = logdir::open_source(&args.src)?;
    let from = src.location();
    if *src.verifier() != verifier {
        bail!(
            "{} is not the key of {from} (its verifier key is {}): the copy must be signed by \
             the log's own key",
            args.key.display(),
            src.verifier().to_text()
        );
    }
    let spinner = progress::spinner("verifying the source", Results::Elsewhere);
    // A PostgreSQL source is checked with what that store promises besides the tree (each
    // checkpoint row holds its size's checkpoint, every record is covered).
    let checked = match logdir::postgres_location(&args.src)? {
        Some(loc) => veritrail_postgres::PgStore::open(&loc)
            .with_context(|| format!("cannot open {loc}"))
            .map(|store| {
                veritrail_postgres::verify(&store, &verifier, &VerifyOptions::default())
            })?,
        None => verify_source(&*src, &verifier, &VerifyOptions::default()),
    };
    spinner.finish_and_clear();
    let checked = checked.map_err(|e| {
        invalid(format!(
            "{from} does not verify ({e}); nothing was copied — run `veritrail verify` on it"
        ))
    })?;
    let history = src
        .checkpoint_history()
        .with_context(|| format!("cannot read the checkpoints of {from}"))?;
    let mut sizes = Vec::new();
    for note in &history {
        sizes.push((
            unverified_body(note, "a source checkpoint")?.size,
            note.clone(),
        ));
    }

    let (mut dst, to) = open_destination(&args.dst, &signer, src.origin())?;
    let bar = progress::records(checked.records, "copying", Results::Elsewhere);
    let mut due = sizes.iter().filter(|(size, _)| *size > 0).peekable();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut copied = 0u64;
    let mut since_commit = 0u64;
    let mut matched = 1usize; // the empty tree's, signed when the destination was created
    for item in src.records(0) {
        let item = item.with_context(|| format!("cannot read the records of {from}"))?;
        batch.push(item.record);
        copied += 1;
        since_commit += 1;
        bar.inc(1);
        let at_checkpoint = due.peek().is_some_and(|(size, _)| *size == copied);
        if batch.len() >= 4096 || at_checkpoint || since_commit >= MAX_COMMIT {
            dst.append(&batch)?;
            batch.clear();
        }
        if at_checkpoint {
            let (size, note) = due.next().expect("peeked");
            let signed = dst.checkpoint()?;
            since_commit = 0;
            if signed != *note {
                return Err(invalid(format!(
                    "the copy's checkpoint at size {size} differs from the source's: {to} \
                     does not hold the same log (it is left as copied so far)"
                )));
            }
            matched += 1;
        } else if since_commit >= MAX_COMMIT && matches!(dst, Destination::Pg(_)) {
            dst.checkpoint()?;
            since_commit = 0;
        }
    }
    dst.append(&batch)?;
    let last = dst.checkpoint()?;
    bar.finish_and_clear();
    let unsigned = copied - sizes.last().map_or(0, |(size, _)| *size);
    drop(dst);

    let copy = logdir::open_source(&args.dst)
        .or_else(|_| logdir::open_source(Path::new(&to)))
        .with_context(|| format!("cannot reopen the copy {to}"))?;
    let report = verify_source(&*copy, &verifier, &VerifyOptions::default())
        .map_err(|e| invalid(format!("the copy {to} does not verify: {e}")))?;
    if (report.records, report.root) != (checked.records, checked.root) {
        return Err(invalid(format!(
            "the copy {to} holds {} records with another root than the source's",
            report.records
        )));
    }
    eprintln!(
        "copied {} from {from} to {to}; {matched}/{} of the source's checkpoints re-signed \
         byte for byte; the copy verifies (root at size {})",
        plural(copied, "record"),
        sizes.len(),
        report.records
    );
    if unsigned > 0 {
        eprintln!(
            "note: the last {} had no checkpoint in the source; the copy signed one over them:\n{last}",
            plural(unsigned, "record")
        );
    }
    Ok(())
}

/// Creates the destination log (which must not exist yet) for `origin`.
fn open_destination(
    dst: &Path,
    signer: &NoteSigner,
    origin: &str,
) -> Result<(Destination, String)> {
    if let Some(loc) = logdir::postgres_location(dst)? {
        let loc: PgLocation = match loc.origin() {
            Some(_) => loc,
            None => loc.with_origin(Some(origin)),
        };
        let target = loc.origin().expect("set").to_owned();
        let exists = veritrail_postgres::origins(&loc.with_origin(None))
            .map(|origins| origins.contains(&target))
            .unwrap_or(false);
        if exists {
            bail!("{loc} already holds a log: copy into a new origin or another schema");
        }
        if target != origin {
            bail!(
                "the source's origin is {origin:?}, not {target:?}: a copy keeps its origin \
                 (its checkpoints name it); leave origin= out of the destination"
            );
        }
        let log = PgLog::open(&loc, signer.clone(), Default::default())
            .with_context(|| format!("cannot create the log in {loc}"))?;
        return Ok((Destination::Pg(Box::new(log)), loc.to_string()));
    }
    logdir::refuse_non_directory(dst)?;
    if std::fs::read_dir(dst).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} is not empty: copy into a new directory", dst.display());
    }
    let opts = LogOptions::default().origin(Some(origin.to_owned()));
    let log = Log::open(dst, signer.clone(), opts)
        .with_context(|| format!("cannot create the log {}", dst.display()))?;
    Ok((Destination::Dir(Box::new(log)), dst.display().to_string()))
}
