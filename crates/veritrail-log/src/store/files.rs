//! The file layer: append-only files with a write buffer, and the storage-fault hook.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A storage fault to inject, for testing how callers handle a failing disk.
///
/// Set with [`Log::inject_fault`](super::Log::inject_fault). The fault fires once, on the next
/// matching operation on any of the log's files, as an `EIO` error; the log then enters its
/// failed state exactly as it would after a real disk error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// The next write to a log file fails.
    Write,
    /// The next fdatasync of a log file fails.
    Sync,
}

/// The one-shot fault slot shared by a log's files.
#[derive(Debug, Default)]
pub(crate) struct Faults(Option<StorageFault>);

impl Faults {
    pub(crate) fn set(&mut self, fault: StorageFault) {
        self.0 = Some(fault);
    }

    fn fire(&mut self, kind: StorageFault, path: &Path) -> io::Result<()> {
        if self.0 == Some(kind) {
            self.0 = None;
            return Err(io::Error::other(format!(
                "injected {kind:?} fault on {}",
                path.display()
            )));
        }
        Ok(())
    }
}

/// An append-only file whose tail may still sit in memory.
///
/// `on_file` bytes belong to the file (written, maybe not yet synced); `pending` follows them.
/// Reads see both, so a record or hash can be read back before it is flushed.
#[derive(Debug)]
pub(crate) struct AppendFile {
    path: PathBuf,
    file: Option<File>,
    writable: bool,
    on_file: u64,
    pending: Vec<u8>,
    unsynced: bool,
    /// The file is longer than `on_file` and must be cut before the next write.
    cut: bool,
}

