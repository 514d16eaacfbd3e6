//! Object operations: PutObject, GetObject (with Range), HeadObject, DeleteObject, in the
//! default AONT-RS protection. The ETag is the MD5 of the plaintext.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{CipherS3, body, error, kp, sse};
use crate::engine::format::{FIXED_HEADER_LEN, Header};
use crate::engine::{Opener, Protection, SealSpec};
use crate::keys::audit::now_unix;
use crate::store::{ObjectMeta, StoredObject};

/// Largest object accepted in one PUT (S3's limit).
pub const MAX_PUT: u64 = 5 << 30;

pub(super) fn last_modified(meta: &ObjectMeta) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_secs(meta.last_modified))
}

fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user.is_empty()).then(|| meta.user.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub(super) async fn put_object(
    s: &CipherS3,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let caller = CipherS3::caller(&req)?;
    let input = req.input;
    let bucket = s.owned_bucket(&input.bucket, &caller)?;
    if input.server_side_encryption.is_some() {
        return Err(s3_error!(NotImplemented, "SSE-KMS uploads are not available yet"));
    }
    let sse_c = sse::parse(
        [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5],
        &input.bucket,
        &input.key,
    )?;
    let length = match input.content_length {
        Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "negative Content-Length")),
        Some(n) if n as u64 > MAX_PUT => {
            return Err(s3_error!(EntityTooLarge, "objects above 5 GiB need multipart"));
        }
        Some(n) => Some(n as u64),
        None => None,
    };
    let body = input.body.ok_or_else(|| s3_error!(IncompleteBody, "the request has no body"))?;
    let writer = s.store.put(&input.bucket, &input.key).map_err(error::store)?;
    let mut attributes = BTreeMap::new();
    let (protection, etag, key_md5) = protection(s, &input.bucket, &bucket, sse_c, &mut attributes)?;
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
    let spec = SealSpec::new(protection, s.backend);
    let meta = body::put(body, writer, spec, length, meta).await?;
    let mut response = S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(meta.etag)),
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
/// the bucket's SSE-KP root key, else AONT-RS. Records it in `attributes`; returns the
/// protection, a preset ETag (random for SSE-C, else empty: the MD5 is computed) and the
/// SSE-C key MD5 to echo.
pub(super) fn protection(
    s: &CipherS3,
    bucket_name: &str,
    bucket: &crate::store::BucketMeta,
    sse_c: Option<sse::SseC>,
    attributes: &mut BTreeMap<String, String>,
) -> S3Result<(Protection, String, Option<String>)> {
    Ok(match (sse_c, kp::bucket_root(bucket)) {
        (Some(k), _) => {
            attributes.insert(sse::PROTECTION.to_owned(), "sse-c".to_owned());
            attributes.insert(sse::KEY_MD5.to_owned(), k.md5.clone());
            (Protection::SseC(k.key), sse::random_etag(), Some(k.md5))
        }
        (None, Some(crn)) => {
            let (key, crn) = kp::object_key(s, bucket_name, crn)?;
            attributes.insert(sse::PROTECTION.to_owned(), "sse-kp".to_owned());
            attributes.insert(kp::BUCKET_ROOT.to_owned(), crn.clone());
            (Protection::SseKp { key, crn }, String::new(), None)
        }
        (None, None) => {
            attributes.insert(sse::PROTECTION.to_owned(), "aont".to_owned());
            (Protection::Aont, String::new(), None)
        }
    })
}

/// How a read of a stored object is keyed.
pub(super) struct ReadKey {
    /// The key to open it with: the SSE-C key sent, or the SSE-KP bucket key.
    pub key: Option<crate::engine::CustomerKey>,
    /// The SSE-C key MD5 to echo.
    pub sse_c_md5: Option<String>,
    /// The SSE-KP root key to name.
    pub kp_root: Option<String>,
}

impl ReadKey {
    /// Checks the SSE-C headers sent (`alg`, `key`, `md5`) against the object's
    /// protection and fetches the bucket key of an SSE-KP object.
    pub(super) fn resolve(
        s: &CipherS3,
        bucket: &str,
        object: &str,
        meta: &ObjectMeta,
        sent: [&Option<String>; 3],
    ) -> S3Result<Self> {
        let sent = sse::parse(sent, bucket, object)?;
        let sse_c = sse::for_read(meta, sent)?;
        let kp_root = meta.attributes.get(kp::BUCKET_ROOT).cloned();
        Ok(match (sse_c, &kp_root) {
            (Some(k), _) => Self { key: Some(k.key), sse_c_md5: Some(k.md5), kp_root },
            (None, Some(crn)) => {
                Self { key: Some(kp::object_key(s, bucket, crn)?.0), sse_c_md5: None, kp_root }
            }
            (None, None) => Self { key: None, sse_c_md5: None, kp_root: None },
        })
    }

    /// The SSE-C algorithm to echo.
    pub(super) fn sse_c_algorithm(&self) -> Option<String> {
        self.sse_c_md5.as_ref().map(|_| "AES256".to_owned())
    }

    /// Adds the SSE-KP response headers.
    pub(super) fn name_key(&self, headers: &mut http::HeaderMap) {
        if let Some(crn) = &self.kp_root {
            kp::name_key(headers, crn);
        }
    }
}

/// Opens the stored object's header and body layout with `key`.
pub(super) fn open_with(
    s: &CipherS3,
    object: &StoredObject,
    key: Option<&crate::engine::CustomerKey>,
) -> S3Result<(Opener, crate::engine::Layout)> {
    let mut fixed = vec![0u8; FIXED_HEADER_LEN];
    let n = object.body.read_at(&mut fixed, 0).map_err(|e| error::internal(&e))?;
    fixed.truncate(n);
    let total = Header::total_len(&fixed).map_err(|e| error::pipeline(e.into()))?;
    let mut header = vec![0u8; total];
    let n = object.body.read_at(&mut header, 0).map_err(|e| error::internal(&e))?;
    header.truncate(n);
    let opener = Opener::new(&header, key, s.backend).map_err(|e| match e {
        crate::engine::Error::WrongKey => {
            s3_error!(AccessDenied, "the customer key does not match the object's")
        }
        other => error::pipeline(other.into()),
    })?;
    let layout = opener.layout(object.body.len()).map_err(|e| error::pipeline(e.into()))?;
    Ok((opener, layout))
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
    let sent = [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5];
    let read = ReadKey::resolve(s, &input.bucket, &input.key, &meta, sent)?;
    let (opener, layout) = open_with(s, &object, read.key.as_ref())?;
    let size = layout.plaintext_len();
    let (first, last, content_range) = match &input.range {
        Some(r) => {
            let span = r
                .check(size)
                .map_err(|_| s3_error!(InvalidRange, "the requested range is not satisfiable"))?;
            let header = format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1));
            (span.start, span.end, Some(header))
        }
        None => (0, size, None),
    };
    let blob = body::get(object, opener, layout, first, last);
    let output = GetObjectOutput {
        body: Some(blob),
        content_length: Some((last - first) as i64),
        content_range,
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
    // refuses HEAD too.
    let sent = [&input.sse_customer_algorithm, &input.sse_customer_key, &input.sse_customer_key_md5];
    let read = ReadKey::resolve(s, &input.bucket, &input.key, &meta, sent)?;
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
