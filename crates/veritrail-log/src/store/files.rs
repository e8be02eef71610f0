//! The file layer: append-only files with a write buffer, and the storage-fault hook.
//!
//! Every file of a log is opened with `O_NOFOLLOW`: a log's files are regular files, and a
//! symbolic link planted in the directory (by someone who may write there but not sign) must
//! not redirect the writer's writes elsewhere.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A storage fault to inject, for testing how callers handle a failing disk.
///
/// Set with [`Log::inject_fault`](super::Log::inject_fault). Only with the `test-util`
/// feature (which tests enable through their dev-dependencies); without it a log has no
/// fault hook at all. The fault fires once, on the next
/// matching operation on any of the log's files, as the error a real disk gives (`EIO` or
/// `ENOSPC`); the log then enters its failed state exactly as it would after a real disk
/// error.
#[cfg(feature = "test-util")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// The next write to a log file fails with `EIO`; nothing of it reaches the file.
    Write,
    /// The next fdatasync of a log file fails with `EIO`.
    Sync,
    /// The next write to a log file fails with `ENOSPC` (disk full); nothing of it reaches
    /// the file.
    NoSpace,
    /// The next write to a log file is short: the first half of its bytes reach the file,
    /// then the rest fails with `ENOSPC` (what a disk filling up mid-write leaves).
    ShortWrite,
}

/// The one-shot fault slot shared by a log's files (empty without the `test-util` feature).
#[derive(Debug, Default)]
pub(crate) struct Faults(#[cfg(feature = "test-util")] Option<StorageFault>);

/// How a write should go, as decided by [`Faults::on_write`].
#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
enum WriteFault {
    /// Write nothing and fail.
    Fail(io::Error),
    /// Write this many bytes, then fail.
    Short(usize, io::Error),
}

#[cfg(not(feature = "test-util"))]
impl Faults {
    /// No fault: the hook is compiled out.
    #[inline(always)]
    fn on_write(&mut self, _path: &Path, _len: usize) -> Option<WriteFault> {
        None
    }

    /// No fault: the hook is compiled out.
    #[inline(always)]
    #[allow(clippy::unnecessary_wraps, clippy::unused_self)]
    fn fire_sync(&mut self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "test-util")]
impl Faults {
    pub(crate) fn set(&mut self, fault: StorageFault) {
        self.0 = Some(fault);
    }

    /// The injected fault for a write of `len` bytes to `path`, if one is due.
    fn on_write(&mut self, path: &Path, len: usize) -> Option<WriteFault> {
        let error = |errno: i32| {
            let real = io::Error::from_raw_os_error(errno);
            let message = format!("{}: injected fault: {real}", path.display());
            io::Error::new(real.kind(), message)
        };
        let fault = match self.0? {
            StorageFault::Write => WriteFault::Fail(error(EIO)),
            StorageFault::NoSpace => WriteFault::Fail(error(ENOSPC)),
            StorageFault::ShortWrite => WriteFault::Short(len / 2, error(ENOSPC)),
            StorageFault::Sync => return None,
        };
        self.0 = None;
        Some(fault)
    }

    /// Fails like an fdatasync when a sync fault is due.
    fn fire_sync(&mut self, path: &Path) -> io::Result<()> {
        if self.0 == Some(StorageFault::Sync) {
            self.0 = None;
            let real = io::Error::from_raw_os_error(EIO);
            let message = format!("{}: injected fault: {real}", path.display());
            return Err(io::Error::new(real.kind(), message));
        }
        Ok(())
    }
}

/// Linux's `EIO` and `ENOSPC` (the same on every Linux architecture).
#[cfg(feature = "test-util")]
const EIO: i32 = 5;
#[cfg(feature = "test-util")]
const ENOSPC: i32 = 28;

/// Writes all of `bytes` at `pos`, or fails as an injected fault says (a short write leaves
/// a prefix of `bytes` on file).
fn write_at(
    file: &File,
    bytes: &[u8],
    pos: u64,
    path: &Path,
    faults: &mut Faults,
) -> io::Result<()> {
    match faults.on_write(path, bytes.len()) {
        None => file
            .write_all_at(bytes, pos)
            .map_err(|e| with_path(e, path)),
        Some(WriteFault::Fail(e)) => Err(e),
        Some(WriteFault::Short(n, e)) => {
            file.write_all_at(&bytes[..n], pos)
                .map_err(|e| with_path(e, path))?;
            Err(e)
        }
    }
}

/// `O_NOFOLLOW` added to `options`: the open fails (`ELOOP`) when the last component of the
/// path is a symbolic link.
fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
}