impl AppendFile {
    /// Opens (creating if needed when `writable`) the file at `path`. A read-only open of a
    /// missing file gives an empty file that stays empty.
    pub(crate) fn open(path: PathBuf, writable: bool) -> io::Result<Self> {
        let file = if writable {
            Some(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)?,
            )
        } else {
            match File::open(&path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            }
        };
        let on_file = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(Self {
            path,
            file,
            writable,
            on_file,
            pending: Vec::new(),
            unsynced: false,
            cut: false,
        })
    }

    /// A file that does not exist yet; a writable one is created by its first write.
    pub(crate) fn deferred(path: PathBuf, writable: bool) -> Self {
        Self {
            path,
            file: None,
            writable,
            on_file: 0,
            pending: Vec::new(),
            unsynced: false,
            cut: false,
        }
    }

    /// Starts a new, empty file at `path` (it must not exist).
    pub(crate) fn create_new(path: PathBuf) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Self {
            path,
            file: Some(file),
            writable: true,
            on_file: 0,
            pending: Vec::new(),
            unsynced: true,
            cut: false,
        })
    }

    /// Logical length: bytes on file plus pending bytes.
    pub(crate) fn len(&self) -> u64 {
        self.on_file + self.pending.len() as u64
    }

    /// Bytes that are on file (the logical length minus what waits in memory).
    pub(crate) fn on_file(&self) -> u64 {
        self.on_file
    }

    /// Bytes waiting in memory.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Appends bytes to the in-memory tail.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The in-memory tail, for appending in place.
    pub(crate) fn pending_mut(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Reads `buf.len()` bytes at logical position `pos` (file or memory).
    pub(crate) fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = pos
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: read of {} bytes at {pos} past the end ({} bytes)",
                        self.path.display(),
                        buf.len(),
                        self.len()
                    ),
                )
            })?;
        let from_file = end.min(self.on_file).saturating_sub(pos) as usize;
        if from_file > 0 {
            let file = self
                .file
                .as_ref()
                .ok_or_else(|| io::Error::other("no file"))?;
            file.read_exact_at(&mut buf[..from_file], pos)
                .map_err(|e| with_path(e, &self.path))?;
        }
        if from_file < buf.len() {
            let start = (pos + from_file as u64 - self.on_file) as usize;
            let n = buf.len() - from_file;
            buf[from_file..].copy_from_slice(&self.pending[start..start + n]);
        }
        Ok(())
    }

    /// Reads bytes that are physically on file at `pos`, ignoring any logical truncation
    /// (for comparing stored data beyond what is trusted).
    pub(crate) fn read_raw_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| io::Error::other("no file"))?;
        file.read_exact_at(buf, pos)
            .map_err(|e| with_path(e, &self.path))
    }

    /// Writes the pending bytes to the file (no sync).
    pub(crate) fn write_pending(&mut self, faults: &mut Faults) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        debug_assert!(self.writable, "write to a read-only file");
        faults.fire(StorageFault::Write, &self.path)?;
        self.apply_cut()?;
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| io::Error::other("no file"))?;
        file.write_all_at(&self.pending, self.on_file)
            .map_err(|e| with_path(e, &self.path))?;
        self.on_file += self.pending.len() as u64;
        self.pending.clear();
        self.unsynced = true;
        Ok(())
    }

    /// If the file already holds exactly the pending bytes after the logical end (and nothing
    /// more), takes them as written: reopening an intact log then rewrites nothing.
    pub(crate) fn adopt_pending(&mut self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let physical = file.metadata().map_err(|e| with_path(e, &self.path))?.len();
        if physical != self.len() || self.pending.is_empty() {
            return Ok(());
        }
        let mut on_disk = vec![0u8; self.pending.len()];
        file.read_exact_at(&mut on_disk, self.on_file)
            .map_err(|e| with_path(e, &self.path))?;
        if on_disk == self.pending {
            self.on_file = physical;
            self.pending.clear();
            self.cut = false;
        }
        Ok(())
    }

    /// Creates a deferred file and cuts a file truncated by [`truncate`](Self::truncate).
    pub(crate) fn apply_cut(&mut self) -> io::Result<()> {
        if !self.writable {
            return Ok(());
        }
        if self.file.is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
                .map_err(|e| with_path(e, &self.path))?;
            self.file = Some(file);
            self.cut = true;
        }
        if self.cut {
            let file = self
                .file
                .as_ref()
                .ok_or_else(|| io::Error::other("no file"))?;
            file.set_len(self.on_file)
                .map_err(|e| with_path(e, &self.path))?;
            self.cut = false;
            self.unsynced = true;
        }
        Ok(())
    }

    /// fdatasyncs the file if anything was written since the last sync.
    pub(crate) fn sync(&mut self, faults: &mut Faults) -> io::Result<()> {
        self.apply_cut()?;
        if !self.unsynced {
            return Ok(());
        }
        faults.fire(StorageFault::Sync, &self.path)?;
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| io::Error::other("no file"))?;
        file.sync_data().map_err(|e| with_path(e, &self.path))?;
        self.unsynced = false;
        Ok(())
    }

    /// Forgets everything past logical length `len` (which must not be in memory). A writable
    /// file is cut to that length by its next write or [`apply_cut`](Self::apply_cut).
    pub(crate) fn truncate(&mut self, len: u64) -> io::Result<()> {
        debug_assert!(self.pending.is_empty());
        if len < self.on_file {
            self.on_file = len;
            self.cut = true;
        }
        Ok(())
    }
}

/// Adds the path to an I/O error's message.
pub(crate) fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// fsyncs a directory, so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| with_path(e, dir))
}

/// Replaces `path` atomically: write a temporary file, fdatasync it, rename it over `path`,
/// fsync the directory.
pub(crate) fn write_atomically(
    path: &Path,
    contents: &[u8],
    faults: &mut Faults,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    faults.fire(StorageFault::Write, &tmp)?;
    let file = File::create(&tmp).map_err(|e| with_path(e, &tmp))?;
    file.write_all_at(contents, 0)
        .map_err(|e| with_path(e, &tmp))?;
    faults.fire(StorageFault::Sync, &tmp)?;
    file.sync_data().map_err(|e| with_path(e, &tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| with_path(e, path))?;
    sync_dir(dir)
}
