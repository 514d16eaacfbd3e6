//! CopyObject: the source is decrypted (with its SSE-C key from the
//! `x-amz-copy-source-server-side-encryption-customer-*` headers, or its bucket key) and
//! encrypted again for the target (its own SSE-C key, its bucket's SSE-KP key, or AONT-RS),
//! so the target never shares keys with the source. Metadata is copied, or replaced with
//! `x-amz-metadata-directive: REPLACE`.

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{CipherS3, body, error, object, sse};
use crate::engine::SealSpec;
use crate::keys::audit::now_unix;
use crate::store::ObjectMeta;

pub(super) async fn copy_object(
    s: &CipherS3,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let caller = CipherS3::caller(&req)?;
    let input = req.input;
    let (src_bucket, src_key) = match &input.copy_source {
        CopySource::Bucket { bucket, key, version_id: None } => (bucket.to_string(), key.to_string()),
        CopySource::Bucket { .. } => {
            return Err(s3_error!(NotImplemented, "versioned copy sources are not supported"));
        }
        _ => return Err(s3_error!(NotImplemented, "access point copy sources are not supported")),
    };
    s.owned_bucket(&src_bucket, &caller)?;
    let target_bucket = s.owned_bucket(&input.bucket, &caller)?;
    if input.server_side_encryption.is_some() {
        return Err(s3_error!(NotImplemented, "SSE-KMS copies are not available yet"));
    }

    // The source, opened with the key it needs.
    let source = s.store.get(&src_bucket, &src_key).map_err(error::store)?;
    let source_meta = source.meta.clone();
    let sent = [
        &input.copy_source_sse_customer_algorithm,
        &input.copy_source_sse_customer_key,
        &input.copy_source_sse_customer_key_md5,
    ];
    let read = object::ReadKey::resolve(s, &src_bucket, &src_key, &source_meta, sent)?;
    let (opener, layout) = object::open_with(s, &source, read.key.as_ref())?;

    // The target's protection and metadata.
    let target_key = sse::parse(
        [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5],
        &input.bucket,
        &input.key,
    )?;
    let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let (content_type, user) = if replace {
        (
            input.content_type.map(|c| c.to_string()),
            input.metadata.map(|m| m.into_iter().collect()).unwrap_or_default(),
        )
    } else {
        (source_meta.content_type.clone(), source_meta.user.clone())
    };
    let mut attributes = BTreeMap::new();
    let (protection, etag, key_md5) =
        object::protection(s, &input.bucket, &target_bucket, target_key, &mut attributes)?;
    let meta = ObjectMeta {
        key: input.key.clone(),
        size: 0,
        etag,
        last_modified: now_unix(),
        content_type,
        user,
        attributes,
    };
    let writer = s.store.put(&input.bucket, &input.key).map_err(error::store)?;
    let meta =
        body::reencrypt(source, opener, layout, writer, SealSpec::new(protection, s.backend), meta).await?;
    let result = CopyObjectResult {
        e_tag: Some(ETag::Strong(meta.etag.clone())),
        last_modified: Some(object::last_modified(&meta)),
        ..Default::default()
    };
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(result),
        sse_customer_algorithm: key_md5.as_ref().map(|_| "AES256".to_owned()),
        sse_customer_key_md5: key_md5,
        ..Default::default()
    }))
}
