//! The on-disk log: segments of framed records, stored tree hashes, signed checkpoints,
//! crash recovery.
//!
//! # Directory layout
//!
//! ```text
//! LOG                      format version, origin, verifier key (never the private key)
//! LOCK                     held (flock) by the one writer, as is the directory itself
//! segments/NNNN….seg       framed records; named by the index of their first record
//! tree/level-NN.hashes     32-byte hashes of the full subtrees of height NN (level 00 = leaves)
//! offsets                  u64 LE per record: its frame's byte offset within its segment
//! checkpoint               the latest signed checkpoint (replaced atomically)
//! checkpoints              every checkpoint signed, in order ("checkpoint <len>\n" + note)
//! ```
//!
//! A segment starts with a 24-byte header (magic `VTLOGSEG`, version, first index, crc32c);
//! each record is framed as `length u32 LE | crc32c(length ‖ record) u32 LE | record`.
//! Segments rotate when the next frame would take one past
//! [`LogOptions::segment_bytes`], or once one is older than [`LogOptions::segment_max_age`].
//! Checksums are CRC-32C (the `crc32c` crate: the SSE 4.2 / ARMv8 CRC instructions when
//! present), as in ext4, iSCSI and Kafka's record batches. The tree files are the data model
//! of C2SP tlog-tiles (one flat file per level instead of tiles): any proof reads O(log n)
//! entries at known offsets.
//!
//! # Durability and recovery
//!
//! [`Log::sync`] writes the buffered frames and fdatasyncs the segment, and only then writes
//! the hashes and offsets of those records (without syncing them: they are derived data,
//! rebuilt from the records when needed) — once 4,096 records' worth have accumulated, so that
//! a sync of a small batch is one write and one fdatasync; until then reads find them in
//! memory. A segment rotation and a checkpoint are barriers that also fdatasync the hash and
//! offset files, so every hash of a sealed segment, and of every signed checkpoint, is
//! durable.
//!
//! [`Log::open`] for writing trusts the stored hashes only as far as the latest signed
//! checkpoint vouches for them: it checks that checkpoint's signature with the log's key, that
//! the `checkpoint` file agrees with the history, and that the stored tree's root at its size
//! is its root. Every record after it (and the whole newest segment) is re-read and
//! re-hashed, and the result compared with the stored hashes and offsets. Opening is thus
//! O(log n) plus one pass over the records the latest checkpoint does not cover — about
//! 20 ms for a 1,000,000-record log closed cleanly, 0.5 s for one whose records are all
//! unsigned (2026-12-04, 200-byte records, warm page cache). It then:
//!
//! - cuts a torn tail — damage that runs to the end of the newest segment, after the latest
//!   checkpoint — physically truncating and fsyncing before anything is appended, and reports
//!   it in [`Log::recovered`] (the writer records it in the log);
//! - drops stored hashes for records the segment no longer holds (also reported);
//! - refuses anything else: a bad frame followed by more data, any damage inside the latest
//!   checkpoint, a gap between segments, a stored tree that disagrees with the latest
//!   checkpoint, a record that disagrees with its stored hash, a checkpoint not signed by the
//!   log's key, and a log with records but no checkpoint history (unless
//!   [`LogOptions::recover`]; a new log signs the empty tree when it is created, so a log
//!   always has one). The error names the segment, byte offset and record index.
//!
//! Sealed segments the latest checkpoint covers are not re-read on open (that would make
//! opening O(n)); opening checks each one's header and last record (where the offsets file
//! puts it, ending exactly at the end of the file, matching its stored leaf hash), so a
//! segment removed, cut short or grown is refused. Damage inside one is caught by
//! [`Log::read`] (frame checksum and stored leaf hash) and by the [verifier](crate::verify),
//! which re-reads everything; a writer cannot launder it, since what it signs extends the
//! signed tree (checked before each signature). A read-only open re-hashes only the newest
//! segment and changes nothing.
//!
//! One writer: the lock is an `flock` on the directory itself (plus `LOCK`, for older
//! builds), which `rm LOCK` cannot pull away; before each write the writer checks that the
//! directory is still the one it locked and that no one else has grown its files, and fails
//! closed otherwise. No file of the log is opened through a symbolic link.
//!
//! An I/O error while writing or syncing puts the log in a failed state: every later
//! [`append`](Log::append), [`sync`](Log::sync) and [`checkpoint`](Log::checkpoint) returns
//! [`LogError::Failed`]. There is no retry: after a failed fsync Linux may have dropped the
//! dirty pages and marked them clean, so a second fsync can succeed without the data being on
//! disk ("fsyncgate"). Reopen the log to recover from what is actually on disk.

mod files;
mod layout;
pub(crate) mod segment;
pub(crate) mod tree;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use files::StorageFault;
pub(crate) use files::{AppendFile, Faults, open_read, read_optional, with_path};
pub(crate) use layout::{Layout, Meta, parse_history, parse_unverified};
use segment::{FRAME_HEADER_LEN, HEADER_LEN, MAX_RECORD_LEN};
use tree::TreeFiles;

use crate::checkpoint::Checkpoint;
use crate::merkle::{self, CompactRange, Hash, ProofBuildError};
use crate::note::{NoteError, NoteSigner, NoteVerifier};

/// A checkpoint and the signed note text it came from.
type Signed = (Checkpoint, String);

/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Buffered record bytes beyond which [`Log::append`] writes them out (without syncing).
/// Small enough for the buffer to stay in the CPU's L2 cache between framing and the copy
/// into the page cache: with 8 MiB, `Async` writer throughput was 20% lower and twice as
/// variable (writer bench, 2026-11-27 session 3).
const WRITE_THRESHOLD: usize = 256 << 10;
/// Buffered records beyond which [`Log::append`] syncs (keeps the hash buffers bounded).
const SYNC_THRESHOLD_RECORDS: usize = 128 << 10;
/// Buffered records beyond which [`Log::sync`] writes their hashes and offsets; below it they
/// wait for a later sync (they are rebuilt from the newest segment on open, and every barrier
/// writes them), so that a sync of a small batch costs one write and one fdatasync instead of
/// a write per tree level as well.
const HASH_WRITE_RECORDS: usize = 4096;
/// Batches with at least this many record bytes are hashed on two threads.
const PARALLEL_HASH_BYTES: usize = 256 << 10;

/// How a [`Log`] is created and run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LogOptions {
    /// The checkpoint origin line (for example `example.com/audit/api-1`). Default: the
    /// signer's key name. Fixed when the log is created; opening with a different one fails.
    pub origin: Option<String>,
    /// Rotate to a new segment file when the next record would take the current one past this
    /// many bytes (default 64 MiB). A segment always holds at least one record.
    pub segment_bytes: u64,
    /// Sign a checkpoint during [`Log::sync`] once this many records were appended since the
    /// last one (`None`: only on request and on close).
    pub checkpoint_every: Option<u64>,
    /// Sign a checkpoint during [`Log::sync`] once this much time has passed since the last
    /// one, if records were appended since.
    pub checkpoint_interval: Option<Duration>,
    /// Also rotate once the current segment has been written to for this long (checked by
    /// [`Log::sync`]; the age counts from when this `Log` started the segment or opened it).
    /// `None`: rotate by size only.
    pub segment_max_age: Option<Duration>,
    /// Open a log that holds records but no checkpoint history (`checkpoints` is missing or
    /// empty) instead of refusing it with [`LogError::NoCheckpointHistory`]. Nothing vouches
    /// for such records (a signed checkpoint is what does), so they are only adopted when
    /// someone who knows why the history is gone asks for it; [`Log::recovered`] then reports
    /// how many were adopted ([`Recovery::unsigned_adopted`]), and the writer records that in
    /// the log. Records that disagree with their stored hashes are refused all the same.
    /// Default `false`; the command line's `--recover`.
    pub recover: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            origin: None,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            checkpoint_every: None,
            checkpoint_interval: None,
            segment_max_age: None,
            recover: false,
        }
    }
}

