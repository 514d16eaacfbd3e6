//! The cluster store: blobs on an S3-compatible cluster ([`Blobs`]), records in a
//! metadata service ([`Kv`], etcd), following docs/SCALE-OUT.md. A write streams its
//! ciphertext to a fresh blob, then commits its record in one transaction that also moves
//! the blob references; a blob is deleted only after no record names it, and blobs no
//! record names (a gateway killed between the two) are removed by [`ClusterStore::sweep`].
//! Concurrent writers of one key each commit a whole object; the last commit wins.
//!
//! [`Store`] is synchronous; this store bridges to its async clients on the runtime it was
//! created in (from a runtime worker through `block_in_place`).

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
use crate::{BucketStore, ObjectStore, UploadStore};
use ::cluster::blobs::{BlobError, BlobWriter, Blobs, PART};
use ::cluster::bridge::Bridge;
use ::cluster::kv::{Compare, Entry, Kv, KvError, Op, Txn, prefix_end};
use blob_read::Inline;
use bucket_cache::{BucketCache, Lookup};

mod blob_read;
mod bucket_cache;
mod versions;

/// Tries of a commit whose compare failed because another writer committed first.
const COMMIT_TRIES: usize = 16;
/// Keys read per page when a listing or a check must see every key of a range.
const PAGE: usize = 1000;
/// Objects of at most this many stored bytes are kept in their entries by default: one
/// etcd transaction per PUT and one range read per GET, no blob (docs/SCALE-OUT.md §1).
pub const DEFAULT_INLINE_MAX: usize = 8 << 10;
/// The most [`ClusterStore::with_inline_max`] accepts: etcd requests stay small, and a
/// listing page of 1,000 entries (which carries their inline bytes) stays under 20 MB.
pub const MAX_INLINE: usize = 16 << 10;

/// Where an entry's bytes are: its blobs, end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BlobRef {
    name: String,
    len: u64,
}

/// An object's or part's metadata entry: its blobs and its record, or, for a small
/// object, its bytes themselves (`inline`, docs/SCALE-OUT.md §1).
///
/// Encoded as the JSON of this struct; an entry with inline bytes as [`INLINE_TAG`], the
/// JSON's length (u32, big-endian), the JSON, then the bytes as they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Located {
    blobs: Vec<BlobRef>,
    /// The object layer's record (base64: the store does not interpret it).
    record: String,
    /// The object's annex (tags, retention, legal hold set after it was written), if it
    /// has one (base64, as the object layer gave it; named `tags` since before retention
    /// was kept here): an object's new entry has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags: Option<String>,
    /// The version it was committed as (its id and flags, [`Version::flags`]); none for an
    /// object written without versioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<(String, u8)>,
    #[serde(skip)]
    inline: Option<Bytes>,
}

/// The first byte of an entry with inline bytes (a JSON entry starts with `{`).
const INLINE_TAG: u8 = 1;

impl Located {
    fn new(blobs: Vec<BlobRef>, record: &[u8]) -> Self {
        Self {
            blobs,
            record: base64::engine::general_purpose::STANDARD.encode(record),
            tags: None,
            version: None,
            inline: None,
        }
    }

    /// Its version (the null version's if it was written without one).
    fn version(&self, what: &str) -> Result<Version, StoreError> {
        match &self.version {
            None => Ok(Version::unversioned()),
            Some((id, flags)) => {
                Version::from_parts(id, *flags).ok_or_else(|| corrupt(what, &"malformed version"))
            }
        }
    }

