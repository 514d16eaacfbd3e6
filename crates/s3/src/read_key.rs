//! Which key opens a stored object, or writes a part of an upload the same way
//! ([`ReadKey`], the object layer's): the SSE-C key the request sent (checked here against
//! the key MD5 the record holds, with S3's answers), or the SSE-KP bucket key, or none
//! (AONT-RS). A committed object's record is trusted only once its tag checks under that
//! key. [`Echo`] names the key in responses.

use s3s::S3Result;

use super::service::CipherS3;
use super::{error, kp, sse};
use object::codec::Unverified;
use object::{ObjectRecord, Protection};

pub(super) use object::ReadKey;

/// Checks the SSE-C headers sent (`alg`, `key`, `md5`) against `protection` (the
/// record's) and fetches the bucket key of an SSE-KP object.
pub(super) fn resolve(
    s: &CipherS3,
    bucket: &str,
    object: &str,
    protection: &Protection,
    sent: [&Option<String>; 3],
) -> S3Result<ReadKey> {
    let sent = sse::for_read(protection, sse::parse(sent, bucket, object)?)?;
    ReadKey::resolve(&s.policy, bucket, object, protection, sent).map_err(error::protection)
}

/// [`resolve`] for a committed object, whose record is returned once its tag checks under
/// this key.
pub(super) fn resolve_stored(
    s: &CipherS3,
    bucket: &str,
    object: &str,
    record: Unverified,
    sent: [&Option<String>; 3],
) -> S3Result<(ReadKey, ObjectRecord)> {
    let read = resolve(s, bucket, object, &record.unchecked().protection, sent)?;
    let record = record.verify(read.key.as_ref()).map_err(error::object)?;
    Ok((read, record))
}

/// How a response names the key that opened an object.
pub(super) trait Echo {
    /// The SSE-C key MD5 to echo.
    fn sse_c_md5(&self) -> Option<String>;
    /// The SSE-C algorithm to echo.
    fn sse_c_algorithm(&self) -> Option<String>;
    /// Adds the response headers naming a root key's protection (SSE-KP, aws:kms, SSE-S3).
    fn name_key(&self, headers: &mut http::HeaderMap);
}

impl Echo for ReadKey {
    fn sse_c_md5(&self) -> Option<String> {
        self.protection.sse_c_md5().map(str::to_owned)
    }

    fn sse_c_algorithm(&self) -> Option<String> {
        self.protection.sse_c_md5().map(|_| "AES256".to_owned())
    }

    fn name_key(&self, headers: &mut http::HeaderMap) {
        kp::name_protection(headers, &self.protection);
    }
}
