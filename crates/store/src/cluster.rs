//! The cluster store: blobs on an S3-compatible cluster ([`Blobs`]), records in a
//! metadata service ([`Kv`], etcd), following docs/SCALE-OUT.md. A write streams its
//! ciphertext to a fresh blob, then commits its record in one transaction that also moves
//! the blob references; a blob is deleted only after no record names it, and blobs no
//! record names (a gateway killed between the two) are removed by [`ClusterStore::sweep`].
//! Concurrent writers of one key each commit a whole object; the last commit wins.
//!
//! Its operations await the metadata service and the blob cluster directly. Only the byte
//! streams cross into synchronous code: the sealing pipeline writes a [`ClusterWriter`]
//! and reads a blob through [`Bridge`], on the runtime the store was created in.
//!
//! Here: [`ClusterStore`] and what its parts share (the bucket cache, commits, errors).
//! Beside it: `layout` (keys in the metadata service), `entry` (an entry's encoding),
//! `writer` (writing and committing bytes), one file per concern of the store traits
//! (`buckets`, `objects`, `versions`, `uploads`), `blob_read` (reading bytes by range),
//! `bucket_cache` and `sweep`.

use std::future::Future;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{
    Named, ObjectWriter, PartWriter, StoreError, StoredObject, StoredPart, Version, check_bucket_name,
    check_key, check_upload_id,
};
use crate::{BucketStore, Completion, ObjectStore, Page, Result, UploadStore};
use ::cluster::blobs::{BlobError, BlobWriter, Blobs, PART};
use ::cluster::bridge::Bridge;
use ::cluster::kv::{Compare, Entry, Kv, KvError, Op, Txn, prefix_end};
use blob_read::Inline;
use bucket_cache::{BucketCache, Lookup};
use cluster::retries::{COMMIT_TRIES, Retries};
use entry::{BlobRef, Located};
use layout::*;
use writer::{ClusterWriter, Target};

pub use sweep::SweepReport;

/// The prefixes of every record the cluster store keeps (docs/SCALE-OUT.md §1): what moves
/// when the records move to another metadata service (`cipherstore meta copy`). The key
/// state (`k/`), identities (`i/`) and leases (`w/`) stay in etcd.
pub const RECORD_PREFIXES: [&[u8]; 9] = [b"b/", b"s/", b"o/", b"v/", b"n/", b"u/", b"p/", b"r/", b"g/"];

mod blob_read;
mod bucket_cache;
mod buckets;
mod entry;
mod layout;
mod objects;
mod sweep;
mod uploads;
mod versions;
mod writer;

/// Keys read per page when a listing or a check must see every key of a range.
const PAGE: usize = 1000;
/// Objects of at most this many stored bytes are kept in their entries by default: one
/// etcd transaction per PUT and one range read per GET, no blob (docs/SCALE-OUT.md §1).
pub const DEFAULT_INLINE_MAX: usize = 8 << 10;
/// The most [`ClusterStore::with_inline_max`] accepts: etcd requests stay small, and a
/// listing page of 1,000 entries (which carries their inline bytes) stays under 20 MB.
pub const MAX_INLINE: usize = 16 << 10;

fn corrupt(what: &str, why: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt { path: what.to_owned(), reason: why.to_string() }
}

/// A metadata service's failure: out of space is a full disk to the layers above (507,
/// nothing written); anything else is unavailability (503, retry).
fn kv_error(e: KvError) -> StoreError {
    match e {
        KvError::Full(_) => StoreError::Io {
            what: "the metadata service".into(),
            source: std::io::Error::new(std::io::ErrorKind::StorageFull, e.to_string()),
        },
        other => StoreError::Unavailable(other.to_string()),
    }
}

pub(super) fn blob_error(e: BlobError) -> StoreError {
    match e {
        BlobError::NotFound(name) => corrupt(&name, &"a blob a record names is missing"),
        other => StoreError::Unavailable(other.to_string()),
    }
}

// Metadata keys (docs/SCALE-OUT.md §1). Bucket names hold no NUL, so NUL ends them.
struct Inner {
    kv: Arc<dyn Kv>,
    blobs: Blobs,
    bridge: Bridge,
    buckets: Arc<BucketCache>,
    /// Objects of at most this many stored bytes go in their entry, not in a blob.
    inline_max: usize,
}

/// Blobs on a cluster, records in a metadata service.
#[derive(Clone)]
pub struct ClusterStore {
    inner: Arc<Inner>,
}

