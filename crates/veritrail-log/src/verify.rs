//! The offline verifier: proves that a log directory is intact, from its records up.
//!
//! [`verify_dir`] trusts nothing in the directory except what the verifier key signs:
//!
//! 1. the `LOG` file's verifier key must be the one given, and every stored checkpoint (the
//!    history and the latest) must carry a valid signature by it;
//! 2. every segment is read in full, in parallel: header, framing, checksums, and the index
//!    sequence across segments (no gap, no overlap); every record is hashed, and the leaf
//!    hashes and record offsets are compared with the stored ones;
//! 3. every stored interior hash is recomputed from its two children (in parallel), so the
//!    stored tree is exactly the tree of the records;
//! 4. every stored checkpoint's root must equal the tree's root at its size;
//! 5. each `against` checkpoint — held outside the log, by an auditor or a witness — must be
//!    extended by the log: a consistency proof from its size to the log's size must verify
//!    against its root. This is what catches a truncated tail or a rewritten history, which
//!    a log re-signed by whoever holds the key would otherwise pass.
//!
//! The first failure is returned as a [`VerifyError`] that names the record index, the file
//! and the byte offset (or the checkpoint). A torn final record after the last checkpoint —
//! what a crash leaves and [`Log::open`](crate::Log::open) repairs — is reported in
//! [`VerifyReport::tail`], not treated as tampering.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::checkpoint::Checkpoint;
use crate::merkle::{self, CompactRange, Hash, HashSource};
use crate::note::NoteVerifier;
use crate::store::segment::{self, BadFrame};
use crate::store::tree::{HASH_LEN, TreeFiles};
use crate::store::{
    AppendFile, Layout, Meta, Recovery, open_read, parse_history, parse_unverified, read_optional,
};

