//! Bucket lifecycle: PutBucketLifecycleConfiguration (the XML read into drafts, validated
//! by `object::lifecycle` as AWS validates it), GetBucketLifecycleConfiguration (the rules
//! in the shape they were sent), DeleteBucketLifecycle, and the `x-amz-expiration` header
//! of an object the rules will expire.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::access::Owned;
use super::service::CipherS3;
use super::{conditions, error, headers};
use object::lifecycle::{
    AndDraft, Expiration, ExpirationDraft, Filter, FilterDraft, Lifecycle, LifecycleError, NoncurrentDraft,
    NoncurrentTransitionDraft, Rule, RuleDraft, TransitionDraft, When,
};
use object::{BucketRecord, ObjectRecord, TagSet};

pub(super) async fn put(
    s: &CipherS3,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let Owned { input, bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    let Some(config) = input.lifecycle_configuration else {
        return Err(s3_error!(MalformedXML, "the request has no LifecycleConfiguration"));
    };
    let drafts = config.rules.into_iter().map(draft).collect();
    let lifecycle = Lifecycle::new(drafts, object::new_upload_id).map_err(refusal)?;
    bucket.lifecycle = Some(lifecycle);
    s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
}

pub(super) async fn get(
    s: &CipherS3,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let Owned { bucket, .. } = s.owned(req).await?;
    let Some(lifecycle) = &bucket.lifecycle else {
        let mut e = S3Error::with_message(
            S3ErrorCode::NoSuchLifecycleConfiguration,
            "The lifecycle configuration does not exist",
        );
        e.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(e);
    };
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(lifecycle.rules.iter().map(rendered).collect()),
        transition_default_minimum_object_size: None,
    }))
}

