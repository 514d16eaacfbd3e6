//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads.
//!
//! The upload records the object's protection when it starts (SSE-C key MD5, or the
//! bucket's SSE-KP root key, or AONT-RS); each part is then sealed as its own engine
//! object with the part number bound into its chunks, under the same protection, and
//! stored apart. Completing lays the chosen parts' stored bytes end to end and records
//! the part manifest in the object's record, so nothing is re-encrypted.
//! ETag: MD5 of the part MD5s and `-N` (random for SSE-C, whose ETags never reveal an MD5).

use std::collections::{BTreeMap, BTreeSet};

use super::access::{self, Owned};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::conditions;
use super::digest;
use super::read_key::{self, Echo, ReadKey};
use super::{
    CipherS3, acl, body, copy, error, full_object, headers, kp, lifecycle, object_lock, sse, tagging,
    versioning,
};
use base::clock::now_unix;
use object::{
    ChecksumAlgorithm, Checksums, Layout, NewObject, ObjectRecord, Part, PartRecord, PartWriter, PendingPart,
    PlainSource, UploadRecord, complete, etag,
};
/// Highest part number.
pub(crate) const MAX_PART_NUMBER: i32 = 10_000;

fn part_number(n: i32) -> S3Result<u32> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(n as u32)
    } else {
        Err(s3_error!(InvalidArgument, "part numbers run from 1 to 10000"))
    }
}

/// The upload `id` of `key` in `bucket`, which the caller must own.
async fn upload_of(s: &CipherS3, bucket: &str, key: &str, id: &str) -> S3Result<UploadRecord> {
    let upload = s.objects.upload(bucket, id).await.map_err(error::object)?;
    if upload.key != key {
        return Err(s3_error!(NoSuchUpload, "the upload belongs to another key"));
    }
    Ok(upload)
}

pub(super) async fn create(
    s: &CipherS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let (asker, bucket) = s.admit(&req).await?;
    let acl = acl::for_new_object(s, &bucket, asker.caller_id(), &req.headers)?;
    let input = req.input;
    let sse_c = sse::parse(
        [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5],
        &input.bucket,
        &input.key,
    )?;
    let kms =
        kp::requested_sse(s, &bucket, input.server_side_encryption.as_ref(), input.ssekms_key_id.as_deref())?;
    let new = NewObject {
        key: input.key.clone(),
        sse_c,
        kms,
        headers: headers::from_input!(input),
        user: headers::user_metadata(input.metadata)?,
        storage_class: headers::storage_class(input.storage_class.as_ref())?,
        tags: tagging::from_header(input.tagging.as_deref())?,
        // The bucket's default retention is applied at completion, when the version is made.
        lock: object_lock::asked(&bucket, object_lock::asked_of!(input))?,
        acl,
    };
    let upload = s.objects.begin_upload(&s.policy, &bucket, new).await.map_err(error::object)?;
    let key_md5 = upload.protection.sse_c_md5().map(str::to_owned);
    let mut response = S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.upload_id),
        sse_customer_algorithm: key_md5.as_ref().map(|_| "AES256".to_owned()),
        sse_customer_key_md5: key_md5,
        ..Default::default()
    });
    kp::name_protection(&mut response.headers, &upload.protection);
    Ok(response)
}

/// Begins writing part `number` of `upload` in `bucket`, keyed by `read`: the writer, the
/// part pending, how its bytes are sealed and whether their MD5 is needed.
async fn begin_part(
    s: &CipherS3,
    bucket: &str,
    upload: &UploadRecord,
    number: u32,
    read: &ReadKey,
) -> S3Result<(Box<dyn PartWriter>, PendingPart, body::Seal, bool)> {
    let (writer, pending) =
        s.objects.begin_part(bucket, upload, number, read, s.backend).await.map_err(error::object)?;
    let (seal, md5) = (body::sealing(pending.plan()), pending.plan().part_needs_md5());
    Ok((writer, pending, seal, md5))
}

