//! Helpers shared by the recovery and tamper tests: building small logs, snapshots of a log
//! directory, and the segment frame format (written out here independently of the crate, so
//! the tests check the documented format rather than reuse the code under test).

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use veritrail_log::merkle::{self, Hash};
use veritrail_log::note::NoteSigner;
use veritrail_log::{Log, LogOptions};

/// Segment header length.
pub const HEADER: usize = 24;

pub fn signer() -> NoteSigner {
    NoteSigner::generate("example.com/tamper").unwrap()
}

/// Record `i`: a small JSON object, lengths varying.
pub fn record(i: u64) -> Vec<u8> {
    let mut r = format!("{{\"event\":{i}").into_bytes();
    r.extend(std::iter::repeat_n(b' ', (i % 5) as usize));
    r.push(b'}');
    r
}

pub fn leaves(records: &[Vec<u8>]) -> Vec<Hash> {
    records.iter().map(|r| merkle::leaf_hash(r)).collect()
}

/// A frame as the format documents it: length, crc32c(length ‖ record), record.
pub fn frame(record: &[u8]) -> Vec<u8> {
    let len = (record.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), record);
    let mut f = len.to_vec();
    f.extend(crc.to_le_bytes());
    f.extend(record);
    f
}

/// Writes `records` to a new log in `dir`: `signed` of them under a checkpoint, the rest
/// synced after it. Returns the last checkpoint's text.
pub fn build(
    dir: &Path,
    signer: &NoteSigner,
    records: &[Vec<u8>],
    signed: usize,
    opts: LogOptions,
) -> String {
    let mut log = Log::open(dir, signer.clone(), opts).unwrap();
    for r in &records[..signed] {
        log.append(r).unwrap();
    }
    let cp = log.checkpoint().unwrap();
    for r in &records[signed..] {
        log.append(r).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    cp
}

/// Replaces a file's content in place. (Not `fs::write`: truncating a file to zero and
/// rewriting it makes ext4 flush it on close, which would make these tests wait on the disk.)
pub fn put(path: &Path, bytes: impl AsRef<[u8]>) {
    use std::os::unix::fs::FileExt;
    let bytes = bytes.as_ref();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.set_len(bytes.len() as u64).unwrap();
}

/// Every file of a directory tree and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot(pub BTreeMap<PathBuf, Vec<u8>>);

impl Snapshot {
    pub fn take(dir: &Path) -> Self {
        let mut files = BTreeMap::new();
        walk(dir, &mut |p| {
            files.insert(p.to_path_buf(), std::fs::read(p).unwrap());
        });
        Self(files)
    }

    /// Puts the directory back exactly as it was (removing files created since).
    pub fn restore(&self, dir: &Path) {
        let mut extra = Vec::new();
        walk(dir, &mut |p| {
            if !self.0.contains_key(p) {
                extra.push(p.to_path_buf());
            }
        });
        for p in extra {
            std::fs::remove_file(p).unwrap();
        }
        for (p, bytes) in &self.0 {
            if std::fs::read(p).ok().as_deref() != Some(bytes.as_slice()) {
                put(p, bytes);
            }
        }
    }

    /// The segment files, in order.
    pub fn segments(&self) -> Vec<PathBuf> {
        self.0
            .keys()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .cloned()
            .collect()
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, f);
        } else if p.file_name().is_some_and(|n| n != "LOCK") {
            f(&p);
        }
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// The records of a segment file, split by the documented framing (panics on bad frames).
pub fn frames(segment: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = HEADER;
    while pos < segment.len() {
        let len = u32::from_le_bytes(segment[pos..pos + 4].try_into().unwrap()) as usize;
        out.push(segment[pos + 8..pos + 8 + len].to_vec());
        pos += 8 + len;
    }
    out
}

/// Rewrites a segment file with other records (same header), framed correctly.
pub fn rewrite_segment(path: &Path, records: &[Vec<u8>]) {
    let old = std::fs::read(path).unwrap();
    let mut data = old[..HEADER].to_vec();
    for r in records {
        data.extend(frame(r));
    }
    put(path, data);
}
