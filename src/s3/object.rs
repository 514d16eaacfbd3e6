//! Object operations: PutObject, GetObject (Range, partNumber, conditions), HeadObject,
//! DeleteObject, DeleteObjects, and the choice of protection for new objects. The ETag is
//! the MD5 of the plaintext (random for SSE-C).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::conditions::Conditions;
use super::digest::{self, Expected};
use super::read::{PlainSource, ReadKey};
use super::{CipherS3, body, error, kp, sse};
use crate::engine::{Protection, SealSpec};
use crate::keys::audit::now_unix;
use crate::store::ObjectMeta;

/// Largest object accepted in one PUT (S3's limit).
pub const MAX_PUT: u64 = 5 << 30;

pub(super) fn last_modified(meta: &ObjectMeta) -> Timestamp {
    last_modified_at(meta.last_modified)
}

/// Unix seconds as an S3 timestamp.
pub(super) fn last_modified_at(secs: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
}

fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user.is_empty()).then(|| meta.user.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub(super) async fn put_object(
    s: &CipherS3,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let caller = CipherS3::caller(&req)?;
    let S3Request { input, headers, trailing_headers, .. } = req;
    let bucket = s.owned_bucket(&input.bucket, &caller)?;
    let kms = kp::requested_root(
        s,
        &bucket,
        input.server_side_encryption.as_ref(),
        input.ssekms_key_id.as_deref(),
    )?;
    let sse_c = sse::parse(
        [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5],
        &input.bucket,
        &input.key,
    )?;
    let length = s.check_length(input.content_length)?;
    let expected = Expected::new(
        input.content_md5.clone(),
        digest::declared([
            &input.checksum_crc32,
            &input.checksum_crc32c,
            &input.checksum_crc64nvme,
            &input.checksum_sha1,
            &input.checksum_sha256,
        ]),
        input.checksum_algorithm.as_ref(),
        &headers,
        trailing_headers,
    );
    let body = input.body.ok_or_else(|| s3_error!(IncompleteBody, "the request has no body"))?;
    let writer = s.store.put(&input.bucket, &input.key).map_err(error::store)?;
    let mut attributes = BTreeMap::new();
    let (protection, etag, key_md5) =
        protection(s, &input.bucket, &input.key, &bucket, sse_c, kms, &mut attributes)?;
    let kp_root = attributes.get(kp::BUCKET_ROOT).cloned();
    let meta = ObjectMeta {
        key: input.key.clone(),
        size: 0,
        etag,
        last_modified: now_unix(),
        content_type: input.content_type.map(|c| c.to_string()),
        user: input.metadata.map(|m| m.into_iter().collect()).unwrap_or_default(),
        attributes,
    };
    let tag_key = protection.key().cloned();
    let spec = s.sealing(SealSpec::new(protection, s.backend), &meta.attributes);
    let md5_etag = meta.etag.is_empty();
    let encrypted = body::encrypt(body, writer, spec, length, s.body_limits(), expected, md5_etag).await?;
    let mut meta = meta;
    if md5_etag {
        meta.etag = encrypted.digests.md5_hex().unwrap_or_default();
    }
    let checksum = encrypted.digests.checksum.clone();
    let meta = body::commit_object(s, &input.bucket, encrypted, meta, tag_key.as_ref()).await?;
    let mut response = S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(meta.etag)),
        checksum_crc32: checksum.checksum_crc32,
        checksum_crc32c: checksum.checksum_crc32c,
        checksum_crc64nvme: checksum.checksum_crc64nvme,
        checksum_sha1: checksum.checksum_sha1,
        checksum_sha256: checksum.checksum_sha256,
        sse_customer_algorithm: key_md5.as_ref().map(|_| "AES256".to_owned()),
        sse_customer_key_md5: key_md5,
        ..Default::default()
    });
    if let Some(crn) = kp_root {
        kp::name_key(&mut response.headers, &crn);
    }
    Ok(response)
}

/// The protection of a new object in `bucket`: SSE-C if the request carries a key, else
/// the root key asked for with aws:kms (`kms`, see [`kp::requested_root`]) or the bucket's
/// default root key (SSE-KP), else AONT-RS. Records it in `attributes`; returns the
/// protection, a preset ETag (random for SSE-C, else empty: the MD5 is computed) and the
/// SSE-C key MD5 to echo.
pub(super) fn protection(
    s: &CipherS3,
    bucket_name: &str,
    object: &str,
    bucket: &crate::store::BucketMeta,
    sse_c: Option<sse::SseC>,
    kms: Option<String>,
    attributes: &mut BTreeMap<String, String>,
) -> S3Result<(Protection, String, Option<String>)> {
    if sse_c.is_some() && kms.is_some() {
        return Err(s3_error!(InvalidArgument, "choose SSE-C or aws:kms, not both"));
    }
    let root = kms.or_else(|| kp::default_root(bucket).map(str::to_owned));
    Ok(match (sse_c, root) {
        (Some(k), _) => {
            attributes.insert(sse::PROTECTION.to_owned(), "sse-c".to_owned());
            attributes.insert(sse::KEY_MD5.to_owned(), k.md5.clone());
            (Protection::SseC(k.key), sse::random_etag(), Some(k.md5))
        }
        (None, Some(crn)) => {
            let (key, crn) = kp::object_key(s, bucket_name, object, &crn)?;
            attributes.insert(sse::PROTECTION.to_owned(), "sse-kp".to_owned());
            attributes.insert(kp::BUCKET_ROOT.to_owned(), crn.clone());
            (Protection::SseKp { key, crn }, String::new(), None)
        }
        (None, None) => {
            let mode = if s.plaintext_mode() { "plaintext" } else { "aont" };
            attributes.insert(sse::PROTECTION.to_owned(), mode.to_owned());
            (Protection::Aont, String::new(), None)
        }
    })
}

