//! Object records as the bytes a store keeps, sealed with the metadata tag (FORMAT.md §6.1):
//!
//! ```text
//! {"v":3,"record":<the record as JSON, without headers and user metadata>,
//!  "sealed":"<headers and user metadata, sealed (§3.8), base64>","tag":"<64 hex digits>"}
//! ```
//!
//! The tag covers the record's JSON exactly as stored and the sealed text (after a domain
//! label), so checking it needs no re-serialisation. `sealed` is absent when there are no
//! headers and no user metadata. Records written before this form (version 2, headers and
//! user metadata in clear; version 1, see [`super::legacy`]) are read too. A record read
//! back is [`Unverified`] until its tag checks under the object's key: only its protection
//! (to find that key) and, for listings and conditions, its size, ETag and time may be used
//! before; its headers and user metadata are opened only then.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ObjectError;
use super::legacy::ObjectMetaV1;
use super::private::{OBJECT_LABEL, Private};
use super::record::ObjectRecord;
use engine::CustomerKey;
use engine::binding::{metadata_tag, verify_metadata};

/// The format version of records written now.
const VERSION: u32 = 3;
/// Domain label the version 3 tag covers before the record's bytes.
const LABEL: &[u8] = b"cipherstore/v3/object-record\n";
/// Domain label the version 2 tag covers before the record's bytes.
const LABEL_V2: &[u8] = b"cipherstore/v2/object-record\n";

#[derive(Serialize)]
struct SealedOut<'a> {
    v: u32,
    record: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed: Option<&'a str>,
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
    #[serde(default)]
    sealed: Option<String>,
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
    /// The record's JSON as stored; its sealed headers and user metadata; the tag.
    V3 { bytes: Vec<u8>, sealed: Option<String>, tag: Vec<u8> },
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

/// What the version 3 tag covers: the label, the record's JSON, a newline, the sealed text.
fn tagged_v3<'a>(record: &'a [u8], sealed: Option<&'a str>) -> [&'a [u8]; 4] {
    [LABEL, record, b"\n", sealed.unwrap_or("").as_bytes()]
}

/// The bytes to store for `record`, its headers and user metadata sealed and the whole
/// tagged for an object opened with `key` (none for AONT-RS).
pub fn seal(record: &ObjectRecord, key: Option<&CustomerKey>) -> Result<Vec<u8>, ObjectError> {
    // One copy of the record: its headers and user metadata move into the sealed part.
    let mut public = record.clone();
    let private =
        Private { headers: std::mem::take(&mut public.headers), user: std::mem::take(&mut public.user) };
    let sealed = private.seal(key, OBJECT_LABEL)?;
    let json = serde_json::to_string(&public).map_err(|e| ObjectError::Encode(e.to_string()))?;
    let tag = metadata_tag(key, &tagged_v3(json.as_bytes(), sealed.as_deref()))
        .map_err(|e| ObjectError::Encode(e.to_string()))?;
    let raw = RawValue::from_string(json).map_err(|e| ObjectError::Encode(e.to_string()))?;
    let out = SealedOut { v: VERSION, record: &raw, sealed: sealed.as_deref(), tag: base::hex::encode(&tag) };
    serde_json::to_vec(&out).map_err(|e| ObjectError::Encode(e.to_string()))
}

