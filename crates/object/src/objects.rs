//! [`Objects`]: the records of buckets, objects and uploads, typed, over any [`Store`].
//! Writes encode (and for objects, seal) a record and hand it to the store with the
//! bytes; reads decode what the store returns and check that it describes what was asked
//! for (a record filed under another key or part number is an integrity failure).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::annex::{self, Annex};
use super::bucket::{BucketRecord, Versioning};
use super::codec::{self, Unverified};
use super::error::ObjectError;
use super::etag::ETag;
use super::lock::Lock;
use super::record::ObjectRecord;
use super::tags::TagSet;
use super::upload::{Part, PartRecord, UploadRecord};
use engine::CustomerKey;
use store::{
    Completion, ObjectReader, ObjectWriter, Page, PartWriter, Store, StoreError, Version, VersionId,
};

/// Bucket records as decoded, by name, with the bytes each was decoded from.
type Decoded = HashMap<String, (Vec<u8>, BucketRecord)>;

/// Typed records over a store.
#[derive(Clone)]
pub struct Objects {
    pub(super) store: Arc<dyn Store>,
    /// Bucket records as last decoded, with the bytes they were decoded from: every
    /// request reads its bucket's record, and one carrying a policy document is worth
    /// decoding once per change rather than per request.
    decoded: Arc<Mutex<Decoded>>,
}

/// An object as read back: its record (tag not yet checked), its stored bytes, and what
/// was set on it after it was written (tags, retention, legal hold).
pub struct Fetched {
    /// The record.
    pub record: Unverified,
    /// The stored bytes.
    pub body: Box<dyn ObjectReader>,
    /// What PutObjectTagging, DeleteObjectTagging, PutObjectRetention or
    /// PutObjectLegalHold set on this version (it replaces the record's own).
    pub annex: Annex,
    /// The version it is, if it was written as one (`None`: the null version of a bucket
    /// that never kept versions).
    pub version: Option<Version>,
}

impl Fetched {
    /// Whether it is a delete marker.
    pub fn is_delete_marker(&self) -> bool {
        self.version.as_ref().is_some_and(|v| v.marker)
    }

    /// The version id S3 shows for it, if it was written as a version.
    pub fn version_id(&self) -> Option<String> {
        self.version.as_ref().map(|v| v.s3_id().to_owned())
    }
}

impl Fetched {
    /// The object's tags now: those set since, else those it was written with.
    pub fn tags(&self) -> &TagSet {
        self.annex.tags.as_ref().unwrap_or(&self.record.unchecked().tags)
    }

    /// Its Object Lock state now: as set since, else as it was written.
    pub fn lock(&self) -> Lock {
        self.annex.lock.unwrap_or(self.record.unchecked().lock)
    }

    /// Its ACL now: as PutObjectAcl set it, else as it was written, else the bucket owner's
    /// (`bucket_owner`), private.
    pub fn acl(&self, bucket_owner: &str) -> iam::acl::Acl {
        match self.annex.acl.as_ref().or(self.record.unchecked().acl.as_ref()) {
            Some(acl) => acl.clone(),
            None => iam::acl::Acl::private(bucket_owner),
        }
    }

    /// Its storage class now (`None`: STANDARD): as a lifecycle transition set it, else as
    /// it was written.
    pub fn storage_class(&self) -> Option<String> {
        self.annex.storage_class(self.record.unchecked().storage_class.as_deref()).map(str::to_owned)
    }
}

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Key.
    pub key: String,
    /// Plaintext length.
    pub size: u64,
    /// ETag, without quotes.
    pub etag: ETag,
    /// Unix seconds.
    pub last_modified: u64,
    /// Storage class, when not STANDARD.
    pub storage_class: Option<String>,
}

fn names_other(what: &str, wanted: &str, found: &str) -> ObjectError {
    ObjectError::Integrity(format!("the record filed as {what} {wanted:?} names {found:?}"))
}