pub(super) async fn upload_part(
    s: &CipherS3,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    s.admit(&req).await?;
    let S3Request { input, headers, trailing_headers, .. } = req;
    let upload = upload_of(s, &input.bucket, &input.key, &input.upload_id).await?;
    let number = part_number(input.part_number)?;
    let length = s.check_length(input.content_length)?;
    let sent = [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5];
    let read = read_key::resolve(s, &input.bucket, &input.key, &upload.protection, sent)?;
    let expected = digest::expected!(input, &headers, trailing_headers)?;
    let body = input.body.ok_or_else(|| s3_error!(IncompleteBody, "the request has no body"))?;
    let (writer, pending, spec, md5) = begin_part(s, &input.bucket, &upload, number, &read).await?;
    let encrypted = body::encrypt(body, writer, spec, length, body::limits(s), expected, md5).await?;
    let checksum = encrypted.digests.checksum.clone();
    let more = encrypted.digests.more.clone();
    let (writer, sealed) = encrypted.sealed();
    let part = s.objects.finish_part(&s.policy, pending, writer, sealed).await.map_err(error::object)?;
    let mut response = S3Response::new(UploadPartOutput {
        e_tag: headers::e_tag(&part.record.etag),
        checksum_crc32: checksum.checksum_crc32,
        checksum_crc32c: checksum.checksum_crc32c,
        checksum_crc64nvme: checksum.checksum_crc64nvme,
        checksum_sha1: checksum.checksum_sha1,
        checksum_sha256: checksum.checksum_sha256,
        sse_customer_algorithm: read.sse_c_algorithm(),
        sse_customer_key_md5: read.sse_c_md5(),
        ..Default::default()
    });
    read.name_key(&mut response.headers);
    let names = super::more_checksums::NAMES;
    headers::more_checksum_headers(&mut response.headers, |n| {
        names.iter().position(|x| *x == n).and_then(|i| more[i].as_deref())
    });
    Ok(response)
}

/// Parses `bytes=first-last` (inclusive) against a source of `size` bytes.
fn copy_range(range: &str, size: u64) -> S3Result<(u64, u64)> {
    let bad =
        || s3_error!(InvalidArgument, "x-amz-copy-source-range must be bytes=first-last within the source");
    let (first, last) =
        range.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    let first: u64 = first.parse().map_err(|_| bad())?;
    let last: u64 = last.parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(s3_error!(InvalidRange, "the copy source range is outside the source object"));
    }
    Ok((first, last + 1))
}

pub(super) async fn upload_part_copy(
    s: &CipherS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let (src_bucket, src_key, src_version) = copy::source_of(&req.input.copy_source)?;
    let (mut asker, _) = s.admit(&req).await?;
    let source = (src_key.as_str(), src_version.as_deref());
    s.admit_also(&mut asker, &req, &src_bucket, source, access::read_op(source.1)).await?;
    let input = req.input;
    let upload = upload_of(s, &input.bucket, &input.key, &input.upload_id).await?;
    let number = part_number(input.part_number)?;
    let source = versioning::open(s, &src_bucket, &src_key, src_version.as_deref()).await?;
    conditions::copy_source!(input).check(source.record.unchecked(), true)?;
    let source_sent = [
        &input.copy_source_sse_customer_algorithm,
        &input.copy_source_sse_customer_key,
        &input.copy_source_sse_customer_key_md5,
    ];
    let (source_read, source_meta) =
        read_key::resolve_stored(s, &src_bucket, &src_key, source.record, source_sent)?;
    let source =
        PlainSource::open(source.body, &source_meta, source_read.key, s.backend).map_err(error::object)?;
    let (first, last) = match &input.copy_source_range {
        Some(r) => copy_range(r, source.size())?,
        None => (0, source.size()),
    };
    s.check_length(i64::try_from(last - first).ok())?;
    let sent = [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5];
    let read = read_key::resolve(s, &input.bucket, &input.key, &upload.protection, sent)?;
    let (writer, pending, spec, md5) = begin_part(s, &input.bucket, &upload, number, &read).await?;
    let encrypted = body::reencrypt(source, first, last, writer, spec, md5).await?;
    let (writer, sealed) = encrypted.sealed();
    let part = s.objects.finish_part(&s.policy, pending, writer, sealed).await.map_err(error::object)?;
    let result = CopyPartResult {
        e_tag: headers::e_tag(&part.record.etag),
        last_modified: Some(headers::last_modified_at(part.record.last_modified)),
        ..Default::default()
    };
    let mut response = S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(result),
        sse_customer_algorithm: read.sse_c_algorithm(),
        sse_customer_key_md5: read.sse_c_md5(),
        ..Default::default()
    });
    read.name_key(&mut response.headers);
    Ok(response)
}

