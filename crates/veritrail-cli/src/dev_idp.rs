//! `veritrail dev-idp --dir DIR [--token SUB[=SCOPES]]...`: the development identity
//! provider (`veritrail_core::dev`) — keys kept in DIR (made on first use, then reused), their
//! JWKS, the issuer name, and tokens for chosen subjects and scopes. The examples and the demo
//! use the same provider.

use anyhow::{Context, Result, bail};
use veritrail_core::dev::{DevIdp, ISSUER_FILE, JWKS_FILE, KEYS_FILE};

use crate::cli::DevIdpArgs;

/// Writes the provider's files and the tokens asked for; prints what it wrote.
pub(crate) fn run(args: &DevIdpArgs) -> Result<()> {
    let idp = DevIdp::open(&args.dir).context("cannot set up the development identity provider")?;
    let dir = args.dir.display();
    println!("issuer    {} ({dir}/{ISSUER_FILE})", idp.issuer());
    println!("jwks      {dir}/{JWKS_FILE}");
    println!("keys      {dir}/{KEYS_FILE} (private, mode 0600: for development only)");
    if args.tokens.is_empty() {
        return Ok(());
    }
    let tokens = args.dir.join("tokens");
    std::fs::create_dir_all(&tokens)
        .with_context(|| format!("cannot create {}", tokens.display()))?;
    for spec in &args.tokens {
        let (sub, scopes) = spec.split_once('=').unwrap_or((spec, ""));
        if sub.is_empty() || sub.contains(['/', '\\']) || sub.starts_with('.') {
            bail!("--token {spec:?}: the subject names a file: no `/`, `\\` or leading `.`");
        }
        let scope = scopes
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let token = idp
            .mint(sub, &args.audience, &scope, args.ttl)
            .context("cannot sign a token")?;
        let path = tokens.join(format!("{sub}.jwt"));
        std::fs::write(&path, format!("{token}\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "token     {} (sub {sub}, aud {}, scope {scope:?}, valid {} s)",
            path.display(),
            args.audience,
            args.ttl
        );
    }
    Ok(())
}
