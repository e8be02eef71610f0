//! `veritrail token verify`: checks one token exactly as `veritrail proxy` (the middleware)
//! would — the same key sources ([`crate::keysource`]), the same [`Authenticator`] and
//! [`explain`] — and prints the verdict.
//!
//! [`Authenticator`]: veritrail_core::auth::Authenticator

use std::io::Read;

use anyhow::{Context, Result, bail};
use veritrail_core::auth::explain;

use crate::cli::{TokenArgs, TokenCommand, TokenVerifyArgs};
use crate::exit::{INVALID, Reported};
use crate::keysource::{self, KeySource};
use crate::output::{for_terminal, write_stdout};

/// Runs a `token` subcommand.
pub(crate) fn run(args: &TokenArgs) -> Result<()> {
    match &args.command {
        TokenCommand::Verify(args) => verify(args),
    }
}

/// Prints the claims (exit 0) or the reason code and a one-line explanation (exit 1).
fn verify(args: &TokenVerifyArgs) -> Result<()> {
    let Some(source) = KeySource::from_args(&args.keys)? else {
        bail!("one of --jwks, --oidc or --hs-secret-file is required");
    };
    let Some(issuer) = args.issuer.as_deref().or_else(|| source.default_issuer()) else {
        bail!("--issuer is required (it defaults to the --oidc URL only with --oidc)");
    };
    let token = if args.token == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the token from stdin")?;
        text
    } else {
        args.token.clone()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let explanation = runtime.block_on(async {
        let authenticator = keysource::authenticator(&source, (issuer, &args.audience), &[])
            .await?
            .authenticator;
        anyhow::Ok(explain(&authenticator, &token).await)
    })?;
    let text = if args.json {
        format!("{}\n", explanation.to_json())
    } else {
        let mut text = format!("{}\n", explanation.line());
        if let Ok(identity) = &explanation.outcome {
            let claims = serde_json::to_string_pretty(identity.claims())?;
            text.push_str(&format!("{claims}\n"));
        }
        // The claims are the token's: shown escaped, exact only in --json.
        for_terminal(&text, true).into_owned()
    };
    write_stdout(text.as_bytes())?;
    if explanation.exit_code() == 0 {
        Ok(())
    } else {
        Err(Reported(INVALID).into())
    }
}