pub(super) async fn complete(
    s: &CipherS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let Owned { mut input, bucket: target, .. } = s.owned(req).await?;
    let upload = match upload_of(s, &input.bucket, &input.key, &input.upload_id).await {
        Ok(upload) => upload,
        Err(e) if *e.code() == S3ErrorCode::NoSuchUpload => return completed_before(s, input, e).await,
        Err(e) => return Err(e),
    };
    let sent = [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5];
    let read = read_key::resolve(s, &input.bucket, &input.key, &upload.protection, sent)?;
    let requested = input.multipart_upload.take().and_then(|m| m.parts).unwrap_or_default();
    // The request is checked before the store is asked for the parts.
    let named = requested
        .iter()
        .map(|r| Ok((part_number(r.part_number.unwrap_or(0))?, r.e_tag.as_ref().map(|e| e.value()))))
        .collect::<S3Result<Vec<_>>>()?;
    if named.is_empty() {
        return Err(error::parts(complete::PartsError::NoParts));
    }
    let uploaded: BTreeMap<u32, Part> = s
        .objects
        .list_parts(&input.bucket, &input.upload_id)
        .await
        .map_err(error::object)?
        .into_iter()
        .map(|p| (p.record.number, p))
        .collect();
    let chosen = complete::choose(&uploaded, &named).map_err(error::parts)?;
    // The parts' checksums: those the request lists must be the parts' own; the object
    // keeps the composite of those every part has.
    let mut sums = Vec::with_capacity(chosen.len());
    for (r, p) in requested.iter().zip(&chosen) {
        let kept = p.record.checksums(&input.upload_id, read.key.as_ref()).map_err(error::object)?;
        for (name, sent) in digest::named_fields!(r) {
            if let (Some(sent), Some(own)) = (sent, kept.get(&name))
                && sent.trim() != own
            {
                let n = p.record.number;
                return Err(s3_error!(
                    InvalidPart,
                    "the {name} checksum listed for part {n} is not the part's"
                ));
            }
        }
        sums.push(kept);
    }
    let checksums = object_checksums(&input, &chosen, &sums)?;
    let mut private = upload.metadata(read.key.as_ref()).map_err(error::object)?;
    private.headers.checksums = checksums;
    let record = complete::record(upload, &input.upload_id, &chosen, private, now_unix());
    let numbers: Vec<u32> = chosen.iter().map(|p| p.record.number).collect();
    let versioning = target.versioning;
    // The bucket's default retention counts from now, when the version is made.
    let mut record = record;
    record.lock = object_lock::with_default(&target, record.lock);
    s.objects
        .complete_upload(
            &input.bucket,
            &input.upload_id,
            &numbers,
            &mut record,
            read.key.as_ref(),
            versioning,
        )
        .await
        .map_err(error::object)?;
    let version_id = versioning::version_id(versioning, record.version_id.as_ref());
    let expiration = lifecycle::expiration(s, &target, &record, &record.tags);
    Ok(completed(input.bucket, input.key, &record, &read, (version_id, expiration)))
}

