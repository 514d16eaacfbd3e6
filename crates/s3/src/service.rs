//! The state every S3 request shares ([`CipherS3`]: the object layer, the key manager,
//! limits) and what every handler asks of it first: who the caller is, whether they own
//! the bucket, whether a declared length is allowed.

use std::sync::Arc;
use std::time::Duration;

use s3s::dto::*;
use s3s::{S3Request, S3Result, s3_error};

use super::{error, lenient_range};
use engine::Backend;
use keys::KeyManager;
use object::{BucketRecord, Objects, Policy};

/// Largest object accepted in one PUT, and largest part (S3's limit).
pub(crate) const MAX_PUT: u64 = 5 << 30;

/// How long a request body may send nothing before the request fails, by default.
const DEFAULT_BODY_IDLE: Duration = Duration::from_secs(60);

/// The S3 service state shared by every request (cheap to clone: its parts are shared).
#[derive(Clone)]
pub struct CipherS3 {
    pub(crate) objects: Objects,
    pub(crate) backend: Backend,
    /// Which protection new objects get and which key opens a stored one.
    pub(crate) policy: Policy,
    pub(crate) max_object: u64,
    pub(crate) body_idle: std::time::Duration,
    /// How long a lifecycle day lasts (`x-amz-expiration`).
    pub(crate) lifecycle_day: object::Day,
}

impl CipherS3 {
    /// A service over `objects`; `keys` enables SSE-KP.
    pub fn new(objects: Objects, backend: Backend, keys: Option<Arc<KeyManager>>) -> Self {
        Self {
            objects,
            backend,
            policy: policy(keys),
            max_object: MAX_PUT,
            body_idle: DEFAULT_BODY_IDLE,
            lifecycle_day: object::Day::default(),
        }
    }

    /// The key manager, if the server has an HSM.
    pub(crate) fn keys(&self) -> Option<&KeyManager> {
        self.policy.keys()
    }

    /// Sets how long a lifecycle day lasts (tests shorten it), as `x-amz-expiration`
    /// computes expiry dates.
    pub fn set_lifecycle_day(&mut self, day: object::Day) {
        self.lifecycle_day = day;
    }

    /// Sets the largest single PUT and part (at most S3's 5 GiB).
    pub fn set_max_object_size(&mut self, bytes: u64) {
        self.max_object = bytes.min(MAX_PUT);
    }

    /// Sets how long a request body may send nothing before the request fails with
    /// RequestTimeout.
    pub fn set_body_idle_timeout(&mut self, idle: std::time::Duration) {
        self.body_idle = idle;
    }

    /// Checks a declared body length against the size limit.
    pub(crate) fn check_length(&self, declared: Option<i64>) -> S3Result<Option<u64>> {
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
    pub(crate) fn caller<T>(req: &S3Request<T>) -> S3Result<String> {
        match (&req.credentials, req.extensions.get::<lenient_range::Forwarded>()) {
            (Some(c), _) => Ok(c.access_key.clone()),
            // Authenticated by the outer service before it forwarded the request.
            (None, Some(f)) => Ok(f.0.clone()),
            (None, None) => Err(s3_error!(AccessDenied, "anonymous requests are not allowed")),
        }
    }

    /// Who asks, what they ask and the bucket's record, for a request on a bucket the
    /// caller owns; AccessDenied otherwise. Every bucket operation asks this first: the
    /// one place that decides who may act on a bucket.
    pub(crate) async fn owned<T: OnBucket>(&self, req: S3Request<T>) -> S3Result<Owned<T>> {
        let caller = Self::caller(&req)?;
        let bucket = self.owned_bucket(req.input.bucket(), &caller).await?;
        Ok(Owned { caller, input: req.input, bucket })
    }

    /// The bucket's record, if the caller owns it.
    pub(crate) async fn owned_bucket(&self, bucket: &str, caller: &str) -> S3Result<BucketRecord> {
        let meta = self.objects.bucket(bucket).await.map_err(error::object)?;
        if meta.owner != caller {
            return Err(s3_error!(AccessDenied, "the bucket belongs to another user"));
        }
        Ok(meta)
    }
}

/// A request on a bucket its caller owns, as [`CipherS3::owned`] admitted it.
pub(crate) struct Owned<T> {
    /// The caller's access key id.
    pub(crate) caller: String,
    /// What the request asks.
    pub(crate) input: T,
    /// The bucket's record.
    pub(crate) bucket: BucketRecord,
}

/// An s3s input that names the bucket it acts on.
pub(crate) trait OnBucket {
    /// The bucket's name.
    fn bucket(&self) -> &str;
}

macro_rules! on_bucket {
    ($($input:ty),* $(,)?) => {
        $(impl OnBucket for $input {
            fn bucket(&self) -> &str {
                &self.bucket
            }
        })*
    };
}

on_bucket!(
    AbortMultipartUploadInput,
    CompleteMultipartUploadInput,
    CreateMultipartUploadInput,
    DeleteBucketEncryptionInput,
    DeleteBucketInput,
    DeleteBucketLifecycleInput,
    DeleteObjectInput,
    DeleteObjectTaggingInput,
    DeleteObjectsInput,
    GetBucketEncryptionInput,
    GetBucketLifecycleConfigurationInput,
    GetBucketVersioningInput,
    GetObjectLegalHoldInput,
    GetObjectLockConfigurationInput,
    GetObjectRetentionInput,
    GetObjectTaggingInput,
    HeadBucketInput,
    ListMultipartUploadsInput,
    ListObjectVersionsInput,
    ListObjectsInput,
    ListObjectsV2Input,
    ListPartsInput,
    PutBucketEncryptionInput,
    PutBucketLifecycleConfigurationInput,
    PutBucketVersioningInput,
    PutObjectLegalHoldInput,
    PutObjectLockConfigurationInput,
    PutObjectRetentionInput,
    PutObjectTaggingInput,
    UploadPartCopyInput,
);

/// The protection policy over `keys`; benchmark builds store new default-protection
/// objects unencrypted when CIPHERSTORE_BENCH_PLAINTEXT=1.
fn policy(keys: Option<Arc<KeyManager>>) -> Policy {
    let policy = Policy::new(keys);
    #[cfg(feature = "bench-plaintext")]
    let policy = policy.with_plaintext(std::env::var("CIPHERSTORE_BENCH_PLAINTEXT").is_ok_and(|v| v == "1"));
    policy
}
