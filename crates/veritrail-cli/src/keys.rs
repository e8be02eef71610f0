//! Reading keys: the private key file written by `keygen`, and a verifier key given either as
//! its text or as a file holding it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use veritrail_log::{NoteSigner, NoteVerifier};

/// Prefix of a signed-note private key's text form.
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// Reads the private key file at `path`.
pub(crate) fn read_signer(path: &Path) -> Result<NoteSigner> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the key file {} — create one with `veritrail keygen NAME --out {}`",
            path.display(),
            path.display()
        )
    })?;
    // The parse error never includes the key text.
    NoteSigner::from_text(&text).with_context(|| {
        if text.trim_start().starts_with(PRIVATE_PREFIX) {
            format!("{} holds a malformed private key", path.display())
        } else {
            format!(
                "{} is not a private key file (expected `PRIVATE+KEY+name+hexid+base64`, \
                 as written by `veritrail keygen`)",
                path.display()
            )
        }
    })
}

/// Reads a verifier key given as `name+hexid+base64` or as the path of a file holding it.
pub(crate) fn read_verifier(arg: &str) -> Result<NoteVerifier> {
    let path = Path::new(arg);
    let (text, source) = if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the verifier key file {arg}"))?;
        (text, format!("the file {arg}"))
    } else {
        (arg.to_owned(), "--key".to_owned())
    };
    if text.trim_start().starts_with(PRIVATE_PREFIX) {
        bail!(
            "{source} holds a private key; verification needs only the verifier key \
             (printed by `veritrail keygen`, also in KEYFILE.pub) — keep the private key \
             with the writer"
        );
    }
    NoteVerifier::from_text(&text).with_context(|| {
        if path.exists() || text.contains('+') {
            format!("{source} is not a valid verifier key (expected `name+hexid+base64`)")
        } else {
            format!(
                "--key {arg}: no such file, and not a verifier key text (expected \
                 `name+hexid+base64` or a file holding it, such as KEYFILE.pub)"
            )
        }
    })
}
