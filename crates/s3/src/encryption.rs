//! Bucket encryption defaults: PutBucketEncryption, GetBucketEncryption,
//! DeleteBucketEncryption. `aws:kms` with a KMSMasterKeyID (a root key id, name, CRN or
//! KMS ARN; without one, the instance default key) makes that root key the bucket's
//! default: its bucket key for the pair is made (or found) at once and new objects that
//! ask for nothing are encrypted under it. `AES256` makes SSE-S3 the default. Changing or
//! deleting the default affects new objects only; objects already written keep their
//! keys. A bucket bound at creation (IBM SSE-KP headers) keeps its root key for life.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::access::Owned;
use super::service::CipherS3;
use super::{error, kp};
use keys::KeyRef;
use object::{KmsBinding, Origin};

pub(super) async fn put(
    s: &CipherS3,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let Owned { input, bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    let rules = input.server_side_encryption_configuration.rules;
    let [rule] = rules.as_slice() else {
        return Err(s3_error!(MalformedXML, "give exactly one encryption rule"));
    };
    let Some(default) = &rule.apply_server_side_encryption_by_default else {
        return Err(s3_error!(MalformedXML, "the rule needs ApplyServerSideEncryptionByDefault"));
    };
    // The same resolution as an object's request: the key must exist and the bucket's
    // SSE-KP binding allow it.
    let algorithm = &default.sse_algorithm;
    let key_id = default.kms_master_key_id.as_deref();
    let asked = ServerSideEncryption::from(algorithm.as_str().to_owned());
    let Some(requested) = kp::requested_sse(s, &bucket, Some(&asked), key_id)? else {
        return Err(s3_error!(MalformedXML, "the rule needs an SSEAlgorithm"));
    };
    if requested.sse_s3 {
        bucket.sse_s3 = true;
        if let Some(kms) = &mut bucket.kms {
            kms.default = false;
        }
    } else {
        // The pair's bucket key is made now, so a suspended or unusable key is refused
        // here rather than at the first PUT.
        let retain = bucket.object_lock.is_some();
        kp::manager(s)?
            .bucket_key_for_write(&bucket.name, &KeyRef::parse(&requested.root), retain)
            .map_err(error::keys)?;
        bucket.sse_s3 = false;
        bucket.kms = Some(match bucket.kms.take() {
            Some(kms) if kms.origin == Origin::Create => KmsBinding { default: true, ..kms },
            _ => KmsBinding { root: requested.root, origin: Origin::PutBucketEncryption, default: true },
        });
    }
    s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub(super) async fn get(
    s: &CipherS3,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let Owned { bucket, .. } = s.owned(req).await?;
    let default = if bucket.sse_s3 {
        ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AES256),
            kms_master_key_id: None,
        }
    } else if let Some(root) = bucket.default_root() {
        ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS),
            kms_master_key_id: Some(root.to_owned()),
        }
    } else {
        return Err(s3_error!(
            ServerSideEncryptionConfigurationNotFoundError,
            "the bucket has no default encryption (objects get the default AONT-RS protection)"
        ));
    };
    let rule = ServerSideEncryptionRule {
        apply_server_side_encryption_by_default: Some(default),
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
    let Owned { bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    if bucket.bound_at_creation() {
        return Err(s3_error!(
            InvalidRequest,
            "this bucket was created with SSE-KP: its root key binding cannot be removed"
        ));
    }
    let mut changed = std::mem::take(&mut bucket.sse_s3);
    if let Some(kms) = &mut bucket.kms {
        changed |= std::mem::take(&mut kms.default);
    }
    if changed {
        s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    }
    Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
}
