//! S3 Object Lock: Put/GetObjectLockConfiguration (a bucket's default retention),
//! Put/GetObjectRetention and Put/GetObjectLegalHold (one version's), the
//! `x-amz-object-lock-*` headers of PutObject, CopyObject and CreateMultipartUpload (and
//! of GET and HEAD answers), and `x-amz-bypass-governance-retention` on deletes. The
//! rules are [`object::lock`]'s; Object Lock is enabled at CreateBucket
//! (`x-amz-bucket-object-lock-enabled`) or on a versioned bucket, for good, and the root
//! keys bound to such a bucket can then be neither deleted nor disabled
//! ([`keys::KeyManager::retain_bucket`]).

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::access::Owned;
use super::service::CipherS3;
use super::{error, versioning};
use object::amend::Guard;
use object::lock::{self, BucketLock, Lock, Mode, Period, Retention};
use object::{BucketRecord, Versioning};

fn custom(code: &str, status: http::StatusCode, message: impl Into<String>) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.to_owned().into()), message.into());
    e.set_status_code(status);
    e
}

/// 400 InvalidRequest: the bucket has no Object Lock.
fn not_enabled() -> S3Error {
    s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration")
}

/// 404 NoSuchObjectLockConfiguration: the version has no retention, or no legal hold was
/// ever set on it.
fn no_lock() -> S3Error {
    custom(
        "NoSuchObjectLockConfiguration",
        http::StatusCode::NOT_FOUND,
        "The specified object does not have a ObjectLock configuration",
    )
}

pub(crate) fn millis(t: &Timestamp) -> u64 {
    let at = time::OffsetDateTime::from(t.clone());
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

fn mode_of(name: &str) -> S3Result<Mode> {
    Mode::from_s3(name).ok_or_else(|| s3_error!(MalformedXML, "unknown Object Lock mode {name:?}"))
}

/// A retention asked for: its mode and a date in the future.
fn retention(mode: Option<&str>, until: Option<&Timestamp>, now_ms: u64) -> S3Result<Option<Retention>> {
    match (mode, until) {
        (None, None) => Ok(None),
        (Some(m), Some(u)) => {
            let mode = Mode::from_s3(m).ok_or_else(|| {
                s3_error!(InvalidArgument, "Unknown wormMode directive {m:?}: GOVERNANCE or COMPLIANCE")
            })?;
            let until_ms = millis(u);
            if until_ms <= now_ms {
                return Err(s3_error!(InvalidArgument, "The retain until date must be in the future!"));
            }
            Ok(Some(Retention { mode, until_ms }))
        }
        _ => Err(s3_error!(
            InvalidArgument,
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
        )),
    }
}

fn legal_hold(status: &str) -> S3Result<bool> {
    match status {
        ObjectLockLegalHoldStatus::ON => Ok(true),
        ObjectLockLegalHoldStatus::OFF => Ok(false),
        other => Err(s3_error!(MalformedXML, "legal hold status {other:?}: ON or OFF")),
    }
}

/// The lock a write's `x-amz-object-lock-*` headers ask for (refused in a bucket without
/// Object Lock); [`with_default`] completes it when the version is made.
pub(super) fn asked(bucket: &BucketRecord, request: Asked<'_>) -> S3Result<Lock> {
    let Asked { mode, until, hold } = request;
    let any = mode.is_some() || until.is_some() || hold.is_some();
    if bucket.object_lock.is_none() {
        return match any {
            true => Err(s3_error!(InvalidRequest, "Bucket is missing ObjectLockConfiguration")),
            false => Ok(Lock::default()),
        };
    }
    let now = base::clock::now_unix_ms();
    let retention = retention(mode.map(ObjectLockMode::as_str), until, now)?;
    let legal_hold = hold.map(|h| legal_hold(h.as_str())).transpose()?;
    Ok(Lock { retention, legal_hold })
}

/// The lock of a version made now: as `asked`, with the bucket's default retention if it
/// asked for none.
pub(super) fn with_default(bucket: &BucketRecord, asked: Lock) -> Lock {
    let default = bucket.object_lock.and_then(|c| c.default);
    let retention = asked.retention.or_else(|| default.map(|d| d.from(base::clock::now_unix_ms())));
    Lock { retention, ..asked }
}

/// The lock a new version gets from a write's `x-amz-object-lock-*` headers, else from the
/// bucket's default retention.
pub(super) fn for_write(bucket: &BucketRecord, request: Asked<'_>) -> S3Result<Lock> {
    Ok(with_default(bucket, asked(bucket, request)?))
}

/// The Object Lock headers of a write (PutObject, CopyObject, CreateMultipartUpload):
/// mode, retain-until date, legal hold.
#[derive(Clone, Copy)]
pub(crate) struct Asked<'a> {
    pub(crate) mode: Option<&'a ObjectLockMode>,
    pub(crate) until: Option<&'a Timestamp>,
    pub(crate) hold: Option<&'a ObjectLockLegalHoldStatus>,
}

