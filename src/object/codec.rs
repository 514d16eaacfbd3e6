//! Object records as the bytes a store keeps, sealed with the metadata tag (FORMAT.md §6):
//!
//! ```text
//! {"v":2,"record":<the record as JSON>,"tag":"<64 hex digits>"}
//! ```
//!
//! The tag covers the record's JSON exactly as stored (after a domain label), so checking
//! it needs no re-serialisation. Records written before this form (version 1, see
//! [`super::legacy`]) are read too. A record read back is [`Unverified`] until its tag
//! checks under the object's key: only its protection (to find that key) and, for
//! listings, its size and ETag may be used before.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ObjectError;
use super::legacy::ObjectMetaV1;
use super::record::ObjectRecord;
use crate::engine::CustomerKey;
use crate::engine::binding::{metadata_tag, verify_metadata};

/// The format version of records written now.
const VERSION: u32 = 2;
/// Domain label the version 2 tag covers before the record's bytes.
const LABEL: &[u8] = b"cipherstore/v2/object-record\n";

#[derive(Serialize)]
struct SealedOut<'a> {
    v: u32,
    record: &'a RawValue,
    tag: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedIn<'a> {
    /// Read by [`Probe`] first; here so that unknown fields can be refused.
    #[serde(rename = "v")]
    _v: u32,
    #[serde(borrow)]
    record: &'a RawValue,
    tag: String,
}

/// Only the field that tells the forms apart.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    v: u32,
}

/// What the tag of a stored record covers.
#[derive(Debug)]
enum Tagged {
    /// The record's JSON as stored; the tag.
    V2 { bytes: Vec<u8>, tag: Vec<u8> },
    /// The version 1 metadata re-serialised without its tag; the tag, if any.
    V1 { canonical: Vec<u8>, tag: Option<Vec<u8>> },
}

/// An object record read from a store whose tag has not been checked yet.
#[derive(Debug)]
pub struct Unverified {
    record: ObjectRecord,
    tagged: Tagged,
}

/// The bytes to store for `record`, tagged for an object opened with `key` (none for
/// AONT-RS).
pub fn seal(record: &ObjectRecord, key: Option<&CustomerKey>) -> Result<Vec<u8>, ObjectError> {
    let json = serde_json::to_string(record).map_err(|e| ObjectError::Encode(e.to_string()))?;
    let tag = metadata_tag(key, &[LABEL, json.as_bytes()]).map_err(|e| ObjectError::Encode(e.to_string()))?;
    let raw = RawValue::from_string(json).map_err(|e| ObjectError::Encode(e.to_string()))?;
    let sealed = SealedOut { v: VERSION, record: &raw, tag: crate::hex::encode(&tag) };
    serde_json::to_vec(&sealed).map_err(|e| ObjectError::Encode(e.to_string()))
}

/// Reads stored record bytes (either form); damage is an integrity failure.
pub fn open(bytes: &[u8], what: &str) -> Result<Unverified, ObjectError> {
    let damaged = |why: &dyn std::fmt::Display| ObjectError::Integrity(format!("the record of {what} {why}"));
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| damaged(&format_args!("does not parse: {e}")))?;
    let (record, tagged) = match probe.v {
        0 => {
            let v1: ObjectMetaV1 =
                serde_json::from_slice(bytes).map_err(|e| damaged(&format_args!("does not parse: {e}")))?;
            let record = v1.record().map_err(|why| damaged(&why))?;
            let (canonical, tag) = v1.tagged().map_err(|why| damaged(&why))?;
            (record, Tagged::V1 { canonical, tag })
        }
        VERSION => {
            let sealed: SealedIn<'_> =
                serde_json::from_slice(bytes).map_err(|e| damaged(&format_args!("does not parse: {e}")))?;
            let record: ObjectRecord = serde_json::from_str(sealed.record.get())
                .map_err(|e| damaged(&format_args!("does not parse: {e}")))?;
            // Only the form the writer produces: any other spelling of the tag is damage.
            let tag = crate::hex::decode(&sealed.tag)
                .filter(|t| crate::hex::encode(t) == sealed.tag)
                .ok_or_else(|| damaged(&"has a malformed tag"))?;
            (record, Tagged::V2 { bytes: sealed.record.get().as_bytes().to_vec(), tag })
        }
        v => return Err(damaged(&format_args!("has unknown format version {v}"))),
    };
    if !record.consistent() {
        return Err(damaged(&"has parts that do not add up to its size"));
    }
    Ok(Unverified { record, tagged })
}

impl Unverified {
    /// The record, before its tag is checked: for choosing the key to check it with, and
    /// for listings (which answer sizes and ETags as stored, as S3 listings do).
    pub fn unchecked(&self) -> &ObjectRecord {
        &self.record
    }

