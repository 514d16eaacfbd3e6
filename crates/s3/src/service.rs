//! The state every S3 request shares ([`CipherS3`]: the object layer, the key manager,
//! the identities, limits) and what every handler asks of it first: who the caller is,
//! whether they may do what they ask on the bucket (the table of S3 operation → action is
//! here, [`OnBucket`]), whether a declared length is allowed.

use std::sync::Arc;
use std::time::Duration;

use s3s::dto::*;
use s3s::{S3Request, S3Result, s3_error};

use super::{error, lenient_range};
use base::clock::now_unix;
use engine::Backend;
use iam::{Action, Identities, Principal};
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
    /// Who the callers are and their roles; `None`: each access key is its own user.
    pub(crate) identities: Option<Arc<Identities>>,
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
            identities: None,
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

    /// Sets the identities callers are looked up in. Without them (library use, tests),
    /// each access key is a user of its own whose canonical id is the access key.
    pub fn set_identities(&mut self, identities: Arc<Identities>) {
        self.identities = Some(identities);
    }

    /// The authenticated caller; anonymous requests are refused.
    pub(crate) fn caller<T>(&self, req: &S3Request<T>) -> S3Result<Arc<Principal>> {
        let access_key = match (&req.credentials, req.extensions.get::<lenient_range::Forwarded>()) {
            (Some(c), _) => c.access_key.as_str(),
            // Authenticated by the outer service before it forwarded the request.
            (None, Some(f)) => f.0.as_str(),
            (None, None) => return Err(s3_error!(AccessDenied, "anonymous requests are not allowed")),
        };
        match &self.identities {
            // Checked again after the signature: a key disabled in between is refused.
            Some(ids) => ids.snapshot().principal(access_key, now_unix()).ok_or_else(|| {
                s3_error!(InvalidAccessKeyId, "the access key is unknown, disabled or expired")
            }),
            None => Ok(Arc::new(Principal {
                user: access_key.to_owned(),
                canonical_id: access_key.to_owned(),
                display_name: access_key.to_owned(),
                create_buckets: true,
                grants: Default::default(),
            })),
        }
    }

    /// The display name of the user with `canonical_id` (the id itself if unknown).
    pub(crate) fn display_name(&self, canonical_id: &str) -> String {
        self.identities
            .as_ref()
            .and_then(|ids| ids.snapshot().display_name(canonical_id).map(str::to_owned))
            .unwrap_or_else(|| canonical_id.to_owned())
    }

    /// Who asks, what they ask and the bucket's record, for a request the caller may make
    /// on that bucket (the action its input type names); AccessDenied otherwise. Every
    /// bucket operation asks this first: the one place that decides who may act on a
    /// bucket.
    pub(crate) async fn owned<T: OnBucket>(&self, req: S3Request<T>) -> S3Result<Owned<T>> {
        let caller = self.caller(&req)?;
        let bucket = self.owned_bucket(req.input.bucket(), &caller, T::ACTION).await?;
        Ok(Owned { caller, input: req.input, bucket })
    }

    /// The bucket's record, if the caller may do `action` on it.
    pub(crate) async fn owned_bucket(
        &self,
        bucket: &str,
        caller: &Principal,
        action: Action,
    ) -> S3Result<BucketRecord> {
        let meta = self.objects.bucket(bucket).await.map_err(error::object)?;
        if !caller.may(action, bucket, &meta.owner) {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Ok(meta)
    }

    /// Refuses `x-amz-bypass-governance-retention` from a caller who may not bypass.
    pub(crate) fn check_bypass(
        caller: &Principal,
        bucket: &BucketRecord,
        bypass: Option<bool>,
    ) -> S3Result<()> {
        if bypass == Some(true) && !caller.may(Action::BypassGovernance, &bucket.name, &bucket.owner) {
            return Err(s3_error!(
                AccessDenied,
                "bypassing GOVERNANCE retention needs the manager role or ownership"
            ));
        }
        Ok(())
    }
}

/// A request its caller may make on a bucket, as [`CipherS3::owned`] admitted it.
pub(crate) struct Owned<T> {
    /// The caller.
    pub(crate) caller: Arc<Principal>,
    /// What the request asks.
    pub(crate) input: T,
    /// The bucket's record.
    pub(crate) bucket: BucketRecord,
}

/// An s3s input that names the bucket it acts on, and the kind of action it is.
pub(crate) trait OnBucket {
    /// What the caller must be allowed on the bucket (docs/ACCESS.md).
    const ACTION: Action;
    /// The bucket's name.
    fn bucket(&self) -> &str;
}

macro_rules! on_bucket {
    ($($input:ty => $action:ident),* $(,)?) => {
        $(impl OnBucket for $input {
            const ACTION: Action = Action::$action;
            fn bucket(&self) -> &str {
                &self.bucket
            }
        })*
    };
}

on_bucket!(
    AbortMultipartUploadInput => Write,
    CompleteMultipartUploadInput => Write,
    CreateMultipartUploadInput => Write,
    DeleteBucketEncryptionInput => Configure,
    DeleteBucketInput => DeleteBucket,
    DeleteBucketLifecycleInput => Configure,
    DeleteObjectInput => Delete,
    DeleteObjectTaggingInput => Write,
    DeleteObjectsInput => Delete,
    GetBucketEncryptionInput => ReadSettings,
    GetBucketLifecycleConfigurationInput => ReadSettings,
    GetBucketVersioningInput => ReadSettings,
    GetObjectLegalHoldInput => Read,
    GetObjectLockConfigurationInput => ReadSettings,
    GetObjectRetentionInput => Read,
    GetObjectTaggingInput => Read,
    HeadBucketInput => List,
    ListMultipartUploadsInput => List,
    ListObjectVersionsInput => List,
    ListObjectsInput => List,
    ListObjectsV2Input => List,
    ListPartsInput => List,
    PutBucketEncryptionInput => Configure,
    PutBucketLifecycleConfigurationInput => Configure,
    PutBucketVersioningInput => Configure,
    PutObjectLegalHoldInput => Write,
    PutObjectLockConfigurationInput => Configure,
    PutObjectRetentionInput => Write,
    PutObjectTaggingInput => Write,
    UploadPartCopyInput => Write,
);

/// The protection policy over `keys`; benchmark builds store new default-protection
/// objects unencrypted when CIPHERSTORE_BENCH_PLAINTEXT=1.
fn policy(keys: Option<Arc<KeyManager>>) -> Policy {
    let policy = Policy::new(keys);
    #[cfg(feature = "bench-plaintext")]
    let policy = policy.with_plaintext(std::env::var("CIPHERSTORE_BENCH_PLAINTEXT").is_ok_and(|v| v == "1"));
    policy
}