/// Opens `path` with `options`, never through a symbolic link; says so when it is one.
pub(crate) fn open_no_follow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    no_follow(options).open(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link; a log's files must be regular files, so it is not \
                     followed (replace it with the file itself)",
                    path.display()
                ),
            )
        } else {
            with_path(e, path)
        }
    })
}

/// Opens `path` for reading, never through a symbolic link.
pub(crate) fn open_read(path: &Path) -> io::Result<File> {
    open_no_follow(OpenOptions::new().read(true), path)
}

/// Reads the whole file at `path`, never through a symbolic link; `None` if it is missing.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut file = match open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| with_path(e, path))?;
    Ok(Some(data))
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
            Some(open_no_follow(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false),
                &path,
            )?)
        } else {
            match open_read(&path) {
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
        let file = open_no_follow(
            OpenOptions::new().read(true).write(true).create_new(true),
            &path,
        )?;
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
        self.apply_cut()?;
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| io::Error::other("no file"))?;
        write_at(file, &self.pending, self.on_file, &self.path, faults)?;
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

    /// Compares the pending bytes with what the file physically holds at the same positions
    /// (after the logical end) and takes the agreeing prefix as written. Returns the logical
    /// position of the first byte that disagrees, unless everything from there to the end of
    /// the file is zero bytes (a file extended by a crash but never written, which is just
    /// rewritten). Pending bytes beyond the end of the file stay pending.
    pub(crate) fn verify_pending(&mut self) -> io::Result<Option<u64>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        if self.pending.is_empty() {
            return Ok(None);
        }
        let physical = file.metadata().map_err(|e| with_path(e, &self.path))?.len();
        let stored = physical
            .saturating_sub(self.on_file)
            .min(self.pending.len() as u64) as usize;
        let mut buf = vec![0u8; stored.min(1 << 20)];
        let mut agreed = 0;
        while agreed < stored {
            let n = buf.len().min(stored - agreed);
            file.read_exact_at(&mut buf[..n], self.on_file + agreed as u64)
                .map_err(|e| with_path(e, &self.path))?;
            let theirs = &self.pending[agreed..agreed + n];
            if let Some(k) = buf[..n].iter().zip(theirs).position(|(a, b)| a != b) {
                agreed += k;
                let at = self.on_file + agreed as u64;
                if !zeros_to_end(file, at, physical).map_err(|e| with_path(e, &self.path))? {
                    return Ok(Some(at));
                }
                break;
            }
            agreed += n;
        }
        self.on_file += agreed as u64;
        self.pending.drain(..agreed);
        self.cut = physical > self.on_file;
        Ok(None)
    }

    /// Fails if the file's length is not what this writer left it at: someone else wrote to
    /// it (or cut it).
    pub(crate) fn check_untouched(&self) -> io::Result<()> {
        let (Some(file), true) = (&self.file, self.writable) else {
            return Ok(());
        };
        let physical = file.metadata().map_err(|e| with_path(e, &self.path))?.len();
        // A file awaiting a cut is longer than its logical end until the cut.
        if physical == self.on_file || (self.cut && physical > self.on_file) {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "{} is {physical} bytes long but this writer left it at {} bytes: another process \
             wrote to it (a second writer?), so this writer stops rather than overwrite it",
            self.path.display(),
            self.on_file
        )))
    }

    /// Creates a deferred file and cuts a file truncated by [`truncate`](Self::truncate).
    pub(crate) fn apply_cut(&mut self) -> io::Result<()> {
        if !self.writable {
            return Ok(());
        }
        if self.file.is_none() {
            let file = open_no_follow(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false),
                &self.path,
            )?;
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
        faults.fire_sync(&self.path)?;
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

/// Whether `file` holds only zero bytes from `from` to `end`.
fn zeros_to_end(file: &File, from: u64, end: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; (end.saturating_sub(from)).min(1 << 20) as usize];
    let mut pos = from;
    while pos < end {
        let n = buf.len().min((end - pos) as usize);
        file.read_exact_at(&mut buf[..n], pos)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
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
    // A stale temporary (or anything planted under its name) is removed, never written
    // through: the new one is created exclusively.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(with_path(e, &tmp)),
    }
    let file = open_no_follow(OpenOptions::new().write(true).create_new(true), &tmp)?;
    write_at(&file, contents, 0, &tmp, faults)?;
    faults.fire_sync(&tmp)?;
    file.sync_data().map_err(|e| with_path(e, &tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| with_path(e, path))?;
    sync_dir(dir)
}
