//! Object versions in the cluster store. A key's current version is its entry under
//! `o/` (as without versioning, with its version in the entry); its noncurrent versions
//! are entries under `v/`, and a pointer under `n/` names its noncurrent null version:
//!
//! ```text
//! v/<bucket>\0<key>\0<id>   a noncurrent version (ids sort newest first)
//! n/<bucket>\0<key>         the id of the key's noncurrent null version, if it has one
//! ```
//!
//! Every change is one transaction that compares the revisions it read (the current
//! entry, the null pointer, the version it removes), so concurrent commits of one key
//! each land, one after the other, and none is lost. A blob of a version removed for good
//! is retired like an overwritten object's (readers may be on it).

use super::blob_read::{BlobReader, Piece};
use super::{
    COMMIT_TRIES, ClusterStore, Inline, Inner, Located, PAGE, Retries, bucket_key, bump, corrupt, kv_error,
    object_key, objects_of, ref_key, retire,
};
use crate::{AnnexEdit, Page, Removal, Removed, Result, VersionStore};
use crate::{ListedVersion, StoreError, StoredObject, Version, VersionCursor, Wanted, check_key};
use ::cluster::kv::{Compare, Entry, Op, prefix_end};

fn versions_of(b: &str, key: &str) -> Vec<u8> {
    [b"v/", b.as_bytes(), b"\0", key.as_bytes(), b"\0"].concat()
}
fn version_key(b: &str, key: &str, id: &str) -> Vec<u8> {
    [versions_of(b, key).as_slice(), id.as_bytes()].concat()
}
fn null_key(b: &str, key: &str) -> Vec<u8> {
    [b"n/", b.as_bytes(), b"\0", key.as_bytes()].concat()
}

/// The compare that `entry` (or its absence) still holds at `key`.
fn unchanged(key: &[u8], entry: &Option<Entry>) -> Compare {
    match entry {
        Some(e) => Compare::Revision(key.to_vec(), e.mod_revision),
        None => Compare::Absent(key.to_vec()),
    }
}

/// The entry `located` with its version set (an entry written without one gets the
/// unversioned null version's).
fn with_version(mut located: Located, v: &Version) -> Result<Vec<u8>, StoreError> {
    located.set_version(v);
    located.encode()
}

/// One transaction's worth of a change to a key's versions.
struct Change {
    compares: Vec<Compare>,
    ops: Vec<Op>,
    /// A version removed for good.
    removed: Option<Located>,
}