    fn set_version(&mut self, v: &Version) {
        self.version = Some((v.id.clone(), v.flags()));
    }

    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let json = serde_json::to_vec(self).map_err(|e| corrupt("an entry", &e))?;
        let Some(bytes) = &self.inline else { return Ok(json) };
        let len = u32::try_from(json.len()).map_err(|e| corrupt("an entry", &e))?;
        let mut out = Vec::with_capacity(5 + json.len() + bytes.len());
        out.push(INLINE_TAG);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(bytes);
        Ok(out)
    }

    fn decode(what: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        match bytes.split_first() {
            Some((&INLINE_TAG, rest)) => {
                let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(|| corrupt(what, &"cut short"))?;
                let len = u32::from_be_bytes(*len) as usize;
                let (json, inline) = rest.split_at_checked(len).ok_or_else(|| corrupt(what, &"cut short"))?;
                let mut entry: Self = serde_json::from_slice(json).map_err(|e| corrupt(what, &e))?;
                if !entry.blobs.is_empty() {
                    return Err(corrupt(what, &"both blobs and inline bytes"));
                }
                entry.inline = Some(Bytes::copy_from_slice(inline));
                Ok(entry)
            }
            _ => serde_json::from_slice(bytes).map_err(|e| corrupt(what, &e)),
        }
    }

    fn record(&self, what: &str) -> Result<Vec<u8>, StoreError> {
        base64::engine::general_purpose::STANDARD.decode(&self.record).map_err(|e| corrupt(what, &e))
    }

    fn annex(&self, what: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.tags.as_ref().map(|t| b64.decode(t).map_err(|e| corrupt(what, &e))).transpose()
    }

    fn stored(&self) -> u64 {
        self.inline.as_ref().map_or(0, |b| b.len() as u64) + self.blobs.iter().map(|b| b.len).sum::<u64>()
    }
}

fn corrupt(what: &str, why: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt { path: what.to_owned(), reason: why.to_string() }
}