/// What to check besides the log itself.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Signed checkpoints held elsewhere (note texts) that the log must extend.
    pub against: Vec<String>,
    /// Threads for hashing (0 or 1: the calling thread only).
    pub threads: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            against: Vec::new(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl VerifyOptions {
    /// Sets [`against`](Self::against).
    #[must_use]
    pub fn against(mut self, against: Vec<String>) -> Self {
        self.against = against;
        self
    }

    /// Sets [`threads`](Self::threads).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records verified.
    pub records: u64,
    /// The tree root over all of them.
    pub root: Hash,
    /// Stored checkpoints whose signature and root were checked (history and latest).
    pub checkpoints_checked: usize,
    /// `against` checkpoints the log was proven to extend.
    pub against_checked: usize,
    /// The size of the largest stored checkpoint: records from this index on were checked
    /// for framing and hashed, but no signature vouches for them yet (a writer that crashed
    /// before signing, or records appended since the last checkpoint).
    pub signed_size: u64,
    /// Whether the newest segment ends in a torn record (see [`tail`](Self::tail)).
    pub recovered_tail: bool,
    /// The torn tail (or stored hashes of records no longer present) that
    /// [`Log::open`](crate::Log::open) will cut: after the last checkpoint, so no signed data
    /// is affected. The verified records stop before it.
    pub tail: Option<Recovery>,
    /// Records at the end whose hashes were not stored yet (a crash between writing records
    /// and their hashes); they were verified from the records and are rebuilt on open.
    pub unhashed_records: u64,
    /// Segment files read.
    pub segments: usize,
    /// Segment bytes read.
    pub bytes: u64,
}

/// Why a log failed verification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A file could not be read (not evidence of tampering by itself).
    #[error("cannot read the log: {0}")]
    Io(#[from] io::Error),
    /// The directory is not a log, or its `LOG` file is damaged.
    #[error("{path}: {reason}")]
    Layout {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The log was created for another key.
    #[error(
        "the log's stored verifier key is {stored}, not the key given ({given}): \
         it was created (or rewritten) under another key"
    )]
    WrongKey {
        /// The key in the `LOG` file.
        stored: String,
        /// The key given.
        given: String,
    },
    /// A record, its framing, or the sequence of indexes is wrong.
    #[error("record {index} in {segment} at byte {offset}: {reason}")]
    Record {
        /// The record's index.
        index: u64,
        /// The segment file.
        segment: PathBuf,
        /// Byte offset in the segment file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A stored hash or offset does not match the records.
    #[error("{path}, entry {entry} (records {first_index}..{end_index}): {reason}")]
    StoredHash {
        /// The hash (or offsets) file.
        path: PathBuf,
        /// The entry within the file.
        entry: u64,
        /// First record index the entry covers.
        first_index: u64,
        /// One past the last record index the entry covers.
        end_index: u64,
        /// What is wrong.
        reason: String,
    },
    /// A stored checkpoint is not valid for this log.
    #[error("stored checkpoint {which}: {reason}")]
    Checkpoint {
        /// Which one: `checkpoints entry N (byte B)` or `checkpoint (latest)`.
        which: String,
        /// Its size, when it could be read.
        size: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// An `against` checkpoint is not extended by this log.
    #[error("against checkpoint #{position}: {reason}")]
    Against {
        /// Position in [`VerifyOptions::against`], from 1.
        position: usize,
        /// Its size, when it could be read.
        size: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// A store other than a directory holds something that disagrees with its records (see
    /// [`verify_source`](crate::source::verify_source)).
    #[error("{location}: {reason}")]
    Stored {
        /// The store (a URL without secrets, with the origin).
        location: String,
        /// The first record index concerned, when there is one.
        index: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// The per-record callback of [`verify_dir_with`] refused a record.
    #[error("record {index}: {reason}")]
    Rejected {
        /// The record's index.
        index: u64,
        /// The callback's reason.
        reason: String,
    },
}

impl VerifyError {
    /// Whether this is an I/O error (exit status 2 for a command line) rather than evidence
    /// that the log is invalid.
    pub fn is_io(&self) -> bool {
        matches!(self, Self::Io(_))
    }

    /// The record index the failure names, if it names one.
    pub fn index(&self) -> Option<u64> {
        match self {
            Self::Record { index, .. } | Self::Rejected { index, .. } => Some(*index),
            Self::StoredHash { first_index, .. } => Some(*first_index),
            Self::Stored { index, .. } => *index,
            _ => None,
        }
    }
}

/// Verifies the log in `dir` against `verifier` (see the [module docs](self)).
pub fn verify_dir(
    dir: &Path,
    verifier: &NoteVerifier,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    Verifier::new(dir, verifier, opts)?.run(None)
}

/// Like [`verify_dir`], then calls `on_record(index, record)` for every record in order (for
/// checks of the records' contents, such as `verify --tokens`); an `Err(reason)` stops
/// verification with [`VerifyError::Rejected`].
pub fn verify_dir_with(
    dir: &Path,
    verifier: &NoteVerifier,
    opts: &VerifyOptions,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<VerifyReport, VerifyError> {
    Verifier::new(dir, verifier, opts)?.run(Some(&mut on_record))
}

type OnRecord<'a> = &'a mut dyn FnMut(u64, &[u8]) -> Result<(), String>;

/// A stored checkpoint, parsed (its signature is checked later).
struct StoredCheckpoint {
    which: String,
    text: String,
    checkpoint: Checkpoint,
}

struct Verifier<'a> {
    layout: Layout,
    verifier: &'a NoteVerifier,
    opts: &'a VerifyOptions,
    meta: Meta,
    segments: Vec<u64>,
    tree: TreeFiles,
    offsets: AppendFile,
    checkpoints: Vec<StoredCheckpoint>,
}

/// What one worker found in one segment.
#[derive(Default)]
struct SegmentResult {
    /// First index from the header (if the header was good).
    first: Option<u64>,
    count: u64,
    bytes: u64,
    bad: Option<BadFrame>,
    error: Option<VerifyError>,
    /// Leaf hashes of the records at or after the stored prefix (replayed later).
    tail_leaves: Vec<Hash>,
}

impl<'a> Verifier<'a> {
    fn new(
        dir: &Path,
        verifier: &'a NoteVerifier,
        opts: &'a VerifyOptions,
    ) -> Result<Self, VerifyError> {
        let layout = Layout::new(dir);
        let meta_path = layout.meta();
        let text = match fs::read_to_string(&meta_path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VerifyError::Layout {
                    path: dir.to_path_buf(),
                    reason: "not a veritrail log (no LOG file)".into(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(VerifyError::Layout {
                    path: meta_path,
                    reason: "not UTF-8 text".into(),
                });
            }
            Err(e) => return Err(crate::store::with_path(e, &meta_path).into()),
        };
        let meta = Meta::parse(&text).map_err(|reason| VerifyError::Layout {
            path: meta_path,
            reason,
        })?;
        if meta.verifier != *verifier {
            return Err(VerifyError::WrongKey {
                stored: meta.verifier.to_text(),
                given: verifier.to_text(),
            });
        }
        let segments = match layout.list_segments()? {
            Ok(s) => s,
            Err(path) => {
                return Err(VerifyError::Layout {
                    path,
                    reason: "unexpected file in the segments directory".into(),
                });
            }
        };
        if let Some(&first) = segments.first()
            && first != 0
        {
            return Err(VerifyError::Record {
                index: 0,
                segment: layout.segment(first),
                offset: 0,
                reason: format!(
                    "the first segment starts at index {first}: the segments before it are \
                     missing"
                ),
            });
        }
        let tree = TreeFiles::open(&layout.tree(), false)?;
        let offsets = AppendFile::open(layout.offsets(), false)?;
        let mut v = Self {
            layout,
            verifier,
            opts,
            meta,
            segments,
            tree,
            offsets,
            checkpoints: Vec::new(),
        };
        v.checkpoints = v.load_checkpoints()?;
        Ok(v)
    }

    /// Reads the history and the latest checkpoint (signatures are checked by
    /// [`check_signatures`](Self::check_signatures)).
    fn load_checkpoints(&self) -> Result<Vec<StoredCheckpoint>, VerifyError> {
        let mut out = Vec::new();
        let path = self.layout.history();
        let data = read_optional(&path)?.unwrap_or_default();
        let (entries, bad) = parse_history(&data);
        if let Some(bad) = bad {
            // A torn final entry is a checkpoint whose signing never completed.
            if !bad.at_tail {
                return Err(VerifyError::Checkpoint {
                    which: format!(
                        "checkpoints entry {} (byte {})",
                        entries.len() + 1,
                        bad.offset
                    ),
                    size: None,
                    reason: bad.reason,
                });
            }
        }
        for (i, entry) in entries.iter().enumerate() {
            let which = format!("checkpoints entry {} (byte {})", i + 1, entry.offset);
            out.push(Self::parse_checkpoint(which, entry.note.clone())?);
        }
        let latest_path = self.layout.checkpoint();
        if let Some(bytes) = read_optional(&latest_path)? {
            let which = "checkpoint (latest)".to_string();
            let text = String::from_utf8(bytes).map_err(|_| VerifyError::Checkpoint {
                which: which.clone(),
                size: None,
                reason: "not UTF-8 text".into(),
            })?;
            let latest = Self::parse_checkpoint(which.clone(), text)?;
            // It must be the history's last entry (or the one before it: a writer killed
            // between appending to the history and replacing `checkpoint` leaves that, and
            // repairs it when it reopens): an older signed checkpoint put back in its place
            // would show a reader a log smaller than the one signed.
            let n = entries.len();
            let reason = match entries.iter().rposition(|e| e.note == latest.text) {
                Some(i) if i + 2 >= n => None,
                Some(i) => Some(format!(
                    "it is checkpoint {} of the history's {n}, not the latest: it was \
                     replaced by an older one",
                    i + 1
                )),
                None => Some("it is not in the checkpoint history".into()),
            };
            if let Some(reason) = reason {
                return Err(VerifyError::Checkpoint {
                    which,
                    size: Some(latest.checkpoint.size),
                    reason,
                });
            }
            out.push(latest);
        }
        Ok(out)
    }

    fn parse_checkpoint(which: String, text: String) -> Result<StoredCheckpoint, VerifyError> {
        match parse_unverified(&text) {
            Ok(checkpoint) => Ok(StoredCheckpoint {
                which,
                text,
                checkpoint,
            }),
            Err(reason) => Err(VerifyError::Checkpoint {
                which,
                size: None,
                reason,
            }),
        }
    }

    /// Checks every stored checkpoint's signature and origin (each distinct text once).
    fn check_signatures(&self) -> Result<(), VerifyError> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.checkpoints {
            if !seen.insert(c.text.as_str()) {
                continue;
            }
            let fail = |reason: String| VerifyError::Checkpoint {
                which: c.which.clone(),
                size: Some(c.checkpoint.size),
                reason,
            };
            let opened = Checkpoint::open(&c.text, self.verifier)
                .map_err(|e| fail(format!("does not verify: {e}")))?;
            if opened != c.checkpoint {
                return Err(fail("its signed body differs from its text".into()));
            }
            if opened.origin != self.meta.origin {
                return Err(fail(format!(
                    "its origin is {:?}, not the log's {:?}",
                    opened.origin, self.meta.origin
                )));
            }
        }
        Ok(())
    }

    /// A failure that rests on the stored checkpoints' sizes: if one of them is forged, that
    /// is the failure to report.
    fn rests_on_checkpoints(&self, failure: VerifyError) -> VerifyError {
        self.check_signatures().err().unwrap_or(failure)
    }

    fn run(mut self, on_record: Option<OnRecord<'_>>) -> Result<VerifyReport, VerifyError> {
        let signed = self
            .checkpoints
            .iter()
            .map(|c| c.checkpoint.size)
            .max()
            .unwrap_or(0);
        let stored_offsets = self.offsets.len() / 8;
        let prefix = self.tree.complete_prefix().min(stored_offsets);

        // Records: all segments, in parallel.
        let results = self.scan_segments(prefix);
        let mut size = 0u64;
        let mut bytes = 0u64;
        let mut last_bytes = 0u64;
        let mut tail = None;
        let mut tail_leaves = Vec::new();
        let last = self.segments.len().saturating_sub(1);
        for (slot, result) in results.into_iter().enumerate() {
            let path = self.layout.segment(self.segments[slot]);
            if let Some(first) = result.first
                && first != size
            {
                return Err(VerifyError::Record {
                    index: size,
                    segment: path,
                    offset: 0,
                    reason: format!(
                        "the segment starts at index {first} but the segments before it end at \
                         {size}: records are {}",
                        if first > size {
                            "missing"
                        } else {
                            "duplicated"
                        }
                    ),
                });
            }
            if let Some(e) = result.error {
                return Err(e);
            }
            size += result.count;
            bytes += result.bytes;
            last_bytes = result.bytes;
            tail_leaves.extend(result.tail_leaves);
            if let Some(bad) = result.bad {
                if slot != last || !bad.at_tail || size < signed {
                    let why = if slot != last {
                        "in a sealed segment"
                    } else if !bad.at_tail {
                        "followed by more data: not a torn write"
                    } else {
                        "inside the signed part of the log: not a torn write"
                    };
                    let failure = VerifyError::Record {
                        index: size,
                        segment: path,
                        offset: bad.offset,
                        reason: format!("{} ({why})", bad.problem),
                    };
                    return Err(if slot == last && bad.at_tail {
                        self.rests_on_checkpoints(failure)
                    } else {
                        failure
                    });
                }
                tail = Some(Recovery {
                    segment: path,
                    offset: bad.offset,
                    bytes_cut: result.bytes - bad.offset,
                    hashes_dropped: 0,
                    unsigned_adopted: 0,
                });
            }
        }
        if self.checkpoints.is_empty() && size > 0 {
            // A writer signs its log's empty tree when it creates it, so a log with records
            // and no checkpoint at all had its checkpoint files removed: nothing vouches for
            // any of its records.
            return Err(VerifyError::Checkpoint {
                which: "checkpoints".into(),
                size: None,
                reason: format!(
                    "the log holds {size} records and no signed checkpoint (a veritrail log \
                     signs its empty tree when it is created): its checkpoint files were \
                     removed, and no signature vouches for any record"
                ),
            });
        }
        if size < signed {
            let (which, cp_size) = self
                .checkpoints
                .iter()
                .find(|c| c.checkpoint.size > size)
                .map(|c| (c.which.clone(), c.checkpoint.size))
                .expect("a checkpoint larger than the log");
            return Err(self.rests_on_checkpoints(VerifyError::Checkpoint {
                which,
                size: Some(cp_size),
                reason: format!(
                    "it covers {cp_size} records but the log holds only {size}: records were \
                     removed from the end"
                ),
            }));
        }

        // Stored hashes of records that are not there (after the last checkpoint): a tail the
        // writer will drop on open.
        let beyond = self
            .tree
            .coverage()
            .max(u128::from(stored_offsets))
            .saturating_sub(u128::from(size));
        if beyond > 0 {
            let newest = self.layout.segment(*self.segments.last().unwrap_or(&0));
            let t = tail.get_or_insert(Recovery {
                segment: newest,
                offset: last_bytes,
                bytes_cut: 0,
                hashes_dropped: 0,
                unsigned_adopted: 0,
            });
            t.hashes_dropped = beyond as u64;
        }

        // The stored tree must hold everything sealed.
        let newest_first = self.segments.last().copied().unwrap_or(0);
        let prefix = prefix.min(size);
        if prefix < newest_first {
            return Err(self.missing_hashes(prefix, newest_first));
        }
        self.check_interior(prefix)?;
        let root = self.replay(prefix, size, tail_leaves)?;

        // Checkpoints and external checkpoints.
        self.check_signatures()?;
        for c in &self.checkpoints {
            let cp = &c.checkpoint;
            let at = merkle::root_at(&self.tree, cp.size).map_err(io::Error::other)?;
            if at != cp.root {
                return Err(VerifyError::Checkpoint {
                    which: c.which.clone(),
                    size: Some(cp.size),
                    reason: format!(
                        "its root is not the root of the first {} records: records or stored \
                         hashes were altered",
                        cp.size
                    ),
                });
            }
        }
        for (i, text) in self.opts.against.iter().enumerate() {
            self.check_against(i + 1, text, size, &root)?;
        }
        if let Some(on_record) = on_record {
            self.each_record(size, on_record)?;
        }
        Ok(VerifyReport {
            records: size,
            root,
            checkpoints_checked: self.checkpoints.len(),
            against_checked: self.opts.against.len(),
            signed_size: signed,
            recovered_tail: tail.is_some(),
            tail,
            unhashed_records: size - prefix,
            segments: self.segments.len(),
            bytes,
        })
    }

    fn missing_hashes(&self, have: u64, need: u64) -> VerifyError {
        let offsets = self.offsets.len() / 8;
        let (path, entry) = if offsets < need {
            (self.layout.offsets(), offsets)
        } else {
            (self.tree.path(0), have)
        };
        VerifyError::StoredHash {
            path,
            entry,
            first_index: have,
            end_index: need,
            reason: format!(
                "stored hashes or offsets end at record {have}, but the sealed segments hold \
                 {need} records (the writer syncs them before sealing a segment)"
            ),
        }
    }

    /// Reads every segment on `threads` workers.
    fn scan_segments(&self, prefix: u64) -> Vec<SegmentResult> {
        let count = self.segments.len();
        let next = AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                if slot >= count {
                    return done;
                }
                done.push((slot, self.scan_segment(slot, prefix)));
            }
        };
        let threads = self.opts.threads.clamp(1, count.max(1));
        let mut all: Vec<(usize, SegmentResult)> = if threads == 1 {
            work()
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
                let mut all = work();
                for h in handles {
                    all.extend(h.join().expect("verifier thread panicked"));
                }
                all
            })
        };
        all.sort_by_key(|(slot, _)| *slot);
        all.into_iter().map(|(_, r)| r).collect()
    }

    fn scan_segment(&self, slot: usize, prefix: u64) -> SegmentResult {
        let named = self.segments[slot];
        let path = self.layout.segment(named);
        let mut result = SegmentResult::default();
        match self.scan_segment_inner(slot, prefix, &path, &mut result) {
            Ok(()) => {}
            Err(e) => result.error = Some(crate::store::with_path(e, &path).into()),
        }
        result
    }

    fn scan_segment_inner(
        &self,
        slot: usize,
        prefix: u64,
        path: &Path,
        result: &mut SegmentResult,
    ) -> io::Result<()> {
        let named = self.segments[slot];
        let mut window = Window::open(path)?;
        result.bytes = window.file_len;
        let last = slot + 1 == self.segments.len();
        let data = &window.buf;
        let first = match segment::parse_header(data) {
            Ok(first) if first == named => first,
            Ok(first) => {
                result.error = Some(VerifyError::Record {
                    index: named,
                    segment: path.to_path_buf(),
                    offset: 12,
                    reason: format!(
                        "the header says the first index is {first}, the file name {named}"
                    ),
                });
                return Ok(());
            }
            Err(_) if last && window.file_len <= segment::HEADER_LEN as u64 => {
                // A rotation cut short by a crash: no records yet.
                result.first = Some(named);
                if window.file_len > 0 {
                    result.bad = Some(BadFrame {
                        offset: 0,
                        problem: segment::FrameProblem::ShortHeader,
                        at_tail: true,
                    });
                }
                return Ok(());
            }
            Err(problem) => {
                result.error = Some(VerifyError::Record {
                    index: named,
                    segment: path.to_path_buf(),
                    offset: 0,
                    reason: problem.to_string(),
                });
                return Ok(());
            }
        };
        result.first = Some(first);
        let mut leaves = StoredEntries::new(self.tree.level_file(0), HASH_LEN as usize);
        let mut offsets = StoredEntries::new(Some(&self.offsets), 8);
        let mut index = first;
        let mut error = None;
        let mut tail_leaves = Vec::new();
        result.bad = walk_frames(&mut window, |offset, record| {
            if error.is_some() {
                return;
            }
            let leaf = merkle::leaf_hash(record);
            match leaves.get(index) {
                Ok(Some(stored)) if stored != leaf => {
                    error = Some(VerifyError::Record {
                        index,
                        segment: path.to_path_buf(),
                        offset,
                        reason: "the record does not match its stored leaf hash \
                                 (tree/level-00.hashes)"
                            .into(),
                    });
                }
                Err(e) => error = Some(e.into()),
                _ => {}
            }
            match offsets.get(index) {
                Ok(Some(stored))
                    if u64::from_le_bytes(stored[..8].try_into().expect("8")) != offset =>
                {
                    error = Some(VerifyError::StoredHash {
                        path: self.layout.offsets(),
                        entry: index,
                        first_index: index,
                        end_index: index + 1,
                        reason: format!("the stored offset is not the record's offset {offset}"),
                    });
                }
                Err(e) => error = Some(e.into()),
                _ => {}
            }
            if index >= prefix {
                tail_leaves.push(leaf);
            }
            index += 1;
        })?;
        result.count = index - first;
        result.tail_leaves = tail_leaves;
        if error.is_some() {
            result.error = error;
        }
        Ok(())
    }

    fn bad_node(&self, level: u8, entry: u64, reason: &str) -> VerifyError {
        VerifyError::StoredHash {
            path: self.tree.path(level),
            entry,
            first_index: entry << level,
            end_index: (entry + 1) << level,
            reason: reason.into(),
        }
    }

    /// Checks every stored interior hash below `prefix` against its children, in parallel.
    fn check_interior(&self, prefix: u64) -> Result<(), VerifyError> {
        const CHUNK: u64 = 1 << 14;
        let mut jobs = Vec::new();
        for level in 1..self.tree.level_count() as u8 {
            let parents = prefix >> level;
            let mut start = 0;
            while start < parents {
                let end = (start + CHUNK).min(parents);
                jobs.push((level, start, end));
                start = end;
            }
        }
        let next = AtomicUsize::new(0);
        let work = || -> Result<(), VerifyError> {
            let mut parents = Vec::new();
            let mut children = Vec::new();
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(level, start, end)) = jobs.get(j) else {
                    return Ok(());
                };
                let n = (end - start) as usize;
                parents.resize(n * 32, 0);
                children.resize(n * 64, 0);
                self.tree.read_range(level, start, &mut parents)?;
                self.tree.read_range(level - 1, start * 2, &mut children)?;
                for i in 0..n {
                    let left: &Hash = children[i * 64..i * 64 + 32].try_into().expect("32");
                    let right: &Hash = children[i * 64 + 32..i * 64 + 64].try_into().expect("32");
                    if merkle::node_hash(left, right)[..] != parents[i * 32..i * 32 + 32] {
                        return Err(self.bad_node(
                            level,
                            start + i as u64,
                            "the stored hash is not the hash of its two children",
                        ));
                    }
                }
            }
        };
        let threads = self.opts.threads.max(1);
        let results: Vec<Result<(), VerifyError>> = if threads == 1 {
            vec![work()]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
                let mut results = vec![work()];
                results.extend(
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("verifier thread")),
                );
                results
            })
        };
        // The lowest level that disagrees is the damaged one (the levels above it disagree
        // only because of it); report its first bad entry, whatever thread found it.
        let mut errors: Vec<VerifyError> = results.into_iter().filter_map(Result::err).collect();
        errors.sort_by_key(|e| match e {
            VerifyError::StoredHash {
                first_index,
                end_index,
                ..
            } => (end_index - first_index, *first_index),
            _ => (0, 0),
        });
        errors.into_iter().next().map_or(Ok(()), Err)
    }

    /// Extends the stored tree from `prefix` to `size` in memory with the recomputed leaves,
    /// comparing with any stored hashes there; returns the root.
    fn replay(&mut self, prefix: u64, size: u64, leaves: Vec<Hash>) -> Result<Hash, VerifyError> {
        let stored: Vec<u64> = (0..64).map(|l| self.tree.entries(l)).collect();
        self.tree.truncate_leaves(prefix)?;
        let mut parts = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if prefix & (1 << level) != 0 {
                parts.push(self.tree.node(level, start >> level)?);
                start += 1 << level;
            }
        }
        let mut range = CompactRange::from_parts(prefix, parts).map_err(io::Error::other)?;
        let leaves = &leaves[..(size - prefix) as usize];
        let tree = &mut self.tree;
        let mut mismatch = None;
        for leaf in leaves {
            range.append(*leaf, |level, index, hash| {
                if level > 0 && index < stored[level as usize] && mismatch.is_none() {
                    match tree.read_raw(level, index) {
                        Ok(h) if h == *hash => {}
                        Ok(_) => mismatch = Some((level, index, None)),
                        Err(e) => mismatch = Some((level, index, Some(e))),
                    }
                }
                tree.push(level, index, hash);
            });
        }
        if let Some((level, entry, err)) = mismatch {
            if let Some(e) = err {
                return Err(e.into());
            }
            return Err(self.bad_node(
                level,
                entry,
                "the stored hash is not the hash of the records it covers",
            ));
        }
        Ok(range.root())
    }

    fn check_against(
        &self,
        position: usize,
        text: &str,
        size: u64,
        root: &Hash,
    ) -> Result<(), VerifyError> {
        check_against(
            self.verifier,
            &self.meta.origin,
            position,
            text,
            (size, root),
            |old| {
                merkle::consistency_proof(&self.tree, old, size)
                    .map_err(|e| VerifyError::Io(io::Error::other(e)))
            },
        )
    }

    fn each_record(&self, size: u64, on_record: OnRecord<'_>) -> Result<(), VerifyError> {
        let mut index = 0u64;
        for &first in &self.segments {
            let path = self.layout.segment(first);
            let mut rejected = None;
            let mut window = Window::open(&path).map_err(|e| crate::store::with_path(e, &path))?;
            walk_frames(&mut window, |_, record| {
                if rejected.is_none() && index < size {
                    if let Err(reason) = on_record(index, record) {
                        rejected = Some(VerifyError::Rejected { index, reason });
                    }
                    index += 1;
                }
            })
            .map_err(|e| crate::store::with_path(e, &path))?;
            if let Some(e) = rejected {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// A segment file read in windows of a few MiB (memory stays bounded whatever the size).
struct Window {
    file: fs::File,
    file_len: u64,
    /// File bytes from `base`.
    buf: Vec<u8>,
    base: u64,
    eof: bool,
}

impl Window {
    const CHUNK: u64 = 4 << 20;

    fn open(path: &Path) -> io::Result<Self> {
        let file = open_read(path)?;
        let file_len = file.metadata()?.len();
        let mut w = Self {
            file,
            file_len,
            buf: Vec::with_capacity(Self::CHUNK as usize + (64 << 10)),
            base: 0,
            eof: false,
        };
        w.read_more()?;
        Ok(w)
    }

    /// Drops the first `n` bytes of the window.
    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.base += n as u64;
    }

    /// Reads up to one more chunk.
    fn read_more(&mut self) -> io::Result<()> {
        use std::io::Read;
        let n = (&mut self.file)
            .take(Self::CHUNK)
            .read_to_end(&mut self.buf)?;
        self.eof = (n as u64) < Self::CHUNK;
        Ok(())
    }

    /// Reads everything left.
    fn read_rest(&mut self) -> io::Result<()> {
        use std::io::Read;
        self.file.read_to_end(&mut self.buf)?;
        self.eof = true;
        Ok(())
    }
}

/// Calls `each(offset, record)` for every good frame after the header; returns the first bad
/// frame, if any (offsets are file offsets).
fn walk_frames(
    window: &mut Window,
    mut each: impl FnMut(u64, &[u8]),
) -> io::Result<Option<BadFrame>> {
    let mut start = segment::HEADER_LEN;
    loop {
        let base = window.base;
        let stop = segment::scan_from(&window.buf, start, window.eof, |at, r| each(base + at, r));
        match stop {
            segment::ScanStop::End => return Ok(None),
            segment::ScanStop::Bad(mut bad) => {
                bad.offset += base;
                return Ok(Some(bad));
            }
            segment::ScanStop::NeedMore(pos) => {
                window.consume(pos);
                window.read_more()?;
            }
            segment::ScanStop::NeedRest(pos) => {
                window.consume(pos);
                window.read_rest()?;
            }
        }
        start = 0;
    }
}

/// Reads fixed-size entries of a stored file sequentially, in blocks.
struct StoredEntries<'a> {
    file: Option<&'a AppendFile>,
    width: usize,
    count: u64,
    block_first: u64,
    block: Vec<u8>,
}

impl<'a> StoredEntries<'a> {
    const BLOCK: u64 = 4096;

    fn new(file: Option<&'a AppendFile>, width: usize) -> Self {
        Self {
            file,
            width,
            count: file.map_or(0, |f| f.len() / width as u64),
            block_first: 0,
            block: Vec::new(),
        }
    }

    /// Entry `index`, or `None` beyond the stored entries.
    fn get(&mut self, index: u64) -> io::Result<Option<[u8; 32]>> {
        let Some(file) = self.file else {
            return Ok(None);
        };
        if index >= self.count {
            return Ok(None);
        }
        let in_block = self.block.len() as u64 / self.width as u64;
        if index < self.block_first || index >= self.block_first + in_block {
            let n = Self::BLOCK.min(self.count - index);
            self.block.resize(n as usize * self.width, 0);
            file.read_at(index * self.width as u64, &mut self.block)?;
            self.block_first = index;
        }
        let at = (index - self.block_first) as usize * self.width;
        let mut out = [0u8; 32];
        out[..self.width].copy_from_slice(&self.block[at..at + self.width]);
        Ok(Some(out))
    }
}

/// Checks that the log of `origin`, of `size` records with root `root`, extends the `against`
/// checkpoint `text` (number `position` among those given), with `proof(old_size)` giving the
/// consistency proof from its size. Shared by the directory verifier and
/// [`verify_source`](crate::source::verify_source).
pub(crate) fn check_against(
    verifier: &NoteVerifier,
    origin: &str,
    position: usize,
    text: &str,
    (size, root): (u64, &Hash),
    proof: impl FnOnce(u64) -> Result<Vec<Hash>, VerifyError>,
) -> Result<(), VerifyError> {
    let fail = |size: Option<u64>, reason: String| VerifyError::Against {
        position,
        size,
        reason,
    };
    let cp = Checkpoint::open(text, verifier)
        .map_err(|e| fail(None, format!("not signed by the verifier key given: {e}")))?;
    if cp.origin != origin {
        return Err(fail(
            Some(cp.size),
            format!(
                "it is for origin {:?}, the log is {origin:?}: not this log",
                cp.origin
            ),
        ));
    }
    if cp.size > size {
        return Err(fail(
            Some(cp.size),
            format!(
                "it covers {} records but the log holds only {size}: records were removed \
                 from the end (or the log was replaced)",
                cp.size
            ),
        ));
    }
    let proof = if cp.size == 0 {
        Vec::new()
    } else {
        proof(cp.size)?
    };
    merkle::verify_extends(cp.size, size, &proof, &cp.root, root).map_err(|e| {
        fail(
            Some(cp.size),
            format!(
                "the log does not extend it ({e}): its first {} records were altered, \
                 reordered or replaced",
                cp.size
            ),
        )
    })
}