/// Reads stored record bytes (any form); damage is an integrity failure.
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
        2 | VERSION => {
            let sealed: SealedIn<'_> =
                serde_json::from_slice(bytes).map_err(|e| damaged(&format_args!("does not parse: {e}")))?;
            let record: ObjectRecord = serde_json::from_str(sealed.record.get())
                .map_err(|e| damaged(&format_args!("does not parse: {e}")))?;
            // Only the form the writer produces: any other spelling of the tag is damage.
            let tag = base::hex::decode(&sealed.tag)
                .filter(|t| base::hex::encode(t) == sealed.tag)
                .ok_or_else(|| damaged(&"has a malformed tag"))?;
            let bytes = sealed.record.get().as_bytes().to_vec();
            if probe.v == 2 {
                if sealed.sealed.is_some() {
                    return Err(damaged(&"has sealed metadata in a version 2 record"));
                }
                (record, Tagged::V2 { bytes, tag })
            } else {
                if !record.headers.is_empty()
                    || !record.user.is_empty()
                    || sealed.sealed.as_deref() == Some("")
                {
                    return Err(damaged(&"holds headers or user metadata outside its sealed part"));
                }
                (record, Tagged::V3 { bytes, sealed: sealed.sealed, tag })
            }
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
    /// for listings (which answer sizes and ETags as stored, as S3 listings do). Its
    /// headers and user metadata are empty in version 3 records until [`Self::verify`].
    pub fn unchecked(&self) -> &ObjectRecord {
        &self.record
    }

    /// The record, once its tag checks under `key` (the object's key; none for AONT-RS),
    /// with its headers and user metadata opened.
    pub fn verify(self, key: Option<&CustomerKey>) -> Result<ObjectRecord, ObjectError> {
        let ok = match &self.tagged {
            Tagged::V3 { bytes, sealed, tag } => {
                verify_metadata(key, &tagged_v3(bytes, sealed.as_deref()), tag)
            }
            Tagged::V2 { bytes, tag } => verify_metadata(key, &[LABEL_V2, bytes], tag),
            Tagged::V1 { canonical, tag: Some(tag) } => verify_metadata(key, &[canonical], tag),
            Tagged::V1 { tag: None, .. } => Ok(false),
        }
        .map_err(|e| ObjectError::Encode(e.to_string()))?;
        let mut record = self.record;
        if !ok {
            return Err(ObjectError::Integrity(format!("the record of {} fails its tag", record.key)));
        }
        if let Tagged::V3 { sealed, .. } = &self.tagged {
            let private = Private::open(sealed.as_deref(), key, OBJECT_LABEL, &record.key)?;
            record.headers = private.headers;
            record.user = private.user;
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Headers, Layout, PartEntry, Protection};
    use engine::SecretKey;

    fn record() -> ObjectRecord {
        ObjectRecord {
            headers: Headers {
                content_type: Some("text/plain".into()),
                cache_control: Some("no-cache".into()),
                expires: Some("Thu, 01 Jan 2037 00:00:00 GMT".into()),
                ..Headers::default()
            },
            user: [("a".to_owned(), "b".to_owned())].into(),
            ..ObjectRecord::new(
                "k".into(),
                3,
                "e".into(),
                1,
                Protection::SseC { key_md5: "md5".into() },
                Layout::Single { salt: Some([9; 16]) },
            )
        }
    }

    #[test]
    fn records_round_trip_and_any_change_or_another_key_fails() {
        let key = CustomerKey { key: SecretKey::from_bytes([1; 32]), context: b"b/k".to_vec() };
        for k in [None, Some(&key)] {
            let bytes = seal(&record(), k).unwrap();
            let text = String::from_utf8(bytes.clone()).unwrap();
            for private in ["text/plain", "no-cache", "2037", "\"a\""] {
                assert!(!text.contains(private), "{private} in clear: {text}");
            }
            let opened = open(&bytes, "k").unwrap();
            assert!(opened.unchecked().user.is_empty() && opened.unchecked().headers.is_empty());
            assert_eq!(opened.verify(k).unwrap(), record());
            let sealed = text.split("\"sealed\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            let mut other = record();
            other.user.insert("z".into(), "w".into());
            let other_text = String::from_utf8(seal(&other, k).unwrap()).unwrap();
            let other_sealed = other_text.split("\"sealed\":\"").nth(1).unwrap().split('"').next().unwrap();
            let flipped = format!("{}{}", if sealed.starts_with('A') { "B" } else { "A" }, &sealed[1..]);
            for (from, to) in [
                ("\"size\":3", "\"size\":4"),
                (sealed.as_str(), flipped.as_str()),
                (sealed.as_str(), other_sealed),
                (",\"sealed\"", ",\"x\":1,\"sealed\""),
            ] {
                let changed = text.replacen(from, to, 1);
                assert_ne!(changed, text);
                assert!(open(changed.as_bytes(), "k").and_then(|r| r.verify(k)).is_err(), "{from}");
            }
            let clear_user = text.replacen("\"layout\"", "\"user\":{\"a\":\"b\"},\"layout\"", 1);
            assert!(open(clear_user.as_bytes(), "k").is_err(), "metadata in clear in a version 3 record");
            let untagged = text.split(",\"tag\"").next().unwrap().to_owned() + "}";
            assert!(open(untagged.as_bytes(), "k").is_err());
            let upper = text.split(",\"tag\"").next().unwrap().to_owned()
                + &text[text.find(",\"tag\"").unwrap()..].to_uppercase();
            assert!(open(upper.as_bytes(), "k").is_err(), "the tag in another spelling");
            // Nothing private: no sealed part, and one cannot be slipped in.
            let bare = ObjectRecord { headers: Headers::default(), user: Default::default(), ..record() };
            let bare_text = String::from_utf8(seal(&bare, k).unwrap()).unwrap();
            assert!(!bare_text.contains("sealed"));
            assert_eq!(open(bare_text.as_bytes(), "k").unwrap().verify(k).unwrap(), bare);
            let slipped = bare_text.replacen(",\"tag\"", &format!(",\"sealed\":\"{sealed}\",\"tag\""), 1);
            assert!(open(slipped.as_bytes(), "k").unwrap().verify(k).is_err());
        }
        let bytes = seal(&record(), Some(&key)).unwrap();
        assert!(open(&bytes, "k").unwrap().verify(None).is_err());
        for bad in [&b"{"[..], b"[]", b"{\"v\":4}", b"{\"v\":3,\"record\":{},\"tag\":\"00\"}"] {
            assert!(matches!(open(bad, "k"), Err(ObjectError::Integrity(_))));
        }
    }

    /// Records sealed by an independent implementation (Python's `cryptography`, from
    /// FORMAT.md §3.6 and §3.8 alone; kept as fuzzing seeds too) open here.
    #[test]
    fn records_sealed_by_an_independent_implementation_open() {
        let key = CustomerKey { key: SecretKey::from_bytes([1; 32]), context: b"b/k".to_vec() };
        let seeds = [
            (include_str!("../../../tests/fuzz_regressions/stored_record/v3-python-keyless.json"), None),
            (include_str!("../../../tests/fuzz_regressions/stored_record/v3-python-keyed.json"), Some(&key)),
        ];
        for (stored, k) in seeds {
            let record = open(stored.as_bytes(), "k").unwrap().verify(k).unwrap();
            assert_eq!(record.headers.content_type.as_deref(), Some("text/x-python"));
            assert_eq!(record.user, [("made-by".to_owned(), "independent".to_owned())].into());
        }
    }

    /// A record as the version 2 writer stored it (metadata in clear, tag over its JSON).
    #[test]
    fn version_2_records_still_read() {
        let key = CustomerKey { key: SecretKey::from_bytes([1; 32]), context: b"b/k".to_vec() };
        for k in [None, Some(&key)] {
            let json = serde_json::to_string(&record()).unwrap();
            assert!(json.contains("text/plain"));
            let tag = metadata_tag(k, &[LABEL_V2, json.as_bytes()]).unwrap();
            let stored = format!(r#"{{"v":2,"record":{json},"tag":"{}"}}"#, base::hex::encode(&tag));
            assert_eq!(open(stored.as_bytes(), "k").unwrap().verify(k).unwrap(), record());
            let changed = stored.replace("text/plain", "text/html");
            assert!(open(changed.as_bytes(), "k").unwrap().verify(k).is_err());
            let with_sealed = stored.replacen(",\"tag\"", ",\"sealed\":\"AA==\",\"tag\"", 1);
            assert!(open(with_sealed.as_bytes(), "k").is_err());
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
        let stored = v1.replace(r#""salt""#, &format!(r#""meta-tag":"{}","salt""#, base::hex::encode(&tag)));
        let record = open(stored.as_bytes(), "k").unwrap().verify(None).unwrap();
        assert_eq!(record.protection, Protection::Aont);
        assert_eq!(record.layout, Layout::Single { salt: Some([10; 16]) });
        assert_eq!(record.headers.content_type.as_deref(), Some("text/plain"));
        assert!(open(stored.replace("\"b\"", "\"c\"").as_bytes(), "k").unwrap().verify(None).is_err());
        assert!(open(v1.as_bytes(), "k").unwrap().verify(None).is_err(), "no tag");
    }
}
