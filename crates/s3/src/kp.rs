//! Root-key protection over S3. SSE-KP: a bucket created with
//! `ibm-sse-kp-encryption-algorithm: AES256` and `ibm-sse-kp-customer-root-key-crn: <crn>`
//! gets a bucket key wrapped by that HSM root key, at creation only; every object written
//! to it without SSE-C headers is encrypted under a key derived from the bucket key.
//! SSE-KMS (`aws:kms`, any root key) and SSE-S3 (`AES256`, the instance default root key)
//! per object, in any other bucket: a bucket key per (bucket, root key) pair, made on
//! first use. A suspended root key refuses reads and writes (403), a deleted one makes
//! them impossible (crypto-shredding), an HSM that cannot be reached answers 503.

use http::{HeaderMap, HeaderValue};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::error;
use super::service::CipherS3;
use engine::CustomerKey;
use keys::{KeyManager, KeysError};
use object::{BucketRecord, Protection};

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
pub(crate) fn manager(s: &CipherS3) -> S3Result<&KeyManager> {
    s.keys.as_deref().ok_or_else(|| {
        s3_error!(
            NotImplemented,
            "SSE-KP needs an HSM: start the server with CIPHERSTORE_HSM_TOKEN (or CIPHERSTORE_HSM_URI) and a PIN"
        )
    })
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

/// What an AWS-style request asks for: `x-amz-server-side-encryption` (`aws:kms`,
/// `AES256`) and an optional KMS key id, resolved to a root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requested {
    /// The root key's CRN.
    pub root: String,
    /// SSE-S3 (`AES256`): the instance default root key, answered as `AES256`.
    pub sse_s3: bool,
}

/// The key manager for an object-level encryption request, or a 400 naming the missing
/// setting when the server runs without an HSM.
fn manager_for<'a>(s: &'a CipherS3, what: &str) -> S3Result<&'a KeyManager> {
    s.keys.as_deref().ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!(
                "{what} needs an HSM for its root keys, and this server has none: start it with CIPHERSTORE_HSM_TOKEN (or CIPHERSTORE_HSM_URI) and a PIN, or [hsm] in the config file"
            ),
        )
    })
}

/// A KMS key id as AWS clients send it, as the key manager finds it: a root key id, CRN
/// or name, also inside a KMS ARN (`arn:aws:kms:…:key/<id>`, `…:alias/<name>`) or as
/// `alias/<name>`.
fn key_ref(id: &str) -> &str {
    let tail = if id.starts_with("arn:") { id.rsplit(':').next().unwrap_or(id) } else { id };
    tail.strip_prefix("key/").or_else(|| tail.strip_prefix("alias/")).unwrap_or(tail)
}