pub(super) async fn delete(
    s: &CipherS3,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    let Owned { bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    if bucket.lifecycle.take().is_some() {
        s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    }
    Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
}

/// The `x-amz-expiration` of the current version `record` in `bucket` (with `tags`, its
/// tags now), if a rule will expire it: `expiry-date="<HTTP date>", rule-id="<id>"`.
pub(super) fn expiration(
    s: &CipherS3,
    bucket: &BucketRecord,
    record: &ObjectRecord,
    tags: &TagSet,
) -> Option<String> {
    let lifecycle = bucket.lifecycle.as_ref()?;
    if record.is_delete_marker() {
        return None;
    }
    let e = lifecycle.expiry(&record.key, record.size, tags, record.last_modified, s.lifecycle_day)?;
    let mut date = Vec::new();
    headers::last_modified_at(e.at).format(TimestampFormat::HttpDate, &mut date).ok()?;
    let rule = e.rule.replace('\\', "\\\\").replace('"', "\\\"");
    Some(format!("expiry-date=\"{}\", rule-id=\"{rule}\"", String::from_utf8_lossy(&date)))
}

fn refusal(e: LifecycleError) -> S3Error {
    let code = match &e {
        LifecycleError::Malformed(_) => S3ErrorCode::MalformedXML,
        LifecycleError::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
        LifecycleError::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
        LifecycleError::InvalidStorageClass(_) => S3ErrorCode::InvalidStorageClass,
    };
    S3Error::with_message(code, e.to_string())
}

fn tag(t: Tag) -> (String, String) {
    (t.key.unwrap_or_default(), t.value.unwrap_or_default())
}

/// A rule as sent, element by element.
fn draft(r: LifecycleRule) -> RuleDraft {
    let filter = r.filter.map(|f| FilterDraft {
        prefix: f.prefix,
        tag: f.tag.map(tag),
        greater_than: f.object_size_greater_than,
        less_than: f.object_size_less_than,
        and: f.and.map(|a| AndDraft {
            prefix: a.prefix,
            tags: a.tags.unwrap_or_default().into_iter().map(tag).collect(),
            greater_than: a.object_size_greater_than,
            less_than: a.object_size_less_than,
        }),
    });
    let transitions = r
        .transitions
        .unwrap_or_default()
        .into_iter()
        .map(|t| TransitionDraft {
            days: t.days.map(i64::from),
            date: t.date.as_ref().map(conditions::unix),
            class: t.storage_class.map(|c| c.as_str().to_owned()),
        })
        .collect();
    let noncurrent_transitions = r
        .noncurrent_version_transitions
        .unwrap_or_default()
        .into_iter()
        .map(|t| NoncurrentTransitionDraft {
            days: t.noncurrent_days.map(i64::from),
            newer: t.newer_noncurrent_versions.map(i64::from),
            class: t.storage_class.map(|c| c.as_str().to_owned()),
        })
        .collect();
    RuleDraft {
        id: r.id,
        status: r.status.as_str().to_owned(),
        prefix: r.prefix,
        filter,
        expiration: r.expiration.map(|e| ExpirationDraft {
            days: e.days.map(i64::from),
            date: e.date.as_ref().map(conditions::unix),
            delete_marker: e.expired_object_delete_marker,
        }),
        noncurrent: r.noncurrent_version_expiration.map(|n| NoncurrentDraft {
            days: n.noncurrent_days.map(i64::from),
            newer: n.newer_noncurrent_versions.map(i64::from),
        }),
        abort_after: r.abort_incomplete_multipart_upload.map(|a| a.days_after_initiation.map(i64::from)),
        transitions,
        noncurrent_transitions,
    }
}

fn dto_tag((key, value): &(String, String)) -> Tag {
    Tag { key: Some(key.clone()), value: Some(value.clone()) }
}

fn days(d: u32) -> i32 {
    i32::try_from(d).unwrap_or(i32::MAX)
}

fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A rule as GetBucketLifecycleConfiguration shows it.
fn rendered(r: &Rule) -> LifecycleRule {
    let mut filter = LifecycleRuleFilter::default();
    let mut prefix = None;
    match &r.filter {
        Filter::All => {}
        Filter::Legacy(p) => prefix = Some(p.clone()),
        Filter::Prefix(p) => filter.prefix = Some(p.clone()),
        Filter::Tag(k, v) => filter.tag = Some(dto_tag(&(k.clone(), v.clone()))),
        Filter::GreaterThan(n) => filter.object_size_greater_than = Some(size(*n)),
        Filter::LessThan(n) => filter.object_size_less_than = Some(size(*n)),
        Filter::And(a) => {
            filter.and = Some(LifecycleRuleAndOperator {
                prefix: a.prefix.clone(),
                tags: (!a.tags.is_empty()).then(|| a.tags.iter().map(dto_tag).collect()),
                object_size_greater_than: a.greater_than.map(size),
                object_size_less_than: a.less_than.map(size),
            });
        }
    }
    let expiration = r.expiration.map(|e| match e {
        Expiration::Days(d) => LifecycleExpiration { days: Some(days(d)), ..Default::default() },
        Expiration::Date(at) => {
            LifecycleExpiration { date: Some(headers::last_modified_at(at)), ..Default::default() }
        }
        Expiration::DeleteMarker => {
            LifecycleExpiration { expired_object_delete_marker: Some(true), ..Default::default() }
        }
    });
    LifecycleRule {
        id: Some(r.id.clone()),
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter: (!matches!(r.filter, Filter::Legacy(_))).then_some(filter),
        prefix,
        expiration,
        noncurrent_version_expiration: r.noncurrent.map(|n| NoncurrentVersionExpiration {
            noncurrent_days: Some(days(n.days)),
            newer_noncurrent_versions: n.newer.map(days),
        }),
        abort_incomplete_multipart_upload: r
            .abort_after_days
            .map(|d| AbortIncompleteMultipartUpload { days_after_initiation: Some(days(d)) }),
        transitions: (!r.transitions.is_empty()).then(|| {
            r.transitions
                .iter()
                .map(|t| s3s::dto::Transition {
                    days: match t.when {
                        When::Days(d) => Some(days(d)),
                        When::Date(_) => None,
                    },
                    date: match t.when {
                        When::Date(at) => Some(headers::last_modified_at(at)),
                        When::Days(_) => None,
                    },
                    storage_class: Some(TransitionStorageClass::from(t.class.clone())),
                })
                .collect()
        }),
        noncurrent_version_transitions: (!r.noncurrent_transitions.is_empty()).then(|| {
            r.noncurrent_transitions
                .iter()
                .map(|t| NoncurrentVersionTransition {
                    noncurrent_days: Some(days(t.days)),
                    newer_noncurrent_versions: t.newer.map(days),
                    storage_class: Some(TransitionStorageClass::from(t.class.clone())),
                })
                .collect()
        }),
    }
}