impl Inner {
    /// The key's noncurrent null version: its id, entry, and the pointer's entry.
    async fn noncurrent_null(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(Option<Entry>, Option<(String, Entry)>), StoreError> {
        let pointer = self.get(&null_key(bucket, key)).await?;
        let Some(p) = &pointer else { return Ok((None, None)) };
        let id = String::from_utf8_lossy(&p.value).into_owned();
        let entry = self.get(&version_key(bucket, key, &id)).await?;
        Ok((pointer.clone(), entry.map(|e| (id, e))))
    }

    /// The change that makes `entry`, version `v`, the current version of `key`.
    async fn placing(
        &self,
        bucket: &str,
        key: &str,
        entry: &Located,
        v: &Version,
    ) -> Result<Change, StoreError> {
        let target = object_key(bucket, key);
        let current = self.get(&target).await?;
        let mut compares = vec![Compare::Present(bucket_key(bucket)), unchanged(&target, &current)];
        let mut ops = vec![Op::Put(target.clone(), entry.encode()?), bump(bucket)];
        ops.extend(entry.blobs.iter().map(|b| Op::Put(ref_key(&b.name), target.clone())));
        let mut removed = None;
        if let Some(c) = &current {
            let located = Located::decode(key, &c.value)?;
            let cv = located.version(key)?;
            if cv.null && v.null {
                ops.extend(retire(&located.blobs));
                removed = Some(located);
            } else {
                let kept = version_key(bucket, key, cv.id.as_str());
                ops.extend(located.blobs.iter().map(|b| Op::Put(ref_key(&b.name), kept.clone())));
                ops.push(Op::Put(kept, with_version(located, &cv)?));
                if cv.null {
                    ops.push(Op::Put(null_key(bucket, key), cv.id.as_str().as_bytes().to_vec()));
                }
            }
        }
        if v.null {
            let (pointer, null) = self.noncurrent_null(bucket, key).await?;
            compares.push(unchanged(&null_key(bucket, key), &pointer));
            if pointer.is_some() {
                ops.push(Op::Delete(null_key(bucket, key)));
            }
            if let Some((id, e)) = null {
                let at = version_key(bucket, key, &id);
                compares.push(Compare::Revision(at.clone(), e.mod_revision));
                let located = Located::decode(key, &e.value)?;
                ops.extend(retire(&located.blobs));
                ops.push(Op::Delete(at));
                removed.get_or_insert(located);
            }
        }
        Ok(Change { compares, ops, removed })
    }

    /// Commits `entry` as version `v` of `key`; returns a null version it replaced.
    pub(super) async fn commit_version(
        &self,
        bucket: &str,
        key: &str,
        entry: &Located,
        v: &Version,
    ) -> Result<Option<Located>, StoreError> {
        let mut tries = Retries::default();
        while tries.next().await {
            let change = self.placing(bucket, key, entry, v).await?;
            if self.txn(change.compares, change.ops).await? {
                return Ok(change.removed);
            }
            if !self.bucket_exists(bucket).await? {
                return Err(StoreError::NoSuchBucket(bucket.to_owned()));
            }
        }
        Err(StoreError::Unavailable(format!("{COMMIT_TRIES} concurrent commits in a row; retry")))
    }

    /// The change that places a completed upload's entry as version `v` (or, without
    /// `v`, over the current object), for [`ClusterStore::complete_upload`].
    pub(super) async fn completing(
        &self,
        bucket: &str,
        key: &str,
        mut entry: Located,
        v: Option<&Version>,
    ) -> Result<(Vec<Compare>, Vec<Op>, Option<Located>), StoreError> {
        if let Some(v) = v {
            entry.set_version(v);
            let change = self.placing(bucket, key, &entry, v).await?;
            return Ok((change.compares, change.ops, change.removed));
        }
        let target = object_key(bucket, key);
        let old = self.get(&target).await?;
        let mut compares = vec![unchanged(&target, &old)];
        compares.push(Compare::Present(bucket_key(bucket)));
        let mut ops = vec![Op::Put(target.clone(), entry.encode()?), bump(bucket)];
        ops.extend(entry.blobs.iter().map(|b| Op::Put(ref_key(&b.name), target.clone())));
        if let Some(e) = &old {
            ops.extend(retire(&Located::decode(key, &e.value)?.blobs));
        }
        Ok((compares, ops, None))
    }

    /// Where the version `wanted` of `key` is: its metadata key, entry and version.
    async fn find(
        &self,
        bucket: &str,
        key: &str,
        wanted: &Wanted,
    ) -> Result<Option<(Vec<u8>, Entry, Located, Version)>, StoreError> {
        let target = object_key(bucket, key);
        let Some(current) = self.get(&target).await? else { return Ok(None) };
        let located = Located::decode(key, &current.value)?;
        let v = located.version(key)?;
        if v.is(wanted) {
            return Ok(Some((target, current, located, v)));
        }
        let id = match wanted {
            Wanted::Id(id) => id.to_string(),
            Wanted::Null => match self.get(&null_key(bucket, key)).await? {
                Some(p) => String::from_utf8_lossy(&p.value).into_owned(),
                None => return Ok(None),
            },
        };
        let at = version_key(bucket, key, &id);
        let Some(e) = self.get(&at).await? else { return Ok(None) };
        let located = Located::decode(key, &e.value)?;
        let v = located.version(key)?;
        Ok(v.is(wanted).then_some((at, e, located, v)))
    }
}

/// A stored object from its entry.
fn stored(
    inner: &std::sync::Arc<Inner>,
    key: &str,
    located: Located,
    version: Option<Version>,
) -> Result<StoredObject, StoreError> {
    let record = located.record(key)?;
    let annex = located.annex(key)?;
    if let Some(bytes) = &located.inline {
        return Ok(StoredObject { record, body: Box::new(Inline::new(bytes.clone())), annex, version });
    }
    let mut start = 0;
    let pieces = located
        .blobs
        .iter()
        .map(|b| {
            let piece = Piece { name: b.name.clone(), start, len: b.len };
            start += b.len;
            piece
        })
        .collect();
    let reader = BlobReader::new(inner.blobs.clone(), inner.bridge.clone(), pieces);
    Ok(StoredObject { record, body: Box::new(reader), annex, version })
}

impl ClusterStore {
    /// A stored object from its entry (the current one's, for `get`).
    pub(super) fn stored(&self, key: &str, located: Located) -> Result<StoredObject, StoreError> {
        let version = match located.version {
            Some(_) => Some(located.version(key)?),
            None => None,
        };
        stored(&self.inner, key, located, version)
    }
}

#[async_trait::async_trait]
impl VersionStore for ClusterStore {
    async fn get_version(&self, bucket: &str, key: &str, wanted: &Wanted) -> Result<StoredObject> {
        check_key(key)?;
        let inner = &self.inner;
        inner.require_bucket(bucket).await?;
        let found = inner.find(bucket, key, wanted).await?;
        let Some((_, _, located, v)) = found else {
            return Err(wanted.missing(bucket, key));
        };
        stored(inner, key, located, Some(v))
    }

