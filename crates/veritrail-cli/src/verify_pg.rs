//! `veritrail verify postgres://…`: one origin, or — without `origin=` — every origin in the
//! schema, one line each; exit 1 if any fails.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use veritrail_log::NoteVerifier;
use veritrail_log::source::LogSource;
use veritrail_log::verify::{VerifyError, VerifyOptions, VerifyReport};
use veritrail_postgres::{PgLocation, PgStore};

use crate::cli::VerifyArgs;
use crate::exit::{INVALID, Reported};
use crate::logdir::unverified_body;
use crate::output::{for_terminal, write_stdout};
use crate::progress::{self, Results};
use crate::tokens::{TokenAudit, TokenRules};
use crate::verify::{human_invalid, json_invalid, read_against, read_verifiers};

/// What one origin's verification gave.
struct Outcome {
    origin: String,
    location: String,
    result: Result<VerifyReport, VerifyError>,
    tokens: Option<TokenAudit>,
}

pub(crate) fn verify(args: &VerifyArgs, loc: &PgLocation) -> Result<()> {
    let verifiers = read_verifiers(&args.key)?;
    let against = read_against(&args.against)?;
    let origins = match loc.origin() {
        Some(origin) => vec![origin.to_owned()],
        None => veritrail_postgres::origins(loc).with_context(|| format!("cannot read {loc}"))?,
    };
    if origins.is_empty() {
        anyhow::bail!(
            "{loc} holds no log yet: a writer creates one (`veritrail proxy --log {loc}&origin=O`)"
        );
    }
    let mut outcomes = Vec::new();
    for origin in &origins {
        let at = loc.with_origin(Some(origin));
        let store = PgStore::open(&at).with_context(|| format!("cannot open {at}"))?;
        // Each origin with the key its log names, if given (else the first: a WrongKey).
        let verifier: &NoteVerifier = verifiers
            .iter()
            .find(|v| *v == store.verifier())
            .unwrap_or(&verifiers[0]);
        // --against checkpoints of other origins concern the other logs.
        let opts = VerifyOptions::default().against(
            against
                .iter()
                .filter(|text| {
                    origins.len() == 1
                        || unverified_body(text, "--against").is_ok_and(|c| c.origin == *origin)
                })
                .cloned()
                .collect(),
        );
        let mut tokens = args.tokens.then(|| {
            TokenAudit::new(TokenRules {
                issuer: args.issuer.clone(),
                audiences: args.audience.clone(),
            })
        });
        let spinner = progress::spinner(&format!("verifying {origin}"), Results::Elsewhere);
        let result = veritrail_postgres::verify_with(&store, verifier, &opts, |index, record| {
            if let Some(audit) = tokens.as_mut() {
                audit.check_record(index, record);
            }
            Ok(())
        });
        spinner.finish_and_clear();
        outcomes.push(Outcome {
            origin: origin.clone(),
            location: at.to_string(),
            result,
            tokens,
        });
    }
    if let Some(io) = outcomes.iter().find_map(|o| match &o.result {
        Err(e) if e.is_io() => Some((o.location.clone(), e.to_string())),
        _ => None,
    }) {
        anyhow::bail!("cannot verify {}: {}", io.0, io.1);
    }
    let failed = outcomes
        .iter()
        .any(|o| o.result.is_err() || o.tokens.as_ref().is_some_and(|t| t.failed() > 0));
    let text = if args.json {
        json(loc, &outcomes, args)
    } else if outcomes.len() == 1 {
        for_terminal(&human_one(&outcomes[0], args), true).into_owned()
    } else {
        for_terminal(&human_many(loc, &outcomes), true).into_owned()
    };
    write_stdout(text.as_bytes())?;
    if failed {
        return Err(Reported(INVALID).into());
    }
    Ok(())
}

fn human_one(o: &Outcome, args: &VerifyArgs) -> String {
    let mut out = match &o.result {
        Ok(r) => {
            let mut out = format!(
                "{} is valid\n\
                 records:      {} checked (leaf hashes, stored hashes, RFC 6962 tree)\n\
                 checkpoints:  {}/{} valid (signature, and root at their size)\n",
                o.location, r.records, r.checkpoints_checked, r.checkpoints_checked
            );
            if args.against.is_empty() {
                out.push_str(
                    "against:      none given — a truncated or wholly rewritten log is caught \
                     only with --against CHECKPOINT held elsewhere\n",
                );
            } else {
                out.push_str(&format!(
                    "against:      {}/{} proven (the log extends each)\n",
                    r.against_checked,
                    args.against.len()
                ));
            }
            out.push_str(&format!(
                "root:         {} at size {}\n",
                BASE64.encode(r.root),
                r.records
            ));
            out
        }
        Err(e) => human_invalid(Path::new(&o.location), e, &args.against),
    };
    if let Some(audit) = &o.tokens {
        out.push_str(&audit.human());
    }
    out
}

fn human_many(loc: &PgLocation, outcomes: &[Outcome]) -> String {
    let valid = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let mut out = format!("{loc}: {valid}/{} logs valid\n", outcomes.len());
    for o in outcomes {
        match &o.result {
            Ok(r) => out.push_str(&format!(
                "{}  valid    {} records, {} checkpoints, root {}\n",
                o.origin,
                r.records,
                r.checkpoints_checked,
                BASE64.encode(r.root)
            )),
            Err(e) => {
                let index = e.index().map_or(String::new(), |i| format!(" (index {i})"));
                out.push_str(&format!("{}  INVALID  {e}{index}\n", o.origin));
            }
        }
        if let Some(audit) = &o.tokens {
            out.push_str(&audit.human());
        }
    }
    out
}

fn json(loc: &PgLocation, outcomes: &[Outcome], args: &VerifyArgs) -> String {
    let one = |o: &Outcome| {
        let mut value = match &o.result {
            Ok(r) => serde_json::json!({
                "valid": true,
                "log": o.location,
                "origin": o.origin,
                "records": r.records,
                "root": BASE64.encode(r.root),
                "checkpoints_checked": r.checkpoints_checked,
                "against_checked": r.against_checked,
            }),
            Err(e) => {
                let mut v: serde_json::Value =
                    serde_json::from_str(&json_invalid(Path::new(&o.location), e, &args.against))
                        .expect("json");
                v["origin"] = o.origin.clone().into();
                v
            }
        };
        if let Some(audit) = &o.tokens {
            value["tokens"] = audit.to_json();
        }
        value
    };
    let value = if outcomes.len() == 1 {
        one(&outcomes[0])
    } else {
        serde_json::json!({
            "valid": outcomes.iter().all(|o| o.result.is_ok()),
            "log": loc.to_string(),
            "logs": outcomes.iter().map(one).collect::<Vec<_>>(),
        })
    };
    format!("{value}\n")
}
