//! `veritrail append LOG --key KEYFILE`: one stdin line, one JSON object, one record.
//!
//! The record is the line's exact bytes without its line terminator (`\n`, or `\r\n`: a
//! trailing `\r` is part of the terminator, not of the event). Nothing is re-serialised, so the
//! hashed bytes are the bytes the producer wrote. Blank lines (empty or only whitespace) carry
//! no event: they are skipped and counted in the summary. Any other line must parse as one JSON
//! object; the first line that does not is reported with its line number and the command stops
//! there: the lines before it stay appended (synced, checkpoint signed, both reported) and it
//! exits 1. The first record line is checked before the log is opened, so input that starts
//! with a bad line creates and changes nothing.
//!
//! With `--recover`, a log holding records but no checkpoint history is adopted instead of
//! refused; a `recovered` record saying how many records were adopted is appended first.

use std::io::{self, BufRead, IsTerminal};
use std::path::Path;

use anyhow::{Context, Result};
use veritrail_core::event::{AuditEvent, RecoveredRecord};
use veritrail_log::{Log, LogOptions};

use crate::cli::AppendArgs;
use crate::exit::invalid;
use crate::keys;
use crate::logdir::refuse_non_directory;
use crate::output::plural;

/// Why reading stdin stopped.
enum Stop {
    /// End of input: every line was appended or skipped.
    End,
    /// This line (1-based) is not a JSON object; nothing from it on was appended.
    BadLine { line: u64, reason: String },
}

/// What one run appended.
#[derive(Default)]
struct Tally {
    appended: u64,
    blank: u64,
}

/// Appends stdin to the log and signs a checkpoint.
pub(crate) fn run(args: &AppendArgs) -> Result<()> {
    // Checked before anything is appended.
    #[cfg(feature = "witness")]
    let targets = args
        .witness
        .iter()
        .map(|w| crate::witness::WitnessTarget::parse(w))
        .collect::<Result<Vec<_>>>()?;
    let signer = keys::read_signer(&args.key)?;
    refuse_non_directory(&args.log)?;
    let stdin = io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading one JSON object per line from stdin; end with Ctrl-D");
    }
    let mut input = stdin.lock();
    let mut tally = Tally::default();
    // Nothing is created or opened before the first record line is known to be good.
    let mut line_no = 0;
    let first = match first_record(&mut input, &mut line_no, &mut tally)? {
        First::Bad(stop) => return bad_line(&stop, &args.log),
        First::Record(line) => Some(line),
        First::End => None,
    };
    let opts = LogOptions::default()
        .origin(args.origin.clone())
        .recover(args.recover);
    let mut log = Log::open(&args.log, signer, opts)
        .with_context(|| format!("cannot open the log {}", args.log.display()))?;
    if let Some(r) = log.recovered().filter(|r| r.unsigned_adopted > 0) {
        eprintln!(
            "note: --recover: adopted {} records of {} that no checkpoint history vouched for; \
             a `recovered` record says so in the log",
            r.unsigned_adopted,
            args.log.display()
        );
        let record = AuditEvent::new(RecoveredRecord {
            segment: r
                .segment
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            offset: r.offset,
            bytes_cut: r.bytes_cut,
            unsigned_adopted: Some(r.unsigned_adopted),
        });
        let mut json = Vec::new();
        record.write_json(log.size(), &mut json);
        log.append(&json)
            .context("cannot append the `recovered` record")?;
    }
    if let Some(r) = log.recovered().filter(|r| r.bytes_cut > 0) {
        eprintln!(
            "note: the last write to {} was torn (a crash?): cut {} bytes at byte {} of {} \
             (after the latest checkpoint: no signed record was lost)",
            args.log.display(),
            r.bytes_cut,
            r.offset,
            r.segment.display()
        );
    }
    if let Some(r) = log.recovered().filter(|r| r.hashes_dropped > 0) {
        eprintln!(
            "note: {} synced records were missing from the disk (after the latest checkpoint) \
             and their stored hashes were dropped",
            r.hashes_dropped
        );
    }
    let first_index = log.size();
    let read = match first {
        Some(line) => log
            .append(&line)
            .with_context(|| format!("cannot append line {line_no}"))
            .and_then(|_| {
                tally.appended += 1;
                append_lines(&mut log, input, line_no, &mut tally)
            }),
        None => Ok(Stop::End),
    };

    // Whatever stopped the input, what was appended before it is made durable and signed.
    // `checkpoint` returns the latest one unchanged when there is nothing new to sign.
    let before = log
        .latest_checkpoint()
        .with_context(|| format!("cannot read the checkpoint of {}", args.log.display()))?;
    let checkpoint = log
        .checkpoint()
        .with_context(|| format!("cannot sign a checkpoint for {}", args.log.display()))?;
    let signed_new = before.as_ref() != Some(&checkpoint);
    #[cfg(feature = "witness")]
    {
        for outcome in crate::witness::cosign_latest(&mut log, &targets)? {
            match outcome {
                crate::witness::Outcome::Cosigned(name) => {
                    eprintln!("witness {name} cosigned the checkpoint")
                }
                crate::witness::Outcome::Failed(why) => eprintln!(
                    "warning: no cosignature from witness {}",
                    crate::output::for_terminal(&why, false)
                ),
            }
        }
    }
    let size = log.size();
    log.close()
        .with_context(|| format!("cannot close the log {}", args.log.display()))?;
    print_summary(&args.log, first_index, size, &tally, signed_new);

    match read? {
        Stop::End => Ok(()),
        stop => bad_line(&stop, &args.log),
    }
}

