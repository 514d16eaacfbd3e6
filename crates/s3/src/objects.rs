//! Object operations: PutObject, GetObject (Range, partNumber, conditions), HeadObject,
//! DeleteObject, DeleteObjects, and the choice of protection for new objects. The ETag is
//! the MD5 of the plaintext (random for SSE-C).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::access::{self, Owned};
use super::conditions::Conditions;
use super::digest;
use super::read_key::{self, Echo, ReadKey};
use super::service::CipherS3;
use super::{acl, body, error, headers, kp, lifecycle, object_lock, sse, tagging, versioning};
use object::{BucketRecord, NewObject, ObjectRecord, PlainSource};

fn user_metadata(meta: &ObjectRecord) -> Option<Metadata> {
    (!meta.user.is_empty()).then(|| meta.user.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub(super) async fn put_object(
    s: &CipherS3,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let (asker, bucket) = s.admit(&req).await?;
    let S3Request { input, headers, trailing_headers, .. } = req;
    let acl = acl::for_new_object(s, &bucket, asker.caller_id(), &headers)?;
    let kms =
        kp::requested_sse(s, &bucket, input.server_side_encryption.as_ref(), input.ssekms_key_id.as_deref())?;
    let sse_c = sse::parse(
        [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5],
        &input.bucket,
        &input.key,
    )?;
    let length = s.check_length(input.content_length)?;
    let expected = digest::expected!(input, &headers, trailing_headers)?;
    let new = NewObject {
        key: input.key.clone(),
        sse_c,
        kms,
        user: super::headers::user_metadata(input.metadata)?,
        storage_class: headers::storage_class(input.storage_class.as_ref())?,
        tags: tagging::from_header(input.tagging.as_deref())?,
        lock: object_lock::for_write(&bucket, object_lock::asked_of!(input))?,
        headers: headers::from_input!(input),
        acl,
    };
    let body = input.body.ok_or_else(|| s3_error!(IncompleteBody, "the request has no body"))?;
    let (writer, pending) =
        s.objects.begin(&s.policy, &bucket, new, s.backend).await.map_err(error::object)?;
    let spec = body::sealing(pending.plan());
    let encrypted =
        body::encrypt(body, writer, spec, length, body::limits(s), expected, pending.plan().needs_md5())
            .await?;
    let checksum = encrypted.digests.checksum.clone();
    let (writer, sealed) = encrypted.sealed();
    let record = s.objects.finish(&s.policy, pending, writer, sealed).await.map_err(error::object)?;
    let key_md5 = record.protection.sse_c_md5().map(str::to_owned);
    let mut response = S3Response::new(PutObjectOutput {
        e_tag: headers::e_tag(&record.etag),
        version_id: versioning::version_id(bucket.versioning, record.version_id.as_ref()),
        expiration: lifecycle::expiration(s, &bucket, &record, &record.tags),
        checksum_crc32: checksum.checksum_crc32,
        checksum_crc32c: checksum.checksum_crc32c,
        checksum_crc64nvme: checksum.checksum_crc64nvme,
        checksum_sha1: checksum.checksum_sha1,
        checksum_sha256: checksum.checksum_sha256,
        sse_customer_algorithm: key_md5.as_ref().map(|_| "AES256".to_owned()),
        sse_customer_key_md5: key_md5,
        ..Default::default()
    });
    kp::name_protection(&mut response.headers, &record.protection);
    headers::more_checksum_headers(&mut response.headers, |n| {
        record.headers.checksums.get(&n).map(String::as_str)
    });
    Ok(response)
}

/// What GET and HEAD ask of an object (the fields both operations' inputs carry).
pub(super) struct ReadRequest<'a> {
    bucket: &'a str,
    key: &'a str,
    version_id: Option<&'a str>,
    sse_c: [&'a Option<String>; 3],
    conditions: Conditions<'a>,
}

/// The [`ReadRequest`] of a GetObject or HeadObject input.
macro_rules! read_request {
    ($input:expr) => {
        ReadRequest {
            bucket: &$input.bucket,
            key: &$input.key,
            version_id: $input.version_id.as_deref(),
            sse_c: [&$input.sse_customer_algorithm, &$input.sse_customer_key, &$input.sse_customer_key_md5],
            conditions: Conditions {
                if_match: $input.if_match.as_ref(),
                if_none_match: $input.if_none_match.as_ref(),
                if_modified_since: $input.if_modified_since.as_ref(),
                if_unmodified_since: $input.if_unmodified_since.as_ref(),
            },
        }
    };
}

/// The response of a GET or HEAD: `output` with the standard headers stored with the
/// object and its checksums (those asked for with `mode`, of the `whole` object or one
/// part), the checksum headers s3s has no field for, and the root key's name.
macro_rules! read_response {
    ($output:ident, $meta:expr, $mode:expr, $whole:expr, $read:expr) => {{
        let meta: &ObjectRecord = $meta;
        headers::into_output!($output, &meta.headers);
        let answer = headers::checksums_into_output!($output, &meta.headers, $mode, $whole);
        let mut response = S3Response::new($output);
        if answer {
            headers::more_checksum_headers(&mut response.headers, |n| {
                meta.headers.checksums.get(&n).map(String::as_str)
            });
        }
        $read.name_key(&mut response.headers);
        response
    }};
}

/// An object opened for GET or HEAD: its record verified under its key and its
/// conditions met.
struct Opened {
    body: Box<dyn object::ObjectReader>,
    read: ReadKey,
    meta: ObjectRecord,
    version_id: Option<String>,
    tag_count: Option<i32>,
    expiration: Option<String>,
    storage_class: Option<StorageClass>,
    lock: (Option<ObjectLockMode>, Option<Timestamp>, Option<ObjectLockLegalHoldStatus>),
}

/// Opens the object (or version) a GET or HEAD names in `bucket`, which the caller may
/// read. The key first: nothing in the record is trusted before its tag checks under it.
async fn open_for_read(s: &CipherS3, bucket: BucketRecord, req: ReadRequest<'_>) -> S3Result<Opened> {
    let object = versioning::open(s, req.bucket, req.key, req.version_id).await?;
    let version_id = object.version_id().or_else(|| versioning::version_id(bucket.versioning, None));
    let tag_count = tagging::count(object.tags());
    // Tags only matter to the expiry rules of a bucket that has some.
    let tags = bucket.lifecycle.is_some().then(|| object.tags().clone());
    let storage_class = object.storage_class().map(StorageClass::from);
    let lock = object_lock::shown(&object.lock());
    let (read, meta) = read_key::resolve_stored(s, req.bucket, req.key, object.record, req.sse_c)?;
    req.conditions.check(&meta, false)?;
    // The rules expire current versions: a version named by its id may be another.
    let expiration = match &tags {
        Some(tags) if req.version_id.is_none() => lifecycle::expiration(s, &bucket, &meta, tags),
        _ => None,
    };
    Ok(Opened { body: object.body, read, meta, version_id, tag_count, expiration, storage_class, lock })
}

pub(super) async fn get_object(
    s: &CipherS3,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    headers::refuse_sse_on_read(&req.headers)?;
    let (_, bucket) = s.admit(&req).await?;
    let input = req.input;
    let Opened { body, read, meta, version_id, tag_count, expiration, storage_class, lock } =
        open_for_read(s, bucket, read_request!(input)).await?;
    let (object_lock_mode, object_lock_retain_until_date, object_lock_legal_hold_status) = lock;
    let source = PlainSource::open(body, &meta, read.key.clone(), s.backend).map_err(error::object)?;
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
            let span =
                usize::try_from(n).ok().and_then(|n| source.part_range(n)).ok_or_else(|| no_part(n))?;
            let header = format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1));
            (span.start, span.end, Some(header))
        }
        (None, None) => (0, size, None),
    };
    let whole = input.range.is_none() && input.part_number.is_none();
    let blob = body::get_body(source, first, last)?;
    let mut output = GetObjectOutput {
        body: Some(blob),
        content_length: Some((last - first) as i64),
        content_range,
        parts_count: (input.part_number.is_some() && parts_count > 0).then_some(parts_count as i32),
        accept_ranges: Some("bytes".into()),
        e_tag: headers::e_tag(&meta.etag),
        last_modified: Some(headers::last_modified(&meta)),
        metadata: user_metadata(&meta),
        sse_customer_algorithm: read.sse_c_algorithm(),
        sse_customer_key_md5: read.sse_c_md5(),
        storage_class,
        tag_count,
        version_id,
        expiration,
        object_lock_mode,
        object_lock_retain_until_date,
        object_lock_legal_hold_status,
        ..Default::default()
    };
    Ok(read_response!(output, &meta, input.checksum_mode.as_ref(), whole, &read))
}