impl LogOptions {
    /// Sets [`origin`](Self::origin).
    #[must_use]
    pub fn origin(mut self, origin: Option<String>) -> Self {
        self.origin = origin;
        self
    }

    /// Sets [`segment_bytes`](Self::segment_bytes).
    #[must_use]
    pub fn segment_bytes(mut self, segment_bytes: u64) -> Self {
        self.segment_bytes = segment_bytes;
        self
    }

    /// Sets [`checkpoint_every`](Self::checkpoint_every).
    #[must_use]
    pub fn checkpoint_every(mut self, checkpoint_every: Option<u64>) -> Self {
        self.checkpoint_every = checkpoint_every;
        self
    }

    /// Sets [`checkpoint_interval`](Self::checkpoint_interval).
    #[must_use]
    pub fn checkpoint_interval(mut self, checkpoint_interval: Option<Duration>) -> Self {
        self.checkpoint_interval = checkpoint_interval;
        self
    }

    /// Sets [`segment_max_age`](Self::segment_max_age).
    #[must_use]
    pub fn segment_max_age(mut self, segment_max_age: Option<Duration>) -> Self {
        self.segment_max_age = segment_max_age;
        self
    }

    /// Sets [`recover`](Self::recover).
    #[must_use]
    pub fn recover(mut self, recover: bool) -> Self {
        self.recover = recover;
        self
    }
}

/// What [`Log::open`] found and repaired: a torn tail cut from the newest segment, stored
/// hashes dropped because their records were gone, and records adopted without a checkpoint
/// history ([`LogOptions::recover`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The segment that was cut.
    pub segment: PathBuf,
    /// Byte offset where the segment now ends (the start of the torn record).
    pub offset: u64,
    /// Bytes removed from the segment.
    pub bytes_cut: u64,
    /// Stored leaf hashes removed because their records were not in the segment (records an
    /// earlier run wrote and synced but the disk lost), 0 after an ordinary crash.
    pub hashes_dropped: u64,
    /// Records found in a log with no checkpoint history and adopted because
    /// [`LogOptions::recover`] was set (no signed checkpoint vouched for them); 0 otherwise.
    pub unsigned_adopted: u64,
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Reading or writing a file failed. When this comes from a write or a sync, the log is
    /// now failed (see [`LogError::Failed`]).
    #[error("log I/O error: {0}")]
    Io(#[from] io::Error),
    /// An earlier write or fsync failed; the log refuses further writes without retrying.
    #[error(
        "the log stopped accepting writes after an earlier storage error ({cause}); \
         check the disk, then reopen the log (it recovers from what is on disk)"
    )]
    Failed {
        /// The original error.
        cause: String,
    },
    /// The log was opened read-only.
    #[error("the log is open read-only; open it with a signing key to write")]
    ReadOnly,
    /// Another process holds the log's write lock.
    #[error("{dir} is locked by another writer; stop it first (only one writer per log)")]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },
    /// The directory is not a veritrail log, or its metadata is damaged.
    #[error("{path} is not a usable veritrail log: {reason}")]
    NotALog {
        /// The offending path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The signing key is not the one the log was created with.
    #[error(
        "this log is signed by {stored}, not by the key given ({given}); use the log's own key"
    )]
    KeyMismatch {
        /// The verifier key stored in the log.
        stored: String,
        /// The verifier key of the signer given.
        given: String,
    },
    /// The origin asked for is not the log's.
    #[error("this log's origin is {stored:?}, not {given:?}; origins are fixed at creation")]
    OriginMismatch {
        /// The stored origin.
        stored: String,
        /// The origin asked for.
        given: String,
    },
    /// A record (or the framing around it) is damaged or missing.
    #[error(
        "corrupt log: record {index} in {segment} at byte {offset}: {reason}; \
         run `veritrail verify` for a full report"
    )]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset in the segment file.
        offset: u64,
        /// Index of the record affected.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file other than a segment (stored hashes, offsets, checkpoints) is damaged.
    #[error("corrupt log file {path}: {reason}; run `veritrail verify` for a full report")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A record is larger than the log accepts.
    #[error("record of {len} bytes is larger than the maximum of {max} bytes")]
    RecordTooLarge {
        /// The record's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// An index or tree size beyond the log.
    #[error("{what} {value} is beyond the log's size {size}")]
    OutOfRange {
        /// `"index"` or `"tree size"`.
        what: &'static str,
        /// The value asked for.
        value: u64,
        /// The log's size.
        size: u64,
    },
    /// A proof could not be built.
    #[error("cannot build proof: {0}")]
    Proof(#[from] ProofBuildError<io::Error>),
    /// Signing would produce a checkpoint that does not extend the previous one.
    #[error(
        "refusing to sign checkpoint at size {new_size}: it is not consistent with the \
         checkpoint signed before at size {old_size} ({reason})"
    )]
    InconsistentCheckpoint {
        /// The previous checkpoint's size.
        old_size: u64,
        /// The size that would have been signed.
        new_size: u64,
        /// Why.
        reason: String,
    },
    /// Signing failed.
    #[error("signing the checkpoint failed: {0}")]
    Sign(#[from] NoteError),
    /// The log holds records but no checkpoint history, so nothing vouches for them; opening
    /// it for writing would sign over whatever the files now hold.
    #[error(
        "{dir} holds {records} records but no checkpoint history (its `checkpoints` file is \
         missing or empty), so no signed checkpoint vouches for them and this writer will not \
         sign over them. Restore `checkpoints` and `checkpoint` from a backup and run \
         `veritrail verify`; or, if you know why the history is gone, open it with --recover \
         (LogOptions::recover), which adopts the records and records that it did"
    )]
    NoCheckpointHistory {
        /// The log directory.
        dir: PathBuf,
        /// Records found.
        records: u64,
    },
}

/// The on-disk tamper-evident log (see the [module docs](self)).
///
/// One writer per directory (enforced with a lock file); any number of read-only opens.
/// `Log` is `Send`: move it to the thread that writes.
#[derive(Debug)]
pub struct Log {
    layout: Layout,
    meta: Meta,
    signer: Option<NoteSigner>,
    opts: LogOptions,
    /// The writer's lock (`None` read-only).
    lock: Option<WriteLock>,
    /// First index of every segment, ascending; the last is the one being appended to.
    segments: Vec<u64>,
    newest: AppendFile,
    offsets: AppendFile,
    tree: TreeFiles,
    history: AppendFile,
    range: CompactRange,
    latest: Option<Signed>,
    last_checkpoint_at: Instant,
    recovered: Option<Recovery>,
    failed: Option<String>,
    faults: Faults,
    /// A segment file was created since the last directory sync.
    segments_dir_dirty: bool,
    /// When the newest segment was started (or opened), for [`LogOptions::segment_max_age`].
    segment_started: Instant,
    /// The next append starts a new segment.
    rotate_due: bool,
    closed: bool,
}

