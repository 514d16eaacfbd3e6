//! CopyObject: the source is decrypted (with its SSE-C key from the
//! `x-amz-copy-source-server-side-encryption-customer-*` headers, or its bucket key) and
//! encrypted again for the target (its own SSE-C key, its bucket's SSE-KP key, or AONT-RS),
//! so the target never shares keys with the source. Metadata is copied, or replaced with
//! `x-amz-metadata-directive: REPLACE`.

use super::access;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::conditions;
use super::read_key;
use super::service::CipherS3;
use super::{acl, body, error, headers, kp, object_lock, sse, tagging, versioning};
use object::{NewObject, PlainSource};

/// The bucket, key and version (if named) a copy reads from.
pub(super) fn source_of(source: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match source {
        CopySource::Bucket { bucket, key, version_id } => {
            Ok((bucket.to_string(), key.to_string(), version_id.as_deref().map(str::to_owned)))
        }
        _ => Err(s3_error!(NotImplemented, "access point copy sources are not supported")),
    }
}

pub(super) async fn copy_object(
    s: &CipherS3,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let (src_bucket, src_key, src_version) = source_of(&req.input.copy_source)?;
    let (mut asker, target_bucket) = s.admit(&req).await?;
    let source = (src_key.as_str(), src_version.as_deref());
    s.admit_also(&mut asker, &req, &src_bucket, source, access::read_op(source.1)).await?;
    let acl = acl::for_new_object(s, &target_bucket, asker.caller_id(), &req.headers)?;
    let input = req.input;
    let kms = kp::requested_sse(
        s,
        &target_bucket,
        input.server_side_encryption.as_ref(),
        input.ssekms_key_id.as_deref(),
    )?;

    // The source, opened with the key it needs.
    let source = versioning::open(s, &src_bucket, &src_key, src_version.as_deref()).await?;
    let source_version = source.version_id();
    let sent = [
        &input.copy_source_sse_customer_algorithm,
        &input.copy_source_sse_customer_key,
        &input.copy_source_sse_customer_key_md5,
    ];
    conditions::copy_source!(input).check(source.record.unchecked(), true)?;
    let source_tags = source.tags().clone();
    let (read, source_meta) = read_key::resolve_stored(s, &src_bucket, &src_key, source.record, sent)?;
    let source = PlainSource::open(source.body, &source_meta, read.key, s.backend).map_err(error::object)?;

    // The target's protection and metadata.
    let target_key = sse::parse(
        [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5],
        &input.bucket,
        &input.key,
    )?;
    let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    // AWS refuses a copy onto itself that changes nothing (metadata, storage class,
    // website redirect or encryption): it would only cost a rewrite.
    let changes = replace
        || target_key.is_some()
        || input.server_side_encryption.is_some()
        || input.storage_class.is_some()
        || input.website_redirect_location.is_some()
        || input.tagging_directive.is_some();
    if src_bucket == input.bucket && src_key == input.key && src_version.is_none() && !changes {
        return Err(s3_error!(
            InvalidRequest,
            "this copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes"
        ));
    }
    // The copy has the source's plaintext, so its checksums too; its storage class is
    // what this request asks (STANDARD if nothing, as AWS).
    let storage_class = headers::storage_class(input.storage_class.as_ref())?;
    // Object Lock: never the source's; the request's, else the target bucket's default.
    let lock = object_lock::for_write(&target_bucket, object_lock::asked_of!(input))?;
    // Tags: the source's (COPY, the default) or the request's (REPLACE), as AWS.
    let tags = match input.tagging_directive.as_ref().map(TaggingDirective::as_str) {
        None | Some(TaggingDirective::COPY) => source_tags,
        Some(TaggingDirective::REPLACE) => tagging::from_header(input.tagging.as_deref())?,
        Some(other) => return Err(s3_error!(InvalidArgument, "unknown x-amz-tagging-directive {other:?}")),
    };
    let (headers, user) = if replace {
        let mut headers = headers::from_input!(input);
        headers.checksums = source_meta.headers.checksums;
        (headers, headers::user_metadata(input.metadata)?)
    } else {
        (source_meta.headers, source_meta.user)
    };
    let new = NewObject {
        key: input.key.clone(),
        sse_c: target_key,
        kms,
        headers,
        user,
        storage_class,
        tags,
        lock,
        acl,
    };
    let (writer, pending) =
        s.objects.begin(&s.policy, &target_bucket, new, s.backend).await.map_err(error::object)?;
    let size = source.size();
    let spec = body::sealing(pending.plan());
    let encrypted = body::reencrypt(source, 0, size, writer, spec, pending.plan().needs_md5()).await?;
    let (writer, sealed) = encrypted.sealed();
    let meta = s.objects.finish(&s.policy, pending, writer, sealed).await.map_err(error::object)?;
    let key_md5 = meta.protection.sse_c_md5().map(str::to_owned);
    let result = CopyObjectResult {
        e_tag: headers::e_tag(&meta.etag),
        last_modified: Some(headers::last_modified(&meta)),
        ..Default::default()
    };
    let mut response = S3Response::new(CopyObjectOutput {
        copy_object_result: Some(result),
        sse_customer_algorithm: key_md5.as_ref().map(|_| "AES256".to_owned()),
        sse_customer_key_md5: key_md5,
        version_id: versioning::version_id(target_bucket.versioning, meta.version_id.as_ref()),
        copy_source_version_id: source_version,
        ..Default::default()
    });
    kp::name_protection(&mut response.headers, &meta.protection);
    Ok(response)
}
