//! `veritrail`: write, prove and verify tamper-evident audit logs.
//!
//! ```text
//! veritrail keygen audit.example.com/api --out audit.key        # prints the verifier key
//! printf '{"sub":"alice","action":"login"}\n' | veritrail append log --key audit.key
//! veritrail prove log 0 --out login.tlog-proof
//! veritrail verify-proof login.tlog-proof --key audit.key.pub
//! veritrail verify log --key audit.key.pub --against held.checkpoint
//! veritrail verify log --key audit.key.pub --tokens       # re-check archived tokens too
//! veritrail events log --sub alice --since 1h             # or --json: the stored records
//! veritrail tail log                                      # follow new events
//! veritrail export log --format ocsf --out events.ocsf.jsonl
//! veritrail verify 'postgres://audit@db:5432/app' --key audit.key.pub  # every origin there
//! veritrail copy log 'postgres://audit@db:5432/app?origin=api-1' --key audit.key
//! veritrail demo                                          # server, tokens, traffic, verification
//! veritrail serve log --listen 127.0.0.1:8080 --jwks jwks.json --issuer https://login.example.com \
//!     --audience audit --access-log access-log --access-key access.key   # or --no-auth, locally
//! veritrail token verify - --jwks jwks.json --issuer https://login.example.com --audience api
//! veritrail proxy --listen 0.0.0.0:8080 --upstream http://127.0.0.1:3000 \
//!     --oidc https://login.example.com --audience api --log log --key audit.key
//! veritrail sequencer --from nats://127.0.0.1:4222/AUDIT --origin audit.example.com/api \
//!     --log log --key audit.key --init                    # many replicas, one log
//! veritrail reconcile 'nats://127.0.0.1:4222/AUDIT?origin=audit.example.com/api' --log log
//! ```
//!
//! Exit codes: 0 success, 1 verification failure or invalid input data, 2 usage or I/O error.

mod append;
mod cli;
#[cfg(feature = "postgres")]
mod copy;
#[cfg(feature = "demo")]
mod demo;
#[cfg(feature = "demo")]
mod dev_idp;
mod dirstate;
mod events;
mod exit;
mod export;
mod filter;
mod keygen;
mod keys;
#[cfg(feature = "token")]
mod keysource;
mod lines;
mod logdir;
mod ocsf;
mod output;
mod progress;
mod proofs;
#[cfg(feature = "proxy")]
mod proxy;
#[cfg(feature = "nats")]
mod sequencer;
#[cfg(feature = "serve")]
mod serve;
#[cfg(any(
    feature = "proxy",
    feature = "serve",
    feature = "witness",
    feature = "nats"
))]
mod signal;
mod tail;
#[cfg(any(
    feature = "demo",
    feature = "proxy",
    feature = "serve",
    feature = "witness"
))]
mod telemetry;
#[cfg(feature = "token")]
mod token;
mod tokens;
mod verify;
#[cfg(feature = "postgres")]
mod verify_pg;
#[cfg(feature = "witness")]
mod witness;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // clap exits with 2 on a usage error and 0 for --help / --version.
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Append(args) => append::run(args),
        Command::Checkpoint(args) => proofs::checkpoint(args),
        Command::Prove(args) => proofs::prove(args),
        Command::Consistency(args) => proofs::consistency(args),
        Command::Verify(args) => verify::verify(args),
        Command::VerifyProof(args) => verify::verify_proof(args),
        Command::Events(args) => events::run(args),
        Command::Tail(args) => tail::run(args),
        Command::Export(args) => export::run(args),
        #[cfg(feature = "postgres")]
        Command::Copy(args) => copy::run(args),
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::run(args),
        #[cfg(feature = "demo")]
        Command::DevIdp(args) => dev_idp::run(args),
        #[cfg(feature = "proxy")]
        Command::Proxy(args) => proxy::run(args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve::run(args),
        #[cfg(feature = "witness")]
        Command::Witness(args) => witness::run(args),
        #[cfg(feature = "token")]
        Command::Token(args) => token::run(args),
        #[cfg(feature = "nats")]
        Command::Sequencer(args) => sequencer::run(args),
        #[cfg(feature = "nats")]
        Command::Reconcile(args) => sequencer::reconcile(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit::code_for(&err);
            if !err.is::<exit::Reported>() {
                // Errors quote paths, origins and reasons found in logs and tokens.
                eprintln!("error: {}", output::for_terminal(&format!("{err:#}"), true));
            }
            ExitCode::from(code)
        }
    }
}