/// The checksums a multipart object keeps, from its parts' (`sums`, in the order of
/// `parts`): S3's composite ones (`…-N`), but full-object CRCs (combined from the parts')
/// where the request asks for them (`x-amz-checksum-type: FULL_OBJECT`) or sends one to be
/// checked. A value the request sends that the parts do not give is BadDigest; one that
/// cannot be checked (the parts lack that checksum, or a full-object SHA) is refused.
fn object_checksums(
    input: &CompleteMultipartUploadInput,
    parts: &[&Part],
    sums: &[Checksums],
) -> S3Result<Checksums> {
    let mut out = digest::composite(sums);
    let full_asked = input.checksum_type.as_ref().is_some_and(|t| t.as_str() == ChecksumType::FULL_OBJECT);
    let sent = digest::named_fields!(input);
    let full = |name: ChecksumAlgorithm| {
        let each = sums.iter().map(|s| s.get(&name).map(String::as_str));
        let lens = parts.iter().map(|p| p.record.size);
        let pairs: Option<Vec<(&str, u64)>> = each.zip(lens).map(|(c, l)| c.map(|c| (c, l))).collect();
        pairs.and_then(|p| full_object::combine(name, p))
    };
    if full_asked {
        for name in full_object::NAMES {
            if let Some(v) = full(name) {
                out.insert(name, v);
            }
        }
    }
    for (name, value) in sent {
        let Some(value) = value.as_deref().map(str::trim) else { continue };
        let ours = if value.contains('-') {
            out.get(&name).filter(|v| v.contains('-')).cloned()
        } else if full_object::NAMES.contains(&name) {
            full(name)
        } else {
            return Err(s3_error!(
                InvalidRequest,
                "a full-object {name} checksum of a multipart upload is not defined (S3 offers CRC32, CRC32C and CRC64NVME)"
            ));
        };
        let Some(ours) = ours else {
            return Err(s3_error!(
                InvalidRequest,
                "the {name} checksum sent cannot be checked: not every part was uploaded with one"
            ));
        };
        if ours != value {
            return Err(s3_error!(
                BadDigest,
                "the {} checksum you specified did not match the object's",
                name.name().to_ascii_uppercase()
            ));
        }
        out.insert(name, ours);
    }
    Ok(out)
}

/// The answer to a CompleteMultipartUpload that made (or had made) the object, with its
/// version id and `x-amz-expiration`.
fn completed(
    bucket: String,
    key: String,
    record: &ObjectRecord,
    read: &ReadKey,
    (version_id, expiration): (Option<String>, Option<String>),
) -> S3Response<CompleteMultipartUploadOutput> {
    let sums = &record.headers.checksums;
    let get = |name: ChecksumAlgorithm| sums.get(&name).cloned();
    let mut response = S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(bucket),
        key: Some(key),
        e_tag: headers::e_tag(&record.etag),
        checksum_crc32: get(ChecksumAlgorithm::Crc32),
        checksum_crc32c: get(ChecksumAlgorithm::Crc32c),
        checksum_crc64nvme: get(ChecksumAlgorithm::Crc64nvme),
        checksum_sha1: get(ChecksumAlgorithm::Sha1),
        checksum_sha256: get(ChecksumAlgorithm::Sha256),
        checksum_type: (!sums.is_empty()).then(|| {
            let composite = sums.values().any(|v| v.contains('-'));
            ChecksumType::from_static(if composite {
                ChecksumType::COMPOSITE
            } else {
                ChecksumType::FULL_OBJECT
            })
        }),
        version_id,
        expiration,
        ..Default::default()
    });
    read.name_key(&mut response.headers);
    headers::more_checksum_headers(&mut response.headers, |n| sums.get(&n).map(String::as_str));
    response
}

/// A CompleteMultipartUpload whose upload is gone: if the object at its key was made by
/// this very upload from the same parts (a client retrying after a lost response, even
/// after a restart), it is answered as the first was; otherwise `gone` (NoSuchUpload).
async fn completed_before(
    s: &CipherS3,
    input: CompleteMultipartUploadInput,
    gone: S3Error,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let Ok(stored) = s.objects.head(&input.bucket, &input.key).await else { return Err(gone) };
    if stored.unchecked().upload_id.as_deref() != Some(input.upload_id.as_str()) {
        return Err(gone);
    }
    let sent = [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5];
    let (read, record) = read_key::resolve_stored(s, &input.bucket, &input.key, stored, sent)?;
    let requested = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    let numbers: Vec<Option<i32>> = requested.iter().map(|p| p.part_number).collect();
    let same_parts = match &record.layout {
        Layout::Parts(manifest) => {
            numbers.iter().copied().eq(manifest.iter().map(|p| i32::try_from(p.number).ok()))
        }
        Layout::Single { .. } | Layout::DeleteMarker => false,
    };
    // Where the ETag derives from the parts' (not SSE-C), the ETags sent must give it.
    let etags: Option<Vec<String>> =
        requested.iter().map(|p| p.e_tag.as_ref().map(|e| e.value().to_owned())).collect();
    let same_etags = !etag::needs_md5(&record.protection)
        || etags.is_some_and(|e| {
            etag::multipart(&record.protection, e.iter().map(String::as_str)) == record.etag
        });
    if !(same_parts && same_etags) {
        return Err(gone);
    }
    let version_id = record.version_id.as_ref().map(ToString::to_string);
    let bucket = s.objects.bucket(&input.bucket).await.map_err(error::object)?;
    let expiration = lifecycle::expiration(s, &bucket, &record, &record.tags);
    Ok(completed(input.bucket, input.key, &record, &read, (version_id, expiration)))
}