/// 416 InvalidPartNumber: the object has no part `n`.
fn no_part(n: i32) -> s3s::S3Error {
    let code = s3s::S3ErrorCode::Custom("InvalidPartNumber".into());
    let mut e = s3s::S3Error::with_message(code, format!("the object has no part {n}"));
    e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
    e
}

pub(super) async fn head_object(
    s: &CipherS3,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    headers::refuse_sse_on_read(&req.headers)?;
    let (_, bucket) = s.admit(&req).await?;
    let input = &req.input;
    // Reading needs the key: a wrong SSE-C key, or a suspended or deleted root key,
    // refuses HEAD too.
    let Opened { read, meta, version_id, tag_count, expiration, storage_class, lock, .. } =
        open_for_read(s, bucket, read_request!(input)).await?;
    let (object_lock_mode, object_lock_retain_until_date, object_lock_legal_hold_status) = lock;
    // With partNumber: that part's length and range, and how many parts there are.
    let (length, content_range, parts_count) = match input.part_number {
        None => (meta.size, None, None),
        Some(n) => {
            let span = usize::try_from(n).ok().and_then(|n| meta.part_range(n)).ok_or_else(|| no_part(n))?;
            let size = meta.size;
            let header = format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1));
            let count = meta.parts_count();
            (span.end - span.start, Some(header), (count > 0).then_some(count as i32))
        }
    };
    let mut output = HeadObjectOutput {
        sse_customer_algorithm: read.sse_c_algorithm(),
        sse_customer_key_md5: read.sse_c_md5(),
        content_length: Some(length as i64),
        content_range,
        parts_count,
        accept_ranges: Some("bytes".into()),
        e_tag: headers::e_tag(&meta.etag),
        last_modified: Some(headers::last_modified(&meta)),
        metadata: user_metadata(&meta),
        storage_class,
        version_id,
        expiration,
        object_lock_mode,
        object_lock_retain_until_date,
        object_lock_legal_hold_status,
        ..Default::default()
    };
    let whole = input.part_number.is_none();
    let mut response = read_response!(output, &meta, input.checksum_mode.as_ref(), whole, &read);
    // HeadObjectOutput has no field for it; AWS sends it on HEAD as on GET.
    if let Some(n) = tag_count {
        response.headers.insert("x-amz-tagging-count", http::HeaderValue::from(n));
    }
    Ok(response)
}