/// The [`Asked`] lock of a write's s3s input (the fields all three carry).
macro_rules! asked_of {
    ($input:expr) => {
        $crate::object_lock::Asked {
            mode: $input.object_lock_mode.as_ref(),
            until: $input.object_lock_retain_until_date.as_ref(),
            hold: $input.object_lock_legal_hold_status.as_ref(),
        }
    };
}
pub(crate) use asked_of;

/// What GET and HEAD say of a version's lock: mode, retain-until date, legal hold.
pub(super) fn shown(
    lock: &Lock,
) -> (Option<ObjectLockMode>, Option<Timestamp>, Option<ObjectLockLegalHoldStatus>) {
    let mode = lock.retention.map(|r| ObjectLockMode::from(r.mode.as_s3().to_owned()));
    let until = lock.retention.map(|r| timestamp(r.until_ms));
    let hold = lock.legal_hold.map(|on| {
        ObjectLockLegalHoldStatus::from_static(match on {
            true => ObjectLockLegalHoldStatus::ON,
            false => ObjectLockLegalHoldStatus::OFF,
        })
    });
    (mode, until, hold)
}

/// How a removal in `bucket` meets Object Lock.
pub(super) fn guard(bucket: &BucketRecord, bypass: Option<bool>) -> Option<Guard> {
    bucket.object_lock.map(|_| Guard { bypass: bypass.unwrap_or(false) })
}

/// Turns Object Lock on for a bucket being made or changed: versioning on, and its root
/// keys retained (before the record says so, so that no key is deleted meanwhile).
pub(super) fn enable(s: &CipherS3, bucket: &mut BucketRecord, config: BucketLock) -> S3Result<()> {
    if let Some(m) = s.keys() {
        m.retain_bucket(&bucket.name).map_err(error::keys)?;
    }
    bucket.versioning = Versioning::Enabled;
    bucket.object_lock = Some(config);
    Ok(())
}

fn default_retention(rule: Option<ObjectLockRule>) -> S3Result<Option<lock::DefaultRetention>> {
    let Some(d) = rule.and_then(|r| r.default_retention) else { return Ok(None) };
    let mode = mode_of(d.mode.as_ref().map(ObjectLockRetentionMode::as_str).unwrap_or_default())?;
    let period = match (d.days, d.years) {
        (Some(n), None) => Period::Days(u32::try_from(n).unwrap_or(0)),
        (None, Some(n)) => Period::Years(u32::try_from(n).unwrap_or(0)),
        _ => return Err(s3_error!(MalformedXML, "a default retention has Days or Years, not both")),
    };
    if period.millis().is_none() {
        return Err(custom(
            "InvalidRetentionPeriod",
            http::StatusCode::BAD_REQUEST,
            "Default retention period must be a positive integer value (at most 100 years)",
        ));
    }
    Ok(Some(lock::DefaultRetention { mode, period }))
}