    /// The record, once its tag checks under `key` (the object's key; none for AONT-RS).
    pub fn verify(self, key: Option<&CustomerKey>) -> Result<ObjectRecord, ObjectError> {
        let ok = match &self.tagged {
            Tagged::V2 { bytes, tag } => verify_metadata(key, &[LABEL, bytes], tag),
            Tagged::V1 { canonical, tag: Some(tag) } => verify_metadata(key, &[canonical], tag),
            Tagged::V1 { tag: None, .. } => Ok(false),
        }
        .map_err(|e| ObjectError::Encode(e.to_string()))?;
        if ok {
            Ok(self.record)
        } else {
            Err(ObjectError::Integrity(format!("the record of {} fails its tag", self.record.key)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SecretKey;
    use crate::object::record::{Headers, Layout, PartEntry, Protection};

    fn record() -> ObjectRecord {
        ObjectRecord {
            key: "k".into(),
            size: 3,
            etag: "e".into(),
            last_modified: 1,
            protection: Protection::SseC { key_md5: "md5".into() },
            layout: Layout::Single { salt: Some([9; 16]) },
            headers: Headers {
                content_type: Some("text/plain".into()),
                cache_control: Some("no-cache".into()),
                expires: Some("Thu, 01 Jan 2037 00:00:00 GMT".into()),
                ..Headers::default()
            },
            user: [("a".to_owned(), "b".to_owned())].into(),
        }
    }

    #[test]
    fn records_round_trip_and_any_change_or_another_key_fails() {
        let key = CustomerKey { key: SecretKey::from_bytes([1; 32]), context: b"b/k".to_vec() };
        for k in [None, Some(&key)] {
            let bytes = seal(&record(), k).unwrap();
            assert_eq!(open(&bytes, "k").unwrap().verify(k).unwrap(), record());
            let text = String::from_utf8(bytes.clone()).unwrap();
            for (from, to) in [("\"b\"", "\"c\""), ("\"size\":3", "\"size\":4"), ("text/plain", "text/html")]
            {
                let changed = text.replacen(from, to, 1);
                assert_ne!(changed, text);
                assert!(open(changed.as_bytes(), "k").unwrap().verify(k).is_err(), "{from}");
            }
            let untagged = text.split(",\"tag\"").next().unwrap().to_owned() + "}";
            assert!(open(untagged.as_bytes(), "k").is_err());
            let upper = text.split(",\"tag\"").next().unwrap().to_owned()
                + &text[text.find(",\"tag\"").unwrap()..].to_uppercase();
            assert!(open(upper.as_bytes(), "k").is_err(), "the tag in another spelling");
        }
        let bytes = seal(&record(), Some(&key)).unwrap();
        assert!(open(&bytes, "k").unwrap().verify(None).is_err());
        for bad in [&b"{"[..], b"[]", b"{\"v\":3}", b"{\"v\":2,\"record\":{},\"tag\":\"00\"}"] {
            assert!(matches!(open(bad, "k"), Err(ObjectError::Integrity(_))));
        }
    }

    #[test]
    fn parts_must_add_up() {
        let mut r = record();
        let part = |size| PartEntry { number: 1, size, stored: 10, salt: None };
        r.layout = Layout::Parts(vec![part(1), part(2)]);
        assert!(open(&seal(&r, None).unwrap(), "k").is_ok());
        r.layout = Layout::Parts(vec![part(1)]);
        assert!(open(&seal(&r, None).unwrap(), "k").is_err());
        r.layout = Layout::Parts(vec![]);
        assert!(open(&seal(&r, None).unwrap(), "k").is_err());
    }

    /// A record as the version 1 writer stored it (tag over its JSON without the tag).
    #[test]
    fn version_1_records_still_read() {
        let salt = "0a".repeat(16);
        let v1 = format!(
            r#"{{"key":"k","size":3,"etag":"e","last_modified":1,"content_type":"text/plain","user":{{"a":"b"}},"attributes":{{"protection":"aont","salt":"{salt}"}}}}"#
        );
        let tag = metadata_tag(None, &[v1.as_bytes()]).unwrap();
        let stored = v1.replace(r#""salt""#, &format!(r#""meta-tag":"{}","salt""#, crate::hex::encode(&tag)));
        let record = open(stored.as_bytes(), "k").unwrap().verify(None).unwrap();
        assert_eq!(record.protection, Protection::Aont);
        assert_eq!(record.layout, Layout::Single { salt: Some([10; 16]) });
        assert_eq!(record.headers.content_type.as_deref(), Some("text/plain"));
        assert!(open(stored.replace("\"b\"", "\"c\"").as_bytes(), "k").unwrap().verify(None).is_err());
        assert!(open(v1.as_bytes(), "k").unwrap().verify(None).is_err(), "no tag");
    }
}