    async fn delete_version(&self, bucket: &str, key: &str, removal: Removal<'_>) -> Result<Removed> {
        let Removal { wanted, allow } = removal;
        check_key(key)?;
        let inner = &self.inner;
        inner.require_bucket(bucket).await?;
        let target = object_key(bucket, key);
        let mut tries = Retries::default();
        while tries.next().await {
            let Some((at, e, located, v)) = inner.find(bucket, key, wanted).await? else {
                return Ok(None);
            };
            // The transaction compares this entry's revision: the annex judged is the
            // one removed.
            allow(&located.record(key)?, located.annex(key)?.as_deref())?;
            let mut compares = vec![Compare::Revision(at.clone(), e.mod_revision)];
            let mut ops = retire(&located.blobs);
            ops.push(bump(bucket));
            if at == target {
                // The newest noncurrent version takes its place.
                let prefix = versions_of(bucket, key);
                let next = inner.kv.range(&prefix, &prefix_end(&prefix), 1).await.map_err(kv_error)?;
                match next.entries.into_iter().next() {
                    Some(n) => {
                        let promoted = Located::decode(key, &n.value)?;
                        if promoted.version(key)?.null {
                            ops.push(Op::Delete(null_key(bucket, key)));
                        }
                        compares.push(Compare::Revision(n.key.clone(), n.mod_revision));
                        ops.extend(promoted.blobs.iter().map(|b| Op::Put(ref_key(&b.name), target.clone())));
                        ops.push(Op::Delete(n.key));
                        ops.push(Op::Put(target.clone(), n.value));
                    }
                    None => ops.push(Op::Delete(target.clone())),
                }
            } else {
                ops.push(Op::Delete(at));
                if v.null {
                    ops.push(Op::Delete(null_key(bucket, key)));
                }
            }
            if inner.txn(compares, ops).await? {
                return Ok(Some((v, located.record(key)?)));
            }
        }
        Err(StoreError::Unavailable("the object kept changing; retry".into()))
    }