impl Log {
    /// Creates (if `dir` is missing or empty) or opens the log in `dir` for writing.
    ///
    /// Recovers from a crash as the [module docs](self) describe: a torn tail in the newest
    /// segment is truncated and fsynced before this returns, and [`recovered`](Self::recovered)
    /// reports it. Fails with [`LogError::KeyMismatch`] when `signer` is not the log's key.
    pub fn open(dir: &Path, signer: NoteSigner, opts: LogOptions) -> Result<Log, LogError> {
        let layout = Layout::new(dir);
        fs::create_dir_all(dir).map_err(|e| files::with_path(e, dir))?;
        let lock = WriteLock::acquire(&layout)?;
        let verifier = signer.verifier();
        let meta = if layout.meta().exists() {
            read_meta(&layout)?
        } else {
            create(&layout, &signer, &opts)?
        };
        if meta.verifier != verifier {
            return Err(LogError::KeyMismatch {
                stored: meta.verifier.to_text(),
                given: verifier.to_text(),
            });
        }
        if let Some(origin) = &opts.origin
            && *origin != meta.origin
        {
            return Err(LogError::OriginMismatch {
                stored: meta.origin.clone(),
                given: origin.clone(),
            });
        }
        let mut log = Self::load(layout, meta, Some(signer), opts, Some(lock))?;
        log.commit_recovery()?;
        if log.latest.is_none() && log.size() == 0 {
            // A new log starts by signing the empty tree, so that a log with records always
            // has a checkpoint history; one without is refused (see `LogOptions::recover`).
            log.checkpoint()?;
        }
        Ok(log)
    }

    /// Opens an existing log without a key, for reading and proofs. Nothing on disk changes: a
    /// torn tail is ignored (and reported by [`recovered`](Self::recovered)), the hashes of
    /// records not yet hashed on disk are computed in memory.
    pub fn open_read_only(dir: &Path) -> Result<Log, LogError> {
        let layout = Layout::new(dir);
        if !layout.meta().exists() {
            return Err(LogError::NotALog {
                path: dir.to_path_buf(),
                reason: format!("no {} file (is this a log directory?)", layout::META),
            });
        }
        let meta = read_meta(&layout)?;
        Self::load(layout, meta, None, LogOptions::default(), None)
    }

    /// What opening repaired (or, read-only, would repair); `None` after a clean shutdown.
    pub fn recovered(&self) -> Option<&Recovery> {
        self.recovered.as_ref()
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        &self.meta.origin
    }

    /// The key that verifies this log's checkpoints.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.meta.verifier
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// Number of records, including those appended but not yet synced.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// The Merkle root over all [`size`](Self::size) records.
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// Makes the next write (or fdatasync) of any log file fail with an I/O error, once, so
    /// tests can exercise the failed state.
    ///
    /// A test hook, only with the `test-util` feature.
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn inject_fault(&mut self, fault: StorageFault) {
        self.faults.set(fault);
    }

    /// Whether the log is failed (see [`LogError::Failed`]).
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Buffers one record (framed and hashed) and returns its index. Not durable until
    /// [`sync`](Self::sync); buffered data is written out once it reaches 256 KiB (and synced
    /// once 128 Ki records are buffered), so memory stays bounded.
    pub fn append(&mut self, record: &[u8]) -> Result<u64, LogError> {
        self.writable()?;
        check_len(record)?;
        let index = self.size();
        self.push(
            record,
            merkle::leaf_hash(record),
            segment::frame_crc(record),
        )?;
        self.bound_buffers()?;
        Ok(index)
    }

    /// Appends many records (the group-commit building block); returns their index range.
    /// Large batches are hashed on two threads. Either every record is buffered or, if one is
    /// too large, none is.
    pub fn append_batch<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Range<u64>, LogError> {
        self.writable()?;
        let records: Vec<&[u8]> = records.into_iter().collect();
        for r in &records {
            check_len(r)?;
        }
        let start = self.size();
        let hashed = hash_records(&records);
        for (record, (leaf, crc)) in records.iter().zip(hashed) {
            self.push(record, leaf, crc)?;
            self.bound_buffers()?;
        }
        Ok(start..self.size())
    }

    /// Writes buffered records and fdatasyncs the segment; then writes their hashes and
    /// offsets, once 4,096 records' worth are buffered (barriers and `close` write them all).
    /// Signs a checkpoint when [`LogOptions::checkpoint_every`] or
    /// [`LogOptions::checkpoint_interval`] says one is due.
    ///
    /// After an I/O or fsync error the log is failed: this and every later write returns
    /// [`LogError::Failed`] (the first time, the underlying error).
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.writable()?;
        self.flush(false)?;
        if self
            .opts
            .segment_max_age
            .is_some_and(|age| self.segment_started.elapsed() >= age)
        {
            self.rotate_due = true;
        }
        if self.checkpoint_due() {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Syncs, then signs a checkpoint at the current size and stores it as the latest and in
    /// the history; returns the signed note text.
    ///
    /// Refuses ([`LogError::InconsistentCheckpoint`]) to sign a tree that does not extend the
    /// latest checkpoint, checked with a consistency proof from the stored hashes. If nothing
    /// was appended since the latest checkpoint, returns it unchanged.
    pub fn checkpoint(&mut self) -> Result<String, LogError> {
        self.writable()?;
        self.flush(true)?;
        let size = self.size();
        let root = self.root();
        if let Some((prev, text)) = &self.latest {
            if prev.size == size && prev.root == root {
                return Ok(text.clone());
            }
            self.check_extends(prev, size, &root)?;
        }
        let checkpoint = Checkpoint {
            origin: self.meta.origin.clone(),
            size,
            root,
            extensions: Vec::new(),
        };
        let signer = self.signer.as_ref().ok_or(LogError::ReadOnly)?;
        let text = checkpoint.sign(signer)?;
        self.store_checkpoint(&text).map_err(|e| self.fail(e))?;
        self.latest = Some((checkpoint, text.clone()));
        self.last_checkpoint_at = Instant::now();
        Ok(text)
    }

    /// Adds witness cosignature lines (each `— name base64…` ending in a newline, already
    /// verified by the caller against the witnesses' keys, see [`crate::witness`]) to the
    /// latest checkpoint, and stores the cosigned note as the latest checkpoint and as a new
    /// entry of the history (same size and root: verification reads it like the others).
    /// Returns the cosigned note; unchanged when it already carried every line.
    pub fn add_cosignatures(&mut self, lines: &str) -> Result<String, LogError> {
        self.writable()?;
        let Some((checkpoint, text)) = self.latest.clone() else {
            return Err(LogError::NoCheckpointHistory {
                dir: self.layout.dir.clone(),
                records: self.size(),
            });
        };
        let cosigned = crate::witness::add_signature_lines(&text, lines);
        if cosigned == text {
            return Ok(text);
        }
        // Still the log's own signed checkpoint, and nothing but signature lines added.
        Checkpoint::open(&cosigned, self.verifier()).map_err(|e| LogError::Damaged {
            path: self.layout.checkpoint(),
            reason: format!("the cosigned checkpoint does not open: {e}"),
        })?;
        self.store_checkpoint(&cosigned).map_err(|e| self.fail(e))?;
        self.latest = Some((checkpoint, cosigned.clone()));
        Ok(cosigned)
    }

    /// The latest signed checkpoint (note text), if any.
    pub fn latest_checkpoint(&self) -> Result<Option<String>, LogError> {
        if self.signer.is_some() {
            return Ok(self.latest.as_ref().map(|(_, t)| t.clone()));
        }
        let path = self.layout.checkpoint();
        match files::read_optional(&path)? {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| LogError::Damaged {
                    path,
                    reason: "not UTF-8 text".into(),
                }),
            None => Ok(None),
        }
    }

    /// Every checkpoint this log signed, oldest first (signed note texts).
    pub fn checkpoint_history(&self) -> Result<Vec<String>, LogError> {
        let path = self.layout.history();
        let data = files::read_optional(&path)?.unwrap_or_default();
        let (entries, bad) = parse_history(&data);
        if let Some(bad) = bad
            && !bad.at_tail
        {
            return Err(LogError::Damaged {
                path,
                reason: bad.to_string(),
            });
        }
        Ok(entries.into_iter().map(|e| e.note).collect())
    }

