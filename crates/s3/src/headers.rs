//! The standard headers an object is stored and served with (Content-Type, Cache-Control,
//! Content-Disposition, Content-Encoding, Content-Language, Expires,
//! `x-amz-website-redirect-location`): from a request (PutObject, CreateMultipartUpload,
//! CopyObject with REPLACE) into the record's [`Headers`], and from there into GetObject
//! and HeadObject responses. The operations' input and output types share these field
//! names, hence macros. Also the user metadata a request carries, within AWS's limit.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::{ETag, Metadata, Timestamp, TimestampFormat};
use s3s::{S3Result, s3_error};

use object::{Headers, ObjectRecord};

/// AWS's limit on user metadata: the UTF-8 bytes of every key and value, added up.
pub(crate) const MAX_USER_METADATA: usize = 2048;

/// The `x-amz-meta-*` metadata a request carries; over [`MAX_USER_METADATA`] bytes is 400
/// MetadataTooLarge, as AWS answers.
pub(crate) fn user_metadata(sent: Option<Metadata>) -> S3Result<BTreeMap<String, String>> {
    let user: BTreeMap<String, String> = sent.map(|m| m.into_iter().collect()).unwrap_or_default();
    let size: usize = user.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_METADATA {
        return Err(s3_error!(
            MetadataTooLarge,
            "the user metadata has {size} bytes (keys and values); at most {MAX_USER_METADATA} are allowed"
        ));
    }
    Ok(user)
}

/// GET and HEAD name no server-side encryption (the object's own is used; SSE-C's
/// customer headers are the exception): `x-amz-server-side-encryption` or its KMS key id
/// on a read is 400 InvalidArgument, as AWS and Ceph answer.
pub(crate) fn refuse_sse_on_read(headers: &http::HeaderMap) -> S3Result<()> {
    for name in ["x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id"] {
        if headers.contains_key(name) {
            return Err(s3_error!(InvalidArgument, "the {name} header is not supported for GET or HEAD"));
        }
    }
    Ok(())
}

/// `aws-chunked` names the transport framing of a body, not the object's encoding: it is
/// dropped from Content-Encoding (and the header with it when nothing else is left).
pub(crate) fn content_encoding(sent: Option<String>) -> Option<String> {
    let kept: Vec<&str> = sent
        .as_deref()?
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// An Expires timestamp as an HTTP date.
pub(crate) fn expires_text(t: Option<Timestamp>) -> Option<String> {
    let mut out = Vec::new();
    t?.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

/// A stored Expires back as a timestamp (as stored by [`expires_text`]).
pub(crate) fn expires(h: &Headers) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, h.expires.as_deref()?).ok()
}

/// Storage classes whose objects are readable at once, as every object here is: accepted,
/// recorded and answered. STANDARD is the default and not recorded.
const INSTANT_CLASSES: [&str; 5] =
    ["REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"];

/// The storage class a request asks for, to record: `None` for STANDARD (or nothing);
/// the classes of [`INSTANT_CLASSES`] as named; archive classes, whose objects AWS serves
/// only once restored, and unknown names: 400 InvalidStorageClass.
pub(crate) fn storage_class(sent: Option<&s3s::dto::StorageClass>) -> S3Result<Option<String>> {
    let Some(class) = sent.map(s3s::dto::StorageClass::as_str) else { return Ok(None) };
    if class == "STANDARD" {
        return Ok(None);
    }
    if INSTANT_CLASSES.contains(&class) {
        return Ok(Some(class.to_owned()));
    }
    let why = if ["GLACIER", "DEEP_ARCHIVE"].contains(&class) {
        "archive classes are not offered: every object is stored for immediate reads"
    } else {
        "not a storage class this service offers"
    };
    Err(s3_error!(
        InvalidStorageClass,
        "{class}: {why} (STANDARD, {} are accepted)",
        INSTANT_CLASSES.join(", ")
    ))
}

/// The checksums of a body to keep with its object, by algorithm name (those computed and
/// verified against what the client sent).
pub(crate) fn checksums(computed: &super::digest::Computed) -> object::Checksums {
    let fields = super::digest::named_fields!(computed.checksum);
    let more = super::more_checksums::NAMES.into_iter().zip(&computed.more);
    fields.into_iter().chain(more).filter_map(|(name, v)| Some((name, v.clone()?))).collect()
}

/// Adds the `x-amz-checksum-<name>` headers of the algorithms `s3s` does not model
/// ([`super::more_checksums`]) from `values` (by name) to a response.
pub(crate) fn more_checksum_headers<'a>(
    headers: &mut http::HeaderMap,
    values: impl Fn(object::ChecksumAlgorithm) -> Option<&'a str>,
) {
    for name in super::more_checksums::NAMES {
        if let Some(v) = values(name)
            && let (Ok(n), Ok(v)) =
                (http::HeaderName::try_from(format!("x-amz-checksum-{name}")), http::HeaderValue::from_str(v))
        {
            headers.insert(n, v);
        }
    }
}

