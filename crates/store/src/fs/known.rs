//! The embedded store's bucket records kept in memory, so that an object request finds
//! its bucket without touching the disk (no stat, no read of `bucket.json`), and whether
//! any object of the bucket may have an annex (tags, retention) beside it (else GET, HEAD and DELETE skip
//! looking for one).
//!
//! The data directory belongs to one process (start-up empties its `tmp/`), so every
//! change to a bucket record goes through this cache: changes are serialised by
//! [`Known::change`] and replace or drop the entry once on disk. A lookup that misses
//! reads the disk and keeps what it read only if no change happened meanwhile (a
//! generation count), so a record read before a change is never kept after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

/// One bucket as last read or written.
#[derive(Debug)]
pub(super) struct Bucket {
    /// Its record, as the object layer encoded it.
    pub record: Vec<u8>,
    /// Whether an object of it may have an annex beside it. Only ever goes from false to
    /// true.
    untagged: AtomicBool,
}

impl Bucket {
    pub(super) fn new(record: Vec<u8>, untagged: bool) -> Self {
        Self { record, untagged: AtomicBool::new(untagged) }
    }

    /// Whether no object of the bucket ever had an annex (so there is none to look for).
    pub(super) fn untagged(&self) -> bool {
        self.untagged.load(Ordering::Acquire)
    }

    /// Notes that objects of the bucket may now have annexes.
    pub(super) fn mark_tagged(&self) {
        self.untagged.store(false, Ordering::Release);
    }
}

/// Buckets by name.
#[derive(Default)]
pub(super) struct Known {
    map: RwLock<HashMap<String, Arc<Bucket>>>,
    generation: AtomicU64,
    changes: Mutex<()>,
}

impl Known {
    /// The bucket, if it is in memory.
    pub(super) fn get(&self, name: &str) -> Option<Arc<Bucket>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    /// Taken before reading a bucket from disk, for [`Known::keep`].
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps a bucket read from disk, unless a change happened since `generation` was taken.
    pub(super) fn keep(&self, name: &str, bucket: Arc<Bucket>, generation: u64) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) == generation {
            map.insert(name.to_owned(), bucket);
        }
    }

    /// Held while a bucket is created, changed or deleted: one change at a time.
    pub(super) fn change(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bucket as a change left it on disk (the caller holds [`Known::change`]).
    pub(super) fn set(&self, name: &str, bucket: Arc<Bucket>) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.insert(name.to_owned(), bucket);
    }

    /// Forgets a bucket that was deleted or whose state on disk is not known (the caller
    /// holds [`Known::change`]).
    pub(super) fn forget(&self, name: &str) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_older_than_a_change_is_not_kept() {
        let known = Known::default();
        let before = known.generation();
        {
            let _g = known.change();
            known.forget("b");
        }
        known.keep("b", Arc::new(Bucket::new(b"old".to_vec(), true)), before);
        assert!(known.get("b").is_none());
        let now = known.generation();
        known.keep("b", Arc::new(Bucket::new(b"new".to_vec(), true)), now);
        assert_eq!(known.get("b").map(|b| b.record.clone()), Some(b"new".to_vec()));
        let b = known.get("b").unwrap();
        assert!(b.untagged());
        b.mark_tagged();
        assert!(!known.get("b").unwrap().untagged());
        known.set("b", Arc::new(Bucket::new(b"newer".to_vec(), false)));
        assert_eq!(known.get("b").unwrap().record, b"newer");
    }
}
