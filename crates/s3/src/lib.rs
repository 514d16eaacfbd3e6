//! The S3 API (via the `s3s` crate: routing, DTOs, SigV4) over the store and the
//! pipeline. One file per operation family: [`bucket`], [`object`], [`copy`], [`list`], [`list_versions`],
//! [`multipart`], [`encryption`], [`tagging`], [`versioning`], [`object_lock`]; protection rules in [`sse`] (SSE-C) and [`kp`] (SSE-KP,
//! aws:kms); which key opens a stored object in [`read_key`]; bodies move between async
//! HTTP and the synchronous pipeline in [`body`], with their digests checked by
//! [`digest`]; [`conditions`] evaluates If-* headers; [`lenient_range`] serves GETs whose
//! Range AWS ignores. What an object is (its typed record,
//! the tag, the part manifest, the plaintext view by range) is [`object`]'s; the
//! process around this layer (listeners, TLS, users, configuration, metrics) is
//! [`crate::serve`]. This layer never calls a cipher and never parses a stored record: it
//! turns headers into typed requests, chooses protection and keys, and hands bytes to the
//! pipeline.
//!
//! Every operation not listed in the [`S3`] impl below answers NotImplemented.

pub mod auth;
pub(crate) mod body;
pub(crate) mod bucket;
pub mod chunk_framing;
pub(crate) mod conditions;
pub(crate) mod copy;
pub(crate) mod digest;
pub(crate) mod encryption;
pub(crate) mod error;
pub(crate) mod full_object;
pub(crate) mod headers;
pub(crate) mod kp;
pub mod lenient_range;
pub(crate) mod list;
pub(crate) mod list_versions;
pub(crate) mod more_checksums;
pub(crate) mod multipart;
pub(crate) mod object_lock;
pub(crate) mod objects;
pub(crate) mod read_key;
pub(crate) mod sse;
pub(crate) mod tagging;
pub(crate) mod versioning;

pub use error::integrity_failures;
pub use sse::parse as parse_sse_c;

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use engine::{Backend, SealSpec};
use keys::KeyManager;
use object::{BucketRecord, Objects, Protection};

/// The S3 service state shared by every request (cheap to clone: its parts are shared).
#[derive(Clone)]
pub struct CipherS3 {
    objects: Objects,
    backend: Backend,
    keys: Option<Arc<KeyManager>>,
    max_object: u64,
    body_idle: std::time::Duration,
    /// Benchmark baseline only: new default-protection objects are stored unencrypted.
    #[cfg(feature = "bench-plaintext")]
    plaintext: bool,
}

impl CipherS3 {
    /// A service over `objects`; `keys` enables SSE-KP.
    pub fn new(objects: Objects, backend: Backend, keys: Option<Arc<KeyManager>>) -> Self {
        Self {
            objects,
            backend,
            keys,
            max_object: objects::MAX_PUT,
            body_idle: body::DEFAULT_BODY_IDLE,
            #[cfg(feature = "bench-plaintext")]
            plaintext: std::env::var("CIPHERSTORE_BENCH_PLAINTEXT").is_ok_and(|v| v == "1"),
        }
    }

    /// Whether new default-protection objects skip the engine (benchmark builds only).
    fn plaintext_mode(&self) -> bool {
        #[cfg(feature = "bench-plaintext")]
        return self.plaintext;
        #[cfg(not(feature = "bench-plaintext"))]
        false
    }

    /// How bytes recorded as protected by `protection` are sealed: by the engine under
    /// `spec`, or (benchmark builds only) passed through.
    fn sealing(&self, spec: SealSpec, protection: &Protection) -> body::Sealing {
        #[cfg(feature = "bench-plaintext")]
        if *protection == Protection::Plaintext {
            return body::Sealing::Passthrough;
        }
        let _ = protection;
        body::Sealing::Engine(spec)
    }

    /// Sets the largest single PUT and part (at most S3's 5 GiB).
    pub fn set_max_object_size(&mut self, bytes: u64) {
        self.max_object = bytes.min(objects::MAX_PUT);
    }

    /// Sets how long a request body may send nothing before the request fails with
    /// RequestTimeout.
    pub fn set_body_idle_timeout(&mut self, idle: std::time::Duration) {
        self.body_idle = idle;
    }

    /// The limits a request body streams under.
    fn body_limits(&self) -> body::Limits {
        body::Limits { max: self.max_object, idle: self.body_idle }
    }

    /// Checks a declared body length against the size limit.
    fn check_length(&self, declared: Option<i64>) -> S3Result<Option<u64>> {
        match declared {
            Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "negative Content-Length")),
            Some(n) if n as u64 > self.max_object => Err(s3_error!(
                EntityTooLarge,
                "at most {} bytes per PUT or part; larger objects need multipart",
                self.max_object
            )),
            Some(n) => Ok(Some(n as u64)),
            None => Ok(None),
        }
    }

    /// The authenticated access key; anonymous requests are refused.
    fn caller<T>(req: &S3Request<T>) -> S3Result<String> {
        match (&req.credentials, req.extensions.get::<lenient_range::Forwarded>()) {
            (Some(c), _) => Ok(c.access_key.clone()),
            // Authenticated by the outer service before it forwarded the request.
            (None, Some(f)) => Ok(f.0.clone()),
            (None, None) => Err(s3_error!(AccessDenied, "anonymous requests are not allowed")),
        }
    }

    /// The bucket's record, if the caller owns it.
    fn owned_bucket(&self, bucket: &str, caller: &str) -> S3Result<BucketRecord> {
        let meta = self.objects.bucket(bucket).map_err(error::object)?;
        if meta.owner != caller {
            return Err(s3_error!(AccessDenied, "the bucket belongs to another user"));
        }
        Ok(meta)
    }
}

#[async_trait::async_trait]
impl S3 for CipherS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list_buckets(self, req).await
    }
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create_bucket(self, req).await
    }
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head_bucket(self, req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete_bucket(self, req).await
    }
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        objects::put_object(self, req).await
    }
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        objects::get_object(self, req).await
    }
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        objects::head_object(self, req).await
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        objects::delete_object(self, req).await
    }
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        copy::copy_object(self, req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        objects::delete_objects(self, req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        list::list_objects(self, req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(self, req).await
    }
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req).await
    }
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(self, req).await
    }
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        encryption::put(self, req).await
    }
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        encryption::get(self, req).await
    }
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        encryption::delete(self, req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        list_versions::list_object_versions(self, req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        versioning::put(self, req).await
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        versioning::get(self, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::list_objects_v2(self, req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        tagging::put(self, req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        tagging::get(self, req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        tagging::delete(self, req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        object_lock::put_configuration(self, req).await
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        object_lock::get_configuration(self, req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        object_lock::put_retention(self, req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        object_lock::get_retention(self, req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        object_lock::put_legal_hold(self, req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        object_lock::get_legal_hold(self, req).await
    }
}