pub(super) async fn abort(
    s: &CipherS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let Owned { input, .. } = s.owned(req).await?;
    upload_of(s, &input.bucket, &input.key, &input.upload_id).await?;
    s.objects.abort_upload(&input.bucket, &input.upload_id).await.map_err(error::object)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(super) async fn list_parts(
    s: &CipherS3,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let Owned { input, .. } = s.owned(req).await?;
    upload_of(s, &input.bucket, &input.key, &input.upload_id).await?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = input.part_number_marker.unwrap_or(0);
    let all = s.objects.list_parts(&input.bucket, &input.upload_id).await.map_err(error::object)?;
    let mut after: Vec<PartRecord> =
        all.into_iter().map(|p| p.record).filter(|p| i64::from(p.number) > i64::from(marker)).collect();
    let truncated = after.len() > max;
    after.truncate(max);
    let next = after.last().map(|p| p.number as i32);
    let parts = after
        .into_iter()
        .map(|p| s3s::dto::Part {
            e_tag: headers::e_tag(&p.etag),
            last_modified: Some(headers::last_modified_at(p.last_modified)),
            part_number: Some(p.number as i32),
            size: Some(p.size as i64),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if truncated { next } else { None },
        is_truncated: Some(truncated),
        parts: Some(parts),
        ..Default::default()
    }))
}

pub(super) async fn list_uploads(
    s: &CipherS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let Owned { input, .. } = s.owned(req).await?;
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone();
    let mut uploads = Vec::new();
    let mut prefixes = BTreeSet::new();
    let mut truncated = false;
    let mut last: Option<(String, String)> = None;
    for u in s.objects.list_uploads(&input.bucket).await.map_err(error::object)? {
        let key = &u.key;
        if !key.starts_with(&prefix) {
            continue;
        }
        let after_marker = match &id_marker {
            _ if key_marker.is_empty() => true,
            Some(id) if key == &key_marker => u.upload_id.as_str() > id.as_str(),
            _ => key.as_str() > key_marker.as_str(),
        };
        if !after_marker {
            continue;
        }
        if uploads.len() + prefixes.len() >= max {
            truncated = true;
            break;
        }
        if let Some(d) = &delimiter
            && let Some(i) = key[prefix.len()..].find(d.as_str())
        {
            prefixes.insert(key[..prefix.len() + i + d.len()].to_owned());
            continue;
        }
        last = Some((key.clone(), u.upload_id.clone()));
        uploads.push(MultipartUpload {
            key: Some(key.clone()),
            upload_id: Some(u.upload_id.clone()),
            initiated: Some(headers::last_modified_at(u.initiated)),
            ..Default::default()
        });
    }
    let (next_key, next_id) = match (truncated, last) {
        (true, Some((k, id))) => (Some(k), Some(id)),
        _ => (None, None),
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        uploads: Some(uploads),
        common_prefixes: (!prefixes.is_empty())
            .then(|| prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect()),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_and_part_numbers_are_checked() {
        assert_eq!(copy_range("bytes=0-9", 10).unwrap(), (0, 10));
        assert_eq!(copy_range("bytes=5-5", 10).unwrap(), (5, 6));
        for bad in ["bytes=0-10", "bytes=5-4", "0-9", "bytes=-5", "bytes=a-b"] {
            assert!(copy_range(bad, 10).is_err(), "{bad}");
        }
        assert!(part_number(0).is_err());
        assert!(part_number(10_001).is_err());
        assert_eq!(part_number(10_000).unwrap(), 10_000);
    }
}
