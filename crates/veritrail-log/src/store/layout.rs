//! Where things live in a log directory, and the two small text formats: the `LOG` metadata
//! file and the `checkpoints` history.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::checkpoint::Checkpoint;
use crate::note::NoteVerifier;

/// The metadata file: format version, origin, verifier key.
pub(crate) const META: &str = "LOG";
/// The lock file a writer holds.
pub(crate) const LOCK: &str = "LOCK";
/// The segment directory.
pub(crate) const SEGMENTS: &str = "segments";
/// The stored-hash directory.
pub(crate) const TREE: &str = "tree";
/// The record offsets file (u64 LE per record: the frame's byte offset in its segment).
pub(crate) const OFFSETS: &str = "offsets";
/// The latest signed checkpoint.
pub(crate) const CHECKPOINT: &str = "checkpoint";
/// The history of every signed checkpoint.
pub(crate) const HISTORY: &str = "checkpoints";

/// First line of the metadata file.
const META_MAGIC: &str = "veritrail-log 1";

/// Paths of one log directory.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }
    pub(crate) fn meta(&self) -> PathBuf {
        self.dir.join(META)
    }
    pub(crate) fn lock(&self) -> PathBuf {
        self.dir.join(LOCK)
    }
    pub(crate) fn segments(&self) -> PathBuf {
        self.dir.join(SEGMENTS)
    }
    pub(crate) fn segment(&self, first: u64) -> PathBuf {
        self.segments().join(super::segment::file_name(first))
    }
    pub(crate) fn tree(&self) -> PathBuf {
        self.dir.join(TREE)
    }
    pub(crate) fn offsets(&self) -> PathBuf {
        self.dir.join(OFFSETS)
    }
    pub(crate) fn checkpoint(&self) -> PathBuf {
        self.dir.join(CHECKPOINT)
    }
    pub(crate) fn history(&self) -> PathBuf {
        self.dir.join(HISTORY)
    }

    /// The first indexes of the segment files, sorted. Hidden files (temporaries) are ignored;
    /// any other file name is an error.
    pub(crate) fn list_segments(&self) -> std::io::Result<Result<Vec<u64>, PathBuf>> {
        let mut firsts = Vec::new();
        let dir = self.segments();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(firsts)),
            Err(e) => return Err(super::files::with_path(e, &dir)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| super::files::with_path(e, &dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            match super::segment::parse_file_name(&name) {
                Some(first) => firsts.push(first),
                None => return Ok(Err(entry.path())),
            }
        }
        firsts.sort_unstable();
        Ok(Ok(firsts))
    }
}

/// The contents of the `LOG` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) origin: String,
    pub(crate) verifier: NoteVerifier,
}

impl Meta {
    pub(crate) fn to_text(&self) -> String {
        format!(
            "{META_MAGIC}\norigin: {}\nverifier: {}\n",
            self.origin,
            self.verifier.to_text()
        )
    }

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        match lines.next() {
            Some(META_MAGIC) => {}
            Some(l) if l.starts_with("veritrail-log ") => {
                return Err(format!(
                    "log format {:?} is not supported (this build reads {META_MAGIC:?})",
                    l
                ));
            }
            _ => return Err(format!("the first line must be {META_MAGIC:?}")),
        }
        let mut origin = None;
        let mut verifier = None;
        for line in lines {
            if let Some(o) = line.strip_prefix("origin: ") {
                origin = Some(o.to_owned());
            } else if let Some(v) = line.strip_prefix("verifier: ") {
                verifier =
                    Some(NoteVerifier::from_text(v).map_err(|e| format!("verifier line: {e}"))?);
            } else {
                return Err(format!("unexpected line {line:?}"));
            }
        }
        let origin = origin.ok_or("no origin line")?;
        check_origin(&origin)?;
        let meta = Self {
            origin,
            verifier: verifier.ok_or("no verifier line")?,
        };
        // Only the canonical form: no stray whitespace or line endings are accepted.
        if meta.to_text() != text {
            return Err("not in the canonical form this build writes".into());
        }
        Ok(meta)
    }
}

/// An origin must be one non-empty line.
pub(crate) fn check_origin(origin: &str) -> Result<(), String> {
    if origin.is_empty() || origin.contains('\n') || origin.trim() != origin {
        return Err(format!(
            "origin {origin:?} must be one non-empty line without surrounding spaces"
        ));
    }
    Ok(())
}

/// Parses the checkpoint in a signed note without checking its signature (the writer reads
/// back what it signed; the verifier checks signatures separately).
pub(crate) fn parse_unverified(note: &str) -> Result<Checkpoint, String> {
    let split = note
        .rfind("\n\n")
        .ok_or("no blank line separates the checkpoint from its signatures")?;
    Checkpoint::parse_body(&note[..=split]).map_err(|e| e.to_string())
}

/// One entry of the checkpoint history: `checkpoint <byte length>\n` then the signed note.
pub(crate) fn history_entry(note: &str) -> Vec<u8> {
    format!("checkpoint {}\n{note}", note.len()).into_bytes()
}

/// A checkpoint read from the history, with the byte offset of its entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HistoryEntry {
    pub(crate) offset: u64,
    pub(crate) note: String,
}

/// A damaged history entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BadEntry {
    pub(crate) offset: u64,
    pub(crate) reason: String,
    /// The damage runs to the end of the file (an interrupted append).
    pub(crate) at_tail: bool,
}

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry at byte {}: {}", self.offset, self.reason)
    }
}

/// Parses the history; stops at the first damaged entry.
pub(crate) fn parse_history(data: &[u8]) -> (Vec<HistoryEntry>, Option<BadEntry>) {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        let bad = |reason: String, at_tail: bool| BadEntry {
            offset: pos as u64,
            reason,
            at_tail,
        };
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            let at_tail = b"checkpoint ".starts_with(&rest[..rest.len().min(11)]);
            return (entries, Some(bad("entry header cut short".into(), at_tail)));
        };
        let len = std::str::from_utf8(&rest[..nl])
            .ok()
            .and_then(|l| l.strip_prefix("checkpoint "))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<usize>().ok());
        let Some(len) = len else {
            return (
                entries,
                Some(bad("expected a line \"checkpoint <length>\"".into(), false)),
            );
        };
        let body = &rest[nl + 1..];
        if len > body.len() {
            return (
                entries,
                Some(bad(
                    format!("entry of {len} bytes runs past the end of the file"),
                    true,
                )),
            );
        }
        match std::str::from_utf8(&body[..len]) {
            Ok(note) => entries.push(HistoryEntry {
                offset: pos as u64,
                note: note.to_owned(),
            }),
            Err(_) => {
                return (
                    entries,
                    Some(bad("checkpoint is not UTF-8".into(), len == body.len())),
                );
            }
        }
        pos += nl + 1 + len;
    }
    (entries, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_and_finds_torn_tail() {
        let mut data = history_entry("a\n1\nx\n\n— sig\n");
        let second = data.len();
        data.extend(history_entry("b\n2\ny\n\n— sig\n"));
        let (entries, bad) = parse_history(&data);
        assert_eq!(bad, None);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].offset, second as u64);
        for cut in second + 1..data.len() {
            let (entries, bad) = parse_history(&data[..cut]);
            assert_eq!(entries.len(), 1, "cut at {cut}");
            let bad = bad.expect("damage");
            assert!(bad.at_tail, "cut at {cut}: {bad}");
        }
    }
}
