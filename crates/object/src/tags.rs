//! Object tags (S3 tagging): a [`TagSet`] within AWS's limits, read from an
//! `x-amz-tagging` header or given whole (PutObjectTagging). Tags set after a write are
//! kept in the version's annex ([`super::annex`]). Tags are not encrypted: S3 serves them without the object's key (GetObjectTagging
//! carries no SSE-C key), so they are kept in clear, as a listing's keys and sizes are.

use serde::{Deserialize, Serialize};

/// Most tags on one object (AWS's limit).
pub const MAX_TAGS: usize = 10;
/// Longest tag key, in Unicode characters (AWS's limit).
pub const MAX_KEY_CHARS: usize = 128;
/// Longest tag value, in Unicode characters (AWS's limit).
pub const MAX_VALUE_CHARS: usize = 256;

/// Why a tag set is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// More than [`MAX_TAGS`] tags (AWS answers BadRequest).
    #[error("Object tags cannot be greater than {MAX_TAGS} (got {0})")]
    TooMany(usize),
    /// A key or value AWS refuses (InvalidTag).
    #[error("{0}")]
    Invalid(String),
}

/// An object's tags, in the order given; keys are unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TagSet(Vec<(String, String)>);

/// Letters, digits, white space and `+ - = . _ : / @`: what AWS allows in tag keys and
/// values.
fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c)
}

impl TagSet {
    /// Checks `pairs` against AWS's rules: at most 10, keys of 1 to 128 characters and
    /// unique, not starting with `aws:`, values of at most 256 characters, only allowed
    /// characters.
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, TagError> {
        if pairs.len() > MAX_TAGS {
            return Err(TagError::TooMany(pairs.len()));
        }
        for (i, (k, v)) in pairs.iter().enumerate() {
            let invalid = |why: String| Err(TagError::Invalid(why));
            let key_chars = k.chars().count();
            if key_chars == 0 || key_chars > MAX_KEY_CHARS {
                return invalid(format!(
                    "The TagKey you have provided is invalid: 1 to {MAX_KEY_CHARS} characters"
                ));
            }
            if v.chars().count() > MAX_VALUE_CHARS {
                return invalid(format!(
                    "The TagValue you have provided is invalid: at most {MAX_VALUE_CHARS} characters"
                ));
            }
            if !k.chars().chain(v.chars()).all(allowed) {
                return invalid(
                    "Tags may hold letters, digits, white space and + - = . _ : / @ only".to_owned(),
                );
            }
            if k.starts_with("aws:") {
                return invalid("Your TagKey cannot be prefixed with aws:".to_owned());
            }
            if pairs[..i].iter().any(|(other, _)| other == k) {
                return invalid("Cannot provide multiple Tags with the same key".to_owned());
            }
        }
        Ok(Self(pairs))
    }

    /// The tags of an `x-amz-tagging` header: URL-query encoded (`k1=v1&k2=v2`).
    pub fn from_query(query: &str) -> Result<Self, TagError> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        Self::new(pairs)
    }

    /// The tags, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), format!("v {i}"))).collect()
    }

    #[test]
    fn aws_limits_are_kept() {
        assert_eq!(TagSet::new(pairs(10)).unwrap().len(), 10);
        assert_eq!(TagSet::new(pairs(11)), Err(TagError::TooMany(11)));
        let one = |k: &str, v: &str| TagSet::new(vec![(k.to_owned(), v.to_owned())]);
        assert!(one(&"ü".repeat(128), &"é".repeat(256)).is_ok(), "limits count characters, not bytes");
        for (k, v) in
            [("", "v"), (&*"k".repeat(129), "v"), ("k", &*"v".repeat(257)), ("aws:x", "v"), ("k", "a|b")]
        {
            assert!(matches!(one(k, v), Err(TagError::Invalid(_))), "{k:?}={v:?}");
        }
        let twice = vec![("a".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())];
        assert!(matches!(TagSet::new(twice), Err(TagError::Invalid(_))));
        assert!(one("k", "").is_ok(), "an empty value is allowed");
    }

    #[test]
    fn headers_decode_as_url_queries() {
        let t = TagSet::from_query("project=blue%20sky&team=a%2Fb&empty=").unwrap();
        let want = [("project", "blue sky"), ("team", "a/b"), ("empty", "")];
        assert_eq!(t.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(), want);
        assert!(TagSet::from_query("").unwrap().is_empty());
    }
}
