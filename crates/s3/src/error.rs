//! Turning object layer, store and pipeline errors into S3 errors: clients see the S3 code they expect,
//! and internal details (paths, OS errors) go to the log, not the response.

use std::sync::atomic::{AtomicU64, Ordering};

use s3s::{S3Error, S3ErrorCode, s3_error};

use http::{HeaderMap, HeaderValue};
use keys::KeysError;
use object::StoreError;
use object::complete::PartsError;
use object::{ObjectError, ProtectionError};
use pipeline::PipelineError;

/// An object layer error as an S3 error.
pub(crate) fn object(e: ObjectError) -> S3Error {
    match e {
        ObjectError::Store(e) => store(e),
        ObjectError::Pipeline(e) => pipeline(e),
        ObjectError::Keys(e) => keys(e),
        ObjectError::Protection(e) => protection(e),
        integrity_failure @ ObjectError::Integrity(_) => integrity(&integrity_failure),
        ObjectError::InvalidVersion(v) => s3_error!(InvalidArgument, "invalid version id {v:?}"),
        ObjectError::Locked(why) => s3_error!(AccessDenied, "{why}"),
        ObjectError::DeleteMarker { named: true } => {
            let mut e = S3Error::with_message(
                S3ErrorCode::MethodNotAllowed,
                "the specified version is a delete marker",
            );
            e.set_status_code(http::StatusCode::METHOD_NOT_ALLOWED);
            e
        }
        ObjectError::DeleteMarker { named: false } => {
            s3_error!(NoSuchKey, "the specified key does not exist")
        }
        other @ ObjectError::Encode(_) => internal(&other),
    }
}

/// A key layer error as the S3 error a client should see.
pub(crate) fn keys(e: KeysError) -> S3Error {
    match e {
        KeysError::KeySuspended(k) => {
            S3Error::with_message(S3ErrorCode::AccessDenied, format!("root key {k} is suspended (disabled)"))
        }
        KeysError::KeyDestroyed(k) => S3Error::with_message(
            S3ErrorCode::AccessDenied,
            format!("root key {k} was deleted: the data it protected can no longer be read or written"),
        ),
        KeysError::KeyNotFound(_) => s3_error!(InvalidArgument, "The Key CRN could not be found"),
        KeysError::Hsm { .. }
        | KeysError::Module { .. }
        | KeysError::TokenNotFound(_)
        | KeysError::BadPin(_)
        | KeysError::PinLocked(_)
        | KeysError::KeyNotInHsm(_)
        | KeysError::Unavailable(_) => {
            tracing::error!(error = %e, "key service failure");
            let mut err = s3_error!(
                ServiceUnavailable,
                "the key service (HSM or key state) is unavailable; retry later"
            );
            let mut headers = HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
            err.set_headers(headers);
            err
        }
        other => internal(&other),
    }
}

/// A protection that cannot be had as the S3 error a client should see.
pub(crate) fn protection(e: ProtectionError) -> S3Error {
    match e {
        ProtectionError::Keys(e) => keys(e),
        ProtectionError::NoKeyManager => S3Error::with_message(S3ErrorCode::NotImplemented, e.to_string()),
        ProtectionError::KmsKeyNotFound(_) => {
            let mut err =
                S3Error::with_message(S3ErrorCode::Custom("KMS.NotFoundException".into()), e.to_string());
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            err
        }
        ProtectionError::Both
        | ProtectionError::KeyIdWithoutKms
        | ProtectionError::KeyIdWithSseS3
        | ProtectionError::SseKpBucket { .. }
        | ProtectionError::NoHsm(_)
        | ProtectionError::Dsse
        | ProtectionError::Unsupported(_) => {
            S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string())
        }
    }
}

/// Parts a CompleteMultipartUpload cannot complete with, as S3 names the fault.
pub(crate) fn parts(e: PartsError) -> S3Error {
    let code = match e {
        PartsError::NoParts => S3ErrorCode::MalformedXML,
        PartsError::Order => S3ErrorCode::InvalidPartOrder,
        PartsError::Missing(_) => S3ErrorCode::InvalidPart,
        PartsError::TooSmall { .. } => S3ErrorCode::EntityTooSmall,
    };
    S3Error::with_message(code, e.to_string())
}

