//! Which key opens a stored object, or writes a part of an upload the same way
//! ([`ReadKey`]): the SSE-C key the request sent (checked against the key MD5 the record
//! holds), or the SSE-KP bucket key from the key manager, or none (AONT-RS). A committed
//! object's record is trusted only once its tag checks under that key.

use s3s::S3Result;

use super::service::CipherS3;
use super::{error, kp, sse};
use engine::CustomerKey;
use object::codec::Unverified;
use object::{ObjectRecord, Protection};

/// How a read of a stored object (or a write into an upload) is keyed.
pub(super) struct ReadKey {
    /// The key to open it with: the SSE-C key sent, or the SSE-KP bucket key.
    pub key: Option<CustomerKey>,
    /// The protection the record holds.
    pub protection: Protection,
}

impl ReadKey {
    /// Checks the SSE-C headers sent (`alg`, `key`, `md5`) against `protection` (the
    /// record's) and fetches the bucket key of an SSE-KP object.
    pub(super) fn resolve(
        s: &CipherS3,
        bucket: &str,
        object: &str,
        protection: &Protection,
        sent: [&Option<String>; 3],
    ) -> S3Result<Self> {
        let sent = sse::parse(sent, bucket, object)?;
        let key = match (sse::for_read(protection, sent)?, protection) {
            (Some(k), _) => Some(k.key),
            (None, Protection::SseKp { root, .. }) => Some(kp::object_key(s, bucket, object, root)?),
            (None, _) => None,
        };
        Ok(Self { key, protection: protection.clone() })
    }

    /// [`ReadKey::resolve`] for a committed object, whose record is returned once its tag
    /// checks under this key.
    pub(super) fn resolve_stored(
        s: &CipherS3,
        bucket: &str,
        object: &str,
        record: Unverified,
        sent: [&Option<String>; 3],
    ) -> S3Result<(Self, ObjectRecord)> {
        let read = Self::resolve(s, bucket, object, &record.unchecked().protection, sent)?;
        let record = record.verify(read.key.as_ref()).map_err(error::object)?;
        Ok((read, record))
    }

    /// The engine protection that writes new bytes the way this key reads them (parts).
    pub(super) fn sealing(&self) -> engine::Protection {
        match (&self.key, &self.protection) {
            (Some(k), Protection::SseC { .. }) => engine::Protection::SseC(k.clone()),
            (Some(k), Protection::SseKp { root, .. }) => {
                engine::Protection::SseKp { key: k.clone(), crn: root.clone() }
            }
            _ => engine::Protection::Aont,
        }
    }

    /// The SSE-C key MD5 to echo.
    pub(super) fn sse_c_md5(&self) -> Option<String> {
        self.protection.sse_c_md5().map(str::to_owned)
    }

    /// The SSE-C algorithm to echo.
    pub(super) fn sse_c_algorithm(&self) -> Option<String> {
        self.protection.sse_c_md5().map(|_| "AES256".to_owned())
    }

    /// Adds the response headers naming a root key's protection (SSE-KP, aws:kms,
    /// SSE-S3).
    pub(super) fn name_key(&self, headers: &mut http::HeaderMap) {
        kp::name_protection(headers, &self.protection);
    }
}
