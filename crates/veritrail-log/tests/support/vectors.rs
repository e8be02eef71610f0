//! Where the shared test vectors are: `$VERITRAIL_VECTORS` when set, else the shared folder
//! next to the repository (`../shared/vectors`) when it exists, else the repository's own copy
//! (`vectors/`, copied unchanged from it).

use std::path::{Path, PathBuf};

/// The vectors folder (holding `rfc6962/` and `signed-note/`).
pub(crate) fn vectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VERITRAIL_VECTORS") {
        return PathBuf::from(dir);
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = crate_dir.join("../../../shared/vectors");
    if shared.is_dir() {
        shared
    } else {
        crate_dir.join("../../vectors")
    }
}
