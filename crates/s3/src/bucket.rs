//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket. A bucket
//! belongs to the user (canonical id) who created it; others act on it only through a
//! role granted on it (iam), and a bucket created anew never inherits the roles of an
//! earlier one of the same name.

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::access::Owned;
use super::service::CipherS3;
use super::{error, kp, object_lock};
use base::clock::now_unix;
use keys::KeyRef;
use object::StoreError;
use object::{BucketRecord, KmsBinding, ObjectError, Origin};

pub(super) async fn list_buckets(
    s: &CipherS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let caller = s.caller(&req)?;
    let buckets = s
        .objects
        .list_buckets()
        .await
        .map_err(error::object)?
        .into_iter()
        .filter(|b| caller.standing(&b.name, &b.owner).is_some())
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(Timestamp::from(UNIX_EPOCH + Duration::from_secs(b.created))),
            ..Default::default()
        })
        .collect();
    let owner =
        Owner { display_name: Some(caller.display_name.clone()), id: Some(caller.canonical_id.clone()) };
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner),
        ..Default::default()
    }))
}

pub(super) async fn create_bucket(
    s: &CipherS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let caller = s.caller(&req)?;
    if !caller.create_buckets {
        return Err(s3_error!(AccessDenied, "this user may not create buckets"));
    }
    let root = kp::requested(&req.headers)?;
    // AWS's legacy rule: re-creating a bucket you own is 200 in us-east-1 (no location
    // constraint), 409 BucketAlreadyOwnedByYou elsewhere.
    let us_east_1 = req
        .input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .is_none_or(|l| l.as_str().is_empty() || l.as_str() == "us-east-1");
    let name = req.input.bucket.clone();
    let kms = match &root {
        // The root key must exist before the bucket does.
        Some(crn) => Some(KmsBinding {
            root: kp::manager(s)?.crn_of(&KeyRef::parse(crn)).map_err(error::keys)?,
            origin: Origin::Create,
            default: true,
        }),
        None => None,
    };
    let mut meta = BucketRecord {
        name: name.clone(),
        owner: caller.canonical_id.clone(),
        created: now_unix(),
        kms,
        sse_s3: false,
        versioning: Default::default(),
        object_lock: None,
        lifecycle: None,
        policy: None,
        public_access_block: Some(object::PublicAccessBlock::ALL),
        ownership: None,
        acl: None,
    };
    super::acl::for_new_bucket(s, &mut meta, &req.input, &req.headers)?;
    let locked = req.input.object_lock_enabled_for_bucket.unwrap_or(false);
    if locked {
        // Versioning on and Object Lock named in the record from the start.
        meta.versioning = object::Versioning::Enabled;
        meta.object_lock = Some(Default::default());
    }
    if matches!(s.objects.bucket(&name).await, Err(ObjectError::Store(StoreError::NoSuchBucket(_)))) {
        forget_roles(s, &name).await?;
    }
    match s.objects.create_bucket(&meta).await {
        Ok(()) => {
            if let Some(crn) = meta.root()
                && let Err(e) = kp::manager(s)?.create_bucket_key(&name, &KeyRef::parse(crn))
            {
                // Nothing half made: no bucket without its key.
                let _ = s.objects.delete_bucket(&name).await;
                return Err(error::keys(e));
            }
            if locked && let Err(e) = object_lock::enable(s, &mut meta, Default::default()) {
                // Nor a bucket under Object Lock whose keys are not retained.
                let _ = s.objects.delete_bucket(&name).await;
                if let Some(m) = s.keys() {
                    let _ = m.remove_bucket_key(&name);
                }
                return Err(e);
            }
            Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
        }
        Err(ObjectError::Store(StoreError::BucketExists(_))) => match s.objects.bucket(&name).await {
            Ok(b) if b.owner == caller.canonical_id && us_east_1 => {
                Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
            }
            Ok(b) if b.owner == caller.canonical_id => {
                Err(s3_error!(BucketAlreadyOwnedByYou, "you already own bucket {name}"))
            }
            _ => Err(s3_error!(BucketAlreadyExists, "bucket {name} belongs to another user")),
        },
        Err(e) => Err(error::object(e)),
    }
}

pub(super) async fn head_bucket(
    s: &CipherS3,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let Owned { bucket: meta, .. } = s.owned(req).await?;
    let mut response = S3Response::new(HeadBucketOutput::default());
    if let Some(crn) = meta.root() {
        kp::name_key(&mut response.headers, crn);
    }
    Ok(response)
}

pub(super) async fn delete_bucket(
    s: &CipherS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let Owned { input, bucket: meta, .. } = s.owned(req).await?;
    s.objects.delete_bucket(&input.bucket).await.map_err(error::object)?;
    s.policies.forget(&meta.name);
    // Its bucket keys: the SSE-KP binding's, and any made by aws:kms or SSE-S3 objects.
    if let Some(m) = s.keys() {
        m.remove_bucket_key(&meta.name).map_err(error::keys)?;
    }
    // The bucket is gone; roles left behind (this failing) are removed again before a
    // bucket of this name is created.
    if let Err(e) = forget_roles(s, &meta.name).await {
        tracing::warn!(bucket = %meta.name, error = %e.message().unwrap_or_default(), "cannot remove the roles on a deleted bucket yet");
    }
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

/// Removes every role granted on `bucket` (none kept: nothing is written).
async fn forget_roles(s: &CipherS3, bucket: &str) -> S3Result<()> {
    let Some(ids) = &s.identities else { return Ok(()) };
    if !ids.snapshot().has_grants_on(bucket) {
        return Ok(());
    }
    let mut forget = |d: &mut iam::Directory| {
        d.forget_bucket(bucket);
        Ok(())
    };
    ids.change(&mut forget).await.map_err(|e| {
        tracing::warn!(bucket, error = %e, "cannot remove the roles granted on a bucket");
        s3_error!(ServiceUnavailable, "the identity store is unavailable; retry")
    })?;
    Ok(())
}
