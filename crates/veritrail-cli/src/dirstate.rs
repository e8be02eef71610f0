//! Noticing that a log directory changed without opening the log: the name, length and
//! modification time of each of its files (`veritrail tail` and `veritrail serve` poll it).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

/// The name, length and modification time of every file under the log directory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DirState {
    files: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

impl DirState {
    /// Looks at every file under `dir`.
    pub(crate) fn of(dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            let entries =
                std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?;
            for entry in entries {
                let entry = entry.with_context(|| format!("cannot read {}", d.display()))?;
                let path = entry.path();
                // A file may vanish between listing and looking (a writer's temporary file).
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    pending.push(path);
                } else {
                    files.push((path, meta.len(), meta.modified().ok()));
                }
            }
        }
        files.sort();
        Ok(DirState { files })
    }

    /// Forgets what was seen, so that the next look counts as a change.
    pub(crate) fn forget(&mut self) {
        self.files.clear();
    }
}