/// A store error as an S3 error.
pub(crate) fn store(e: StoreError) -> S3Error {
    match &e {
        StoreError::NoSuchBucket(b) => s3_error!(NoSuchBucket, "no bucket named {b}"),
        StoreError::BucketExists(b) => s3_error!(BucketAlreadyExists, "bucket {b} already exists"),
        StoreError::BucketNotEmpty(b) => s3_error!(BucketNotEmpty, "bucket {b} is not empty"),
        StoreError::BucketChanged(b) => s3_error!(
            OperationAborted,
            "another change to bucket {b}'s configuration was made at the same time; retry"
        ),
        StoreError::NoSuchKey { .. } => s3_error!(NoSuchKey, "the specified key does not exist"),
        StoreError::NoSuchVersion { .. } => s3_error!(NoSuchVersion, "the specified version does not exist"),
        StoreError::NoSuchUpload(_) => {
            s3_error!(NoSuchUpload, "the specified multipart upload does not exist")
        }
        StoreError::InvalidBucketName(b) => s3_error!(InvalidBucketName, "invalid bucket name {b}"),
        StoreError::InvalidKey(why) => s3_error!(KeyTooLongError, "{why}"),
        corrupt @ StoreError::Corrupt { .. } => integrity(&corrupt),
        StoreError::Unavailable(_) => unavailable(&e),
        StoreError::Io { source, .. } if out_of_space(source) => storage_full(&e),
        other => internal(&other),
    }
}

/// A pipeline error as an S3 error.
pub(crate) fn pipeline(e: PipelineError) -> S3Error {
    match e {
        PipelineError::Engine(engine::Error::RangeNotSatisfiable { .. }) => {
            s3_error!(InvalidRange, "the requested range is not satisfiable")
        }
        PipelineError::InputChanged { expected, got } => S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            format!("the body had {got} bytes, Content-Length said {expected}"),
        ),
        PipelineError::Engine(
            engine::Error::Corrupted { .. }
            | engine::Error::Truncated { .. }
            | engine::Error::TrailingData { .. }
            | engine::Error::EnvelopeCorrupted
            | engine::Error::NotCipherstore
            | engine::Error::MalformedHeader(_)
            | engine::Error::UnsupportedVersion(_)
            | engine::Error::UnsupportedMode(_)
            | engine::Error::KeyRequired
            | engine::Error::KeyNotExpected,
        ) => integrity(&e),
        PipelineError::Io { ref source, .. } if out_of_space(source) => storage_full(&e),
        PipelineError::Io { ref source, .. } if store_error(source).is_some() => match store_error(source) {
            Some(inner @ StoreError::Unavailable(_)) => unavailable(inner),
            Some(inner) => integrity(inner),
            None => internal(&e),
        },
        other => internal(&other),
    }
}

/// The store error a store's reader carried inside an I/O error.
fn store_error(e: &std::io::Error) -> Option<&StoreError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<StoreError>())
}

/// Whether an I/O error says the filesystem (or the user's quota) is full.
fn out_of_space(e: &std::io::Error) -> bool {
    const EDQUOT: i32 = 122;
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(EDQUOT)
}

/// 507 InsufficientStorage: the write failed for lack of space and left nothing behind;
/// retrying will not help until space is freed.
fn storage_full(e: &dyn std::fmt::Display) -> S3Error {
    tracing::warn!(error = %e, "write refused: the store is out of space");
    let mut err = S3Error::with_message(
        S3ErrorCode::Custom("InsufficientStorage".into()),
        "the store is out of space; nothing was written",
    );
    err.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
    err
}

/// 503 ServiceUnavailable with Retry-After: the store's backends cannot answer now.
fn unavailable(e: &dyn std::fmt::Display) -> S3Error {
    tracing::warn!(error = %e, "the store is unavailable");
    let mut err = s3_error!(ServiceUnavailable, "the storage backend is unavailable; retry later");
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("5"));
    err.set_headers(headers);
    err
}

/// A stored object that failed authentication or is damaged: counted, logged, and
/// answered as a bare InternalError that says so.
pub(crate) fn integrity(e: &dyn std::fmt::Display) -> S3Error {
    INTEGRITY_FAILURES.fetch_add(1, Ordering::Relaxed);
    tracing::error!(error = %e, "integrity failure on a stored object");
    s3_error!(InternalError, "the stored object failed its integrity check")
}

/// Stored objects that failed authentication since start-up.
static INTEGRITY_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many stored objects failed authentication on read since start-up.
pub fn integrity_failures() -> u64 {
    INTEGRITY_FAILURES.load(Ordering::Relaxed)
}

/// Logs the detail and answers a bare InternalError.
pub(crate) fn internal(e: &dyn std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "internal error");
    s3_error!(InternalError, "internal error")
}
