//! Bucket versioning: PutBucketVersioning and GetBucketVersioning, and the rules every
//! object operation follows once a bucket keeps versions: which version id a response
//! names (`x-amz-version-id`), and how a delete marker answers a GET or HEAD (404 when it
//! is the current version, 405 when named by its id, both with `x-amz-delete-marker`).

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::access::Owned;
use super::error;
use super::service::CipherS3;
use object::Versioning;
use object::objects::Fetched;

pub(super) async fn put(
    s: &CipherS3,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let Owned { input, bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    let config = input.versioning_configuration;
    if config.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
        return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
    }
    let wanted = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        Some(other) => {
            return Err(s3_error!(MalformedXML, "versioning status {other:?}: Enabled or Suspended"));
        }
        // Nothing to change (AWS accepts an empty configuration).
        None => return Ok(S3Response::new(PutBucketVersioningOutput::default())),
    };
    if bucket.object_lock.is_some() && wanted != Versioning::Enabled {
        let mut e = S3Error::with_message(
            S3ErrorCode::InvalidBucketState,
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
        );
        e.set_status_code(http::StatusCode::CONFLICT);
        return Err(e);
    }
    if bucket.versioning != wanted {
        bucket.versioning = wanted;
        s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    }
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub(super) async fn get(
    s: &CipherS3,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let Owned { bucket, .. } = s.owned(req).await?;
    let status = match bucket.versioning {
        Versioning::Off => None,
        Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
        Versioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
    };
    Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
}

/// The `x-amz-version-id` a response about an object names: its version id (`null` for
/// the null version) in a bucket that keeps or kept versions, none in one that never did
/// (an object read back names the version it was written as, if any).
pub(super) fn version_id(
    versioning: Versioning,
    record_version: Option<&object::VersionId>,
) -> Option<String> {
    match (versioning, record_version) {
        (_, Some(v)) => Some(v.to_string()),
        (Versioning::Off, None) => None,
        (_, None) => Some(object::versions::NULL.to_owned()),
    }
}

/// The answer to GET or HEAD of a delete marker: 404 NoSuchKey when it is the key's
/// current version (`named` false), 405 MethodNotAllowed when the request named it.
pub(super) fn delete_marker(object: &Fetched, named: bool) -> S3Error {
    let mut e = if named {
        let mut e =
            S3Error::with_message(S3ErrorCode::MethodNotAllowed, "the specified version is a delete marker");
        e.set_status_code(http::StatusCode::METHOD_NOT_ALLOWED);
        e
    } else {
        s3_error!(NoSuchKey, "the specified key does not exist")
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
    if let Some(id) = object.version_id().and_then(|v| http::HeaderValue::from_str(&v).ok()) {
        headers.insert("x-amz-version-id", id);
    }
    e.set_headers(headers);
    e
}

/// Opens the object a GET, HEAD or copy names: the version `version_id` if given, else
/// the current one; a delete marker answers as S3 does ([`delete_marker`]).
pub(super) async fn open(
    s: &CipherS3,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<Fetched> {
    let object = match version_id {
        Some(v) => s.objects.get_version(bucket, key, v).await,
        None => s.objects.get(bucket, key).await,
    }
    .map_err(error::object)?;
    if object.is_delete_marker() {
        return Err(delete_marker(&object, version_id.is_some()));
    }
    Ok(object)
}
