//! Opening a log — a directory, or `postgres://…` — for the read-side commands, with errors
//! that say what to do.

use std::path::Path;

use anyhow::{Context, Result, bail};
use veritrail_log::source::LogSource;
use veritrail_log::store::LogError;
use veritrail_log::{Checkpoint, Log};

use crate::exit::invalid;

/// Opens the log `log` names for reading: a directory, or a PostgreSQL location with an
/// origin. The store can move to another thread (`veritrail serve` reads it from its pool).
pub(crate) fn open_source(log: &Path) -> Result<Box<dyn LogSource + Send>> {
    if let Some(loc) = postgres_location(log)? {
        return open_postgres(&loc);
    }
    Ok(Box::new(open_read_only(log)?))
}

#[cfg(feature = "postgres")]
fn open_postgres(loc: &veritrail_postgres::PgLocation) -> Result<Box<dyn LogSource + Send>> {
    Ok(Box::new(
        veritrail_postgres::PgStore::open(loc).with_context(|| format!("cannot open {loc}"))?,
    ))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(loc: &PgLocation) -> Result<Box<dyn LogSource + Send>> {
    match *loc {}
}

/// A PostgreSQL location, parsed.
#[cfg(feature = "postgres")]
pub(crate) type PgLocation = veritrail_postgres::PgLocation;

/// Without the `postgres` feature there is none.
#[cfg(not(feature = "postgres"))]
pub(crate) enum PgLocation {}

/// The PostgreSQL location `log` spells (`postgres://…`), or `None` for a path.
pub(crate) fn postgres_location(log: &Path) -> Result<Option<PgLocation>> {
    let Some(text) = log.to_str() else {
        return Ok(None);
    };
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Ok(None);
    }
    #[cfg(feature = "postgres")]
    {
        Ok(Some(text.parse()?))
    }
    #[cfg(not(feature = "postgres"))]
    {
        bail!("this veritrail was built without the `postgres` feature: it cannot read {text}")
    }
}

/// A NATS JetStream ingest location, parsed.
#[cfg(feature = "nats")]
pub(crate) type NatsLocation = veritrail_nats::NatsLocation;

/// Without the `nats` feature there is none.
#[cfg(not(feature = "nats"))]
pub(crate) enum NatsLocation {}

#[cfg(not(feature = "nats"))]
impl std::fmt::Display for NatsLocation {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

/// The JetStream ingest location `log` spells (`nats://HOST:PORT/STREAM?origin=O`), or
/// `None` for anything else. Only a writer takes one: there is no log to read there.
pub(crate) fn nats_location(log: &Path) -> Result<Option<NatsLocation>> {
    let Some(text) = log.to_str().filter(|t| t.starts_with("nats://")) else {
        return Ok(None);
    };
    #[cfg(feature = "nats")]
    {
        Ok(Some(
            text.parse()
                .with_context(|| format!("bad NATS location {text:?}"))?,
        ))
    }
    #[cfg(not(feature = "nats"))]
    {
        bail!("this veritrail was built without the `nats` feature: it cannot publish to {text}")
    }
}

/// Opens the log at `dir` read-only, after checking it is there at all.
pub(crate) fn open_read_only(dir: &Path) -> Result<Log> {
    require_dir(dir)?;
    match Log::open_read_only(dir) {
        Ok(log) => Ok(log),
        Err(LogError::NotALog { path, reason }) if path == dir => bail!(
            "{} is not a veritrail log: {reason} — create one with `veritrail append {} \
             --key KEYFILE`",
            dir.display(),
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot open the log {}", dir.display())),
    }
}

/// Checks that `dir` exists and is a directory, with an error that says what to do.
pub(crate) fn require_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        let cwd = std::env::current_dir()
            .map(|d| format!(" (relative to {})", d.display()))
            .unwrap_or_default();
        bail!(
            "{} does not exist — check the path{}; to start a new log there, `veritrail \
             append {} --key KEYFILE`",
            dir.display(),
            if dir.is_relative() {
                cwd
            } else {
                String::new()
            },
            dir.display()
        );
    }
    refuse_non_directory(dir)?;
    let empty = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the directory {}", dir.display()))?
        .next()
        .is_none();
    if empty {
        bail!(
            "{} is empty: not a veritrail log yet — create one with `veritrail append {} --key \
             KEYFILE`",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// The latest signed checkpoint of `log`, as stored.
pub(crate) fn latest_checkpoint(log: &dyn LogSource) -> Result<String> {
    let at = log.location();
    log.latest_checkpoint()
        .with_context(|| format!("cannot read the latest checkpoint of {at}"))?
        .with_context(|| {
            format!(
                "{at} has no signed checkpoint yet — append records with \
                 `veritrail append {at} --key KEYFILE`, which signs one"
            )
        })
}

/// Parses the body of a signed checkpoint note without checking its signature (the commands
/// that only read a log have no key; whoever verifies the output checks the signature).
pub(crate) fn unverified_body(signed: &str, what: &str) -> Result<Checkpoint> {
    let Some(end) = signed.find("\n\n") else {
        return Err(invalid(format!(
            "{what} is not a signed checkpoint: no blank line before the signature lines"
        )));
    };
    Checkpoint::parse_body(&signed[..=end])
        .map_err(|e| invalid(format!("{what} is not a valid checkpoint: {e}")))
}

/// Refuses a `dir` that exists but is not a directory (a missing one is fine: `append` makes it).
pub(crate) fn refuse_non_directory(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{} is not a directory; LOG is a log directory",
            dir.display()
        );
    }
    Ok(())
}
