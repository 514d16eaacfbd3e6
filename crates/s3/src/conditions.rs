//! Conditional requests (RFC 9110 §13): If-Match, If-None-Match, If-Modified-Since and
//! If-Unmodified-Since on GetObject and HeadObject, and their `x-amz-copy-source-if-*`
//! twins on copies. Evaluated in the RFC's order: a failed If-Match or If-Unmodified-Since
//! is 412 PreconditionFailed; a matching If-None-Match or an unchanged If-Modified-Since is
//! 304 NotModified (412 for copy sources, which cannot be "not modified"). A 304 carries
//! the object's ETag and Last-Modified, as RFC 9110 §15.4.5 asks and AWS sends.

use http::{HeaderMap, HeaderValue};
use s3s::dto::{ETagCondition, Timestamp, TimestampFormat};
use s3s::{S3Error, S3Result, s3_error};

use object::ObjectRecord;

/// The conditions a request carries.
#[derive(Default)]
pub(crate) struct Conditions<'a> {
    /// If-Match.
    pub if_match: Option<&'a ETagCondition>,
    /// If-None-Match.
    pub if_none_match: Option<&'a ETagCondition>,
    /// If-Modified-Since.
    pub if_modified_since: Option<&'a Timestamp>,
    /// If-Unmodified-Since.
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// The [`Conditions`] a CopyObject or UploadPartCopy input puts on its source.
macro_rules! copy_source {
    ($input:expr) => {
        $crate::conditions::Conditions {
            if_match: $input.copy_source_if_match.as_ref(),
            if_none_match: $input.copy_source_if_none_match.as_ref(),
            if_modified_since: $input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: $input.copy_source_if_unmodified_since.as_ref(),
        }
    };
}
pub(crate) use copy_source;

fn matches(condition: &ETagCondition, etag: &object::ETag) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag.as_str(),
    }
}

/// An S3 timestamp as Unix seconds.
pub(super) fn unix(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// 304 Not Modified with the validators of the object it is about.
fn not_modified_error(meta: &ObjectRecord) -> S3Error {
    let mut e = s3_error!(NotModified);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&meta.etag.quoted()) {
        headers.insert(http::header::ETAG, v);
    }
    let mut date = Vec::new();
    if super::headers::last_modified(meta).format(TimestampFormat::HttpDate, &mut date).is_ok()
        && let Ok(v) = HeaderValue::from_bytes(&date)
    {
        headers.insert(http::header::LAST_MODIFIED, v);
    }
    e.set_headers(headers);
    e
}

impl Conditions<'_> {
    /// Checks the conditions against the current object; `copy_source` turns 304 into 412.
    pub(crate) fn check(&self, meta: &ObjectRecord, copy_source: bool) -> S3Result<()> {
        let modified = i64::try_from(meta.last_modified).unwrap_or(i64::MAX);
        if let Some(c) = self.if_match {
            if !matches(c, &meta.etag) {
                return Err(s3_error!(PreconditionFailed, "If-Match: the object's ETag differs"));
            }
        } else if let Some(t) = self.if_unmodified_since
            && modified > unix(t)
        {
            return Err(s3_error!(PreconditionFailed, "If-Unmodified-Since: the object changed since"));
        }
        let not_modified = if let Some(c) = self.if_none_match {
            matches(c, &meta.etag)
        } else {
            self.if_modified_since.is_some_and(|t| modified <= unix(t))
        };
        match (not_modified, copy_source) {
            (false, _) => Ok(()),
            (true, false) => Err(not_modified_error(meta)),
            (true, true) => Err(s3_error!(PreconditionFailed, "the copy source's conditions were not met")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;
    use std::time::{Duration, UNIX_EPOCH};

    fn meta() -> ObjectRecord {
        ObjectRecord::new(
            "k".into(),
            1,
            "abc".into(),
            1_000,
            object::Protection::Aont,
            object::Layout::Single { salt: None },
        )
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn not_modified_carries_etag_and_last_modified() {
        let same = ETagCondition::ETag(ETag::Strong("abc".into()));
        let e = Conditions { if_none_match: Some(&same), ..Default::default() }
            .check(&meta(), false)
            .unwrap_err();
        let h = e.headers().unwrap();
        assert_eq!(h.get("etag").unwrap(), "\"abc\"");
        assert_eq!(h.get("last-modified").unwrap(), "Thu, 01 Jan 1970 00:16:40 GMT");
    }

    #[test]
    fn conditions_follow_rfc_9110_order() {
        let m = meta();
        let same = ETagCondition::ETag(ETag::Strong("abc".into()));
        let other = ETagCondition::ETag(ETag::Strong("xyz".into()));
        let code = |c: Conditions, copy| c.check(&m, copy).err().map(|e| e.code().as_str().to_owned());
        assert_eq!(code(Conditions { if_match: Some(&same), ..Default::default() }, false), None);
        assert_eq!(
            code(Conditions { if_match: Some(&other), ..Default::default() }, false).as_deref(),
            Some("PreconditionFailed")
        );
        assert_eq!(
            code(Conditions { if_none_match: Some(&same), ..Default::default() }, false).as_deref(),
            Some("NotModified")
        );
        assert_eq!(
            code(Conditions { if_none_match: Some(&ETagCondition::Any), ..Default::default() }, true)
                .as_deref(),
            Some("PreconditionFailed")
        );
        let later = at(2_000);
        let earlier = at(500);
        assert_eq!(
            code(Conditions { if_modified_since: Some(&later), ..Default::default() }, false).as_deref(),
            Some("NotModified")
        );
        assert_eq!(code(Conditions { if_modified_since: Some(&earlier), ..Default::default() }, false), None);
        assert_eq!(
            code(Conditions { if_unmodified_since: Some(&earlier), ..Default::default() }, false).as_deref(),
            Some("PreconditionFailed")
        );
        // If-Match wins over If-Unmodified-Since; If-None-Match over If-Modified-Since.
        assert_eq!(
            code(
                Conditions {
                    if_match: Some(&same),
                    if_unmodified_since: Some(&earlier),
                    ..Default::default()
                },
                false
            ),
            None
        );
        assert_eq!(
            code(
                Conditions {
                    if_none_match: Some(&other),
                    if_modified_since: Some(&later),
                    ..Default::default()
                },
                false
            ),
            None
        );
    }
}
