//! Stored Merkle hashes: one append-only file per tree level.
//!
//! `tree/level-NN.hashes` holds, back to back, the 32-byte hashes of the full subtrees of
//! height `NN`: entry `i` of level `L` covers leaves `[i << L, (i + 1) << L)`, so level 0 is
//! the leaf hashes. This is the data model of C2SP tlog-tiles without the tiling: every proof
//! reads O(log n) fixed-offset entries. The files are fed by
//! [`CompactRange::append`](crate::merkle::CompactRange::append)'s `visit` callback.

use std::io;
use std::path::{Path, PathBuf};

use super::files::{AppendFile, Faults, sync_dir};
use crate::merkle::{Hash, HashSource};

/// Bytes per stored hash.
pub(crate) const HASH_LEN: u64 = 32;
/// Levels a tree of fewer than 2^64 leaves can have.
const MAX_LEVELS: usize = 64;

/// The level files of one log (or an in-memory extension of them, for read-only opens).
#[derive(Debug)]
pub(crate) struct TreeFiles {
    dir: PathBuf,
    writable: bool,
    levels: Vec<AppendFile>,
    created: bool,
}

impl TreeFiles {
    /// The file holding level `level`.
    pub(crate) fn level_path(dir: &Path, level: u8) -> PathBuf {
        dir.join(format!("level-{level:02}.hashes"))
    }

    /// Opens the level files in `dir` (those present; more are created as the tree grows).
    pub(crate) fn open(dir: &Path, writable: bool) -> io::Result<Self> {
        let mut levels = Vec::new();
        for level in 0..MAX_LEVELS as u8 {
            let path = Self::level_path(dir, level);
            if !path.exists() {
                break;
            }
            levels.push(AppendFile::open(path, writable)?);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            writable,
            levels,
            created: false,
        })
    }

    /// Number of stored (or pending) hashes at `level`.
    pub(crate) fn entries(&self, level: u8) -> u64 {
        self.levels
            .get(level as usize)
            .map_or(0, |f| f.len() / HASH_LEN)
    }

    /// The file of `level`, if there is one.
    pub(crate) fn level_file(&self, level: u8) -> Option<&AppendFile> {
        self.levels.get(level as usize)
    }

    /// Number of level files.
    pub(crate) fn level_count(&self) -> usize {
        self.levels.len()
    }

    /// Path of level `level`'s file.
    pub(crate) fn path(&self, level: u8) -> PathBuf {
        Self::level_path(&self.dir, level)
    }

    /// The largest `m` such that every level holds the hashes of all full subtrees within the
    /// first `m` leaves (the stored tree is complete for `[0, m)`).
    pub(crate) fn complete_prefix(&self) -> u64 {
        let mut m = self.entries(0);
        for level in 1..MAX_LEVELS as u32 {
            let e = self.entries(level as u8);
            // Need e >= m >> level, so m <= ((e + 1) << level) - 1.
            let limit = (u128::from(e) + 1)
                .checked_shl(level)
                .map_or(u128::MAX, |l| l - 1);
            if u128::from(m) > limit {
                m = limit as u64;
            }
        }
        m
    }

    /// The number of leaves for which some level file holds a hash (at least partly): the
    /// largest `(entries(L) << L)` over all levels.
    pub(crate) fn coverage(&self) -> u128 {
        (0..self.levels.len())
            .map(|l| u128::from(self.entries(l as u8)) << l)
            .max()
            .unwrap_or(0)
    }

    /// Forgets every hash beyond the first `size` leaves (logically; a writable tree truncates
    /// the files when it next writes).
    pub(crate) fn truncate_leaves(&mut self, size: u64) -> io::Result<()> {
        for (level, file) in self.levels.iter_mut().enumerate() {
            file.truncate((size >> level) * HASH_LEN)?;
        }
        Ok(())
    }

    /// Adds the hash of node `(level, index)`, which must be the next one of its level.
    pub(crate) fn push(&mut self, level: u8, index: u64, hash: &Hash) {
        let level = level as usize;
        while self.levels.len() <= level {
            let path = Self::level_path(&self.dir, self.levels.len() as u8);
            self.levels.push(AppendFile::deferred(path, self.writable));
            self.created = true;
        }
        debug_assert_eq!(self.levels[level].len(), index * HASH_LEN, "level {level}");
        self.levels[level].push(hash);
    }

    /// Reads a stored hash that may lie beyond the logical end (after a truncation), straight
    /// from the file.
    pub(crate) fn read_raw(&self, level: u8, index: u64) -> io::Result<Hash> {
        let mut h = [0u8; 32];
        let file = self
            .levels
            .get(level as usize)
            .ok_or_else(|| missing(level, index))?;
        file.read_raw_at(index * HASH_LEN, &mut h)?;
        Ok(h)
    }

    /// Reads `count` consecutive hashes of `level` from `first` into `out`.
    pub(crate) fn read_range(&self, level: u8, first: u64, out: &mut [u8]) -> io::Result<()> {
        let file = self
            .levels
            .get(level as usize)
            .ok_or_else(|| missing(level, first))?;
        file.read_at(first * HASH_LEN, out)
    }

    /// Takes pending hashes that the files already hold as written (see
    /// [`AppendFile::adopt_pending`]).
    pub(crate) fn adopt_pending(&mut self) -> io::Result<()> {
        for f in &mut self.levels {
            f.adopt_pending()?;
        }
        Ok(())
    }

    /// [`AppendFile::verify_pending`] for one level: the logical byte position of the first
    /// rebuilt hash that disagrees with the stored one.
    pub(crate) fn verify_pending_level(&mut self, level: u8) -> io::Result<Option<u64>> {
        match self.levels.get_mut(level as usize) {
            Some(f) => f.verify_pending(),
            None => Ok(None),
        }
    }

    /// Writes pending hashes (no sync).
    pub(crate) fn write_pending(&mut self, faults: &mut Faults) -> io::Result<()> {
        for f in &mut self.levels {
            f.write_pending(faults)?;
        }
        Ok(())
    }

    /// fdatasyncs every level file written since the last sync, and the directory when a
    /// level file was created.
    pub(crate) fn sync(&mut self, faults: &mut Faults) -> io::Result<()> {
        for f in &mut self.levels {
            f.sync(faults)?;
        }
        if self.created {
            sync_dir(&self.dir)?;
            self.created = false;
        }
        Ok(())
    }
}

fn missing(level: u8, index: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no stored hash at level {level}, index {index}"),
    )
}

impl HashSource for TreeFiles {
    type Error = io::Error;

    fn node(&self, level: u8, index: u64) -> io::Result<Hash> {
        let file = self
            .levels
            .get(level as usize)
            .ok_or_else(|| missing(level, index))?;
        if index >= file.len() / HASH_LEN {
            return Err(missing(level, index));
        }
        let mut h = [0u8; 32];
        file.read_at(index * HASH_LEN, &mut h)?;
        Ok(h)
    }
}