    /// Reads record `index`, checking its frame checksum and that it matches its stored leaf
    /// hash (so a record served with a proof is the one the tree commits to).
    pub fn read(&self, index: u64) -> Result<Vec<u8>, LogError> {
        let record = self.read_unverified(index)?;
        let stored = merkle::HashSource::node(&self.tree, 0, index)?;
        if merkle::leaf_hash(&record) != stored {
            let slot = self.segment_slot(index);
            return Err(LogError::Corrupt {
                segment: self.layout.segment(self.segments[slot]),
                offset: self.offset_of(index)?,
                index,
                reason: "the record does not match its stored leaf hash".into(),
            });
        }
        Ok(record)
    }

    /// Iterates over `(index, record)` from `start` to the current size, reading each segment
    /// sequentially. Frame checksums are checked; use [`read`](Self::read) (or the
    /// [verifier](crate::verify)) to check records against the tree.
    pub fn records(
        &self,
        start: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), LogError>> + '_ {
        Records {
            log: self,
            next: start,
            end: self.size(),
            reader: None,
            done: false,
        }
    }

    /// The inclusion proof of record `index` in the tree of size `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size)?;
        Ok(merkle::inclusion_proof(&self.tree, index, size)?)
    }

    /// The consistency proof from size `old` to size `new` (RFC 9162 §2.1.4). `old == 0` is
    /// refused (every tree extends the empty tree; there is nothing to prove).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(new)?;
        Ok(merkle::consistency_proof(&self.tree, old, new)?)
    }

    /// The root of the tree of the first `size` records, from the stored hashes.
    pub fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        self.check_size(size)?;
        Ok(merkle::root_at(&self.tree, size)?)
    }

    /// The stored hash of the full subtree `(level, index)` (level 0: leaf hashes).
    pub fn stored_node(&self, level: u8, index: u64) -> Result<Hash, LogError> {
        Ok(merkle::HashSource::node(&self.tree, level, index)?)
    }

    /// Syncs and signs the final checkpoint. A read-only log just closes.
    pub fn close(mut self) -> Result<(), LogError> {
        self.closed = true;
        if self.signer.is_none() {
            return Ok(());
        }
        self.checkpoint().map(drop)
    }

    // ---- opening ----

    fn load(
        layout: Layout,
        meta: Meta,
        signer: Option<NoteSigner>,
        opts: LogOptions,
        lock: Option<WriteLock>,
    ) -> Result<Log, LogError> {
        let writable = signer.is_some();
        if writable {
            for dir in [layout.segments(), layout.tree()] {
                refuse_symlinked_dir(&dir)?;
            }
        }
        let mut segments = match layout.list_segments()? {
            Ok(s) => s,
            Err(path) => {
                return Err(LogError::NotALog {
                    path,
                    reason: "unexpected file in the segments directory".into(),
                });
            }
        };
        let history = AppendFile::open(layout.history(), writable)?;
        let (latest, history_cut) = load_history(&layout, &history, &meta, writable)?;
        let mut history = history;
        if let Some(len) = history_cut {
            // A torn entry: that checkpoint call never returned, nobody holds it.
            history.truncate(len)?;
        }
        let mut tree = TreeFiles::open(&layout.tree(), writable)?;
        let mut offsets = AppendFile::open(layout.offsets(), writable)?;
        let mut segments_dir_dirty = false;
        if segments.is_empty() {
            // A new log (or one whose first segment creation did not reach the disk).
            segments.push(0);
        }
        let newest_first = *segments.last().expect("at least one segment");
        let newest_path = layout.segment(newest_first);
        let mut newest = if newest_path.exists() {
            AppendFile::open(newest_path.clone(), writable)?
        } else if writable {
            segments_dir_dirty = true;
            AppendFile::create_new(newest_path.clone())?
        } else {
            AppendFile::deferred(newest_path.clone(), false)
        };

        // Everything before the newest segment must be stored (a rotation is a barrier).
        let stored_coverage = tree.coverage();
        let stored_offsets = offsets.len() / 8;
        if tree.complete_prefix() < newest_first || stored_offsets < newest_first {
            let (path, have) = if stored_offsets < newest_first {
                (layout.offsets(), stored_offsets)
            } else {
                (layout.tree(), tree.complete_prefix())
            };
            return Err(LogError::Damaged {
                path,
                reason: format!(
                    "holds data for only {have} records, but the sealed segments hold \
                     {newest_first}"
                ),
            });
        }
        check_sealed(&layout, &segments, &offsets, &tree)?;
        let cp_size = latest.as_ref().map_or(0, |(c, _)| c.size);
        // A writer re-hashes every record the latest checkpoint does not cover (and the
        // newest segment) and compares the result with the stored hashes and offsets, so that
        // it never signs over records altered since they were hashed. What the checkpoint
        // covers is checked through its root (`check_latest_root`).
        let start = if writable {
            cp_size.min(newest_first)
        } else {
            newest_first
        };
        tree.truncate_leaves(start)?;
        offsets.truncate(start * 8)?;
        let parts = subtree_parts(&tree, start)?;
        let mut range = CompactRange::from_parts(start, parts).map_err(|e| LogError::Damaged {
            path: layout.tree(),
            reason: e.to_string(),
        })?;
        for slot in 0..segments.len() - 1 {
            if segments[slot + 1] > start {
                rehash_sealed(
                    &layout,
                    &segments,
                    slot,
                    start,
                    &mut range,
                    &mut tree,
                    &mut offsets,
                )?;
                check_rehashed(&layout, &segments, &mut tree, &mut offsets)?;
            }
        }

        // Re-read the newest segment and rebuild its hashes.
        let data = read_all(&newest)?;
        let mut recovered = None;
        let torn = |offset: u64| Recovery {
            segment: newest_path.clone(),
            offset,
            bytes_cut: (data.len() as u64).saturating_sub(offset),
            hashes_dropped: 0,
            unsigned_adopted: 0,
        };
        match segment::parse_header(&data) {
            Ok(first) if first == newest_first => {}
            Ok(first) => {
                return Err(LogError::Corrupt {
                    segment: newest_path.clone(),
                    offset: 12,
                    index: newest_first,
                    reason: format!("the header says the first index is {first}"),
                });
            }
            // A rotation interrupted before its header reached the disk.
            Err(_) if data.len() <= HEADER_LEN && cp_size <= newest_first => {
                if !data.is_empty() {
                    recovered = Some(torn(0));
                }
                newest.truncate(0)?;
                newest.push(&segment::header(newest_first));
            }
            Err(problem) => {
                return Err(LogError::Corrupt {
                    segment: newest_path.clone(),
                    offset: 0,
                    index: newest_first,
                    reason: problem.to_string(),
                });
            }
        }
        let bad = segment::scan(&data, |offset, record| {
            offsets.push(&offset.to_le_bytes());
            range.append(merkle::leaf_hash(record), |l, i, h| tree.push(l, i, h));
        });
        let size = range.size();
        if let Some(bad) = bad {
            if !bad.at_tail || cp_size > size {
                let reason = if bad.at_tail {
                    format!(
                        "{} (the latest checkpoint covers {cp_size} records, so this is not a \
                         torn write but damage to signed data)",
                        bad.problem
                    )
                } else {
                    format!("{} (followed by more data: not a torn write)", bad.problem)
                };
                return Err(LogError::Corrupt {
                    segment: newest_path.clone(),
                    offset: bad.offset,
                    index: size,
                    reason,
                });
            }
            recovered = Some(torn(bad.offset));
            newest.truncate(bad.offset)?;
        }
        if cp_size > size {
            return Err(LogError::Corrupt {
                segment: newest_path,
                offset: newest.len(),
                index: size,
                reason: format!(
                    "the log ends after {size} records but its latest checkpoint covers \
                     {cp_size}: signed records are missing"
                ),
            });
        }
        let stored_leaves = stored_coverage.max(u128::from(stored_offsets));
        if stored_leaves > u128::from(size) {
            let r = recovered.get_or_insert_with(|| torn(newest.len()));
            r.bytes_cut = (data.len() as u64).saturating_sub(r.offset);
            r.hashes_dropped = (stored_leaves - u128::from(size)) as u64;
        }
        // Hashes and offsets rebuilt from the newest segment that the files already hold (the
        // usual case) are neither written again nor kept in memory. A writer refuses rebuilt
        // hashes that disagree with stored ones.
        if writable {
            check_rehashed(&layout, &segments, &mut tree, &mut offsets)?;
        } else {
            tree.adopt_pending()?;
            offsets.adopt_pending()?;
        }
        if writable && latest.is_none() && size > 0 {
            if !opts.recover {
                return Err(LogError::NoCheckpointHistory {
                    dir: layout.dir.clone(),
                    records: size,
                });
            }
            let r = recovered.get_or_insert_with(|| torn(newest.len()));
            r.unsigned_adopted = size;
        }
        drop(data);

        let log = Log {
            layout,
            meta,
            signer,
            opts,
            lock,
            segments,
            newest,
            offsets,
            tree,
            history,
            range,
            latest,
            last_checkpoint_at: Instant::now(),
            recovered,
            failed: None,
            faults: Faults::default(),
            segments_dir_dirty,
            segment_started: Instant::now(),
            rotate_due: false,
            closed: false,
        };
        log.check_latest_root()?;
        Ok(log)
    }

    /// Writes the repaired state (cut segment, rebuilt hashes) and makes it durable.
    fn commit_recovery(&mut self) -> Result<(), LogError> {
        self.flush(true)?;
        let r = self.history.sync(&mut self.faults);
        r.map_err(|e| self.fail(e))?;
        // Bring the `checkpoint` file up to date with the history (a crash between the two).
        if let Some((_, text)) = &self.latest {
            let on_disk = files::read_optional(&self.layout.checkpoint()).map_err(LogError::Io)?;
            if on_disk.as_deref() != Some(text.as_bytes()) {
                let text = text.clone();
                files::write_atomically(
                    &self.layout.checkpoint(),
                    text.as_bytes(),
                    &mut self.faults,
                )
                .map_err(|e| self.fail(e))?;
            }
        }
        Ok(())
    }

    /// The stored tree must agree with the latest checkpoint.
    fn check_latest_root(&self) -> Result<(), LogError> {
        let Some((cp, _)) = &self.latest else {
            return Ok(());
        };
        let root = merkle::root_at(&self.tree, cp.size)?;
        if root != cp.root {
            return Err(LogError::Damaged {
                path: self.layout.tree(),
                reason: format!(
                    "the stored tree's root at size {} is not the root of the latest signed \
                     checkpoint",
                    cp.size
                ),
            });
        }
        Ok(())
    }

    // ---- writing ----

    fn writable(&self) -> Result<(), LogError> {
        if self.signer.is_none() {
            return Err(LogError::ReadOnly);
        }
        if let Some(cause) = &self.failed {
            return Err(LogError::Failed {
                cause: cause.clone(),
            });
        }
        Ok(())
    }

    /// Checks, before writing, that this writer still owns the log: the directory it locked
    /// is still the one at its path (not moved away and replaced), and the newest segment
    /// and the checkpoint history are exactly as long as this writer left them (nobody else
    /// appended). Anything else means a second writer (or an intruder) is at work: the log
    /// fails closed rather than overwrite what the other wrote.
    fn check_sole_writer(&self) -> io::Result<()> {
        if let Some(lock) = &self.lock {
            lock.check(&self.layout.dir)?;
        }
        for file in [&self.newest, &self.history] {
            file.check_untouched()?;
        }
        Ok(())
    }

    /// Records a storage error: the log is failed from now on.
    fn fail(&mut self, e: io::Error) -> LogError {
        if self.failed.is_none() {
            self.failed = Some(e.to_string());
        }
        LogError::Io(e)
    }

    fn push(&mut self, record: &[u8], leaf: Hash, crc: u32) -> Result<(), LogError> {
        let frame = (FRAME_HEADER_LEN + record.len()) as u64;
        if self.newest.len() > HEADER_LEN as u64
            && (self.rotate_due || self.newest.len() + frame > self.opts.segment_bytes)
        {
            self.rotate()?;
        }
        let offset = self.newest.len();
        segment::push_frame(self.newest.pending_mut(), record, crc);
        self.offsets.push(&offset.to_le_bytes());
        let tree = &mut self.tree;
        self.range.append(leaf, |l, i, h| tree.push(l, i, h));
        Ok(())
    }

    fn bound_buffers(&mut self) -> Result<(), LogError> {
        if self.offsets.pending_len() >= SYNC_THRESHOLD_RECORDS * 8 {
            self.flush(false)?;
        } else if self.newest.pending_len() >= WRITE_THRESHOLD {
            let r = self
                .check_sole_writer()
                .and_then(|()| self.newest.write_pending(&mut self.faults));
            r.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Seals the current segment (a barrier) and starts the next.
    fn rotate(&mut self) -> Result<(), LogError> {
        self.flush(true)?;
        let first = self.size();
        let path = self.layout.segment(first);
        let mut next = AppendFile::create_new(path).map_err(|e| self.fail(e))?;
        next.push(&segment::header(first));
        self.newest = next;
        self.segments.push(first);
        self.segments_dir_dirty = true;
        self.segment_started = Instant::now();
        self.rotate_due = false;
        Ok(())
    }

    /// Writes and fdatasyncs the records, then writes hashes and offsets; with `barrier`, also
    /// fdatasyncs those.
    fn flush(&mut self, barrier: bool) -> Result<(), LogError> {
        if let Some(cause) = &self.failed {
            return Err(LogError::Failed {
                cause: cause.clone(),
            });
        }
        let r = self.flush_inner(barrier);
        r.map_err(|e| self.fail(e))
    }

    fn flush_inner(&mut self, barrier: bool) -> io::Result<()> {
        if self.newest.pending_len() > 0 || barrier {
            self.check_sole_writer()?;
        }
        let faults = &mut self.faults;
        self.newest.write_pending(faults)?;
        self.newest.sync(faults)?;
        if self.segments_dir_dirty {
            files::sync_dir(&self.layout.segments())?;
            self.segments_dir_dirty = false;
        }
        // Hashes and offsets only after their records are durable: a stored hash always
        // describes a record that reached the disk.
        if !barrier && self.offsets.pending_len() < HASH_WRITE_RECORDS * 8 {
            return Ok(());
        }
        self.write_hashes()?;
        if barrier {
            let faults = &mut self.faults;
            self.offsets.sync(faults)?;
            self.tree.sync(faults)?;
        }
        Ok(())
    }

    /// Writes the buffered hashes and offsets (no sync); their records must be durable.
    fn write_hashes(&mut self) -> io::Result<()> {
        let faults = &mut self.faults;
        self.offsets.write_pending(faults)?;
        self.tree.write_pending(faults)
    }

    fn checkpoint_due(&self) -> bool {
        let signed = self.latest.as_ref().map_or(0, |(c, _)| c.size);
        let new = self.size() - signed.min(self.size());
        if new == 0 {
            return false;
        }
        self.opts.checkpoint_every.is_some_and(|n| new >= n)
            || self
                .opts
                .checkpoint_interval
                .is_some_and(|d| self.last_checkpoint_at.elapsed() >= d)
    }

    fn check_extends(&self, prev: &Checkpoint, size: u64, root: &Hash) -> Result<(), LogError> {
        let refuse = |reason: String| LogError::InconsistentCheckpoint {
            old_size: prev.size,
            new_size: size,
            reason,
        };
        if prev.origin != self.meta.origin {
            return Err(refuse(format!("its origin is {:?}", prev.origin)));
        }
        if prev.size > size {
            return Err(refuse("the log is now smaller".into()));
        }
        if prev.size == 0 {
            if prev.root != merkle::empty_root() {
                return Err(refuse("its root is not the empty tree's".into()));
            }
            return Ok(());
        }
        let proof = merkle::consistency_proof(&self.tree, prev.size, size)?;
        merkle::verify_consistency(prev.size, size, &proof, &prev.root, root)
            .map_err(|e| refuse(e.to_string()))
    }

    /// History first (fdatasync), then the latest file (atomic replace): a crash in between
    /// leaves the history ahead, and the next open brings `checkpoint` up to date.
    fn store_checkpoint(&mut self, text: &str) -> io::Result<()> {
        self.check_sole_writer()?;
        self.history.push(&layout::history_entry(text));
        self.history.write_pending(&mut self.faults)?;
        self.history.sync(&mut self.faults)?;
        files::write_atomically(&self.layout.checkpoint(), text.as_bytes(), &mut self.faults)
    }

    // ---- reading ----

    fn check_size(&self, size: u64) -> Result<(), LogError> {
        if size > self.size() {
            return Err(LogError::OutOfRange {
                what: "tree size",
                value: size,
                size: self.size(),
            });
        }
        Ok(())
    }

    fn segment_slot(&self, index: u64) -> usize {
        self.segments.partition_point(|&first| first <= index) - 1
    }

    fn offset_of(&self, index: u64) -> Result<u64, LogError> {
        let mut b = [0u8; 8];
        self.offsets.read_at(index * 8, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

impl Drop for Log {
    /// Best effort: a log dropped without [`close`](Log::close) still writes and syncs what it
    /// buffered (errors are ignored here; call `sync` or `close` to see them).
    fn drop(&mut self) {
        if !self.closed && self.signer.is_some() && self.failed.is_none() {
            let _ = self
                .flush(false)
                .and_then(|()| self.write_hashes().map_err(LogError::Io));
        }
    }
}

/// Hashes (leaf hash, frame crc) a batch, on two threads when it is large.
fn hash_records(records: &[&[u8]]) -> Vec<(Hash, u32)> {
    let hash = |rs: &[&[u8]]| -> Vec<(Hash, u32)> {
        rs.iter()
            .map(|r| (merkle::leaf_hash(r), segment::frame_crc(r)))
            .collect()
    };
    let bytes: usize = records.iter().map(|r| r.len()).sum();
    // Asked once: the answer takes several system calls (affinity, cgroup quota).
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores =
        || *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let parallel = bytes >= PARALLEL_HASH_BYTES && records.len() >= 2 && cores() > 1;
    if !parallel {
        return hash(records);
    }
    // Split by bytes, not count, so both halves take about as long.
    let mut acc = 0;
    let split = records
        .iter()
        .position(|r| {
            acc += r.len();
            acc >= bytes / 2
        })
        .map_or(records.len() / 2, |i| (i + 1).min(records.len() - 1));
    let (left, right) = records.split_at(split);
    std::thread::scope(|s| {
        let other = s.spawn(|| hash(right));
        let mut out = hash(left);
        out.extend(other.join().expect("hashing thread panicked"));
        out
    })
}

fn check_len(record: &[u8]) -> Result<(), LogError> {
    if record.len() > MAX_RECORD_LEN {
        return Err(LogError::RecordTooLarge {
            len: record.len(),
            max: MAX_RECORD_LEN,
        });
    }
    Ok(())
}

/// The single-writer lock: an exclusive `flock` on the log directory itself, which no one
/// can delete or replace while it is held (a lock on a file inside could be pulled away with
/// `rm LOCK`, letting a second writer in). The `LOCK` file is locked as well, for builds
/// that lock only that. The directory's device and inode are kept, so that a directory moved
/// away and replaced by a copy is noticed before the next write.
#[derive(Debug)]
struct WriteLock {
    _dir: File,
    _file: File,
    dev: u64,
    ino: u64,
}

impl WriteLock {
    fn acquire(layout: &Layout) -> Result<Self, LogError> {
        let try_lock = |file: &File, path: &Path| match file.try_lock() {
            Ok(()) => Ok(()),
            Err(fs::TryLockError::WouldBlock) => Err(LogError::Locked {
                dir: layout.dir.clone(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(LogError::Io(files::with_path(e, path))),
        };
        let dir = File::open(&layout.dir).map_err(|e| files::with_path(e, &layout.dir))?;
        try_lock(&dir, &layout.dir)?;
        let path = layout.lock();
        let file = files::open_no_follow(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            &path,
        )?;
        try_lock(&file, &path)?;
        let meta = dir
            .metadata()
            .map_err(|e| files::with_path(e, &layout.dir))?;
        Ok(Self {
            _dir: dir,
            _file: file,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Fails if `dir` is no longer the directory that was locked.
    fn check(&self, dir: &Path) -> io::Result<()> {
        let meta = fs::metadata(dir).map_err(|e| files::with_path(e, dir))?;
        if (meta.dev(), meta.ino()) != (self.dev, self.ino) {
            return Err(io::Error::other(format!(
                "the log directory {} is no longer the directory this writer locked (it was \
                 moved or replaced): another writer may be using it, so this one stops",
                dir.display()
            )));
        }
        Ok(())
    }
}

/// Refuses a log subdirectory that is a symbolic link (the writer creates files in it).
fn refuse_symlinked_dir(dir: &Path) -> Result<(), LogError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(LogError::NotALog {
            path: dir.to_path_buf(),
            reason: "it is a symbolic link; a log's directories must be real directories, so \
                     the writer does not follow it"
                .into(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(files::with_path(e, dir).into()),
    }
}

/// Re-reads sealed segment `slot` and appends the hashes and offsets of its records from
/// index `start` on to `range`, `tree` and `offsets` (as pending data, to be compared with
/// what is stored by [`check_rehashed`]). Any bad frame, or a record count that does not
/// reach the next segment's first index, is corruption.
fn rehash_sealed(
    layout: &Layout,
    segments: &[u64],
    slot: usize,
    start: u64,
    range: &mut CompactRange,
    tree: &mut TreeFiles,
    offsets: &mut AppendFile,
) -> Result<(), LogError> {
    let (first, next) = (segments[slot], segments[slot + 1]);
    let path = layout.segment(first);
    let data = read_all(&AppendFile::open(path.clone(), false)?)?;
    let mut index = first;
    let bad = segment::scan(&data, |offset, record| {
        if index >= start && index < next {
            offsets.push(&offset.to_le_bytes());
            range.append(merkle::leaf_hash(record), |l, i, h| tree.push(l, i, h));
        }
        index += 1;
    });
    let corrupt = |offset: u64, index: u64, reason: String| LogError::Corrupt {
        segment: path.clone(),
        offset,
        index,
        reason,
    };
    if let Some(bad) = bad {
        return Err(corrupt(
            bad.offset,
            index,
            format!("{} (in a sealed segment)", bad.problem),
        ));
    }
    if index != next {
        return Err(corrupt(
            data.len() as u64,
            index.min(next),
            format!(
                "the segment holds records up to index {index} but the next segment starts at \
                 {next}"
            ),
        ));
    }
    Ok(())
}

/// Compares the hashes and offsets rebuilt from the records (pending in `tree` and
/// `offsets`) with what the files hold at the same positions, and takes those that agree as
/// written. A disagreement means the records were altered after they were hashed (or the
/// stored data was): it is refused, naming the first record concerned. Stored data that is
/// missing, or zero bytes at the end of a file (a crash can leave a file extended but not
/// written), is simply rebuilt.
fn check_rehashed(
    layout: &Layout,
    segments: &[u64],
    tree: &mut TreeFiles,
    offsets: &mut AppendFile,
) -> Result<(), LogError> {
    let segment_of = |index: u64| {
        let slot = segments.partition_point(|&first| first <= index).max(1) - 1;
        layout.segment(segments[slot])
    };
    let offset_of = |offsets: &AppendFile, index: u64| {
        let mut b = [0u8; 8];
        offsets
            .read_at(index * 8, &mut b)
            .map(|()| u64::from_le_bytes(b))
    };
    if let Some(pos) = tree.verify_pending_level(0)? {
        let index = pos / tree::HASH_LEN;
        return Err(LogError::Corrupt {
            segment: segment_of(index),
            offset: offset_of(offsets, index)?,
            index,
            reason: "the record does not match its stored leaf hash: the record (or the stored \
                     hash) was altered after it was written; the log will not sign over it"
                .into(),
        });
    }
    if let Some(pos) = offsets.verify_pending()? {
        let index = pos / 8;
        return Err(LogError::Damaged {
            path: layout.offsets(),
            reason: format!(
                "the stored offset of record {index} is not where that record is in {}",
                segment_of(index).display()
            ),
        });
    }
    for level in 1..tree.level_count() as u8 {
        if let Some(pos) = tree.verify_pending_level(level)? {
            let entry = pos / tree::HASH_LEN;
            return Err(LogError::Damaged {
                path: tree.path(level),
                reason: format!(
                    "stored hash {entry} (over records {} to {}) is not the hash of those \
                     records",
                    entry << level,
                    ((entry + 1) << level) - 1
                ),
            });
        }
    }
    Ok(())
}

fn read_meta(layout: &Layout) -> Result<Meta, LogError> {
    let path = layout.meta();
    let bytes = files::read_optional(&path)?
        .ok_or_else(|| files::with_path(io::ErrorKind::NotFound.into(), &path))?;
    let text = String::from_utf8(bytes).map_err(|_| LogError::NotALog {
        path: path.clone(),
        reason: "not UTF-8 text".into(),
    })?;
    Meta::parse(&text).map_err(|reason| LogError::NotALog { path, reason })
}

/// Creates a new log's metadata and directories.
fn create(layout: &Layout, signer: &NoteSigner, opts: &LogOptions) -> Result<Meta, LogError> {
    let not_empty = |path: &Path| fs::read_dir(path).is_ok_and(|mut d| d.next().is_some());
    if not_empty(&layout.segments()) {
        return Err(LogError::NotALog {
            path: layout.dir.clone(),
            reason: format!(
                "it has segments but no {} file; restore that file rather than start over",
                layout::META
            ),
        });
    }
    let origin = opts
        .origin
        .clone()
        .unwrap_or_else(|| signer.name().to_owned());
    layout::check_origin(&origin).map_err(|reason| LogError::NotALog {
        path: layout.dir.clone(),
        reason,
    })?;
    for d in [layout.segments(), layout.tree()] {
        fs::create_dir_all(&d).map_err(|e| files::with_path(e, &d))?;
    }
    let meta = Meta {
        origin,
        verifier: signer.verifier(),
    };
    files::write_atomically(
        &layout.meta(),
        meta.to_text().as_bytes(),
        &mut Faults::default(),
    )?;
    files::sync_dir(&layout.dir)?;
    Ok(meta)
}

/// Reads the checkpoint history; returns the latest checkpoint and, when the final entry is
/// torn, the length to cut the history to.
///
/// A writer (`writable`) also checks that the latest checkpoint is signed by the log's key
/// (anyone who may write in the directory could otherwise plant an unsigned one for the
/// writer to extend) and that the `checkpoint` file agrees with the history.
fn load_history(
    layout: &Layout,
    history: &AppendFile,
    meta: &Meta,
    writable: bool,
) -> Result<(Option<Signed>, Option<u64>), LogError> {
    let path = layout.history();
    let data = read_all(history)?;
    let (entries, bad) = parse_history(&data);
    let mut cut = None;
    if let Some(bad) = bad {
        if !bad.at_tail {
            return Err(LogError::Damaged {
                path,
                reason: bad.to_string(),
            });
        }
        cut = Some(bad.offset);
    }
    let Some(last) = entries.last() else {
        if fs::symlink_metadata(layout.checkpoint()).is_ok() {
            return Err(LogError::Damaged {
                path,
                reason: "the checkpoint history is empty but a latest checkpoint exists".into(),
            });
        }
        return Ok((None, cut));
    };
    // Checking signatures is the verifier's business; the writer needs the size and root.
    let checkpoint = parse_unverified(&last.note).map_err(|reason| LogError::Damaged {
        path: path.clone(),
        reason: format!("the latest checkpoint: {reason}"),
    })?;
    if checkpoint.origin != meta.origin {
        return Err(LogError::Damaged {
            path,
            reason: format!(
                "the latest checkpoint's origin is {:?}, not the log's {:?}",
                checkpoint.origin, meta.origin
            ),
        });
    }
    if writable {
        let why = match Checkpoint::open(&last.note, &meta.verifier) {
            Ok(opened) if opened == checkpoint => None,
            Ok(_) => Some("its signed body differs from its text".to_owned()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            return Err(LogError::Damaged {
                path,
                reason: format!(
                    "the latest checkpoint (entry {}, byte {}) does not verify with the log's \
                     key ({why}): it was not signed by this log",
                    entries.len(),
                    last.offset
                ),
            });
        }
        check_latest_file(layout, &entries)?;
    }
    Ok((Some((checkpoint, last.note.clone())), cut))
}

/// The `checkpoint` file must be the history's last entry — or the one before it, which a
/// crash between appending to the history and replacing `checkpoint` leaves (the writer then
/// brings it up to date). Anything else means one of the two files was replaced (for example
/// `checkpoint` by an older signed one, or the history cut back).
fn check_latest_file(layout: &Layout, entries: &[layout::HistoryEntry]) -> Result<(), LogError> {
    let path = layout.checkpoint();
    let on_disk = files::read_optional(&path)?;
    let n = entries.len();
    let agrees = match &on_disk {
        // A crash before the first checkpoint file was written.
        None => n <= 1,
        Some(text) => entries[n.saturating_sub(2)..]
            .iter()
            .any(|e| e.note.as_bytes() == text.as_slice()),
    };
    if agrees {
        return Ok(());
    }
    let reason = match on_disk {
        None => format!("it is missing, but the checkpoint history holds {n} checkpoints"),
        Some(text) => match entries.iter().position(|e| e.note.as_bytes() == text) {
            Some(i) => format!(
                "it is checkpoint {} of the history's {n}, not the latest: it was replaced by \
                 an older one, or the history was altered",
                i + 1
            ),
            None => "it is not in the checkpoint history: one of the two was replaced".into(),
        },
    };
    Err(LogError::Damaged {
        path,
        reason: format!(
            "{reason}; check both against a checkpoint held elsewhere (`veritrail verify \
             --against`)"
        ),
    })
}

/// Checks every segment but the newest, in O(1) reads each: its header names the index its
/// file name says, and its last record (found through the offsets file) ends exactly at the
/// end of the file and matches its stored leaf hash. A segment removed, cut short or grown
/// shows up here.
fn check_sealed(
    layout: &Layout,
    segments: &[u64],
    offsets: &AppendFile,
    tree: &TreeFiles,
) -> Result<(), LogError> {
    if segments[0] != 0 {
        return Err(LogError::Corrupt {
            segment: layout.segment(segments[0]),
            offset: 0,
            index: 0,
            reason: format!(
                "the first segment starts at index {}: the segments before it are missing",
                segments[0]
            ),
        });
    }
    for pair in segments.windows(2) {
        let (first, last) = (pair[0], pair[1] - 1);
        let path = layout.segment(first);
        let file = AppendFile::open(path.clone(), false)?;
        let corrupt = |offset: u64, index: u64, reason: String| LogError::Corrupt {
            segment: path.clone(),
            offset,
            index,
            reason,
        };
        let mut header = [0u8; HEADER_LEN];
        let n = HEADER_LEN.min(file.len() as usize);
        file.read_at(0, &mut header[..n])?;
        let named =
            segment::parse_header(&header[..n]).map_err(|p| corrupt(0, first, p.to_string()))?;
        if named != first {
            return Err(corrupt(
                12,
                first,
                format!("the header says the first index is {named}"),
            ));
        }
        let mut b = [0u8; 8];
        offsets.read_at(last * 8, &mut b)?;
        let offset = u64::from_le_bytes(b);
        let record = read_frame(&file, offset).map_err(|r| {
            corrupt(
                offset,
                last,
                format!("the segment's last record (where the offsets file puts it): {r}"),
            )
        })?;
        let end = offset + (FRAME_HEADER_LEN + record.len()) as u64;
        if end != file.len() {
            return Err(corrupt(
                offset,
                last,
                format!(
                    "the segment should end with record {last} at byte {end} but is {} bytes \
                     long: records are missing or were added",
                    file.len()
                ),
            ));
        }
        if merkle::leaf_hash(&record) != merkle::HashSource::node(tree, 0, last)? {
            return Err(corrupt(
                offset,
                last,
                "the segment's last record does not match its stored leaf hash".into(),
            ));
        }
    }
    Ok(())
}

/// The whole logical content of a file.
fn read_all(file: &AppendFile) -> io::Result<Vec<u8>> {
    let mut data = vec![0u8; file.len() as usize];
    file.read_at(0, &mut data)?;
    Ok(data)
}

/// The stored hashes of the perfect subtrees covering `[0, size)`, largest first.
fn subtree_parts(tree: &TreeFiles, size: u64) -> Result<Vec<Hash>, LogError> {
    let mut parts = Vec::with_capacity(size.count_ones() as usize);
    let mut start = 0u64;
    for level in (0..64u8).rev() {
        if size & (1 << level) != 0 {
            parts.push(merkle::HashSource::node(tree, level, start >> level)?);
            start += 1 << level;
        }
    }
    Ok(parts)
}

/// Reads and checks the frame at `offset`.
fn read_frame(file: &AppendFile, offset: u64) -> Result<Vec<u8>, String> {
    let mut head = [0u8; FRAME_HEADER_LEN];
    file.read_at(offset, &mut head).map_err(|e| e.to_string())?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len > MAX_RECORD_LEN {
        return Err(format!(
            "frame length {len} is larger than the largest record"
        ));
    }
    let mut record = vec![0u8; len];
    file.read_at(offset + FRAME_HEADER_LEN as u64, &mut record)
        .map_err(|e| e.to_string())?;
    if segment::frame_crc(&record) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(record)
}

/// Sequential reader behind [`Log::records`].
struct Records<'a> {
    log: &'a Log,
    next: u64,
    end: u64,
    /// Reader over a sealed segment: (segment slot, reader positioned at `next`'s frame).
    reader: Option<(usize, u64, BufReader<File>)>,
    done: bool,
}

impl Records<'_> {
    fn read_next(&mut self) -> Result<Vec<u8>, LogError> {
        let index = self.next;
        let slot = self.log.segment_slot(index);
        if slot + 1 == self.log.segments.len() {
            // The newest segment: read sequentially what is on file, the rest from memory.
            let next_offset = match &self.reader {
                Some((s, offset, _)) if *s == slot => *offset,
                _ => self.log.offset_of(index)?,
            };
            if next_offset >= self.log.newest.on_file() {
                self.reader = None;
                return self.log.read_unverified(index);
            }
        }
        if self.reader.as_ref().is_none_or(|(s, _, _)| *s != slot) {
            let offset = self.log.offset_of(index)?;
            let path = self.log.layout.segment(self.log.segments[slot]);
            let mut f = files::open_read(&path)?;
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| files::with_path(e, &path))?;
            self.reader = Some((slot, offset, BufReader::with_capacity(1 << 20, f)));
        }
        let (slot, offset, reader) = self.reader.as_mut().expect("reader set");
        let corrupt = |reason: String| LogError::Corrupt {
            segment: self.log.layout.segment(self.log.segments[*slot]),
            offset: *offset,
            index,
            reason,
        };
        let mut head = [0u8; FRAME_HEADER_LEN];
        reader
            .read_exact(&mut head)
            .map_err(|e| corrupt(format!("reading the frame: {e}")))?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD_LEN {
            return Err(corrupt(format!("frame length {len} is too large")));
        }
        let mut record = vec![0u8; len];
        reader
            .read_exact(&mut record)
            .map_err(|e| corrupt(format!("reading the record: {e}")))?;
        if segment::frame_crc(&record) != crc {
            return Err(corrupt("checksum mismatch".into()));
        }
        *offset += (FRAME_HEADER_LEN + len) as u64;
        Ok(record)
    }
}

impl Iterator for Records<'_> {
    type Item = Result<(u64, Vec<u8>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next >= self.end {
            return None;
        }
        let item = self.read_next().map(|r| (self.next, r));
        self.next += 1;
        self.done = item.is_err();
        Some(item)
    }
}

impl Log {
    /// Reads record `index` checking only its frame checksum.
    fn read_unverified(&self, index: u64) -> Result<Vec<u8>, LogError> {
        let size = self.size();
        if index >= size {
            return Err(LogError::OutOfRange {
                what: "index",
                value: index,
                size,
            });
        }
        let offset = self.offset_of(index)?;
        let slot = self.segment_slot(index);
        let segment = self.layout.segment(self.segments[slot]);
        let result = if slot + 1 == self.segments.len() {
            read_frame(&self.newest, offset)
        } else {
            read_frame(&AppendFile::open(segment.clone(), false)?, offset)
        };
        result.map_err(|reason| LogError::Corrupt {
            segment,
            offset,
            index,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_sign_a_checkpoint_that_does_not_extend_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let signer = NoteSigner::generate("example.com/inconsistent").unwrap();
        let mut log = Log::open(dir.path(), signer.clone(), LogOptions::default()).unwrap();
        for i in 0..5u8 {
            log.append(&[i]).unwrap();
        }
        let good = log.checkpoint().unwrap();
        // As if the log had signed another tree of size 3 before.
        let other = Checkpoint {
            origin: log.origin().to_owned(),
            size: 3,
            root: merkle::leaf_hash(b"another tree"),
            extensions: Vec::new(),
        };
        let text = other.sign(&signer).unwrap();
        log.latest = Some((other, text));
        log.append(b"x").unwrap();
        let err = log.checkpoint().unwrap_err();
        assert!(
            matches!(
                err,
                LogError::InconsistentCheckpoint {
                    old_size: 3,
                    new_size: 6,
                    ..
                }
            ),
            "{err}"
        );
        // Nothing was stored for the refused checkpoint (the first entry is the empty tree,
        // signed when the log was created).
        let history = log.checkpoint_history().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1], good);
        assert_eq!(
            fs::read_to_string(dir.path().join(layout::CHECKPOINT)).unwrap(),
            good
        );
        // A previous checkpoint larger than the log is refused too.
        let larger = Checkpoint {
            size: 100,
            ..log.latest.clone().unwrap().0
        };
        log.latest = Some((larger, String::new()));
        assert!(matches!(
            log.checkpoint(),
            Err(LogError::InconsistentCheckpoint { old_size: 100, .. })
        ));
    }
}
