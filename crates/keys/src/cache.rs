//! Unwrapped bucket keys, one per (bucket, root key) pair, kept in memory for a
//! time-to-live, so steady-state encryption and decryption make no HSM call. Entries are wiped when they expire, are replaced or are
//! purged (a key disabled or deleted through cipherstore purges its buckets at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::id::KeyId;
use engine::SecretKey;

struct Entry {
    key: SecretKey,
    expires: Instant,
}

/// (bucket name, root key) → unwrapped bucket key, with hit and miss counters.
pub struct BucketKeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<(String, KeyId), Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl BucketKeyCache {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<(String, KeyId), Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached key of `bucket` under `root`, counting a hit or a miss; expired entries
    /// are wiped.
    pub fn get(&self, bucket: &str, root: &KeyId) -> Option<SecretKey> {
        let mut entries = self.entries();
        let now = Instant::now();
        entries.retain(|_, e| e.expires > now);
        match entries.get(&(bucket.to_owned(), root.clone())) {
            Some(e) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(e.key.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Caches `key` for `bucket` under root key `root`.
    pub fn insert(&self, bucket: &str, root: &KeyId, key: SecretKey) {
        let expires = Instant::now() + self.ttl;
        self.entries().insert((bucket.to_owned(), root.clone()), Entry { key, expires });
    }

    /// Wipes every entry under root key `root`; returns how many.
    pub fn purge_root(&self, root: &KeyId) -> usize {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|(_, r), _| r != root);
        before - entries.len()
    }

    /// Keeps the entries `keep(bucket, root)` accepts and wipes the others; returns how
    /// many it wiped.
    pub fn retain(&self, mut keep: impl FnMut(&str, &KeyId) -> bool) -> usize {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|(bucket, root), _| keep(bucket, root));
        before - entries.len()
    }

    /// Wipes the entries of one bucket, under every root key.
    pub fn purge_bucket(&self, bucket: &str) {
        self.entries().retain(|(b, _), _| b != bucket);
    }

    /// Cache hits so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Cache misses so far.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_hit_purge_and_expire() {
        let root = KeyId::random();
        let other = KeyId::random();
        let c = BucketKeyCache::new(Duration::from_secs(3600));
        assert!(c.get("b", &root).is_none());
        c.insert("b", &root, SecretKey::from_bytes([1; 32]));
        c.insert("b", &other, SecretKey::from_bytes([4; 32]));
        c.insert("c", &other, SecretKey::from_bytes([2; 32]));
        // One bucket, two root keys: two keys.
        assert_eq!(c.get("b", &root), Some(SecretKey::from_bytes([1; 32])));
        assert_eq!(c.get("b", &other), Some(SecretKey::from_bytes([4; 32])));
        assert_eq!(c.purge_root(&root), 1);
        assert!(c.get("b", &root).is_none());
        assert!(c.get("c", &other).is_some());
        assert_eq!((c.hits(), c.misses()), (3, 2));
        c.purge_bucket("b");
        assert!(c.get("b", &other).is_none());
        assert!(c.get("c", &other).is_some());
        // Expiry, with a lifetime far below the pause.
        let short = BucketKeyCache::new(Duration::from_millis(1));
        short.insert("d", &root, SecretKey::from_bytes([3; 32]));
        std::thread::sleep(Duration::from_millis(20));
        assert!(short.get("d", &root).is_none());
    }
}
