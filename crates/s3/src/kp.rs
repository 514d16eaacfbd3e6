//! Root-key protection over S3. SSE-KP: a bucket created with
//! `ibm-sse-kp-encryption-algorithm: AES256` and `ibm-sse-kp-customer-root-key-crn: <crn>`
//! gets a bucket key wrapped by that HSM root key, at creation only; every object written
//! to it without SSE-C headers is encrypted under a key derived from the bucket key.
//! SSE-KMS (`aws:kms`, any root key) and SSE-S3 (`AES256`, the instance default root key)
//! per object, in any other bucket: a bucket key per (bucket, root key) pair, made on
//! first use. A suspended root key refuses reads and writes (403), a deleted one makes
//! them impossible (crypto-shredding), an HSM that cannot be reached answers 503.

use http::{HeaderMap, HeaderValue};
use s3s::{S3Result, s3_error};

use super::error;
use super::service::CipherS3;
use keys::KeySource;
use object::{BucketRecord, Protection, Requested, ServerSide};

/// Request header naming the algorithm (AES256).
pub(crate) const ALGORITHM: &str = "ibm-sse-kp-encryption-algorithm";
/// Request header naming the root key.
pub(crate) const ROOT_KEY: &str = "ibm-sse-kp-customer-root-key-crn";
/// Response header: SSE-KP is on.
pub(crate) const ENABLED: &str = "ibm-sse-kp-enabled";
/// Response header: the bucket's root key.
pub(crate) const CRK_ID: &str = "ibm-sse-kp-crk-id";
/// AWS response header naming the protection.
pub(crate) const AWS_SSE: &str = "x-amz-server-side-encryption";
/// AWS response header naming the KMS key.
pub(crate) const AWS_KEY_ID: &str = "x-amz-server-side-encryption-aws-kms-key-id";
/// AWS response header: the object's key is a bucket key (as every aws:kms object's is).
pub(crate) const AWS_BUCKET_KEY: &str = "x-amz-server-side-encryption-bucket-key-enabled";

/// The key manager, or a clear refusal when the server runs without an HSM.
pub(crate) fn manager(s: &CipherS3) -> S3Result<&dyn KeySource> {
    s.policy.manager().map_err(error::protection)
}

/// Reads the SSE-KP request headers of CreateBucket: the root key CRN if SSE-KP is asked.
pub(crate) fn requested(headers: &HeaderMap) -> S3Result<Option<String>> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match (get(ALGORITHM), get(ROOT_KEY)) {
        (None, None) => Ok(None),
        (Some(a), Some(crn)) if a == "AES256" => Ok(Some(crn)),
        (Some(_), Some(_)) => Err(s3_error!(InvalidArgument, "{ALGORITHM} must be AES256")),
        _ => Err(s3_error!(InvalidArgument, "SSE-KP needs both {ALGORITHM} and {ROOT_KEY}")),
    }
}

/// The root key an AWS-style request asks for (`sse`, `key_id`), see
/// [`object::Policy::requested`].
pub(crate) fn requested_sse(
    s: &CipherS3,
    bucket: &BucketRecord,
    sse: Option<&s3s::dto::ServerSideEncryption>,
    key_id: Option<&str>,
) -> S3Result<Option<Requested>> {
    let asked = sse.map(|v| match v.as_str() {
        "AES256" => ServerSide::SseS3,
        "aws:kms" => ServerSide::Kms,
        "aws:kms:dsse" => ServerSide::KmsDsse,
        other => ServerSide::Other(other.to_owned()),
    });
    s.policy.requested(bucket, asked.as_ref(), key_id).map_err(error::protection)
}

/// Adds the response headers naming how an object is protected under a root key: SSE-S3
/// as AWS names it (`AES256`), SSE-KP and aws:kms with the root key, IBM's and AWS's
/// headers. Nothing for other protections (SSE-C is echoed by the operations' outputs).
pub(crate) fn name_protection(headers: &mut HeaderMap, protection: &Protection) {
    match protection {
        Protection::SseKp { sse_s3: true, .. } => {
            headers.insert(AWS_SSE, HeaderValue::from_static("AES256"));
        }
        Protection::SseKp { root, sse_s3: false } => {
            name_key(headers, root);
            headers.insert(AWS_BUCKET_KEY, HeaderValue::from_static("true"));
        }
        _ => {}
    }
}

/// Adds the response headers that name an SSE-KP root key, IBM's and AWS's.
pub(crate) fn name_key(headers: &mut HeaderMap, crn: &str) {
    if let Ok(v) = HeaderValue::from_str(crn) {
        headers.insert(ENABLED, HeaderValue::from_static("true"));
        headers.insert(CRK_ID, v.clone());
        headers.insert(AWS_SSE, HeaderValue::from_static("aws:kms"));
        headers.insert(AWS_KEY_ID, v);
    }
}
