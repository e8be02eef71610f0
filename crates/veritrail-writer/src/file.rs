//! [`FileSink`]: the writer's default sink, over the file log of `veritrail-log`.

use std::path::Path;
use std::sync::mpsc::Receiver;

use veritrail_core::event::RecoveredRecord;
use veritrail_log::{Log, LogOptions, NoteSigner};

use crate::sink::{Batch, Sink, SinkError, ended_uncleanly};

/// The file log as a [`Sink`]: each batch is one `append_batch` (one write of framed, hashed
/// records) and each commit one `sync` (fdatasync of the segment and hash files).
#[derive(Debug)]
pub struct FileSink {
    log: Log,
    cosignatures: Option<Receiver<Cosigned>>,
}

/// Witness cosignature lines for a checkpoint the log signed, handed to the writer's thread
/// (which alone may write the log) by whatever collected them (see
/// [`FileSink::with_cosignatures`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The signed checkpoint the lines cosign, exactly as the log stored it.
    pub checkpoint: String,
    /// The cosignature lines (each ending in a newline), already verified against the
    /// witnesses' keys.
    pub lines: String,
}

impl FileSink {
    /// Opens (or creates) the log in `dir`, repairing a torn tail (which the writer then
    /// records as a `recovered` record). A log with records but no checkpoint history is
    /// refused unless [`LogOptions::recover`] is set; the records it adopts are recorded in
    /// the `recovered` record too. The writer signs checkpoints itself, so the log's
    /// own automatic checkpoints are turned off.
    pub fn open(dir: &Path, signer: NoteSigner, options: LogOptions) -> Result<Self, SinkError> {
        let options = options.checkpoint_every(None).checkpoint_interval(None);
        Ok(FileSink {
            log: Log::open(dir, signer, options)?,
            cosignatures: None,
        })
    }

    /// Wraps a log already opened for writing.
    pub fn new(log: Log) -> Self {
        FileSink {
            log,
            cosignatures: None,
        }
    }

    /// Stores the witness cosignatures received on `rx` (from a task that submits the log's
    /// checkpoints to witnesses off the writer's thread, so that a slow witness never delays
    /// an append). They are added at the next commit or checkpoint, to the latest checkpoint
    /// if it is the one they cosign; cosignatures of an older checkpoint are dropped (the next
    /// round cosigns the newer one).
    pub fn with_cosignatures(mut self, rx: Receiver<Cosigned>) -> Self {
        self.cosignatures = Some(rx);
        self
    }

    fn store_cosignatures(&mut self) -> Result<(), SinkError> {
        let Some(rx) = &self.cosignatures else {
            return Ok(());
        };
        let received: Vec<Cosigned> = rx.try_iter().collect();
        for c in received {
            if self.log.latest_checkpoint()?.as_deref() == Some(c.checkpoint.as_str()) {
                self.log.add_cosignatures(&c.lines)?;
            }
        }
        Ok(())
    }

    /// The underlying log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The underlying log, mutably (for example to inject a storage fault in a test).
    pub fn log_mut(&mut self) -> &mut Log {
        &mut self.log
    }

    /// Gives the log back.
    pub fn into_log(self) -> Log {
        self.log
    }
}

impl Sink for FileSink {
    fn origin(&self) -> &str {
        self.log.origin()
    }

    fn size(&self) -> u64 {
        self.log.size()
    }

    fn append(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let got = self.log.append_batch(batch.records())?;
        if got != batch.indexes() {
            return Err(SinkError::IndexMismatch {
                expected: batch.indexes(),
                got,
            });
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        self.log.sync()?;
        self.store_cosignatures()
    }

    fn checkpoint(&mut self) -> Result<Option<String>, SinkError> {
        self.store_cosignatures()?;
        Ok(Some(self.log.checkpoint()?))
    }

    /// The log's own [`Recovery`](veritrail_log::store::Recovery) when it cut a torn tail or
    /// adopted records without checkpoint history;
    /// otherwise, when the last record is an audit event other than `stop` (the previous
    /// writer was killed between two batches), a record with `bytes_cut: 0` and the newest
    /// segment's end.
    fn recovered(&self) -> Option<RecoveredRecord> {
        if let Some(r) = self.log.recovered() {
            return Some(RecoveredRecord {
                segment: file_name(&r.segment),
                offset: r.offset,
                bytes_cut: r.bytes_cut,
                unsigned_adopted: (r.unsigned_adopted > 0).then_some(r.unsigned_adopted),
            });
        }
        let last = self.log.size().checked_sub(1)?;
        let record = self.log.read(last).ok()?;
        if !ended_uncleanly(&record) {
            return None;
        }
        let (segment, offset) = newest_segment(self.log.dir()).unwrap_or_default();
        Some(RecoveredRecord {
            segment,
            offset,
            bytes_cut: 0,
            unsigned_adopted: None,
        })
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// The newest segment file of the log in `dir` (`segments/`, named by first index so that
/// names sort in order) and its length.
fn newest_segment(dir: &Path) -> Option<(String, u64)> {
    let newest = std::fs::read_dir(dir.join("segments"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .max()?;
    let len = std::fs::metadata(&newest).ok()?.len();
    Some((file_name(&newest), len))
}
