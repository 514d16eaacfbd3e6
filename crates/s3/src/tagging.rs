//! Object tagging: PutObjectTagging, GetObjectTagging, DeleteObjectTagging, and the
//! `x-amz-tagging` header of PutObject, CopyObject (with `x-amz-tagging-directive`) and
//! CreateMultipartUpload, within AWS's limits (more than 10 tags: 400 BadRequest; a bad key
//! or value: 400 InvalidTag). Tags are served without the object's key, as S3 does, so they
//! are kept in clear ([`object::tags`]).

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::access::Owned;
use super::service::CipherS3;
use super::{error, versioning};
use object::{TagError, TagSet};

/// A tag set refused, as AWS answers.
fn refused(e: TagError) -> S3Error {
    match e {
        TagError::TooMany(_) => {
            let mut err = S3Error::with_message(S3ErrorCode::Custom("BadRequest".into()), e.to_string());
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            err
        }
        TagError::Invalid(why) => S3Error::with_message(S3ErrorCode::InvalidTag, why),
    }
}

/// The tags of an `x-amz-tagging` header (none if absent).
pub(super) fn from_header(sent: Option<&str>) -> S3Result<TagSet> {
    sent.map_or_else(|| Ok(TagSet::default()), |q| TagSet::from_query(q).map_err(refused))
}

/// The `x-amz-tagging-count` to answer: none when there are no tags, as AWS.
pub(super) fn count(tags: &TagSet) -> Option<i32> {
    (!tags.is_empty()).then(|| i32::try_from(tags.len()).unwrap_or(i32::MAX))
}

pub(super) async fn put(
    s: &CipherS3,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let Owned { input, .. } = s.owned(req).await?;
    let pairs = input
        .tagging
        .tag_set
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect();
    let tags = TagSet::new(pairs).map_err(refused)?;
    let version_id = s
        .objects
        .set_tags(&input.bucket, &input.key, input.version_id.as_deref(), &tags)
        .await
        .map_err(error::object)?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id: version_id.or_else(|| Some("null".into())) }))
}

pub(super) async fn get(
    s: &CipherS3,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let Owned { input, .. } = s.owned(req).await?;
    let object = versioning::open(s, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let version_id = object.version_id().or_else(|| Some("null".into()));
    let tag_set = object
        .tags()
        .pairs()
        .iter()
        .map(|(k, v)| Tag { key: Some(k.clone()), value: Some(v.clone()) })
        .collect();
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set, version_id }))
}

pub(super) async fn delete(
    s: &CipherS3,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let Owned { input, .. } = s.owned(req).await?;
    let version_id = s
        .objects
        .set_tags(&input.bucket, &input.key, input.version_id.as_deref(), &TagSet::default())
        .await
        .map_err(error::object)?;
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id: version_id.or_else(|| Some("null".into())) }))
}
