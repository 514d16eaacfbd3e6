//! Writing a new object (PutObject, CopyObject), starting a multipart upload
//! ([`Objects::begin_upload`]) or writing a part of one (UploadPart, UploadPartCopy): the
//! protection chosen for it, the record built, the commit. Everything
//! but moving the bytes: [`Objects::begin`] ([`Objects::begin_part`]) hands the caller a
//! writer and the [`SealSpec`] to seal under, the caller streams the plaintext through
//! the sealing pipeline into it (from a request body, or from another object), and
//! [`Objects::finish`] ([`Objects::finish_part`]) makes it visible with what sealing
//! measured ([`Sealed`]).

use std::collections::BTreeMap;

use iam::acl::Acl;

use super::bucket::{BucketRecord, Versioning};
use super::checksum::Checksums;
use super::error::ObjectError;
use super::etag;
use super::lock::Lock;
use super::objects::Objects;
use super::private::Private;
use super::protection::{Policy, ReadKey, Requested, SentKey};
use super::record::{Headers, Layout, ObjectRecord, Protection, Salt};
use super::tags::TagSet;
use super::upload::{Part, PartRecord, UploadRecord, new_upload_id};
use engine::{Backend, CustomerKey, SealSpec};
use store::{ObjectWriter, PartWriter};

/// What a new object is to be, but for its bytes: the protection the request asks, and
/// what its record keeps. Free of HTTP: the S3 layer reads it from a request.
#[derive(Default)]
pub struct NewObject {
    /// Its key.
    pub key: String,
    /// The customer key sent with the request (SSE-C), if any.
    pub sse_c: Option<SentKey>,
    /// The root key asked for (SSE-KMS, SSE-S3), if any ([`Policy::requested`]).
    pub kms: Option<Requested>,
    /// The standard headers it is served with; the checksums sealing computes
    /// ([`Sealed::checksums`]) replace those given here (a copy keeps its source's).
    pub headers: Headers,
    /// User metadata (`x-amz-meta-*`).
    pub user: BTreeMap<String, String>,
    /// Storage class, when not STANDARD.
    pub storage_class: Option<String>,
    /// Its tags.
    pub tags: TagSet,
    /// Its Object Lock retention and legal hold.
    pub lock: Lock,
    /// Its ACL, where the bucket's ACLs are on and it is not the bucket owner's private one.
    pub acl: Option<Acl>,
}

/// How a write's bytes are sealed, and the key its record (or a part's checksums) is
/// sealed with.
pub struct SealPlan {
    protection: Protection,
    spec: SealSpec,
    /// SSE-C and SSE-KP objects' key; none for AONT-RS.
    key: Option<CustomerKey>,
}

impl SealPlan {
    /// How the bytes are to be sealed.
    pub fn spec(&self) -> &SealSpec {
        &self.spec
    }

    /// How the object's record names its protection.
    pub fn protection(&self) -> &Protection {
        &self.protection
    }

    /// Whether the ETag needs the plaintext's MD5 (computed while sealing).
    pub fn needs_md5(&self) -> bool {
        etag::needs_md5(&self.protection)
    }

    /// Whether a part's ETag needs its plaintext's MD5: always (an SSE-C part's is keyed,
    /// [`etag::of_part`]).
    pub fn part_needs_md5(&self) -> bool {
        true
    }
}

/// A write begun: how its bytes are sealed, and what its record will say.
pub struct Pending {
    bucket: String,
    versioning: Versioning,
    object: NewObject,
    plan: SealPlan,
}

impl Pending {
    /// How the bytes are to be sealed.
    pub fn plan(&self) -> &SealPlan {
        &self.plan
    }
}

/// What sealing an object's plaintext measured.
#[derive(Debug, Default)]
pub struct Sealed {
    /// Plaintext bytes.
    pub size: u64,
    /// The plaintext's MD5, hex, if [`Pending::needs_md5`] asked for it.
    pub md5: Option<String>,
    /// The plaintext's checksums, by algorithm name (empty: none computed).
    pub checksums: Checksums,
    /// The engine header's salt (none when the bytes were stored as received: the
    /// benchmark baseline).
    pub salt: Option<Salt>,
}

impl Objects {
    /// Begins writing `object` into `bucket`: chooses its protection as `policy` says
    /// ([`Policy::for_new_object`]) and opens a writer for its bytes, which the caller
    /// seals under [`Pending::spec`]. Nothing is visible before [`Objects::finish`].
    pub async fn begin(
        &self,
        policy: &Policy,
        bucket: &BucketRecord,
        mut object: NewObject,
        backend: Backend,
    ) -> Result<(Box<dyn ObjectWriter>, Pending), ObjectError> {
        let writer = self.writer(&bucket.name, &object.key).await?;
        let (sealing, protection) =
            policy.for_new_object(bucket, &object.key, object.sse_c.take(), object.kms.take())?;
        let key = sealing.key().cloned();
        let plan = SealPlan { protection, spec: SealSpec::new(sealing, backend), key };
        let (name, versioning) = (bucket.name.clone(), bucket.versioning);
        Ok((writer, Pending { bucket: name, versioning, object, plan }))
    }

