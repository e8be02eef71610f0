//! The on-disk log.
//!
//! CONTRACT (the storage helper's work; the writer and the CLI build on it):
//!
//! ```ignore
//! #[derive(Clone, Debug)]
//! pub struct LogOptions {
//!     pub origin: Option<String>,            // default: the signer's name; fixed at creation
//!     pub segment_bytes: u64,                // rotate segments at this size (default 64 MiB)
//!     pub checkpoint_every: Option<u64>,     // sign a checkpoint every N records (None = only on request/close)
//!     pub checkpoint_interval: Option<std::time::Duration>,
//! }
//! /// What `open` found and repaired.
//! #[derive(Clone, Debug, PartialEq, Eq)]
//! pub struct Recovery { pub segment: std::path::PathBuf, pub offset: u64, pub bytes_cut: u64 }
//!
//! pub struct Log { .. }   // single writer; Send
//! impl Log {
//!     /// Creates (if empty / missing) or opens `dir`. A torn tail in the newest segment is
//!     /// truncated + fsynced; `recovered()` then reports it.
//!     pub fn open(dir: &Path, signer: NoteSigner, opts: LogOptions) -> Result<Log, LogError>;
//!     /// Opens without a key, read-only (proofs, reads); no repair is done.
//!     pub fn open_read_only(dir: &Path) -> Result<Log, LogError>;
//!     pub fn recovered(&self) -> Option<&Recovery>;
//!     pub fn origin(&self) -> &str;
//!     pub fn size(&self) -> u64;                               // records appended (incl. unsynced)
//!     pub fn root(&self) -> Hash;
//!     /// Buffers one record (framed, hashed); returns its index. Not durable until `sync`.
//!     pub fn append(&mut self, record: &[u8]) -> Result<u64, LogError>;
//!     /// Appends many records with one write (group commit building block).
//!     pub fn append_batch<'a>(&mut self, records: impl IntoIterator<Item = &'a [u8]>) -> Result<std::ops::Range<u64>, LogError>;
//!     /// Writes buffered data and fdatasyncs segments + hash files. After an I/O/fsync error
//!     /// the Log is failed: every later append/sync returns LogError::Failed.
//!     pub fn sync(&mut self) -> Result<(), LogError>;
//!     /// Syncs, signs a checkpoint at the current size (refusing one inconsistent with the
//!     /// previous), stores it as latest and in the history; returns the signed note text.
//!     pub fn checkpoint(&mut self) -> Result<String, LogError>;
//!     pub fn latest_checkpoint(&self) -> Result<Option<String>, LogError>;
//!     pub fn checkpoint_history(&self) -> Result<Vec<String>, LogError>;
//!     pub fn read(&self, index: u64) -> Result<Vec<u8>, LogError>;
//!     /// Iterator over (index, record) from `start`.
//!     pub fn records(&self, start: u64) -> impl Iterator<Item = Result<(u64, Vec<u8>), LogError>> + '_;
//!     pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError>;
//!     pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError>;
//!     /// Syncs and signs the final checkpoint.
//!     pub fn close(self) -> Result<(), LogError>;
//! }
//! ```
