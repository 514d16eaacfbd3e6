//! Server-side-encryption request rules (DESIGN.md, "S3 rules that real clients rely
//! on"). SSE-C: AES256 only; the key (base64, 256 bits) and its MD5 on every request that
//! touches the object; a wrong key is 403, a malformed or mismatched one 400; key headers
//! for an object stored without them are 400. The key is used and dropped, never stored:
//! only its MD5 is kept, to answer and to tell a wrong key quickly.

use base64::Engine as _;
use engine::md5::Md5;
use s3s::{S3Result, s3_error};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use engine::key::KEY_LEN;
use engine::{CustomerKey, SecretKey};
use object::{Protection, SentKey, binding};

/// Validates the SSE-C headers (algorithm, key, key MD5) of a request for `bucket`/`key`;
/// `None` if none was sent.
pub fn parse(headers: [&Option<String>; 3], bucket: &str, object: &str) -> S3Result<Option<SentKey>> {
    let [algorithm, key, key_md5] = headers.map(Option::as_ref);
    if algorithm.is_none() && key.is_none() && key_md5.is_none() {
        return Ok(None);
    }
    match algorithm.map(String::as_str) {
        Some("AES256") => {}
        Some(_) => return Err(s3_error!(InvalidEncryptionAlgorithmError, "SSE-C supports AES256 only")),
        None => return Err(s3_error!(InvalidArgument, "SSE-C needs the customer algorithm header (AES256)")),
    }
    let (Some(key), Some(key_md5)) = (key, key_md5) else {
        return Err(s3_error!(InvalidArgument, "SSE-C needs the customer key and its MD5"));
    };
    let mut raw = Zeroizing::new(Vec::with_capacity(KEY_LEN));
    let b64 = base64::engine::general_purpose::STANDARD;
    if b64.decode_vec(key, &mut raw).is_err() || raw.len() != KEY_LEN {
        return Err(s3_error!(InvalidArgument, "the SSE-C key must be 256 bits, base64-encoded"));
    }
    let computed = b64.encode(Md5::digest(raw.as_slice()));
    if !bool::from(computed.as_bytes().ct_eq(key_md5.as_bytes())) {
        return Err(s3_error!(InvalidArgument, "the SSE-C key MD5 does not match the key"));
    }
    let mut bytes = [0u8; KEY_LEN];
    bytes.copy_from_slice(&raw);
    let secret = SecretKey::from_bytes(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(Some(SentKey { key: CustomerKey { key: secret, context: binding(bucket, object) }, md5: computed }))
}

/// The SSE-C key needed to read an object protected by `protection`, checked against
/// what the request sent.
pub(crate) fn for_read(protection: &Protection, sent: Option<SentKey>) -> S3Result<Option<SentKey>> {
    match (protection.sse_c_md5(), sent) {
        (None, None) => Ok(None),
        (None, Some(_)) => {
            Err(s3_error!(InvalidRequest, "the object was not stored with a customer key (SSE-C)"))
        }
        (Some(_), None) => Err(s3_error!(
            InvalidRequest,
            "the object was stored with a customer key (SSE-C): send the same key to read it"
        )),
        (Some(stored), Some(k)) => {
            if bool::from(stored.as_bytes().ct_eq(k.md5.as_bytes())) {
                Ok(Some(k))
            } else {
                Err(s3_error!(AccessDenied, "the customer key does not match the object's"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(key: &[u8]) -> (String, String, String) {
        let b64 = base64::engine::general_purpose::STANDARD;
        ("AES256".into(), b64.encode(key), b64.encode(Md5::digest(key)))
    }

    #[test]
    fn sse_c_headers_are_validated() {
        let (a, k, m) = headers(&[7u8; 32]);
        let ok = parse([&Some(a.clone()), &Some(k.clone()), &Some(m.clone())], "b", "o").unwrap().unwrap();
        assert_eq!(ok.key.context, b"b/o");
        assert!(parse([&None, &None, &None], "b", "o").unwrap().is_none());
        let code = |r: S3Result<Option<SentKey>>| r.err().map(|e| e.code().as_str().to_owned());
        assert_eq!(
            code(parse([&Some("AES128".into()), &Some(k.clone()), &Some(m.clone())], "b", "o")).as_deref(),
            Some("InvalidEncryptionAlgorithmError")
        );
        assert_eq!(
            code(parse([&Some(a.clone()), &Some(k.clone()), &None], "b", "o")).as_deref(),
            Some("InvalidArgument")
        );
        let (_, short, short_md5) = headers(&[7u8; 16]);
        assert_eq!(
            code(parse([&Some(a.clone()), &Some(short), &Some(short_md5)], "b", "o")).as_deref(),
            Some("InvalidArgument")
        );
        let (_, _, other_md5) = headers(&[8u8; 32]);
        assert_eq!(
            code(parse([&Some(a.clone()), &Some(k.clone()), &Some(other_md5)], "b", "o")).as_deref(),
            Some("InvalidArgument")
        );
    }
}
