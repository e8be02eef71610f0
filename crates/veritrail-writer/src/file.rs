//! [`FileSink`]: the writer's default sink, over the file log of `veritrail-log`.

use std::path::Path;

use veritrail_core::event::RecoveredRecord;
use veritrail_log::{Log, LogOptions, NoteSigner};

use crate::sink::{Batch, Sink, SinkError};

/// The file log as a [`Sink`]: each batch is one `append_batch` (one write of framed, hashed
/// records) and each commit one `sync` (fdatasync of the segment and hash files).
#[derive(Debug)]
pub struct FileSink {
    log: Log,
}

impl FileSink {
    /// Opens (or creates) the log in `dir`, repairing a torn tail (which the writer then
    /// records as a `recovered` record). The writer signs checkpoints itself, so the log's
    /// own automatic checkpoints are turned off.
    pub fn open(dir: &Path, signer: NoteSigner, options: LogOptions) -> Result<Self, SinkError> {
        let options = LogOptions {
            checkpoint_every: None,
            checkpoint_interval: None,
            ..options
        };
        Ok(FileSink {
            log: Log::open(dir, signer, options)?,
        })
    }

    /// Wraps a log already opened for writing.
    pub fn new(log: Log) -> Self {
        FileSink { log }
    }

    /// The underlying log.
    pub fn log(&self) -> &Log {
        &self.log
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
        Ok(self.log.sync()?)
    }

    fn checkpoint(&mut self) -> Result<Option<String>, SinkError> {
        Ok(Some(self.log.checkpoint()?))
    }

    fn recovered(&self) -> Option<RecoveredRecord> {
        self.log.recovered().map(|r| RecoveredRecord {
            segment: r
                .segment
                .file_name()
                .unwrap_or(r.segment.as_os_str())
                .to_string_lossy()
                .into_owned(),
            offset: r.offset,
            bytes_cut: r.bytes_cut,
        })
    }
}
