//! The request context a policy's conditions read: condition keys (`aws:SourceIp`,
//! `s3:prefix`, `s3:ExistingObjectTag/<key>`, ...) and their values, as the S3 layer
//! found them in the request. Key names compare without case; the tag key after
//! `ExistingObjectTag/` or `RequestObjectTag/` keeps its case, as S3 tag keys do.

/// Condition keys and their values for one request.
#[derive(Debug, Clone, Default)]
pub struct Context {
    entries: Vec<(String, Vec<String>)>,
}

/// A condition key as compared: lower case up to the first `/`, as given after it.
pub(crate) fn normalized(key: &str) -> String {
    match key.split_once('/') {
        Some((name, rest)) => format!("{}/{rest}", name.to_ascii_lowercase()),
        None => key.to_ascii_lowercase(),
    }
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to one value (replacing what it had).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.set_all(key, vec![value.into()]);
    }

    /// Sets `key` to several values (a multivalued key such as `s3:RequestObjectTagKeys`).
    pub fn set_all(&mut self, key: &str, values: Vec<String>) {
        let key = normalized(key);
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = values,
            None => self.entries.push((key, values)),
        }
    }

    /// The values of `key` (already normalized), if the request has it.
    pub(crate) fn get(&self, key: &str) -> Option<&[String]> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    /// Whether the request has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.get(&normalized(key)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_without_case_but_tag_keys_keep_theirs() {
        let mut c = Context::new();
        c.set("aws:SourceIp", "127.0.0.1");
        c.set("s3:ExistingObjectTag/Class", "secret");
        assert!(c.has("AWS:sourceip"));
        assert!(c.has("s3:existingobjecttag/Class"));
        assert!(!c.has("s3:ExistingObjectTag/class"));
        c.set("aws:sourceip", "::1");
        assert_eq!(c.get("aws:sourceip"), Some(&["::1".to_owned()][..]));
    }
}