    /// Makes the object whose bytes were sealed into `writer` visible, once its root key
    /// (if it has one) is found still usable: a key suspended or deleted while the bytes
    /// streamed refuses the write, and nothing is committed. A new version if the bucket
    /// keeps versions. Returns its record as committed.
    pub async fn finish(
        &self,
        policy: &Policy,
        pending: Pending,
        writer: Box<dyn ObjectWriter>,
        sealed: Sealed,
    ) -> Result<ObjectRecord, ObjectError> {
        let Pending { bucket, versioning, object, plan: SealPlan { protection, key: tag_key, .. } } = pending;
        policy.still_usable(&bucket, &protection)?;
        let NewObject { key, mut headers, user, storage_class, tags, lock, acl, .. } = object;
        if !sealed.checksums.is_empty() {
            headers.checksums = sealed.checksums;
        }
        let etag = etag::of(&protection, sealed.md5);
        let layout = Layout::Single { salt: sealed.salt };
        let mut record = ObjectRecord {
            headers,
            user,
            storage_class,
            tags,
            lock,
            acl,
            ..ObjectRecord::new(key, sealed.size, etag, base::clock::now_unix(), protection, layout)
        };
        Objects::commit(writer, &mut record, tag_key.as_ref(), versioning).await?;
        Ok(record)
    }
}

/// A part write begun: how its bytes are sealed (the upload's protection, with the part
/// number bound in), and what its record will say.
pub struct PendingPart {
    bucket: String,
    upload_id: String,
    number: u32,
    plan: SealPlan,
}

impl PendingPart {
    /// How the bytes are to be sealed.
    pub fn plan(&self) -> &SealPlan {
        &self.plan
    }
}

impl Objects {
    /// Begins writing part `number` of `upload` in `bucket`, sealed with `read` (the
    /// upload's protection and the key the request opened it with); the caller seals the
    /// bytes under [`PendingPart::spec`]. Nothing is visible before [`Objects::finish_part`].
    pub async fn begin_part(
        &self,
        bucket: &str,
        upload: &UploadRecord,
        number: u32,
        read: &ReadKey,
        backend: Backend,
    ) -> Result<(Box<dyn PartWriter>, PendingPart), ObjectError> {
        let writer = self.part_writer(bucket, &upload.upload_id, number).await?;
        let mut spec = SealSpec::new(read.sealing(), backend);
        spec.part = number;
        let (bucket, upload_id) = (bucket.to_owned(), upload.upload_id.clone());
        let plan = SealPlan { protection: read.protection.clone(), spec, key: read.key.clone() };
        Ok((writer, PendingPart { bucket, upload_id, number, plan }))
    }

    /// Makes the part sealed into `writer` visible (replacing an earlier part of its
    /// number), once the upload's root key (if it has one) is found still usable. Its
    /// checksums, if sealing computed any, are kept sealed under the upload's key.
    pub async fn finish_part(
        &self,
        policy: &Policy,
        pending: PendingPart,
        writer: Box<dyn PartWriter>,
        sealed: Sealed,
    ) -> Result<Part, ObjectError> {
        let PendingPart { bucket, upload_id, number, plan: SealPlan { protection, key, .. } } = pending;
        policy.still_usable(&bucket, &protection)?;
        let mut record = PartRecord {
            number,
            size: sealed.size,
            etag: etag::of_part(&protection, sealed.md5, key.as_ref()),
            last_modified: base::clock::now_unix(),
            salt: sealed.salt,
            sealed: None,
        };
        if !sealed.checksums.is_empty() {
            record.seal_checksums(&upload_id, sealed.checksums, key.as_ref())?;
        }
        Objects::commit_part(writer, record).await
    }
}

impl Objects {
    /// Starts a multipart upload of `object` into `bucket` (CreateMultipartUpload): its
    /// protection chosen as for a single write ([`Policy::for_new_object`]), its headers and
    /// user metadata sealed under the object's key, and its tags, storage class and asked
    /// retention kept for the completion. Returns the upload's record.
    pub async fn begin_upload(
        &self,
        policy: &Policy,
        bucket: &BucketRecord,
        object: NewObject,
    ) -> Result<UploadRecord, ObjectError> {
        let NewObject { key, sse_c, kms, headers, user, storage_class, tags, lock, acl } = object;
        let (sealing, protection) = policy.for_new_object(bucket, &key, sse_c, kms)?;
        let private = Private { headers, user };
        let initiated = base::clock::now_unix();
        let mut upload =
            UploadRecord::new(new_upload_id(), initiated, key, protection, &private, sealing.key())?;
        upload.storage_class = storage_class;
        upload.tags = tags;
        upload.lock = lock;
        upload.acl = acl;
        self.create_upload(&bucket.name, &upload).await?;
        Ok(upload)
    }
}
