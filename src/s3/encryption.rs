//! Bucket encryption defaults: PutBucketEncryption, GetBucketEncryption,
//! DeleteBucketEncryption, the AWS face of SSE-KP. `aws:kms` with a KMSMasterKeyID (a root
//! key id, name or CRN) binds a bucket that has no root key yet: a bucket key is created
//! and wrapped by that root, and new objects are encrypted under it. Delete turns the
//! default off for new objects; objects already written keep their key. A bucket bound at
//! creation (IBM SSE-KP headers) keeps its binding for life.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{CipherS3, error, kp};
use crate::object::{KmsBinding, Origin};

pub(super) async fn put(
    s: &CipherS3,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let caller = CipherS3::caller(&req)?;
    let input = req.input;
    let mut bucket = s.owned_bucket(&input.bucket, &caller)?;
    let rules = input.server_side_encryption_configuration.rules;
    let [rule] = rules.as_slice() else {
        return Err(s3_error!(MalformedXML, "give exactly one encryption rule"));
    };
    let Some(default) = &rule.apply_server_side_encryption_by_default else {
        return Err(s3_error!(MalformedXML, "the rule needs ApplyServerSideEncryptionByDefault"));
    };
    if default.sse_algorithm.as_str() != ServerSideEncryption::AWS_KMS {
        return Err(s3_error!(
            InvalidArgument,
            "only aws:kms rules with a KMSMasterKeyID (root key id or CRN) are offered; SSE-S3 (AES256) is not, as the default protection already applies"
        ));
    }
    let Some(key_id) = default.kms_master_key_id.as_deref() else {
        return Err(s3_error!(InvalidArgument, "aws:kms needs a KMSMasterKeyID (root key id or CRN)"));
    };
    let manager = kp::manager(s)?;
    let view = manager.show(key_id).map_err(kp::error)?;
    let created_key = match &mut bucket.kms {
        Some(kms) if kms.root == view.crn => {
            kms.default = true;
            false
        }
        Some(kms) => {
            let root = &kms.root;
            return Err(s3_error!(
                InvalidArgument,
                "the bucket's objects are protected by root key {root}; its bucket key cannot move to another root (rotate the root key instead)"
            ));
        }
        None => {
            manager.create_bucket_key(&bucket.name, &view.crn).map_err(kp::error)?;
            bucket.kms = Some(KmsBinding {
                root: view.crn.clone(),
                origin: Origin::PutBucketEncryption,
                default: true,
            });
            true
        }
    };
    if let Err(e) = s.objects.update_bucket(&bucket) {
        if created_key {
            // Nothing half made: no bucket key the bucket does not know of.
            let _ = manager.remove_bucket_key(&bucket.name);
        }
        return Err(error::object(e));
    }
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub(super) async fn get(
    s: &CipherS3,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let caller = CipherS3::caller(&req)?;
    let bucket = s.owned_bucket(&req.input.bucket, &caller)?;
    let Some(root) = bucket.default_root() else {
        return Err(s3_error!(
            ServerSideEncryptionConfigurationNotFoundError,
            "the bucket has no default root key (objects get the default AONT-RS protection)"
        ));
    };
    let rule = ServerSideEncryptionRule {
        apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS),
            kms_master_key_id: Some(root.to_owned()),
        }),
        bucket_key_enabled: Some(true),
    };
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration { rules: vec![rule] }),
    }))
}

pub(super) async fn delete(
    s: &CipherS3,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    let caller = CipherS3::caller(&req)?;
    let mut bucket = s.owned_bucket(&req.input.bucket, &caller)?;
    if bucket.bound_at_creation() {
        return Err(s3_error!(
            InvalidRequest,
            "this bucket was created with SSE-KP: its root key binding cannot be removed"
        ));
    }
    if let Some(kms) = &mut bucket.kms {
        kms.default = false;
        s.objects.update_bucket(&bucket).map_err(error::object)?;
    }
    Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
}