pub(super) async fn get_object(
    s: &CipherS3,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let caller = CipherS3::caller(&req)?;
    let input = req.input;
    s.owned_bucket(&input.bucket, &caller)?;
    let object = s.store.get(&input.bucket, &input.key).map_err(error::store)?;
    let meta = object.meta.clone();
    // The key first: nothing in the metadata is trusted before its tag checks.
    let sent = [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5];
    let read = ReadKey::resolve_stored(s, &input.bucket, &input.key, &meta, sent)?;
    Conditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    }
    .check(&meta, false)?;
    let source = PlainSource::open(s, object, read.key.clone())?;
    let size = source.size();
    let parts_count = source.parts_count();
    let (first, last, content_range) = match (&input.range, input.part_number) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(InvalidRequest, "Range and partNumber cannot be combined"));
        }
        (Some(r), None) => {
            let span = r
                .check(size)
                .map_err(|_| s3_error!(InvalidRange, "the requested range is not satisfiable"))?;
            let header = format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1));
            (span.start, span.end, Some(header))
        }
        (None, Some(n)) => {
            let span = usize::try_from(n).ok().and_then(|n| source.part_range(n)).ok_or_else(|| {
                let code = s3s::S3ErrorCode::Custom("InvalidPartNumber".into());
                let mut e = s3s::S3Error::with_message(code, format!("the object has no part {n}"));
                e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
                e
            })?;
            let header = format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1));
            (span.start, span.end, Some(header))
        }
        (None, None) => (0, size, None),
    };
    let blob = body::get_body(source, first, last)?;
    let output = GetObjectOutput {
        body: Some(blob),
        content_length: Some((last - first) as i64),
        content_range,
        parts_count: (input.part_number.is_some() && parts_count > 0).then_some(parts_count as i32),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(ETag::Strong(meta.etag.clone())),
        last_modified: Some(last_modified(&meta)),
        content_type: meta.content_type.clone().and_then(|c| c.parse().ok()),
        metadata: user_metadata(&meta),
        sse_customer_algorithm: read.sse_c_algorithm(),
        sse_customer_key_md5: read.sse_c_md5.clone(),
        ..Default::default()
    };
    let mut response = S3Response::new(output);
    read.name_key(&mut response.headers);
    Ok(response)
}

pub(super) async fn head_object(
    s: &CipherS3,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let caller = CipherS3::caller(&req)?;
    let input = &req.input;
    s.owned_bucket(&input.bucket, &caller)?;
    let meta = s.store.head(&input.bucket, &input.key).map_err(error::store)?;
    // Reading needs the key: a wrong SSE-C key, or a suspended or deleted root key,
    // refuses HEAD too; and nothing in the metadata is trusted before its tag checks.
    let sent = [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5];
    let read = ReadKey::resolve_stored(s, &input.bucket, &input.key, &meta, sent)?;
    Conditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    }
    .check(&meta, false)?;
    let mut response = S3Response::new(HeadObjectOutput {
        sse_customer_algorithm: read.sse_c_algorithm(),
        sse_customer_key_md5: read.sse_c_md5.clone(),
        content_length: Some(meta.size as i64),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(ETag::Strong(meta.etag.clone())),
        last_modified: Some(last_modified(&meta)),
        content_type: meta.content_type.clone().and_then(|c| c.parse().ok()),
        metadata: user_metadata(&meta),
        ..Default::default()
    });
    read.name_key(&mut response.headers);
    Ok(response)
}

pub(super) async fn delete_object(
    s: &CipherS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let caller = CipherS3::caller(&req)?;
    s.owned_bucket(&req.input.bucket, &caller)?;
    s.store.delete(&req.input.bucket, &req.input.key).map_err(error::store)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

/// Most keys one DeleteObjects request may name.
pub const MAX_DELETE: usize = 1000;

pub(super) async fn delete_objects(
    s: &CipherS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let caller = CipherS3::caller(&req)?;
    let input = req.input;
    s.owned_bucket(&input.bucket, &caller)?;
    let objects = input.delete.objects;
    if objects.len() > MAX_DELETE {
        return Err(s3_error!(MalformedXML, "at most 1000 keys per DeleteObjects request"));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for o in objects {
        match s.store.delete(&input.bucket, &o.key) {
            Ok(_) => {
                if !quiet {
                    deleted.push(DeletedObject { key: Some(o.key), ..Default::default() });
                }
            }
            Err(e) => {
                let err = error::store(e);
                errors.push(Error {
                    code: Some(err.code().as_str().to_owned()),
                    key: Some(o.key),
                    message: err.message().map(str::to_owned),
                    ..Default::default()
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}
