//! The command-line grammar (clap derive). Names and flags are fixed by DESIGN.md.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// veritrail: a tamper-evident audit log you can verify offline.
///
/// Exit codes: 0 success, 1 verification failure or invalid input data, 2 usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "veritrail", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// One subcommand per job.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Writes a new signed-note Ed25519 private key (mode 0600) and prints its verifier key.
    Keygen(KeygenArgs),
    /// Appends each stdin line (one JSON object) as one record, then signs a checkpoint.
    Append(AppendArgs),
    /// Prints the latest signed checkpoint, verbatim.
    Checkpoint(CheckpointArgs),
    /// Prints a c2sp.org/tlog-proof@v1 file for one record against the latest checkpoint.
    Prove(ProveArgs),
    /// Prints a consistency proof from an older checkpoint to the latest one.
    Consistency(ConsistencyArgs),
    /// Verifies a whole log: records, tree, every checkpoint, and --against checkpoints.
    Verify(VerifyArgs),
    /// Verifies a .tlog-proof file offline and prints the record it carries.
    VerifyProof(VerifyProofArgs),
}

/// `veritrail keygen NAME --out KEYFILE`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// The key name (also the default origin of logs signed with it), e.g. `audit.example.com/api`.
    pub(crate) name: String,
    /// Where to write the private key (created with mode 0600). The verifier key is also
    /// written to KEYFILE.pub.
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) out: PathBuf,
    /// Overwrite KEYFILE and KEYFILE.pub if they exist.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `veritrail append LOG --key KEYFILE`.
#[derive(Debug, clap::Args)]
pub(crate) struct AppendArgs {
    /// The log directory (created if missing).
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// The private key file written by `veritrail keygen`.
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) key: PathBuf,
    /// The origin line of a new log's checkpoints (default: the key's name). Fixed at creation.
    #[arg(long)]
    pub(crate) origin: Option<String>,
}

/// `veritrail checkpoint LOG`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    /// The log directory.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
}

/// `veritrail prove LOG INDEX [--out FILE]`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    /// The log directory.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// The record's index (0-based).
    #[arg(value_name = "INDEX")]
    pub(crate) index: u64,
    /// Write the proof to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

/// `veritrail consistency LOG --from OLD_CHECKPOINT`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsistencyArgs {
    /// The log directory.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// A file holding an earlier signed checkpoint of this log.
    #[arg(long, value_name = "OLD_CHECKPOINT")]
    pub(crate) from: PathBuf,
}

/// `veritrail verify LOG --key VKEY [--against CHECKPOINT]... [--json]`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The log directory.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// The verifier key: its text (`name+hexid+base64`) or a file holding it.
    #[arg(long, value_name = "VKEY")]
    pub(crate) key: String,
    /// A signed checkpoint held elsewhere (a file); the log must extend it. Repeatable.
    /// This is what catches a truncated or rewritten log.
    #[arg(long, value_name = "CHECKPOINT")]
    pub(crate) against: Vec<PathBuf>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `veritrail verify-proof PROOF --key VKEY`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyProofArgs {
    /// The .tlog-proof file written by `veritrail prove`.
    #[arg(value_name = "PROOF")]
    pub(crate) proof: PathBuf,
    /// The verifier key: its text (`name+hexid+base64`) or a file holding it.
    #[arg(long, value_name = "VKEY")]
    pub(crate) key: String,
}