fn kv_error(e: KvError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn blob_error(e: BlobError) -> StoreError {
    match e {
        BlobError::NotFound(name) => corrupt(&name, &"a blob a record names is missing"),
        other => StoreError::Unavailable(other.to_string()),
    }
}

// Metadata keys (docs/SCALE-OUT.md §1). Bucket names hold no NUL, so NUL ends them.
fn bucket_key(b: &str) -> Vec<u8> {
    [b"b/", b.as_bytes()].concat()
}
fn seq_key(b: &str) -> Vec<u8> {
    [b"s/", b.as_bytes()].concat()
}
fn objects_of(b: &str) -> Vec<u8> {
    [b"o/", b.as_bytes(), b"\0"].concat()
}
fn object_key(b: &str, key: &str) -> Vec<u8> {
    [objects_of(b).as_slice(), key.as_bytes()].concat()
}
fn uploads_of(b: &str) -> Vec<u8> {
    [b"u/", b.as_bytes(), b"\0"].concat()
}
fn upload_key(b: &str, id: &str) -> Vec<u8> {
    [uploads_of(b).as_slice(), id.as_bytes()].concat()
}
fn parts_of(b: &str, id: &str) -> Vec<u8> {
    [b"p/", b.as_bytes(), b"\0", id.as_bytes(), b"\0"].concat()
}
fn part_key(b: &str, id: &str, number: u32) -> Vec<u8> {
    [parts_of(b, id).as_slice(), format!("{number:05}").as_bytes()].concat()
}
fn ref_key(blob: &str) -> Vec<u8> {
    [b"r/", blob.as_bytes()].concat()
}
/// A retired blob: no record names it any more, but a GET that began before may still be
/// reading it, so it is deleted only after the sweep's grace (docs/SCALE-OUT.md §4).
fn retired_key(at: u64, blob: &str) -> Vec<u8> {
    format!("g/{at:012}/{blob}").into_bytes()
}
const RETIRED: &[u8] = b"g/";

/// The operations that retire `blobs` now: each `r/` key points at its `g/` entry.
fn retire(blobs: &[BlobRef]) -> Vec<Op> {
    let now = base::clock::now_unix();
    blobs
        .iter()
        .flat_map(|b| {
            let g = retired_key(now, &b.name);
            [Op::Put(ref_key(&b.name), g.clone()), Op::Put(g, b.len.to_string().into_bytes())]
        })
        .collect()
}

/// A fresh blob name under `dir` (`d` objects, `p` parts): random, saying nothing.
fn new_blob(dir: &str) -> String {
    format!("{dir}/{}", super::new_upload_id())
}

struct Inner {
    kv: Arc<dyn Kv>,
    blobs: Blobs,
    bridge: Bridge,
    buckets: Arc<BucketCache>,
    /// Objects of at most this many stored bytes go in their entry, not in a blob.
    inline_max: usize,
}

/// What a sweep found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Blobs looked at.
    pub checked: usize,
    /// Blobs no record named, deleted: retired ones and orphans.
    pub removed: usize,
    /// Of these, blobs retired by overwrites and deletes whose grace was over.
    pub retired: usize,
    /// Of these, blobs no entry ever named (a gateway killed between bytes and commit).
    pub orphans: usize,
    /// Their bytes.
    pub removed_bytes: u64,
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
            Lookup::Present(record) => Ok(Some(record)),
            // Absence is read again: a bucket just created through another gateway may
            // not have reached this one's watch yet.
            Lookup::Absent | Lookup::Unknown => Ok(self.get(&bucket_key(name)).await?.map(|e| e.value)),
        }
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool, StoreError> {
        Ok(self.bucket_record(bucket).await?.is_some())
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
        for attempt in 0..COMMIT_TRIES {
            // First try as a new key (what ingest mostly writes): one round trip. If the
            // key is there, the compare fails and the next try reads what it replaces.
            let old = if attempt == 0 { None } else { self.get(&key).await? };
            let old_entry = old.as_ref().map(|e| Located::decode("an entry", &e.value)).transpose()?;
            let mut compares = vec![guard.clone()];
            compares.push(match &old {
                Some(e) => Compare::Revision(key.clone(), e.mod_revision),
                None => Compare::Absent(key.clone()),
            });
            let mut ops = vec![Op::Put(key.clone(), value.clone()), Op::Put(seq_key(bucket), Vec::new())];
            ops.extend(entry.blobs.iter().map(|b| Op::Put(ref_key(&b.name), key.clone())));
            match &old_entry {
                Some(o) if readable => ops.extend(retire(&o.blobs)),
                Some(o) => ops.extend(o.blobs.iter().map(|b| Op::Delete(ref_key(&b.name)))),
                None => {}
            }
            if self.txn(compares, ops).await? {
                return Ok(old_entry.filter(|_| !readable));
            }
            if attempt > 0 && !self.guard_holds(&guard).await? {
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

    /// Deletes the blobs under `d/` and `p/` that no record names and that are older than
    /// `grace` (longer than any write takes): what gateways killed mid-write left. Returns
    /// how many it deleted.
    pub fn sweep(&self, grace: Duration) -> Result<usize, StoreError> {
        let store = self.clone();
        let report = self.inner.wait(async move { store.sweep_paced(grace, Duration::ZERO, false).await })?;
        Ok(report.removed)
    }

    /// [`ClusterStore::sweep`], waiting `pause` after each blob it checks (a background
    /// sweep on a busy cluster), with what it found; `dry_run` deletes nothing (the report
    /// counts what it would delete).
    pub async fn sweep_paced(
        &self,
        grace: Duration,
        pause: Duration,
        dry_run: bool,
    ) -> Result<SweepReport, StoreError> {
        let inner = &self.inner;
        let cutoff = base::clock::now_unix().saturating_sub(grace.as_secs());
        let mut report = SweepReport::default();
        // Retired blobs whose grace is over, oldest first: the blob, then its entries.
        let until = retired_key(cutoff + 1, "");
        for e in inner.all(RETIRED, &until).await? {
            let Some(name) =
                std::str::from_utf8(&e.key[RETIRED.len()..]).ok().and_then(|k| k.split_once('/'))
            else {
                continue;
            };
            let name = name.1.to_owned();
            report.checked += 1;
            report.retired += 1;
            report.removed += 1;
            if !dry_run {
                inner.blobs.delete(&name).await.map_err(blob_error)?;
                inner.txn(vec![], vec![Op::Delete(ref_key(&name)), Op::Delete(e.key.clone())]).await?;
            }
            report.removed_bytes +=
                std::str::from_utf8(&e.value).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        for dir in ["d", "p"] {
            for blob in inner.blobs.list(dir).await.map_err(blob_error)? {
                report.checked += 1;
                if blob.modified <= cutoff && inner.get(&ref_key(&blob.name)).await?.is_none() {
                    report.orphans += 1;
                    if !dry_run {
                        inner.blobs.delete(&blob.name).await.map_err(blob_error)?;
                    }
                    report.removed += 1;
                    report.removed_bytes += blob.len;
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }
        Ok(report)
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

/// What a writer commits into.
enum Target {
    Object(String),
    /// A new version of the key.
    Version(String, Version),
    Part(String, u32),
}

/// An object or part being written: buffered while small (one backend request at
/// commit), streamed as a backend multipart upload once larger than a part.
struct ClusterWriter {
    inner: Arc<Inner>,
    bucket: String,
    blob: String,
    target: Target,
    buffer: Vec<u8>,
    stream: Option<BlobWriter>,
}

impl Write for ClusterWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = self.inner.clone();
        if self.stream.is_none() && self.buffer.len() + buf.len() <= PART {
            self.buffer.extend_from_slice(buf);
            return Ok(buf.len());
        }
        let blob = self.blob.clone();
        let pending = std::mem::take(&mut self.buffer);
        let mut stream = self.stream.take();
        let result = inner.wait(async {
            let w = match &mut stream {
                Some(w) => w,
                None => stream.insert(inner.blobs.writer(&blob).await?),
            };
            if !pending.is_empty() {
                w.write(&pending).await?;
            }
            w.write(buf).await
        });
        self.stream = stream;
        result.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ClusterWriter {
    /// Makes the bytes durable as one blob and returns its entry, or, for a small object,
    /// returns them for its entry.
    async fn finish(&mut self, record: &[u8]) -> Result<Located, StoreError> {
        let len = match self.stream.take() {
            Some(w) => w.finish().await.map_err(blob_error)?,
            None if matches!(self.target, Target::Object(_) | Target::Version(..))
                && self.buffer.len() <= self.inner.inline_max =>
            {
                let mut entry = Located::new(Vec::new(), record);
                entry.inline = Some(Bytes::from(std::mem::take(&mut self.buffer)));
                return Ok(entry);
            }
            None => {
                let bytes = Bytes::from(std::mem::take(&mut self.buffer));
                let len = bytes.len() as u64;
                self.inner.blobs.put(&self.blob, bytes).await.map_err(blob_error)?;
                len
            }
        };
        Ok(Located::new(vec![BlobRef { name: self.blob.clone(), len }], record))
    }

    /// Writes the blob (unless the bytes go inline), then commits `record` for it; if the
    /// commit is refused, the blob goes (if its outcome is unknown, the sweep decides).
    fn commit_entry(mut self, record: &[u8]) -> Result<(u64, Option<Vec<u8>>), StoreError> {
        let inner = self.inner.clone();
        let record = record.to_vec();
        inner.clone().wait(async move {
            let mut entry = self.finish(&record).await?;
            let stored = entry.stored();
            let bucket = self.bucket.clone();
            if let Target::Version(key, v) = &self.target {
                entry.set_version(v);
                let removed = match inner.commit_version(&bucket, key, &entry, v).await {
                    Ok(removed) => removed,
                    Err(e @ StoreError::Unavailable(_)) => return Err(e),
                    Err(e) => {
                        inner.discard(&entry.blobs).await;
                        return Err(e);
                    }
                };
                return Ok((stored, removed.map(|r| r.record(key)).transpose()?));
            }
            let committed = match &self.target {
                // Committed above.
                Target::Version(..) => Err(StoreError::InvalidKey("a version commits as a version")),
                Target::Object(key) => {
                    inner
                        .commit(
                            &bucket,
                            object_key(&bucket, key),
                            &entry,
                            Compare::Present(bucket_key(&bucket)),
                            true,
                            || StoreError::NoSuchBucket(bucket.clone()),
                        )
                        .await
                }
                Target::Part(id, number) => {
                    let guard = Compare::Present(upload_key(&bucket, id));
                    inner
                        .commit(&bucket, part_key(&bucket, id, *number), &entry, guard, false, || {
                            StoreError::NoSuchUpload(id.clone())
                        })
                        .await
                }
            };
            match committed {
                Ok(replaced) => {
                    if let Some(old) = replaced {
                        inner.discard(&old.blobs).await;
                    }
                    Ok((stored, None))
                }
                // Refused for good (the bucket or upload is gone): the blob goes. If etcd
                // did not answer, the commit may still have happened: the blob stays,
                // and the sweep removes it only if no record names it.
                Err(e @ StoreError::Unavailable(_)) => Err(e),
                Err(e) => {
                    inner.discard(&entry.blobs).await;
                    Err(e)
                }
            }
        })
    }
}

impl Drop for ClusterWriter {
    fn drop(&mut self) {
        // Never committed: the upload in progress is aborted (whole blobs never appear).
        if let Some(w) = self.stream.take() {
            self.inner.bridge.handle().spawn(async move {
                let _ = w.abort().await;
            });
        }
    }
}

impl ObjectWriter for ClusterWriter {
    fn commit(self: Box<Self>, record: &[u8]) -> Result<(), StoreError> {
        self.commit_entry(record).map(|_| ())
    }

    fn commit_version(
        mut self: Box<Self>,
        record: &[u8],
        version: &Version,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = match &self.target {
            Target::Object(key) => key.clone(),
            _ => return Err(StoreError::InvalidKey("only an object is committed as a version")),
        };
        self.target = Target::Version(key, version.clone());
        self.commit_entry(record).map(|(_, removed)| removed)
    }
}

impl PartWriter for ClusterWriter {
    fn commit(self: Box<Self>, record: &[u8]) -> Result<u64, StoreError> {
        self.commit_entry(record).map(|(stored, _)| stored)
    }
}

impl BucketStore for ClusterStore {
    fn create_bucket(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        check_bucket_name(name)?;
        let key = bucket_key(name);
        let ops = vec![Op::Put(key.clone(), record.to_vec()), Op::Put(seq_key(name), Vec::new())];
        match self.inner.wait(self.inner.txn_at(vec![Compare::Absent(key)], ops))? {
            Some(revision) => {
                self.inner.buckets.note(name, revision, Some(record.to_vec()));
                Ok(())
            }
            None => Err(StoreError::BucketExists(name.to_owned())),
        }
    }

    fn bucket(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        check_bucket_name(name)?;
        match self.inner.wait(self.inner.bucket_record(name))? {
            Some(record) => Ok(record),
            None => Err(StoreError::NoSuchBucket(name.to_owned())),
        }
    }

    fn update_bucket(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        check_bucket_name(name)?;
        let key = bucket_key(name);
        let ops = vec![Op::Put(key.clone(), record.to_vec())];
        match self.inner.wait(self.inner.txn_at(vec![Compare::Present(key)], ops))? {
            Some(revision) => {
                self.inner.buckets.note(name, revision, Some(record.to_vec()));
                Ok(())
            }
            None => Err(StoreError::NoSuchBucket(name.to_owned())),
        }
    }

    fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        check_bucket_name(name)?;
        let inner = &self.inner;
        inner.wait(async {
            for _ in 0..COMMIT_TRIES {
                let Some(seq) = inner.get(&seq_key(name)).await? else {
                    return Err(StoreError::NoSuchBucket(name.to_owned()));
                };
                for prefix in [objects_of(name), uploads_of(name)] {
                    let page = inner.kv.range(&prefix, &prefix_end(&prefix), 1).await.map_err(kv_error)?;
                    if !page.entries.is_empty() {
                        return Err(StoreError::BucketNotEmpty(name.to_owned()));
                    }
                }
                let ops = vec![Op::Delete(bucket_key(name)), Op::Delete(seq_key(name))];
                let compares = vec![Compare::Revision(seq_key(name), seq.mod_revision)];
                if let Some(revision) = inner.txn_at(compares, ops).await? {
                    inner.buckets.note(name, revision, None);
                    return Ok(());
                }
            }
            Err(StoreError::Unavailable("the bucket kept changing; retry".into()))
        })
    }

    fn list_buckets(&self) -> Result<Vec<Named>, StoreError> {
        let entries = self.inner.wait(self.inner.all(b"b/", &prefix_end(b"b/")))?;
        Ok(entries
            .into_iter()
            .map(|e| Named { name: String::from_utf8_lossy(&e.key[2..]).into_owned(), record: e.value })
            .collect())
    }
}

impl ObjectStore for ClusterStore {
    fn put(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError> {
        check_key(key)?;
        self.inner.wait(self.inner.require_bucket(bucket))?;
        Ok(Box::new(self.writer(bucket, "d", Target::Object(key.to_owned()))))
    }

    fn get(&self, bucket: &str, key: &str) -> Result<StoredObject, StoreError> {
        check_key(key)?;
        let inner = &self.inner;
        let entry = inner.wait(async {
            match inner.get(&object_key(bucket, key)).await? {
                Some(e) => Ok(e),
                None => {
                    inner.require_bucket(bucket).await?;
                    Err(StoreError::NoSuchKey { bucket: bucket.to_owned(), key: key.to_owned() })
                }
            }
        })?;
        self.stored(key, Located::decode(key, &entry.value)?)
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let inner = &self.inner;
        inner.wait(async {
            inner.require_bucket(bucket).await?;
            let k = object_key(bucket, key);
            for _ in 0..COMMIT_TRIES {
                let Some(e) = inner.get(&k).await? else { return Ok(false) };
                let located = Located::decode(key, &e.value)?;
                let mut ops = vec![Op::Delete(k.clone()), Op::Put(seq_key(bucket), Vec::new())];
                ops.extend(retire(&located.blobs));
                if inner.txn(vec![Compare::Revision(k.clone(), e.mod_revision)], ops).await? {
                    return Ok(true);
                }
            }
            Err(StoreError::Unavailable("the object kept changing; retry".into()))
        })
    }

    fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Named>, StoreError> {
        let base = objects_of(bucket);
        let first = object_key(bucket, prefix);
        let start = match start_after {
            Some(a) if a.as_bytes() >= prefix.as_bytes() => {
                [object_key(bucket, a).as_slice(), b"\0"].concat()
            }
            _ => first.clone(),
        };
        let end = prefix_end(&first);
        let inner = &self.inner;
        inner.wait(async {
            inner.require_bucket(bucket).await?;
            let mut out = Vec::new();
            let mut start = start;
            while out.len() < limit {
                let page = inner.kv.range(&start, &end, limit - out.len()).await.map_err(kv_error)?;
                for e in &page.entries {
                    let name =
                        String::from_utf8(e.key[base.len()..].to_vec()).map_err(|e| corrupt("a key", &e))?;
                    let located = Located::decode(&name, &e.value)?;
                    // A delete marker is no object.
                    if !located.version(&name)?.marker {
                        out.push(Named { record: located.record(&name)?, name });
                    }
                }
                match page.entries.last() {
                    Some(last) if page.more => start = [last.key.as_slice(), b"\0"].concat(),
                    _ => break,
                }
            }
            Ok(out)
        })
    }
}

impl UploadStore for ClusterStore {
    fn create_upload(&self, bucket: &str, upload_id: &str, record: &[u8]) -> Result<(), StoreError> {
        check_upload_id(upload_id)?;
        check_bucket_name(bucket)?;
        let ops = vec![Op::Put(upload_key(bucket, upload_id), record.to_vec())];
        if self.inner.wait(self.inner.txn(vec![Compare::Present(bucket_key(bucket))], ops))? {
            Ok(())
        } else {
            Err(StoreError::NoSuchBucket(bucket.to_owned()))
        }
    }

    fn upload(&self, bucket: &str, upload_id: &str) -> Result<Vec<u8>, StoreError> {
        check_upload_id(upload_id)?;
        let inner = &self.inner;
        inner.wait(async {
            inner.require_bucket(bucket).await?;
            match inner.get(&upload_key(bucket, upload_id)).await? {
                Some(e) => Ok(e.value),
                None => Err(StoreError::NoSuchUpload(upload_id.to_owned())),
            }
        })
    }

    fn put_part(
        &self,
        bucket: &str,
        upload_id: &str,
        number: u32,
    ) -> Result<Box<dyn PartWriter>, StoreError> {
        self.upload(bucket, upload_id)?;
        Ok(Box::new(self.writer(bucket, "p", Target::Part(upload_id.to_owned(), number))))
    }

    fn list_parts(&self, bucket: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        self.upload(bucket, upload_id)?;
        let prefix = parts_of(bucket, upload_id);
        let entries = self.inner.wait(self.inner.all(&prefix, &prefix_end(&prefix)))?;
        entries
            .into_iter()
            .map(|e| {
                let number = std::str::from_utf8(&e.key[prefix.len()..])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| corrupt("a part key", &"not a part number"))?;
                let located = Located::decode("a part", &e.value)?;
                Ok(StoredPart { number, stored: located.stored(), record: located.record("a part")? })
            })
            .collect()
    }

    fn list_uploads(&self, bucket: &str) -> Result<Vec<Named>, StoreError> {
        let prefix = uploads_of(bucket);
        let inner = &self.inner;
        let entries = inner.wait(async {
            inner.require_bucket(bucket).await?;
            inner.all(&prefix, &prefix_end(&prefix)).await
        })?;
        Ok(entries
            .into_iter()
            .map(|e| Named {
                name: String::from_utf8_lossy(&e.key[prefix.len()..]).into_owned(),
                record: e.value,
            })
            .collect())
    }

    fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), StoreError> {
        check_upload_id(upload_id)?;
        let inner = &self.inner;
        inner.wait(async {
            inner.require_bucket(bucket).await?;
            let upload = upload_key(bucket, upload_id);
            let prefix = parts_of(bucket, upload_id);
            for _ in 0..COMMIT_TRIES {
                let Some(u) = inner.get(&upload).await? else {
                    return Err(StoreError::NoSuchUpload(upload_id.to_owned()));
                };
                let parts = inner.all(&prefix, &prefix_end(&prefix)).await?;
                let mut blobs = Vec::new();
                let mut compares = vec![Compare::Revision(upload.clone(), u.mod_revision)];
                for p in &parts {
                    compares.push(Compare::Revision(p.key.clone(), p.mod_revision));
                    blobs.extend(Located::decode("a part", &p.value)?.blobs);
                }
                let mut ops =
                    vec![Op::Delete(upload.clone()), Op::DeleteRange(prefix.clone(), prefix_end(&prefix))];
                ops.extend(blobs.iter().map(|b| Op::Delete(ref_key(&b.name))));
                if inner.txn(compares, ops).await? {
                    inner.discard(&blobs).await;
                    return Ok(());
                }
            }
            Err(StoreError::Unavailable("the upload kept changing; retry".into()))
        })
    }

    fn complete_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        key: &str,
        parts: &[u32],
        record: &[u8],
        version: Option<&Version>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        check_upload_id(upload_id)?;
        check_key(key)?;
        let inner = &self.inner;
        inner.wait(async {
            inner.require_bucket(bucket).await?;
            let upload = upload_key(bucket, upload_id);
            let prefix = parts_of(bucket, upload_id);
            for _ in 0..COMMIT_TRIES {
                let Some(u) = inner.get(&upload).await? else {
                    return Err(StoreError::NoSuchUpload(upload_id.to_owned()));
                };
                let uploaded = inner.all(&prefix, &prefix_end(&prefix)).await?;
                let mut compares = vec![Compare::Revision(upload.clone(), u.mod_revision)];
                let mut chosen = Vec::new();
                let mut unchosen = Vec::new();
                for p in &uploaded {
                    let located = Located::decode("a part", &p.value)?;
                    let number: Option<u32> =
                        std::str::from_utf8(&p.key[prefix.len()..]).ok().and_then(|n| n.parse().ok());
                    if number.is_some_and(|n| parts.contains(&n)) {
                        compares.push(Compare::Revision(p.key.clone(), p.mod_revision));
                        chosen.push((number, located));
                    } else {
                        unchosen.extend(located.blobs);
                    }
                }
                let mut blobs = Vec::with_capacity(parts.len());
                for n in parts {
                    let located = chosen
                        .iter()
                        .find(|(number, _)| *number == Some(*n))
                        .map(|(_, l)| l)
                        .ok_or_else(|| StoreError::NoSuchUpload(upload_id.to_owned()))?;
                    blobs.extend(located.blobs.iter().cloned());
                }
                let entry = Located::new(blobs, record);
                let (placing, mut ops, removed) = inner.completing(bucket, key, entry, version).await?;
                compares.extend(placing);
                ops.push(Op::Delete(upload.clone()));
                ops.push(Op::DeleteRange(prefix.clone(), prefix_end(&prefix)));
                ops.extend(unchosen.iter().map(|b| Op::Delete(ref_key(&b.name))));
                if inner.txn(compares, ops).await? {
                    inner.discard(&unchosen).await;
                    return removed.map(|r| r.record(key)).transpose();
                }
            }
            Err(StoreError::Unavailable("the upload kept changing; retry".into()))
        })
    }
}
