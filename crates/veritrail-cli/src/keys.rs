//! Reading keys: the private key file written by `keygen`, and a verifier key given either as
//! its text or as a file holding it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use veritrail_log::note::NoteError;
use veritrail_log::witness::CosignatureVerifier;
#[cfg(feature = "witness")]
use veritrail_log::witness::CosignerKey;
use veritrail_log::{NoteSigner, NoteVerifier};

/// Prefix of a signed-note private key's text form.
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// Reads the private key file at `path`, refusing one that others may read (as ssh does):
/// a key readable by its group or by everyone is a key that may already be copied.
pub(crate) fn read_signer(path: &Path) -> Result<NoteSigner> {
    read_private(path, NoteSigner::from_text)
}

/// Reads a witness's private key file (`veritrail keygen --witness`), with the same checks.
#[cfg(feature = "witness")]
pub(crate) fn read_cosigner(path: &Path) -> Result<CosignerKey> {
    read_private(path, CosignerKey::from_text)
}

fn read_private<T>(path: &Path, parse: impl Fn(&str) -> Result<T, NoteError>) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the key file {} — create one with `veritrail keygen NAME --out {}`",
            path.display(),
            path.display()
        )
    })?;
    if text.trim_start().starts_with(PRIVATE_PREFIX) {
        refuse_readable_by_others(path)?;
    }
    // The parse error never includes the key text.
    parse(&text).with_context(|| {
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

/// Fails if the file at `path` is readable, writable or executable by its group or others.
#[cfg(unix)]
fn refuse_readable_by_others(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        // Missing or unreadable: reading it reports that, with what to do.
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the private key file {} is accessible by others (mode {mode:04o}); refusing to use \
             it. Make it private with `chmod 600 {}` (and consider the key exposed if others \
             could read it: make a new one with `veritrail keygen`)",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_readable_by_others(_path: &Path) -> Result<()> {
    Ok(())
}

/// Reads a verifier key given as `name+hexid+base64` or as the path of a file holding it.
pub(crate) fn read_verifier(arg: &str) -> Result<NoteVerifier> {
    read_public(arg, NoteVerifier::from_text)
}

/// Reads a witness's verifier key (`name+hexid+base64(0x04 ‖ key)`), as text or a file.
pub(crate) fn read_witness_verifier(arg: &str) -> Result<CosignatureVerifier> {
    read_public(arg, CosignatureVerifier::from_text)
}

fn read_public<T>(arg: &str, parse: impl Fn(&str) -> Result<T, NoteError>) -> Result<T> {
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
    parse(&text).with_context(|| {
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
