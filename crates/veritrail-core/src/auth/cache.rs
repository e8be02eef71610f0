//! The verified-token cache.
//!
//! Keyed by the SHA-256 of the token (the token itself is not kept), bounded (entries are
//! spread over shards, each with its own lock and capacity), an entry lives until the token's
//! `exp` and is dropped as soon as the key that verified it is no longer in its issuer's key
//! set.
//!
//! Trade-off: a hit skips the signature and the parsing, which is most of the cost (RS256:
//! tens of microseconds down to well under one). What a hit does *not* skip: the time checks
//! (`exp`, `nbf`, maximum age, against the current clock), the key-still-present check, and
//! every custom check (revocation lists, `jti` replay), which run on every request. What it
//! costs: memory (one identity per live token, bounded by the capacity), and a revoked *key*
//! is only noticed when the key source drops it from the set. Failed verifications are never
//! cached, so a flood of bad tokens cannot evict good entries faster than it could anyway.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use super::identity::Identity;

const SHARDS: usize = 16;

/// The map key is already a uniform SHA-256: use its first 8 bytes as the hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 |= u64::from(*b) << (8 * i);
        }
    }
}

type Shard = HashMap<[u8; 32], CacheEntry, BuildHasherDefault<DigestHasher>>;

#[derive(Clone)]
pub(crate) struct CacheEntry {
    pub(crate) identity: Identity,
    pub(crate) issuer: usize,
    pub(crate) keyset_id: [u8; 32],
}

pub(crate) struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<Shard> {
        &self.shards[usize::from(key[31]) % SHARDS]
    }

    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<CacheEntry> {
        let shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        shard.get(key).cloned()
    }

    pub(crate) fn remove(&self, key: &[u8; 32]) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        shard.remove(key);
    }

    /// Inserts, evicting expired entries first and then arbitrary ones when the shard is full.
    pub(crate) fn insert(&self, key: [u8; 32], entry: CacheEntry, now: i64) {
        let mut shard = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| e.identity.exp().is_some_and(|exp| exp > now));
            while shard.len() >= self.per_shard {
                let Some(victim) = shard.keys().next().copied() else {
                    break;
                };
                shard.remove(&victim);
            }
        }
        shard.insert(key, entry);
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}