/// The exit-1 error for a bad line.
fn bad_line(stop: &Stop, log: &Path) -> Result<()> {
    let Stop::BadLine { line, reason } = stop else {
        return Ok(());
    };
    let before = if *line > 1 {
        "the lines before it were appended and signed (see above); "
    } else {
        ""
    };
    Err(invalid(format!(
        "line {line} of stdin is not a JSON object ({reason}); {before}it and the lines after \
         it were not appended. Fix it and append the rest again, e.g. \
         `tail -n +{line} FILE | veritrail append {} --key KEYFILE`",
        log.display()
    )))
}

/// What the input starts with.
enum First {
    /// No record line at all.
    End,
    /// The first record line (terminator stripped), good.
    Record(Vec<u8>),
    /// The first record line is bad.
    Bad(Stop),
}

/// Reads blank lines up to the first record line and checks it.
fn first_record(input: &mut impl BufRead, line_no: &mut u64, tally: &mut Tally) -> Result<First> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if input
            .read_until(b'\n', &mut buf)
            .context("cannot read stdin")?
            == 0
        {
            return Ok(First::End);
        }
        *line_no += 1;
        let line = strip_terminator(&buf);
        if line.iter().all(u8::is_ascii_whitespace) {
            tally.blank += 1;
            continue;
        }
        return Ok(match check_json_object(line) {
            Ok(()) => First::Record(line.to_vec()),
            Err(reason) => First::Bad(Stop::BadLine {
                line: *line_no,
                reason,
            }),
        });
    }
}

/// Reads lines from `input` (line numbers after `line_no`) and appends each JSON object line
/// to `log`.
fn append_lines(
    log: &mut Log,
    mut input: impl BufRead,
    mut line_no: u64,
    tally: &mut Tally,
) -> Result<Stop> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if input
            .read_until(b'\n', &mut buf)
            .context("cannot read stdin")?
            == 0
        {
            return Ok(Stop::End);
        }
        line_no += 1;
        let line = strip_terminator(&buf);
        if line.iter().all(u8::is_ascii_whitespace) {
            tally.blank += 1;
            continue;
        }
        if let Err(reason) = check_json_object(line) {
            return Ok(Stop::BadLine {
                line: line_no,
                reason,
            });
        }
        log.append(line)
            .with_context(|| format!("cannot append line {line_no}"))?;
        tally.appended += 1;
    }
}

/// The line without its `\n` or `\r\n`.
fn strip_terminator(buf: &[u8]) -> &[u8] {
    let line = buf.strip_suffix(b"\n").unwrap_or(buf);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Ok if `line` is exactly one JSON object (surrounding whitespace allowed), else why not.
fn check_json_object(line: &[u8]) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
        // serde_json reports "line 1 column N": within one line, the column is what helps.
        format!("invalid JSON at column {}: {}", e.column(), describe(&e))
    })?;
    match value {
        serde_json::Value::Object(_) => Ok(()),
        other => Err(format!("a JSON {}, not an object", kind(&other))),
    }
}

/// serde_json's message without its trailing " at line L column C".
fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(at) => msg[..at].to_owned(),
        None => msg,
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

fn print_summary(dir: &Path, first: u64, size: u64, tally: &Tally, signed_new: bool) {
    let range = if tally.appended == 0 {
        String::new()
    } else {
        format!(" (indexes {first}..={})", size - 1)
    };
    let blank = match tally.blank {
        0 => String::new(),
        n => format!(", skipped {}", plural(n, "blank line")),
    };
    eprintln!(
        "appended {}{range} to {}{blank}; log size {size}",
        plural(tally.appended, "record"),
        dir.display()
    );
    if signed_new {
        eprintln!(
            "signed a checkpoint at size {size} (print it with `veritrail checkpoint {}`)",
            dir.display()
        );
    } else {
        eprintln!("nothing new to sign; the latest checkpoint (size {size}) stands");
    }
}
