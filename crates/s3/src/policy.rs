//! Bucket policies and public access blocks: PutBucketPolicy (checked as AWS checks it,
//! the principals it names looked up among the identities, refused while the public
//! access block blocks public policies), GetBucketPolicy (the document as it was put),
//! DeleteBucketPolicy, GetBucketPolicyStatus, and Put/Get/DeletePublicAccessBlock.
//! Enforcement is `access`'s.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::access::Owned;
use super::error;
use super::service::CipherS3;
use iam::policy::Policy as BucketPolicy;
use object::PublicAccessBlock;

fn malformed(why: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(S3ErrorCode::MalformedPolicy, why.to_string())
}

fn no_policy() -> S3Error {
    s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")
}

pub(super) async fn put(
    s: &CipherS3,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let Owned { input, bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    let parsed = BucketPolicy::parse(&input.policy, &bucket.name).map_err(malformed)?;
    if let Some(ids) = &s.identities {
        let snapshot = ids.snapshot();
        if let Some(u) = parsed.named_users().find(|u| !snapshot.has_user(u)) {
            return Err(malformed(format!("Invalid principal in policy: no user is named {u}")));
        }
        if let Some(c) = parsed.named_canonical_ids().find(|c| !snapshot.has_canonical_id(c)) {
            return Err(malformed(format!("Invalid principal in policy: no user has canonical id {c}")));
        }
    }
    if parsed.is_public() && bucket.public_access_block.is_some_and(|b| b.block_public_policy) {
        return Err(s3_error!(
            AccessDenied,
            "this policy allows anyone, and the bucket's public access block blocks public policies (BlockPublicPolicy)"
        ));
    }
    bucket.policy = Some(input.policy.into());
    s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    tracing::info!(bucket = %bucket.name, statements = parsed.len(), public = parsed.is_public(), "bucket policy set");
    Ok(S3Response::new(PutBucketPolicyOutput::default()))
}

pub(super) async fn get(
    s: &CipherS3,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let Owned { bucket, .. } = s.owned(req).await?;
    let policy = bucket.policy.ok_or_else(no_policy)?;
    Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy.to_string()) }))
}

pub(super) async fn delete(
    s: &CipherS3,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let Owned { bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    if bucket.policy.take().is_some() {
        s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
        s.policies.forget(&bucket.name);
        tracing::info!(bucket = %bucket.name, "bucket policy deleted");
    }
    let mut response = S3Response::new(DeleteBucketPolicyOutput::default());
    response.status = Some(http::StatusCode::NO_CONTENT);
    Ok(response)
}

pub(super) async fn status(
    s: &CipherS3,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let Owned { bucket, .. } = s.owned(req).await?;
    let text = bucket.policy.ok_or_else(no_policy)?;
    let parsed = s
        .policies
        .get(&bucket.name, &text)
        .map_err(|e| s3_error!(InternalError, "the stored policy does not read: {e}"))?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus { is_public: Some(parsed.is_public()) }),
    }))
}

pub(super) async fn put_block(
    s: &CipherS3,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let Owned { input, bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    let c = input.public_access_block_configuration;
    // AWS: a part left out is off.
    bucket.public_access_block = Some(PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    });
    s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

pub(super) async fn get_block(
    s: &CipherS3,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let Owned { bucket, .. } = s.owned(req).await?;
    let b = bucket.public_access_block.ok_or_else(no_block)?;
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(b.block_public_acls),
            ignore_public_acls: Some(b.ignore_public_acls),
            block_public_policy: Some(b.block_public_policy),
            restrict_public_buckets: Some(b.restrict_public_buckets),
        }),
    }))
}

pub(super) async fn delete_block(
    s: &CipherS3,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let Owned { bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    if bucket.public_access_block.take().is_some() {
        s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    }
    let mut response = S3Response::new(DeletePublicAccessBlockOutput::default());
    response.status = Some(http::StatusCode::NO_CONTENT);
    Ok(response)
}

/// 404 NoSuchPublicAccessBlockConfiguration.
fn no_block() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "The public access block configuration was not found",
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}