pub(super) async fn delete_object(
    s: &CipherS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let Owned { mut asker, input, bucket } = s.owned(req).await?;
    let object = (input.key.as_str(), input.version_id.as_deref());
    s.check_bypass(&mut asker, &bucket, Some(object), input.bypass_governance_retention).await?;
    let guard = object_lock::guard(&bucket, input.bypass_governance_retention);
    let deleted = delete_one(s, &bucket, input.key, input.version_id, guard).await?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: deleted.marker.then_some(true),
        version_id: deleted.version_id,
        ..Default::default()
    }))
}

/// Deletes `key` (or, with `version_id`, that version of it) as `bucket` does; Object
/// Lock (`guard`) may keep a version.
async fn delete_one(
    s: &CipherS3,
    bucket: &BucketRecord,
    key: String,
    version_id: Option<String>,
    guard: Option<object::amend::Guard>,
) -> S3Result<object::versions::Deleted> {
    match version_id {
        Some(v) => s.objects.delete_version(&bucket.name, &key, &v, guard).await,
        None => s.objects.delete_in(&bucket.name, &key, bucket.versioning).await,
    }
    .map_err(error::object)
}

/// Most keys one DeleteObjects request may name.
pub(crate) const MAX_DELETE: usize = 1000;

pub(super) async fn delete_objects(
    s: &CipherS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let (mut asker, bucket) = s.enter(&req).await?;
    let input = req.input;
    // Without a policy, ownership or a role decides the whole request; with one, each key
    // is a DeleteObject of its own, as AWS decides them.
    let per_key = bucket.policy.is_some();
    if !per_key {
        s.permits(&mut asker, &bucket, None, access::delete_op(None)).await?;
        s.check_bypass(&mut asker, &bucket, None, input.bypass_governance_retention).await?;
    }
    let objects = input.delete.objects;
    if objects.len() > MAX_DELETE {
        return Err(s3_error!(MalformedXML, "at most 1000 keys per DeleteObjects request"));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let guard = object_lock::guard(&bucket, input.bypass_governance_retention);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for o in objects {
        let asked = o.version_id.clone();
        let outcome = async {
            if per_key {
                let object = Some((o.key.as_str(), o.version_id.as_deref()));
                s.permits(&mut asker, &bucket, object, access::delete_op(asked.as_deref())).await?;
                s.check_bypass(&mut asker, &bucket, object, input.bypass_governance_retention).await?;
            }
            delete_one(s, &bucket, o.key.clone(), o.version_id.clone(), guard).await
        }
        .await;
        match outcome {
            Ok(d) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(o.key),
                        version_id: asked.clone(),
                        delete_marker: d.marker.then_some(true),
                        // A marker made now is named by its id; one removed, by the one asked.
                        delete_marker_version_id: d.marker.then(|| d.version_id.clone()).flatten(),
                    });
                }
            }
            Err(err) => {
                errors.push(Error {
                    code: Some(err.code().as_str().to_owned()),
                    key: Some(o.key),
                    message: err.message().map(str::to_owned),
                    version_id: asked,
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
