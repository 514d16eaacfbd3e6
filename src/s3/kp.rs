//! SSE-KP over S3: a bucket created with `ibm-sse-kp-encryption-algorithm: AES256` and
//! `ibm-sse-kp-customer-root-key-crn: <crn>` gets a bucket key wrapped by that HSM root
//! key, at creation only; every object written to it without SSE-C headers is encrypted
//! under a key derived from the bucket key. A suspended root key refuses reads and writes
//! (403), a deleted one makes them impossible (crypto-shredding), an HSM that cannot be
//! reached answers 503.

use http::{HeaderMap, HeaderValue};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::CipherS3;
use crate::engine::CustomerKey;
use crate::keys::{KeyManager, KeysError};
use crate::object::{BucketRecord, Protection};

/// Request header naming the algorithm (AES256).
pub const ALGORITHM: &str = "ibm-sse-kp-encryption-algorithm";
/// Request header naming the root key.
pub const ROOT_KEY: &str = "ibm-sse-kp-customer-root-key-crn";
/// Response header: SSE-KP is on.
pub const ENABLED: &str = "ibm-sse-kp-enabled";
/// Response header: the bucket's root key.
pub const CRK_ID: &str = "ibm-sse-kp-crk-id";
/// AWS response header naming the protection.
pub const AWS_SSE: &str = "x-amz-server-side-encryption";
/// AWS response header naming the KMS key.
pub const AWS_KEY_ID: &str = "x-amz-server-side-encryption-aws-kms-key-id";

/// The key manager, or a clear refusal when the server runs without an HSM.
pub fn manager(s: &CipherS3) -> S3Result<&KeyManager> {
    s.keys.as_deref().ok_or_else(|| {
        s3_error!(
            NotImplemented,
            "SSE-KP needs an HSM: start the server with CIPHERSTORE_HSM_TOKEN (or CIPHERSTORE_HSM_URI) and a PIN"
        )
    })
}

/// A key layer error as the S3 error a client should see.
pub fn error(e: KeysError) -> S3Error {
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
        other => super::error::internal(&other),
    }
}

/// Reads the SSE-KP request headers of CreateBucket: the root key CRN if SSE-KP is asked.
pub fn requested(headers: &HeaderMap) -> S3Result<Option<String>> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match (get(ALGORITHM), get(ROOT_KEY)) {
        (None, None) => Ok(None),
        (Some(a), Some(crn)) if a == "AES256" => Ok(Some(crn)),
        (Some(_), Some(_)) => Err(s3_error!(InvalidArgument, "{ALGORITHM} must be AES256")),
        _ => Err(s3_error!(InvalidArgument, "SSE-KP needs both {ALGORITHM} and {ROOT_KEY}")),
    }
}

/// The root key an AWS-style request (`x-amz-server-side-encryption: aws:kms` with an
/// optional key id) asks for: the bucket's own. `None` if the request asks for nothing.
pub fn requested_root(
    s: &CipherS3,
    bucket: &BucketRecord,
    sse: Option<&s3s::dto::ServerSideEncryption>,
    key_id: Option<&str>,
) -> S3Result<Option<String>> {
    let Some(sse) = sse else {
        if key_id.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "a KMS key id needs x-amz-server-side-encryption: aws:kms"
            ));
        }
        return Ok(None);
    };
    match sse.as_str() {
        "aws:kms" => {}
        "AES256" => {
            return Err(s3_error!(
                InvalidArgument,
                "SSE-S3 (AES256) is not offered: every object is already protected; for keys you control use aws:kms with a root key id, SSE-C, or an SSE-KP bucket"
            ));
        }
        other => return Err(s3_error!(InvalidArgument, "unsupported server-side encryption {other:?}")),
    }
    let Some(root) = bucket.root() else {
        return Err(s3_error!(
            InvalidArgument,
            "the bucket has no root key: bind one with PutBucketEncryption (aws:kms and a KMSMasterKeyID) first"
        ));
    };
    if let Some(id) = key_id {
        let view = manager(s)?.show(id).map_err(error)?;
        if view.crn != root {
            return Err(s3_error!(
                InvalidArgument,
                "the bucket's objects are protected by root key {root}, not {id}"
            ));
        }
    }
    Ok(Some(root.to_owned()))
}

/// The bucket key, bound to `bucket/object` (so an object's bytes open under its own name
/// only), and the root CRN, for an object of an SSE-KP bucket.
pub fn object_key(s: &CipherS3, bucket: &str, object: &str, crn: &str) -> S3Result<(CustomerKey, String)> {
    let key = manager(s)?.bucket_key(bucket).map_err(error)?;
    let context = [bucket.as_bytes(), b"/", object.as_bytes()].concat();
    Ok((CustomerKey { key, context }, crn.to_owned()))
}

/// Checks, just before an SSE-KP write commits, that its root key is still usable: a key
/// suspended or deleted while the body streamed refuses the write (403), and nothing is
/// committed. Costs a cache lookup while the key stays enabled.
pub fn still_usable(s: &CipherS3, bucket: &str, protection: &Protection) -> S3Result<()> {
    if protection.kp_root().is_some() {
        manager(s)?.bucket_key(bucket).map_err(error)?;
    }
    Ok(())
}

/// Adds the response headers that name an SSE-KP root key, IBM's and AWS's.
pub fn name_key(headers: &mut HeaderMap, crn: &str) {
    if let Ok(v) = HeaderValue::from_str(crn) {
        headers.insert(ENABLED, HeaderValue::from_static("true"));
        headers.insert(CRK_ID, v.clone());
        headers.insert(AWS_SSE, HeaderValue::from_static("aws:kms"));
        headers.insert(AWS_KEY_ID, v);
    }
}
