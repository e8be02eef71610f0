//! Reading a stored log, whatever stores it: the directory [`Log`], or a
//! database (the `veritrail-postgres` crate).
//!
//! A store implements [`LogSource`]: records by index, the stored full-subtree hashes
//! (RFC 6962 nodes, as [`merkle::HashSource`] numbers them), the checkpoint history and the
//! log's origin and verifier key. On top of that, written once for every store:
//!
//! - [`LogSource::inclusion_proof`], [`LogSource::consistency_proof`] and
//!   [`LogSource::root_at`], which fetch the O(log n) stored hashes a proof needs in one call
//!   to [`LogSource::nodes`] (one round trip for a database);
//! - [`verify_source`], the verifier for any store: it trusts nothing the store says except
//!   what the verifier key signs, recomputes the tree from the records and compares every
//!   stored hash and every stored checkpoint with it.
//!
//! ```
//! use veritrail_log::source::{LogSource, verify_source};
//! use veritrail_log::verify::VerifyOptions;
//! use veritrail_log::{Log, LogOptions, NoteSigner};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! let signer = NoteSigner::generate("example.com/audit/source")?;
//! let verifier = signer.verifier();
//! let mut log = Log::open(tmp.path(), signer, LogOptions::default())?;
//! for i in 0..5u8 {
//!     log.append(&[i])?;
//! }
//! log.checkpoint()?;
//!
//! // The same calls work on any store; `&dyn LogSource` hides which.
//! let store: &dyn LogSource = &log;
//! let proof = store.inclusion_proof(3, 5)?;
//! assert_eq!(proof.len(), 3);
//! let report = verify_source(store, &verifier, &VerifyOptions::default())?;
//! assert_eq!(report.records, 5);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;

use crate::checkpoint::Checkpoint;
use crate::merkle::{self, CompactRange, Hash, HashSource, ProofBuildError};
use crate::note::NoteVerifier;
use crate::store::{Log, LogError, parse_unverified};
use crate::verify::{VerifyError, VerifyOptions, VerifyReport};

/// Why a store could not be read: its own error (I/O, a database), boxed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl SourceError {
    /// Wraps any store error.
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        SourceError(e.into())
    }
}

impl From<LogError> for SourceError {
    fn from(e: LogError) -> Self {
        SourceError(Box::new(e))
    }
}

/// A record as a store holds it: its index, its bytes and, when the store keeps it beside
/// the record, its stored leaf hash (checked by [`verify_source`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record's index.
    pub index: u64,
    /// The record's bytes, exactly as hashed.
    pub record: Vec<u8>,
    /// The leaf hash stored with it, if the store keeps one beside the record.
    pub leaf_hash: Option<Hash>,
}

/// The records of a store, in index order.
pub type Records<'a> = Box<dyn Iterator<Item = Result<StoredRecord, SourceError>> + 'a>;

/// A stored log, read-only (see the [module docs](self)).
pub trait LogSource {
    /// The checkpoint origin.
    fn origin(&self) -> &str;

    /// The verifier key the store says is the log's (a verifier compares it with the key it
    /// was given).
    fn verifier(&self) -> &NoteVerifier;

    /// Where the log is, for messages (a path, or a URL without secrets).
    fn location(&self) -> String;

    /// How many records the store holds.
    fn size(&self) -> u64;

    /// Record `index`, checked against its stored leaf hash.
    fn read(&self, index: u64) -> Result<Vec<u8>, SourceError>;

    /// The records from `start` to [`size`](Self::size), in index order. The store reports
    /// each record's own index, so a missing record shows as a jump.
    fn records(&self, start: u64) -> Records<'_>;

    /// The stored hash of the full subtree `(level, index)` (level 0: leaf hashes).
    fn node(&self, level: u8, index: u64) -> Result<Hash, SourceError>;

    /// Several stored hashes at once, in the order asked. Stores with a round trip per read
    /// override this to fetch them together.
    fn nodes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, SourceError> {
        wanted.iter().map(|&(l, i)| self.node(l, i)).collect()
    }

    /// Whether the store keeps the hashes of `level` (level 0 included) rather than computing
    /// them from the level below; [`verify_source`] compares the stored ones with the tree.
    fn stores_level(&self, level: u8) -> bool {
        let _ = level;
        true
    }

    /// The latest signed checkpoint (note text), if any.
    fn latest_checkpoint(&self) -> Result<Option<String>, SourceError>;

    /// Every checkpoint the log signed, oldest first (note texts).
    fn checkpoint_history(&self) -> Result<Vec<String>, SourceError>;