pub(super) async fn put_configuration(
    s: &CipherS3,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let Owned { input, bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    let config = input.object_lock_configuration.unwrap_or_default();
    if config.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED)
    {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
    }
    let wanted = BucketLock { default: default_retention(config.rule)? };
    if bucket.object_lock.is_none() {
        if bucket.versioning != Versioning::Enabled {
            return Err(custom(
                "InvalidBucketState",
                http::StatusCode::CONFLICT,
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
            ));
        }
        enable(s, &mut bucket, wanted)?;
    }
    bucket.object_lock = Some(wanted);
    s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub(super) async fn get_configuration(
    s: &CipherS3,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let Owned { bucket, .. } = s.owned(req).await?;
    let Some(config) = bucket.object_lock else {
        return Err(custom(
            "ObjectLockConfigurationNotFoundError",
            http::StatusCode::NOT_FOUND,
            "Object Lock configuration does not exist for this bucket",
        ));
    };
    let rule = config.default.map(|d| {
        let (days, years) = match d.period {
            Period::Days(n) => (Some(i32::try_from(n).unwrap_or(i32::MAX)), None),
            Period::Years(n) => (None, Some(i32::try_from(n).unwrap_or(i32::MAX))),
        };
        let mode = Some(ObjectLockRetentionMode::from(d.mode.as_s3().to_owned()));
        ObjectLockRule { default_retention: Some(DefaultRetention { days, mode, years }) }
    });
    let object_lock_configuration = Some(ObjectLockConfiguration {
        object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
        rule,
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput { object_lock_configuration }))
}

/// Refuses a request on a bucket without Object Lock.
fn require_lock(bucket: &BucketRecord) -> S3Result<()> {
    match bucket.object_lock {
        Some(_) => Ok(()),
        None => Err(not_enabled()),
    }
}

pub(super) async fn put_retention(
    s: &CipherS3,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let Owned { mut asker, input, bucket } = s.owned(req).await?;
    require_lock(&bucket)?;
    let object = (input.key.as_str(), input.version_id.as_deref());
    s.check_bypass(&mut asker, &bucket, Some(object), input.bypass_governance_retention).await?;
    let asked = input.retention.unwrap_or_default();
    let mode = asked.mode.as_ref().map(ObjectLockRetentionMode::as_str);
    // In the body a mode that is none of the two is a malformed document (in headers, an
    // invalid argument).
    mode.map(mode_of).transpose()?;
    let new = retention(mode, asked.retain_until_date.as_ref(), base::clock::now_unix_ms())?;
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    s.objects
        .set_retention(&input.bucket, &input.key, input.version_id.as_deref(), new, bypass)
        .await
        .map_err(error::object)?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub(super) async fn get_retention(
    s: &CipherS3,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let Owned { input, bucket, .. } = s.owned(req).await?;
    require_lock(&bucket)?;
    let object = versioning::open(s, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let Some(r) = object.lock().retention else { return Err(no_lock()) };
    let retention = ObjectLockRetention {
        mode: Some(ObjectLockRetentionMode::from(r.mode.as_s3().to_owned())),
        retain_until_date: Some(timestamp(r.until_ms)),
    };
    Ok(S3Response::new(GetObjectRetentionOutput { retention: Some(retention) }))
}

pub(super) async fn put_legal_hold(
    s: &CipherS3,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let Owned { input, bucket, .. } = s.owned(req).await?;
    require_lock(&bucket)?;
    let status = input.legal_hold.and_then(|h| h.status);
    let on = legal_hold(status.as_ref().map(ObjectLockLegalHoldStatus::as_str).unwrap_or_default())?;
    s.objects
        .set_legal_hold(&input.bucket, &input.key, input.version_id.as_deref(), on)
        .await
        .map_err(error::object)?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(super) async fn get_legal_hold(
    s: &CipherS3,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let Owned { input, bucket, .. } = s.owned(req).await?;
    require_lock(&bucket)?;
    let object = versioning::open(s, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let status = match object.lock().legal_hold {
        Some(true) => ObjectLockLegalHoldStatus::ON,
        Some(false) => ObjectLockLegalHoldStatus::OFF,
        None => return Err(no_lock()),
    };
    let legal_hold =
        Some(ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from_static(status)) });
    Ok(S3Response::new(GetObjectLegalHoldOutput { legal_hold }))
}
