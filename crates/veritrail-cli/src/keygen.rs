//! `veritrail keygen NAME --out KEYFILE`: a new Ed25519 signed-note key.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use veritrail_log::NoteSigner;
use veritrail_log::witness::CosignerKey;

use crate::cli::KeygenArgs;

/// Writes the private key (mode 0600) and KEYFILE.pub, prints the verifier key on stdout.
pub(crate) fn run(args: &KeygenArgs) -> Result<()> {
    let bad_name = || {
        format!(
            "cannot make a key named {:?}: a key name is non-empty, without spaces or `+` \
             (for example `audit.example.com/api`)",
            args.name
        )
    };
    let (private, verifier) = if args.witness {
        let key = CosignerKey::generate(&args.name).with_context(bad_name)?;
        (key.to_text(), key.verifier().to_text())
    } else {
        let signer = NoteSigner::generate(&args.name).with_context(bad_name)?;
        (signer.to_text(), signer.verifier().to_text())
    };
    let pub_path = pub_path(&args.out);
    if !args.force {
        for path in [&args.out, &pub_path] {
            if path.exists() {
                bail!(
                    "{} already exists; refusing to overwrite a key (pass --force to replace it, \
                     which makes logs signed with the old key unverifiable with the new one)",
                    path.display()
                );
            }
        }
    }
    write_line(&args.out, &private, 0o600, args.force)?;
    write_line(&pub_path, &verifier, 0o644, args.force)?;
    println!("{verifier}");
    eprintln!(
        "wrote the private key to {} (mode 0600) and the verifier key to {}\n\
         keep the private key with the {}; give the verifier key to whoever verifies the log",
        args.out.display(),
        pub_path.display(),
        if args.witness { "witness" } else { "writer" }
    );
    Ok(())
}

/// `KEYFILE.pub`.
fn pub_path(keyfile: &Path) -> PathBuf {
    let mut name = keyfile.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Creates `path` with `mode` (replacing it when `replace`), writes `line` and a newline, and
/// fsyncs it. The line is written in place, never copied (it may be a private key).
fn write_line(path: &Path, line: &str, mode: u32, replace: bool) -> Result<()> {
    if replace {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
        }
    }
    let mut file = create_with_mode(path, mode)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(unix)]
fn create_with_mode(path: &Path, mode: u32) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // create_new: never follow a planted symlink or reuse a file with wider permissions.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

#[cfg(not(unix))]
fn create_with_mode(path: &Path, _mode: u32) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}
