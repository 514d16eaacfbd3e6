//! The private part of object and upload records: the standard headers and user metadata
//! ([`Private`]), and their sealed form in the bytes a store keeps (FORMAT.md §3.8, §6).
//! Sealed under the object's key (SSE-C, SSE-KP) or as an AONT-RS package (default mode),
//! so that neither the metadata store (etcd) nor a data directory shows them in clear.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::ObjectError;
use super::record::Headers;
use engine::CustomerKey;
use engine::sealed_meta;

/// The label object records seal under.
pub(crate) const OBJECT_LABEL: &[u8] = b"cipherstore/v3/object-metadata\n";
/// The start of the label an upload record seals under (the upload id follows).
const UPLOAD_LABEL: &[u8] = b"cipherstore/v3/upload-metadata\n";

/// The label of upload `upload_id`.
pub(crate) fn upload_label(upload_id: &str) -> Vec<u8> {
    [UPLOAD_LABEL, upload_id.as_bytes()].concat()
}

/// The label of part `number` of upload `upload_id` (its checksums are sealed under it).
pub(crate) fn part_label(upload_id: &str, number: u32) -> Vec<u8> {
    [UPLOAD_LABEL, upload_id.as_bytes(), b"/part/", number.to_string().as_bytes()].concat()
}

/// What an object is served with that the store must not read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Private {
    /// Standard headers.
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// `x-amz-meta-*` user metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
}

impl Private {
    /// No headers and no user metadata.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.user.is_empty()
    }

    /// The sealed text to store (base64), for an object opened with `key` (none for
    /// AONT-RS); `None` when there is nothing to seal.
    pub(crate) fn seal(
        &self,
        key: Option<&CustomerKey>,
        label: &[u8],
    ) -> Result<Option<String>, ObjectError> {
        if self.is_empty() {
            return Ok(None);
        }
        let plain = Zeroizing::new(serde_json::to_vec(self).map_err(|e| ObjectError::Encode(e.to_string()))?);
        let sealed = sealed_meta::seal(key, label, &plain).map_err(|e| ObjectError::Encode(e.to_string()))?;
        Ok(Some(STANDARD.encode(sealed)))
    }

    /// Opens what [`Private::seal`] stored for `what` (an object or upload, named in
    /// errors); nothing stored is nothing private.
    pub(crate) fn open(
        sealed: Option<&str>,
        key: Option<&CustomerKey>,
        label: &[u8],
        what: &str,
    ) -> Result<Self, ObjectError> {
        let Some(text) = sealed else { return Ok(Self::default()) };
        let damaged = |why: &str| ObjectError::Integrity(format!("the sealed metadata of {what} {why}"));
        let bytes = STANDARD.decode(text).map_err(|_| damaged("is not base64"))?;
        let plain =
            sealed_meta::open(key, label, &bytes).map_err(|_| damaged("does not open under its key"))?;
        let private: Self = serde_json::from_slice(&plain).map_err(|_| damaged("does not parse"))?;
        if private.is_empty() {
            return Err(damaged("is empty (the writer stores nothing then)"));
        }
        Ok(private)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::SecretKey;

    #[test]
    fn private_metadata_seals_opens_and_nothing_is_nothing() {
        let key = CustomerKey { key: SecretKey::from_bytes([3; 32]), context: b"b/k".to_vec() };
        let p = Private {
            headers: Headers { content_type: Some("text/x-marker".into()), ..Headers::default() },
            user: [("colour".to_owned(), "marker-value".to_owned())].into(),
        };
        for k in [None, Some(&key)] {
            let text = p.seal(k, OBJECT_LABEL).unwrap().unwrap();
            assert!(!text.contains("marker"));
            assert_eq!(Private::open(Some(&text), k, OBJECT_LABEL, "k").unwrap(), p);
            assert!(Private::open(Some(&text), k, &upload_label("u"), "k").is_err());
            assert!(Private::open(Some("%%"), k, OBJECT_LABEL, "k").is_err());
            assert_eq!(Private::default().seal(k, OBJECT_LABEL).unwrap(), None);
            assert_eq!(Private::open(None, k, OBJECT_LABEL, "k").unwrap(), Private::default());
            let empty = STANDARD.encode(sealed_meta::seal(k, OBJECT_LABEL, b"{}").unwrap());
            assert!(Private::open(Some(&empty), k, OBJECT_LABEL, "k").is_err(), "empty sealed metadata");
        }
        let text = p.seal(Some(&key), &upload_label("a")).unwrap().unwrap();
        assert!(Private::open(Some(&text), Some(&key), &upload_label("b"), "u").is_err(), "another upload's");
    }
}