impl Inner {
    /// Runs `f` on the store's runtime and waits for it, from any thread.
    fn wait<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        self.bridge.wait(f)
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.kv.get(key).await.map_err(kv_error)
    }

    /// Every entry of `[start, end)`.
    async fn all(&self, start: &[u8], end: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let mut out: Vec<Entry> = Vec::new();
        let mut from = start.to_vec();
        loop {
            let page = self.kv.range(&from, end, PAGE).await.map_err(kv_error)?;
            if let Some(last) = page.entries.last() {
                from = [last.key.as_slice(), b"\0"].concat();
            }
            out.extend(page.entries);
            if !page.more {
                return Ok(out);
            }
        }
    }

    /// Bucket `name`'s record, from the cache when it can tell, else from etcd.
    async fn bucket_record(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.buckets.lookup(name) {
            // Only a watch that reports changes as they commit (etcd) keeps the copy current
            // enough to trust; on a polled one (PostgreSQL, 50 ms) a PUT right after another
            // gateway changed the bucket's encryption would use the old one: read the record.
            Lookup::Present(record) if self.kv.watch_delay().is_zero() => Ok(Some(record)),
            Lookup::Present(_) => Ok(self.get(&bucket_key(name)).await?.map(|e| e.value)),
            // Absence is read again: a bucket just created through another gateway may
            // not have reached this one's watch yet.
            Lookup::Absent | Lookup::Unknown => Ok(self.get(&bucket_key(name)).await?.map(|e| e.value)),
        }
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool, StoreError> {
        Ok(self.bucket_record(bucket).await?.is_some())
    }

    /// [`Inner::require_bucket`] for a check that a later transaction repeats (it compares
    /// the bucket's record present): a bucket the cache holds is taken as there, on a
    /// polled watch too, which saves a PUT one metadata round trip; one deleted through
    /// another gateway meanwhile fails that transaction instead. Anything else is read.
    async fn require_bucket_before_commit(&self, bucket: &str) -> Result<(), StoreError> {
        check_bucket_name(bucket)?;
        match self.buckets.lookup(bucket) {
            Lookup::Present(_) => Ok(()),
            Lookup::Absent | Lookup::Unknown => self.require_bucket(bucket).await,
        }
    }

    async fn require_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        check_bucket_name(bucket)?;
        if self.bucket_exists(bucket).await? {
            Ok(())
        } else {
            Err(StoreError::NoSuchBucket(bucket.to_owned()))
        }
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<bool, StoreError> {
        Ok(self.txn_at(compares, ops).await?.is_some())
    }

    /// [`Inner::txn`], with the revision it committed at.
    async fn txn_at(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<Option<i64>, StoreError> {
        self.kv.txn(Txn { compares, ops }).await.map_err(kv_error)
    }

    /// Deletes blobs no record names any more (best effort: the sweep finds what is left).
    async fn discard(&self, blobs: &[BlobRef]) {
        for b in blobs {
            if let Err(e) = self.blobs.delete(&b.name).await {
                tracing::warn!(blob = %b.name, error = %e, "an unreferenced blob is left for the sweep");
            }
        }
    }

    /// Commits `entry` under `key` (replacing what is there, last commit wins) once `guard`
    /// holds: the new blobs' references are set, the replaced entry's blobs retired (an
    /// object's: readers may be on them) or unreferenced (a part's: never read before its
    /// upload completes), the bucket's sequence bumped. Returns the replaced entry if its
    /// blobs are to be deleted now. `missing` is the error when `guard` fails for good.
    async fn commit(
        &self,
        bucket: &str,
        key: Vec<u8>,
        entry: &Located,
        guard: Compare,
        readable: bool,
        missing: impl Fn() -> StoreError,
    ) -> Result<Option<Located>, StoreError> {
        let value = entry.encode()?;
        let mut tries = Retries::default();
        while tries.next().await {
            // First try as a new key (what ingest mostly writes): one round trip. If the
            // key is there, the compare fails and the next try reads what it replaces.
            let old = if tries.first() { None } else { self.get(&key).await? };
            let old_entry = old.as_ref().map(|e| Located::decode("an entry", &e.value)).transpose()?;
            let mut compares = vec![guard.clone()];
            compares.push(match &old {
                Some(e) => Compare::Revision(key.clone(), e.mod_revision),
                None => Compare::Absent(key.clone()),
            });
            let mut ops = vec![Op::Put(key.clone(), value.clone()), bump(bucket)];
            ops.extend(entry.blobs.iter().map(|b| Op::Put(ref_key(&b.name), key.clone())));
            match &old_entry {
                Some(o) if readable => ops.extend(retire(&o.blobs)),
                Some(o) => ops.extend(o.blobs.iter().map(|b| Op::Delete(ref_key(&b.name)))),
                None => {}
            }
            if self.txn(compares, ops).await? {
                return Ok(old_entry.filter(|_| !readable));
            }
            if !tries.first() && !self.guard_holds(&guard).await? {
                return Err(missing());
            }
        }
        Err(StoreError::Unavailable(format!("{COMMIT_TRIES} concurrent commits in a row; retry")))
    }

    async fn guard_holds(&self, guard: &Compare) -> Result<bool, StoreError> {
        Ok(match guard {
            Compare::Present(k) => self.get(k).await?.is_some(),
            Compare::Absent(k) => self.get(k).await?.is_none(),
            Compare::Revision(k, r) => self.get(k).await?.is_some_and(|e| e.mod_revision == *r),
        })
    }
}

impl ClusterStore {
    /// A store over `kv` and `blobs`, bridging to them on the current runtime.
    pub fn new(kv: Arc<dyn Kv>, blobs: Blobs) -> Result<Self, StoreError> {
        let bridge = Bridge::current()
            .ok_or_else(|| StoreError::Unavailable("the cluster store needs a tokio runtime".into()))?;
        let buckets = BucketCache::start(kv.clone(), bridge.handle());
        let inline_max = DEFAULT_INLINE_MAX;
        Ok(Self { inner: Arc::new(Inner { kv, blobs, bridge, buckets, inline_max }) })
    }

    /// Keeps objects of at most `bytes` stored bytes in their entries (0: every object in
    /// a blob; at most [`MAX_INLINE`]).
    pub fn with_inline_max(self, bytes: usize) -> Result<Self, StoreError> {
        if bytes > MAX_INLINE {
            return Err(StoreError::Unavailable(format!(
                "objects kept in their records must be at most {MAX_INLINE} bytes, not {bytes}"
            )));
        }
        let inner = Arc::try_unwrap(self.inner)
            .map_err(|_| StoreError::Unavailable("the store is in use already".into()))?;
        Ok(Self { inner: Arc::new(Inner { inline_max: bytes, ..inner }) })
    }

    fn writer(&self, bucket: &str, dir: &str, target: Target) -> ClusterWriter {
        ClusterWriter {
            inner: self.inner.clone(),
            bucket: bucket.to_owned(),
            blob: new_blob(dir),
            target,
            buffer: Vec::new(),
            stream: None,
        }
    }
}