    async fn set_annex(&self, bucket: &str, key: &str, edit: AnnexEdit<'_>) -> Result<()> {
        let AnnexEdit { at, change } = edit;
        check_key(key)?;
        let inner = &self.inner;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut tries = Retries::default();
        while tries.next().await {
            let found = match at {
                Some(w) => inner.find(bucket, key, w).await?.map(|(at, e, located, _)| (at, e, located)),
                None => {
                    let at = object_key(bucket, key);
                    match inner.get(&at).await? {
                        Some(e) => {
                            let located = Located::decode(key, &e.value)?;
                            Some((at, e, located))
                        }
                        None => None,
                    }
                }
            };
            let Some((at, e, mut located)) = found else {
                inner.require_bucket(bucket).await?;
                return Err(match at {
                    Some(w) => w.missing(bucket, key),
                    None => StoreError::NoSuchKey { bucket: bucket.to_owned(), key: key.to_owned() },
                });
            };
            // The same entry (blobs, record, inline bytes), with the new annex: only if
            // nothing changed it meanwhile.
            let annex = change(&located.record(key)?, located.annex(key)?.as_deref())?;
            located.tags = annex.map(|a| base64::Engine::encode(&b64, a));
            let ops = vec![Op::Put(at.clone(), located.encode()?)];
            if inner.txn(vec![Compare::Revision(at, e.mod_revision)], ops).await? {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable("the object kept changing; retry".into()))
    }

    async fn list_versions(&self, bucket: &str, page: Page<'_, VersionCursor>) -> Result<Vec<ListedVersion>> {
        let Page { prefix, after, limit } = page;
        let base = objects_of(bucket);
        let first = object_key(bucket, prefix);
        let end = prefix_end(&first);
        let inner = &self.inner;
        inner.require_bucket(bucket).await?;
        let mut out = Vec::new();
        let mut start = match after {
            Some(a) if a.key.as_bytes() >= prefix.as_bytes() => {
                let at = object_key(bucket, &a.key);
                if a.after_id.is_some() { at } else { [at.as_slice(), b"\0"].concat() }
            }
            _ => first.clone(),
        };
        while out.len() < limit {
            let page = inner.kv.range(&start, &end, PAGE.min(limit - out.len())).await.map_err(kv_error)?;
            for e in &page.entries {
                if out.len() >= limit {
                    return Ok(out);
                }
                let key =
                    String::from_utf8(e.key[base.len()..].to_vec()).map_err(|e| corrupt("a key", &e))?;
                let located = Located::decode(&key, &e.value)?;
                let current = located.version(&key)?;
                let resume = after.filter(|a| a.key == key).and_then(|a| a.after_id.clone());
                // A cursor within this key is past its current version, listed first.
                if resume.is_none() {
                    out.push(ListedVersion {
                        key: key.clone(),
                        version: current.clone(),
                        latest: true,
                        record: located.record(&key)?,
                        annex: located.annex(&key)?,
                    });
                }
                // Its noncurrent versions, after the cursor's if it stopped in this key.
                let prefix_v = versions_of(bucket, &key);
                let mut from = match &resume {
                    Some(id) if *id != current.id => {
                        [version_key(bucket, &key, id.as_str()).as_slice(), b"\0"].concat()
                    }
                    _ => prefix_v.clone(),
                };
                while out.len() < limit {
                    let versions = inner
                        .kv
                        .range(&from, &prefix_end(&prefix_v), PAGE.min(limit - out.len()))
                        .await
                        .map_err(kv_error)?;
                    for ve in &versions.entries {
                        let located = Located::decode(&key, &ve.value)?;
                        let version = located.version(&key)?;
                        out.push(ListedVersion {
                            key: key.clone(),
                            version,
                            latest: false,
                            record: located.record(&key)?,
                            annex: located.annex(&key)?,
                        });
                    }
                    match versions.entries.last() {
                        Some(last) if versions.more => from = [last.key.as_slice(), b"\0"].concat(),
                        _ => break,
                    }
                }
            }
            match page.entries.last() {
                Some(last) if page.more => start = [last.key.as_slice(), b"\0"].concat(),
                _ => break,
            }
        }
        Ok(out)
    }
}