    /// The inclusion proof of record `index` in the tree of size `size`, from the stored
    /// hashes (read in one [`nodes`](Self::nodes) call).
    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, SourceError> {
        check_size(self, size)?;
        prefetched(self, |src| merkle::inclusion_proof(src, index, size))
    }

    /// The consistency proof from size `old` to size `new` (RFC 9162 §2.1.4).
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, SourceError> {
        check_size(self, new)?;
        prefetched(self, |src| merkle::consistency_proof(src, old, new))
    }

    /// The root of the tree of the first `size` records, from the stored hashes.
    fn root_at(&self, size: u64) -> Result<Hash, SourceError> {
        check_size(self, size)?;
        prefetched(self, |src| merkle::root_at(src, size))
    }
}

fn check_size<S: LogSource + ?Sized>(src: &S, size: u64) -> Result<(), SourceError> {
    if size > src.size() {
        return Err(SourceError::new(format!(
            "tree size {size} is larger than the log ({} records)",
            src.size()
        )));
    }
    Ok(())
}

/// Runs `build` twice: once over a source that notes which nodes it asks for (the proof
/// algorithms never branch on hash values), then over those nodes, fetched in one call.
fn prefetched<S, T>(
    src: &S,
    build: impl Fn(&dyn HashSource<Error = SourceError>) -> Result<T, ProofBuildError<SourceError>>,
) -> Result<T, SourceError>
where
    S: LogSource + ?Sized,
{
    let wanted = Wanted::default();
    if let Err(ProofBuildError::Invalid(e)) = build(&wanted) {
        return Err(SourceError::new(e));
    }
    let nodes: Vec<(u8, u64)> = wanted.0.into_inner();
    let hashes = src.nodes(&nodes)?;
    let map: Fetched = Fetched(nodes.into_iter().zip(hashes).collect());
    build(&map).map_err(|e| match e {
        ProofBuildError::Invalid(e) => SourceError::new(e),
        ProofBuildError::Source { source, .. } => source,
    })
}

/// Notes the nodes asked for and answers with zeros.
#[derive(Default)]
struct Wanted(std::cell::RefCell<Vec<(u8, u64)>>);

impl HashSource for Wanted {
    type Error = SourceError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, SourceError> {
        self.0.borrow_mut().push((level, index));
        Ok([0; 32])
    }
}

struct Fetched(HashMap<(u8, u64), Hash>);

impl HashSource for Fetched {
    type Error = SourceError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, SourceError> {
        self.0
            .get(&(level, index))
            .copied()
            .ok_or_else(|| SourceError::new(merkle::MissingNode { level, index }))
    }
}

/// Any [`LogSource`] is a [`HashSource`] (one read per node).
pub struct Nodes<'a, S: ?Sized>(pub &'a S);

impl<S: LogSource + ?Sized> HashSource for Nodes<'_, S> {
    type Error = SourceError;
    fn node(&self, level: u8, index: u64) -> Result<Hash, SourceError> {
        self.0.node(level, index)
    }
}

impl<S: ?Sized> fmt::Debug for Nodes<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nodes")
    }
}

impl LogSource for Log {
    fn origin(&self) -> &str {
        Log::origin(self)
    }
    fn verifier(&self) -> &NoteVerifier {
        Log::verifier(self)
    }
    fn location(&self) -> String {
        self.dir().display().to_string()
    }
    fn size(&self) -> u64 {
        Log::size(self)
    }
    fn read(&self, index: u64) -> Result<Vec<u8>, SourceError> {
        Ok(Log::read(self, index)?)
    }
    fn records(&self, start: u64) -> Records<'_> {
        Box::new(Log::records(self, start).map(|item| {
            item.map(|(index, record)| StoredRecord {
                index,
                record,
                leaf_hash: None,
            })
            .map_err(SourceError::from)
        }))
    }
    fn node(&self, level: u8, index: u64) -> Result<Hash, SourceError> {
        self.stored_node(level, index).map_err(SourceError::from)
    }
    fn latest_checkpoint(&self) -> Result<Option<String>, SourceError> {
        Ok(Log::latest_checkpoint(self)?)
    }
    fn checkpoint_history(&self) -> Result<Vec<String>, SourceError> {
        Ok(Log::checkpoint_history(self)?)
    }
}

/// Verifies any stored log against `verifier`, trusting nothing the store says except what
/// the key signs:
///
/// 1. the store's verifier key must be the one given, and every checkpoint (history and
///    latest) must carry a valid signature by it, for the store's origin; the history's
///    sizes must grow, and the latest must be its last entry;
/// 2. every record is read in order (indexes without a gap) and hashed; each leaf hash and
///    each stored interior hash the store keeps ([`LogSource::stores_level`]) must equal the
///    one recomputed from the records;
/// 3. each checkpoint's root must be the tree's root at its size, and no checkpoint may cover
///    more records than the store holds;
/// 4. each `against` checkpoint must be extended by the log (a consistency proof).
///
/// The first failure is returned, naming the record index. `on_record` (if given) is called
/// with every record, in order, once the log is known to be intact up to it.
pub fn verify_source(
    src: &dyn LogSource,
    verifier: &NoteVerifier,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    verify_source_with(src, verifier, opts, |_, _| Ok(()))
}