/// The root key an AWS-style request asks for (`sse`, `key_id`): `None` if it asks for
/// nothing (the bucket's default applies). aws:kms with a key id: that key (unknown: 400
/// KMS.NotFoundException); without one: the bucket's default root key, else the instance
/// default key. AES256 (SSE-S3): the instance default key. An SSE-KP bucket accepts its
/// own root key only, as IBM COS does.
pub(crate) fn requested_sse(
    s: &CipherS3,
    bucket: &BucketRecord,
    sse: Option<&s3s::dto::ServerSideEncryption>,
    key_id: Option<&str>,
) -> S3Result<Option<Requested>> {
    let Some(sse) = sse else {
        if key_id.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "a KMS key id needs x-amz-server-side-encryption: aws:kms"
            ));
        }
        return Ok(None);
    };
    let sse_kp_only = |what: &str| {
        let root = bucket.root().unwrap_or_default();
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!(
                "this bucket was created with SSE-KP: every object is protected by its root key {root}; {what} cannot be asked for here (send aws:kms with that key, or no encryption header)"
            ),
        )
    };
    let requested = match sse.as_str() {
        "AES256" => {
            if key_id.is_some() {
                return Err(s3_error!(InvalidArgument, "a KMS key id goes with aws:kms, not AES256"));
            }
            if bucket.bound_at_creation() {
                return Err(sse_kp_only("SSE-S3 (AES256)"));
            }
            let root = manager_for(s, "SSE-S3 (AES256)")?.default_key().map_err(error::keys)?;
            Requested { root, sse_s3: true }
        }
        "aws:kms" => {
            let m = manager_for(s, "SSE-KMS (aws:kms)")?;
            let root = match key_id {
                Some(id) => match m.show(key_ref(id)) {
                    Ok(view) => view.crn,
                    Err(KeysError::KeyNotFound(_)) => {
                        let mut e = S3Error::with_message(
                            S3ErrorCode::Custom("KMS.NotFoundException".into()),
                            format!("Invalid keyId {id}: no such root key"),
                        );
                        e.set_status_code(http::StatusCode::BAD_REQUEST);
                        return Err(e);
                    }
                    Err(e) => return Err(error::keys(e)),
                },
                None => match bucket.kms_default() {
                    Some(root) => root.to_owned(),
                    None => m.default_key().map_err(error::keys)?,
                },
            };
            if bucket.bound_at_creation() && bucket.root() != Some(root.as_str()) {
                return Err(sse_kp_only(&format!("root key {}", key_id.unwrap_or(&root))));
            }
            Requested { root, sse_s3: false }
        }
        "aws:kms:dsse" => {
            return Err(s3_error!(
                InvalidArgument,
                "dual-layer SSE-KMS (aws:kms:dsse) is not offered; use aws:kms (one layer under an HSM root key), optionally with SSE-C on the client's side"
            ));
        }
        other => {
            return Err(s3_error!(
                InvalidArgument,
                "unsupported server-side encryption {other:?}: use AES256 or aws:kms"
            ));
        }
    };
    Ok(Some(requested))
}

/// The bucket's default for a new object that asks for no protection: SSE-S3 if
/// PutBucketEncryption set AES256, else its default root key.
pub(crate) fn bucket_default(s: &CipherS3, bucket: &BucketRecord) -> S3Result<Option<Requested>> {
    if bucket.sse_s3 {
        let root = manager_for(s, "the bucket's SSE-S3 default")?.default_key().map_err(error::keys)?;
        return Ok(Some(Requested { root, sse_s3: true }));
    }
    Ok(bucket.default_root().map(|root| Requested { root: root.to_owned(), sse_s3: false }))
}

/// The bucket key of (`bucket`, root key `crn`), bound to `bucket/object` (so an object's
/// bytes open under its own name only), for reading an object stored under it.
pub(crate) fn object_key(s: &CipherS3, bucket: &str, object: &str, crn: &str) -> S3Result<CustomerKey> {
    let key = manager(s)?.bucket_key(bucket, crn).map_err(error::keys)?;
    Ok(bind(key, bucket, object))
}

/// [`object_key`] for writing a new object: the pair's bucket key is created (one HSM
/// wrap) on its first use.
pub(crate) fn new_object_key(
    s: &CipherS3,
    bucket: &BucketRecord,
    object: &str,
    crn: &str,
) -> S3Result<CustomerKey> {
    let retain = bucket.object_lock.is_some();
    let key = manager(s)?.bucket_key_for_write(&bucket.name, crn, retain).map_err(error::keys)?;
    let bucket = bucket.name.as_str();
    Ok(bind(key, bucket, object))
}

fn bind(key: engine::SecretKey, bucket: &str, object: &str) -> CustomerKey {
    CustomerKey { key, context: [bucket.as_bytes(), b"/", object.as_bytes()].concat() }
}

/// Checks, just before an SSE-KP write commits, that its root key is still usable: a key
/// suspended or deleted while the body streamed refuses the write (403), and nothing is
/// committed. Costs a cache lookup while the key stays enabled.
pub(crate) fn still_usable(s: &CipherS3, bucket: &str, protection: &Protection) -> S3Result<()> {
    if let Some(root) = protection.kp_root() {
        manager(s)?.bucket_key(bucket, root).map_err(error::keys)?;
    }
    Ok(())
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