/// Sets a GetObject or HeadObject output's checksum fields from an object's stored
/// checksums, when the request asked (`x-amz-checksum-mode: ENABLED`) for the whole object;
/// true if it did (then [`more_checksum_headers`] adds the others).
macro_rules! checksums_into_output {
    ($output:expr, $headers:expr, $mode:expr, $whole:expr) => {{
        let h: &object::Headers = $headers;
        let asked = $mode.is_some_and(|m: &s3s::dto::ChecksumMode| m.as_str() == "ENABLED");
        let answer = asked && $whole && !h.checksums.is_empty();
        if answer {
            let get = |a: object::ChecksumAlgorithm| h.checksums.get(&a).cloned();
            $output.checksum_crc32 = get(object::ChecksumAlgorithm::Crc32);
            $output.checksum_crc32c = get(object::ChecksumAlgorithm::Crc32c);
            $output.checksum_crc64nvme = get(object::ChecksumAlgorithm::Crc64nvme);
            $output.checksum_sha1 = get(object::ChecksumAlgorithm::Sha1);
            $output.checksum_sha256 = get(object::ChecksumAlgorithm::Sha256);
            // A multipart object's are composite (`…-N`), as S3's.
            let composite = h.checksums.values().any(|v| v.contains('-'));
            $output.checksum_type = Some(s3s::dto::ChecksumType::from_static(if composite {
                s3s::dto::ChecksumType::COMPOSITE
            } else {
                s3s::dto::ChecksumType::FULL_OBJECT
            }));
        }
        answer
    }};
}
pub(crate) use checksums_into_output;

/// The [`Headers`] a request input carries.
macro_rules! from_input {
    ($input:expr) => {
        object::Headers {
            content_type: $input.content_type.map(|c| c.to_string()),
            cache_control: $input.cache_control,
            content_disposition: $input.content_disposition,
            content_encoding: crate::headers::content_encoding($input.content_encoding),
            content_language: $input.content_language,
            expires: crate::headers::expires_text($input.expires),
            website_redirect_location: $input.website_redirect_location,
            checksums: object::Checksums::new(),
        }
    };
}
pub(crate) use from_input;

/// Sets a response output's standard headers from [`Headers`].
macro_rules! into_output {
    ($output:expr, $headers:expr) => {{
        let h: &object::Headers = $headers;
        $output.content_type = h.content_type.as_ref().and_then(|c| c.parse().ok());
        $output.cache_control = h.cache_control.clone();
        $output.content_disposition = h.content_disposition.clone();
        $output.content_encoding = h.content_encoding.clone();
        $output.content_language = h.content_language.clone();
        $output.expires = crate::headers::expires(h);
        $output.website_redirect_location = h.website_redirect_location.clone();
    }};
}
pub(crate) use into_output;

/// When a record's object was last modified, as an S3 timestamp (Last-Modified).
pub(super) fn last_modified(meta: &ObjectRecord) -> Timestamp {
    last_modified_at(meta.last_modified)
}

/// Unix seconds as an S3 timestamp.
pub(super) fn last_modified_at(secs: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
}

/// An ETag as s3s renders it (quoted, strong).
pub(crate) fn e_tag(etag: &object::ETag) -> Option<ETag> {
    Some(ETag::Strong(etag.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_metadata_up_to_aws_limit() {
        let m = |v: usize| Some([("k".to_owned(), "v".repeat(v))].into_iter().collect::<Metadata>());
        assert_eq!(user_metadata(m(MAX_USER_METADATA - 1)).unwrap().len(), 1);
        assert_eq!(user_metadata(m(MAX_USER_METADATA)).unwrap_err().code().as_str(), "MetadataTooLarge");
        assert!(user_metadata(None).unwrap().is_empty());
    }

    #[test]
    fn aws_chunked_is_not_the_objects_encoding_and_expires_round_trips() {
        let enc = |s: &str| content_encoding(Some(s.to_owned()));
        assert_eq!(enc("aws-chunked"), None);
        assert_eq!(enc("aws-chunked,gzip").as_deref(), Some("gzip"));
        assert_eq!(enc("gzip, aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(enc("br").as_deref(), Some("br"));
        assert_eq!(content_encoding(None), None);
        let t = Timestamp::parse(TimestampFormat::HttpDate, "Wed, 21 Oct 2037 07:28:00 GMT").unwrap();
        let text = expires_text(Some(t)).unwrap();
        assert_eq!(text, "Wed, 21 Oct 2037 07:28:00 GMT");
        let h = Headers { expires: Some(text), ..Headers::default() };
        assert_eq!(
            expires(&h).and_then(|t| expires_text(Some(t))).as_deref(),
            Some("Wed, 21 Oct 2037 07:28:00 GMT")
        );
    }
}
