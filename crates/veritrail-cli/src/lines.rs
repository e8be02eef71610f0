//! Result lines for the commands that stream (`events`, `tail`, `export`): buffered, to stdout
//! or a file, and a reader that goes away (`veritrail events LOG | head`) ends the run quietly
//! with success instead of an error.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// Where result lines go.
pub(crate) struct Lines {
    out: BufWriter<Box<dyn Write>>,
    /// Where, for error messages.
    name: String,
    closed: bool,
}

impl Lines {
    /// Lines on stdout.
    pub(crate) fn stdout() -> Self {
        Self::new(Box::new(io::stdout()), "stdout".to_owned())
    }

    /// Lines in a new (or truncated) file at `path`.
    pub(crate) fn file(path: &Path) -> Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the output file {}", path.display()))?;
        Ok(Self::new(Box::new(file), path.display().to_string()))
    }

    fn new(out: Box<dyn Write>, name: String) -> Self {
        Lines {
            out: BufWriter::with_capacity(64 * 1024, out),
            name,
            closed: false,
        }
    }

    /// Whether the reader has gone away (stop producing output).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Writes `line` and a newline.
    pub(crate) fn line(&mut self, line: &[u8]) -> Result<()> {
        let result = self
            .out
            .write_all(line)
            .and_then(|()| self.out.write_all(b"\n"));
        self.check(result)
    }

    /// Pushes buffered lines out (after each batch a follower prints).
    pub(crate) fn flush(&mut self) -> Result<()> {
        let result = self.out.flush();
        self.check(result)
    }

    fn check(&mut self, result: io::Result<()>) -> Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("cannot write to {}", self.name)),
        }
    }
}