impl Objects {
    /// Records over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, decoded: Arc::default() }
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, bucket: &BucketRecord) -> Result<(), ObjectError> {
        Ok(self.store.create_bucket(&bucket.name, &bucket.encode()?).await?)
    }

    /// A bucket's record.
    pub async fn bucket(&self, name: &str) -> Result<BucketRecord, ObjectError> {
        Ok(self.stored_bucket(name).await?.1)
    }

    /// A bucket's record as stored, and decoded (once per change: [`Decoded`]).
    async fn stored_bucket(&self, name: &str) -> Result<(Vec<u8>, BucketRecord), ObjectError> {
        let bytes = self.store.bucket(name).await?;
        if let Ok(decoded) = self.decoded.lock()
            && let Some((seen, record)) = decoded.get(name)
            && *seen == bytes
        {
            return Ok((bytes, record.clone()));
        }
        let record = BucketRecord::decode(&bytes)?;
        if record.name != name {
            return Err(names_other("bucket", name, &record.name));
        }
        if let Ok(mut decoded) = self.decoded.lock() {
            decoded.insert(name.to_owned(), (bytes.clone(), record.clone()));
        }
        Ok((bytes, record))
    }

    /// Replaces a bucket's record `before` (as [`Objects::bucket`] gave it) with `after`,
    /// unless the record changed since `before` was read: then
    /// [`StoreError::BucketChanged`] and nothing changes (two configuration changes made
    /// at once from the same record would otherwise lose one).
    pub async fn update_bucket(
        &self,
        before: &BucketRecord,
        after: &BucketRecord,
    ) -> Result<(), ObjectError> {
        let name = &before.name;
        if after.name != *name {
            return Err(names_other("bucket", name, &after.name));
        }
        let (stored, current) = self.stored_bucket(name).await?;
        if current != *before {
            return Err(StoreError::BucketChanged(name.clone()).into());
        }
        Ok(self.store.update_bucket(name, &stored, &after.encode()?).await?)
    }

    /// Deletes an empty bucket.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), ObjectError> {
        self.store.delete_bucket(name).await?;
        if let Ok(mut decoded) = self.decoded.lock() {
            decoded.remove(name);
        }
        Ok(())
    }

    /// Every bucket, by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>, ObjectError> {
        self.store.list_buckets().await?.iter().map(|b| BucketRecord::decode(&b.record)).collect()
    }

    /// Starts writing `key` in `bucket`; [`Objects::commit`] makes it visible.
    pub async fn writer(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        Ok(self.store.put(bucket, key).await?)
    }

    /// Makes the object written to `writer` visible with `record`, sealed with the tag for
    /// `key` (the object's key; none for AONT-RS), as a new version if the bucket keeps
    /// versions (`versioning`; the version id made now goes into `record`). Blocking: it
    /// flushes to the store.
    pub async fn commit(
        writer: Box<dyn ObjectWriter>,
        record: &mut ObjectRecord,
        key: Option<&CustomerKey>,
        versioning: Versioning,
    ) -> Result<(), ObjectError> {
        let Some(version) = versioning.new_version(record.is_delete_marker()) else {
            return Ok(writer.commit(&codec::seal(record, key)?).await?);
        };
        record.version_id = (!version.null).then(|| version.id.clone());
        writer.commit_version(&codec::seal(record, key)?, &version).await?;
        Ok(())
    }

    /// Opens an object (its bytes are read only as asked: this is HEAD's way too).
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Fetched, ObjectError> {
        Self::fetched(self.store.get(bucket, key).await?, key)
    }

    /// An object as the store gave it, its record checked to be that of `key` and of the
    /// version the store filed it as.
    pub(super) fn fetched(stored: store::StoredObject, key: &str) -> Result<Fetched, ObjectError> {
        let annex = annex::decode(&stored.record, stored.annex.as_deref())?;
        let record = Self::open_record(&stored.record, key)?;
        Self::check_version(&record, stored.version.as_ref())?;
        Ok(Fetched { record, body: stored.body, annex, version: stored.version })
    }

    /// Checks that a record names the version it was filed as: one version's record (and
    /// with it its bytes, which its salt names) cannot be served as another's.
    pub(super) fn check_version(record: &Unverified, version: Option<&Version>) -> Result<(), ObjectError> {
        let r = record.unchecked();
        let filed = version.filter(|v| !v.null).map(|v| v.id.as_str());
        let marker = version.is_some_and(|v| v.marker);
        if r.version_id.as_ref().map(VersionId::as_str) != filed || r.is_delete_marker() != marker {
            return Err(ObjectError::Integrity(format!(
                "the record filed as version {:?} of {:?} names version {:?}",
                version.map_or(store::versions::NULL, Version::s3_id),
                r.key,
                r.version_id.as_ref().map_or(store::versions::NULL, VersionId::as_str)
            )));
        }
        Ok(())
    }

    /// An object's record.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Unverified, ObjectError> {
        Self::open_record(&self.store.head(bucket, key).await?, key)
    }

    pub(super) fn open_record(bytes: &[u8], key: &str) -> Result<Unverified, ObjectError> {
        let record = codec::open(bytes, key)?;
        if record.unchecked().key != key {
            return Err(names_other("object", key, &record.unchecked().key));
        }
        Ok(record)
    }

    /// One page of objects (keys that start with the page's prefix and sort after its
    /// cursor), in byte order of their keys, as their records describe them. Their tags
    /// are not checked (listings need no key).
    pub async fn list(&self, bucket: &str, page: Page<'_>) -> Result<Vec<Listed>, ObjectError> {
        self.store
            .list(bucket, page)
            .await?
            .into_iter()
            .map(|o| {
                let record = Self::open_record(&o.record, &o.name)?;
                let r = record.unchecked();
                let annex = annex::decode(&o.record, o.annex.as_deref())?;
                Ok(Listed {
                    key: o.name,
                    size: r.size,
                    etag: r.etag.clone(),
                    last_modified: r.last_modified,
                    storage_class: annex.storage_class(r.storage_class.as_deref()).map(str::to_owned),
                })
            })
            .collect()
    }

    /// Starts a multipart upload.
    pub async fn create_upload(&self, bucket: &str, upload: &UploadRecord) -> Result<(), ObjectError> {
        store::check_key(&upload.key)?;
        Ok(self.store.create_upload(bucket, &upload.upload_id, &upload.encode()?).await?)
    }

    /// An upload in progress.
    pub async fn upload(&self, bucket: &str, upload_id: &str) -> Result<UploadRecord, ObjectError> {
        let record = UploadRecord::decode(&self.store.upload(bucket, upload_id).await?)?;
        if record.upload_id != upload_id {
            return Err(names_other("upload", upload_id, &record.upload_id));
        }
        Ok(record)
    }

    /// Starts writing part `number` of an upload; [`Objects::commit_part`] makes it visible.
    pub async fn part_writer(
        &self,
        bucket: &str,
        upload_id: &str,
        number: u32,
    ) -> Result<Box<dyn PartWriter>, ObjectError> {
        Ok(self.store.put_part(bucket, upload_id, number).await?)
    }

    /// Makes the part written to `writer` visible with `record`. Blocking.
    pub async fn commit_part(writer: Box<dyn PartWriter>, record: PartRecord) -> Result<Part, ObjectError> {
        let stored = writer.commit(&record.encode()?).await?;
        Ok(Part { record, stored })
    }

    /// The parts uploaded so far, by number.
    pub async fn list_parts(&self, bucket: &str, upload_id: &str) -> Result<Vec<Part>, ObjectError> {
        self.store
            .list_parts(bucket, upload_id)
            .await?
            .into_iter()
            .map(|p| {
                let record = PartRecord::decode(&p.record)?;
                if record.number != p.number {
                    return Err(names_other("part", &p.number.to_string(), &record.number.to_string()));
                }
                Ok(Part { record, stored: p.stored })
            })
            .collect()
    }

    /// Every upload in progress in `bucket`, by key, then start time.
    pub async fn list_uploads(&self, bucket: &str) -> Result<Vec<UploadRecord>, ObjectError> {
        let mut out = Vec::new();
        for u in self.store.list_uploads(bucket).await? {
            let record = UploadRecord::decode(&u.record)?;
            if record.upload_id != u.name {
                return Err(names_other("upload", &u.name, &record.upload_id));
            }
            out.push(record);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.cmp(&b.initiated)));
        Ok(out)
    }

    /// Discards an upload and its parts.
    pub async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), ObjectError> {
        Ok(self.store.abort_upload(bucket, upload_id).await?)
    }

    /// Makes the object `record` describes out of the upload's `parts` (their stored bytes
    /// end to end, in this order), sealed with the tag for `key`, and discards the upload.
    /// Blocking.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        parts: &[u32],
        record: &mut ObjectRecord,
        key: Option<&CustomerKey>,
        versioning: Versioning,
    ) -> Result<(), ObjectError> {
        let version = versioning.new_version(false);
        record.version_id = version.as_ref().filter(|v| !v.null).map(|v| v.id.clone());
        let sealed = codec::seal(record, key)?;
        let done =
            Completion { upload_id, key: &record.key, parts, record: &sealed, version: version.as_ref() };
        self.store.complete_upload(bucket, done).await?;
        Ok(())
    }
}
