//! Multipart upload records: the upload (the object to be: key, protection, headers, user
//! metadata) and each uploaded part (plaintext size, ETag, header salt), as the bytes a
//! store keeps and back, reading version 1 records too. A part's stored length is the
//! store's to tell, not part of its record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ObjectError;
use super::legacy::UploadMetaV1;
use super::record::{Headers, Protection, Salt, salt_hex};

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Upload id (32 lower-case hex digits).
    pub upload_id: String,
    /// Unix seconds when the upload began.
    pub initiated: u64,
    /// The object's key.
    pub key: String,
    /// The protection every part and the object get.
    pub protection: Protection,
    /// The object's standard headers.
    #[serde(default)]
    pub headers: Headers,
    /// The object's user metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
}

impl UploadRecord {
    /// The bytes a store keeps.
    pub fn encode(&self) -> Result<Vec<u8>, ObjectError> {
        #[derive(Serialize)]
        struct Out<'a> {
            v: u32,
            #[serde(flatten)]
            record: &'a UploadRecord,
        }
        serde_json::to_vec(&Out { v: 2, record: self }).map_err(|e| ObjectError::Encode(e.to_string()))
    }

    /// Reads stored bytes of either version.
    pub fn decode(bytes: &[u8]) -> Result<Self, ObjectError> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            v: u32,
        }
        let damaged = |why: &dyn std::fmt::Display| ObjectError::Integrity(format!("an upload record {why}"));
        let parse_error = |e: serde_json::Error| damaged(&format_args!("does not parse: {e}"));
        match serde_json::from_slice::<Probe>(bytes).map_err(parse_error)?.v {
            0 => {
                let v1: UploadMetaV1 = serde_json::from_slice(bytes).map_err(parse_error)?;
                let object = v1.object.record().map_err(|why| damaged(&why))?;
                Ok(Self {
                    upload_id: v1.upload_id,
                    initiated: v1.initiated,
                    key: object.key,
                    protection: object.protection,
                    headers: object.headers,
                    user: object.user,
                })
            }
            2 => serde_json::from_slice(bytes).map_err(parse_error),
            v => Err(damaged(&format_args!("has unknown format version {v}"))),
        }
    }
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// Part number, 1 to 10,000.
    pub number: u32,
    /// Plaintext length.
    pub size: u64,
    /// ETag as S3 reports it, without quotes.
    pub etag: String,
    /// Unix seconds.
    pub last_modified: u64,
    /// The salt of the part's engine header (absent in parts written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "salt_hex")]
    pub salt: Option<Salt>,
}

impl PartRecord {
    /// The bytes a store keeps (the same shape in both versions: version 1 also held the
    /// stored length, which is ignored, and an empty string for no salt).
    pub fn encode(&self) -> Result<Vec<u8>, ObjectError> {
        serde_json::to_vec(self).map_err(|e| ObjectError::Encode(e.to_string()))
    }

    /// Reads stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ObjectError> {
        serde_json::from_slice(bytes)
            .map_err(|e| ObjectError::Integrity(format!("a part record does not parse: {e}")))
    }
}

/// An uploaded part: its record and its stored length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// What was recorded.
    pub record: PartRecord,
    /// Stored (encrypted) length, as the store reports it.
    pub stored: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_and_part_records_round_trip_and_version_1_reads() {
        let u = UploadRecord {
            upload_id: "0".repeat(32),
            initiated: 7,
            key: "k".into(),
            protection: Protection::SseC { key_md5: "m".into() },
            headers: Headers { content_type: Some("a/b".into()), ..Headers::default() },
            user: [("x".to_owned(), "y".to_owned())].into(),
        };
        assert_eq!(UploadRecord::decode(&u.encode().unwrap()).unwrap(), u);
        let v1 = format!(
            r#"{{"upload_id":"{}","initiated":7,"object":{{"key":"k","size":0,"etag":"","last_modified":0,"content_type":"a/b","user":{{"x":"y"}},"attributes":{{"protection":"sse-c","sse-c-key-md5":"m"}}}}}}"#,
            "0".repeat(32)
        );
        assert_eq!(UploadRecord::decode(v1.as_bytes()).unwrap(), u);
        assert!(UploadRecord::decode(b"{\"v\":9}").is_err());

        let p = PartRecord { number: 2, size: 9, etag: "e".into(), last_modified: 3, salt: Some([1; 16]) };
        assert_eq!(PartRecord::decode(&p.encode().unwrap()).unwrap(), p);
        let v1 = br#"{"number":2,"size":9,"stored":99,"etag":"e","last_modified":3,"salt":""}"#;
        assert_eq!(PartRecord::decode(v1).unwrap(), PartRecord { salt: None, ..p });
    }
}