/// [`verify_source`] calling `on_record(index, record)` for every record (for checks of the
/// records' contents); an `Err(reason)` stops with [`VerifyError::Rejected`].
pub fn verify_source_with(
    src: &dyn LogSource,
    verifier: &NoteVerifier,
    opts: &VerifyOptions,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<VerifyReport, VerifyError> {
    let location = src.location();
    let stored = |index: Option<u64>, reason: String| VerifyError::Stored {
        location: location.clone(),
        index,
        reason,
    };
    let io = |e: SourceError| VerifyError::Io(std::io::Error::other(e));
    if src.verifier() != verifier {
        return Err(VerifyError::WrongKey {
            stored: src.verifier().to_text(),
            given: verifier.to_text(),
        });
    }
    let origin = src.origin().to_owned();

    // 1. Checkpoints: signatures, origin, growing sizes, latest = last.
    let history = src.checkpoint_history().map_err(io)?;
    let latest = src.latest_checkpoint().map_err(io)?;
    let mut checkpoints: Vec<(String, Checkpoint)> = Vec::new();
    for (i, text) in history.iter().enumerate() {
        let which = format!("history entry {}", i + 1);
        let cp = open_checkpoint(text, verifier, &origin, &which)?;
        if let Some((prev_which, prev)) = checkpoints.last()
            && prev.size >= cp.size
        {
            return Err(VerifyError::Checkpoint {
                which,
                size: Some(cp.size),
                reason: format!(
                    "its size {} does not grow from {prev_which}'s {}: a checkpoint was \
                     replaced by an older one, or the history reordered",
                    cp.size, prev.size
                ),
            });
        }
        checkpoints.push((which, cp));
    }
    if let Some(text) = &latest {
        let which = "latest checkpoint".to_owned();
        let cp = open_checkpoint(text, verifier, &origin, &which)?;
        let is_last = history.last().is_some_and(|last| last == text);
        let before_last = history.len() >= 2 && history[history.len() - 2] == *text;
        if !is_last && !before_last {
            return Err(VerifyError::Checkpoint {
                which,
                size: Some(cp.size),
                reason: "it is not the last checkpoint of the history: it was replaced, or the \
                         history was altered"
                    .into(),
            });
        }
    }
    let size = src.size();
    if let Some((which, cp)) = checkpoints.iter().find(|(_, c)| c.size > size) {
        return Err(stored(
            Some(size),
            format!(
                "records {size}..{} are missing: checkpoint {which} covers {} records but the \
                 store holds only {size} (records were removed from the end)",
                cp.size, cp.size
            ),
        ));
    }

    // 2. Records, leaf hashes and stored interior hashes; 3. roots at each checkpoint.
    let mut range = CompactRange::new();
    let mut due = checkpoints.iter().peekable();
    let check_root = |range: &CompactRange, which: &str, cp: &Checkpoint| {
        if range.root() == cp.root {
            return Ok(());
        }
        Err(VerifyError::Checkpoint {
            which: which.to_owned(),
            size: Some(cp.size),
            reason: format!(
                "its root is not the root of the first {} records: a record among them was \
                 altered, removed or inserted",
                cp.size
            ),
        })
    };
    while let Some((which, cp)) = due.peek()
        && cp.size == 0
    {
        check_root(&range, which, cp)?;
        due.next();
    }
    let mut pending: Vec<((u8, u64), Hash)> = Vec::new();
    let compare = |pending: &mut Vec<((u8, u64), Hash)>| -> Result<(), VerifyError> {
        if pending.is_empty() {
            return Ok(());
        }
        let wanted: Vec<(u8, u64)> = pending.iter().map(|(n, _)| *n).collect();
        let stored_hashes = src.nodes(&wanted).map_err(io)?;
        for (((level, index), computed), stored_hash) in pending.iter().zip(stored_hashes) {
            if stored_hash != *computed {
                let first = index << level;
                return Err(stored(
                    Some(first),
                    if *level == 0 {
                        format!("record {index} does not match its stored leaf hash")
                    } else {
                        format!(
                            "the stored hash at level {level}, entry {index} (records {first} to \
                             {}) is not the hash of those records",
                            ((index + 1) << level) - 1
                        )
                    },
                ));
            }
        }
        pending.clear();
        Ok(())
    };
    let mut bytes = 0u64;
    let mut expected = 0u64;
    let threads = opts.threads.max(1);
    let mut records = src.records(0);
    let mut chunk: Vec<StoredRecord> = Vec::with_capacity(HASH_CHUNK);
    loop {
        chunk.clear();
        for item in records.by_ref().take(HASH_CHUNK) {
            chunk.push(item.map_err(io)?);
        }
        if chunk.is_empty() {
            break;
        }
        let leaves = leaf_hashes(&chunk, threads);
        for (item, leaf) in chunk.iter().zip(leaves) {
            if item.index != expected {
                return Err(stored(
                    Some(expected),
                    if item.index > expected {
                        format!(
                            "record {expected} is missing (the next stored record is {})",
                            item.index
                        )
                    } else {
                        format!("record {} is stored twice", item.index)
                    },
                ));
            }
            match item.leaf_hash {
                Some(h) if h != leaf => {
                    return Err(stored(
                        Some(item.index),
                        "the record does not match its stored leaf hash: the record (or its hash) \
                         was altered"
                            .into(),
                    ));
                }
                Some(_) => {}
                None if src.stores_level(0) => pending.push(((0, item.index), leaf)),
                None => {}
            }
            range.append(leaf, |level, index, hash| {
                if level > 0 && src.stores_level(level) {
                    pending.push(((level, index), *hash));
                }
            });
            bytes += item.record.len() as u64;
            expected += 1;
            if pending.len() >= 8192 {
                compare(&mut pending)?;
            }
            while let Some((which, cp)) = due.peek()
                && cp.size == expected
            {
                check_root(&range, which, cp)?;
                due.next();
            }
            on_record(item.index, &item.record).map_err(|reason| VerifyError::Rejected {
                index: item.index,
                reason,
            })?;
        }
    }
    compare(&mut pending)?;
    if expected != size {
        return Err(stored(
            Some(expected),
            format!("the store says it holds {size} records but {expected} were read"),
        ));
    }
    if let Some((which, cp)) = due.next() {
        return Err(VerifyError::Checkpoint {
            which: which.clone(),
            size: Some(cp.size),
            reason: format!("it covers {} records, but {expected} were read", cp.size),
        });
    }

    // 4. Checkpoints held elsewhere.
    let root = range.root();
    for (i, text) in opts.against.iter().enumerate() {
        crate::verify::check_against(verifier, src.origin(), i + 1, text, (size, &root), |old| {
            src.consistency_proof(old, size)
                .map_err(|e| VerifyError::Io(std::io::Error::other(e)))
        })?;
    }
    Ok(VerifyReport {
        records: size,
        root,
        checkpoints_checked: checkpoints.len() + usize::from(latest.is_some()),
        against_checked: opts.against.len(),
        signed_size: checkpoints.last().map_or(0, |(_, c)| c.size),
        recovered_tail: false,
        tail: None,
        unhashed_records: 0,
        segments: 0,
        bytes,
    })
}

/// Records hashed together (on [`VerifyOptions::threads`] threads).
const HASH_CHUNK: usize = 4096;

/// The leaf hashes of `records`, on up to `threads` threads.
fn leaf_hashes(records: &[StoredRecord], threads: usize) -> Vec<Hash> {
    let hash = |rs: &[StoredRecord]| -> Vec<Hash> {
        rs.iter().map(|r| merkle::leaf_hash(&r.record)).collect()
    };
    if threads < 2 || records.len() < 64 {
        return hash(records);
    }
    let per = records.len().div_ceil(threads);
    std::thread::scope(|s| {
        let mut parts = records.chunks(per);
        let first = parts.next().expect("not empty");
        let others: Vec<_> = parts.map(|p| s.spawn(move || hash(p))).collect();
        let mut out = hash(first);
        for h in others {
            out.extend(h.join().expect("hashing thread panicked"));
        }
        out
    })
}

fn open_checkpoint(
    text: &str,
    verifier: &NoteVerifier,
    origin: &str,
    which: &str,
) -> Result<Checkpoint, VerifyError> {
    let fail = |size, reason| VerifyError::Checkpoint {
        which: which.to_owned(),
        size,
        reason,
    };
    let body = parse_unverified(text).map_err(|r| fail(None, r))?;
    let opened = Checkpoint::open(text, verifier)
        .map_err(|e| fail(Some(body.size), format!("does not verify: {e}")))?;
    if opened.origin != origin {
        return Err(fail(
            Some(opened.size),
            format!(
                "its origin is {:?}, not the log's {origin:?}",
                opened.origin
            ),
        ));
    }
    Ok(opened)
}
