//! Multipart upload records: the upload (the object to be: key, protection, headers, user
//! metadata) and each uploaded part (plaintext size, ETag, header salt), as the bytes a
//! store keeps and back, reading version 1 records too. A part's stored length is the
//! store's to tell, not part of its record.

use std::collections::BTreeMap;

use iam::acl::Acl;
use serde::{Deserialize, Serialize};

use super::checksum::Checksums;
use super::error::ObjectError;
use super::etag::ETag;
use super::legacy::UploadMetaV1;
use super::lock::Lock;
use super::private::{Private, part_label, upload_label};
use super::record::{Headers, Protection, Salt, salt_hex};
use super::tags::TagSet;
use engine::CustomerKey;

/// The format version of upload records written now.
const VERSION: u32 = 3;

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Upload id (32 lower-case hex digits).
    pub upload_id: String,
    /// Unix seconds when the upload began.
    pub initiated: u64,
    /// The object's key.
    pub key: String,
    /// The protection every part and the object get.
    pub protection: Protection,
    /// The object's storage class, when not STANDARD.
    pub storage_class: Option<String>,
    /// The object's tags (`x-amz-tagging`), in clear as an object record's.
    pub tags: TagSet,
    /// The object's Object Lock retention and legal hold, asked for at the upload's start.
    pub lock: Lock,
    /// The object's ACL, asked for at the upload's start (`None`: the bucket owner's,
    /// private).
    pub acl: Option<Acl>,
    /// The object's headers and user metadata: read with [`UploadRecord::metadata`].
    metadata: Metadata,
}

/// An upload's headers and user metadata as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Metadata {
    /// Sealed (version 3; `None` when there were none).
    Sealed(Option<String>),
    /// In clear (records written before version 3).
    Clear(Private),
}

/// The stored form of every version but 1.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    #[serde(default)]
    v: u32,
    upload_id: String,
    initiated: u64,
    key: String,
    protection: Protection,
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    headers: Headers,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    user: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "TagSet::is_empty")]
    tags: TagSet,
    #[serde(default, skip_serializing_if = "Lock::is_empty")]
    lock: Lock,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acl: Option<Acl>,
}

impl UploadRecord {
    /// A new upload of `key` whose object gets `private` headers and metadata, sealed for
    /// an object opened with `sealing` (the object's key; none for AONT-RS).
    pub fn new(
        upload_id: String,
        initiated: u64,
        key: String,
        protection: Protection,
        private: &Private,
        sealing: Option<&CustomerKey>,
    ) -> Result<Self, ObjectError> {
        let sealed = private.seal(sealing, &upload_label(&upload_id))?;
        Ok(Self {
            upload_id,
            initiated,
            key,
            protection,
            storage_class: None,
            tags: TagSet::default(),
            lock: Lock::default(),
            acl: None,
            metadata: Metadata::Sealed(sealed),
        })
    }

    /// The object's headers and user metadata, opened with `key` (the object's key; none
    /// for AONT-RS).
    pub fn metadata(&self, key: Option<&CustomerKey>) -> Result<Private, ObjectError> {
        match &self.metadata {
            Metadata::Sealed(sealed) => {
                let what = format!("upload {}", self.upload_id);
                Private::open(sealed.as_deref(), key, &upload_label(&self.upload_id), &what)
            }
            Metadata::Clear(private) => Ok(private.clone()),
        }
    }

    /// The bytes a store keeps.
    pub fn encode(&self) -> Result<Vec<u8>, ObjectError> {
        let (v, private, sealed) = match &self.metadata {
            Metadata::Sealed(sealed) => (VERSION, Private::default(), sealed.clone()),
            Metadata::Clear(private) => (2, private.clone(), None),
        };
        let stored = Stored {
            v,
            upload_id: self.upload_id.clone(),
            initiated: self.initiated,
            key: self.key.clone(),
            protection: self.protection.clone(),
            headers: private.headers,
            user: private.user,
            sealed,
            storage_class: self.storage_class.clone(),
            tags: self.tags.clone(),
            lock: self.lock,
            acl: self.acl.clone(),
        };
        serde_json::to_vec(&stored).map_err(|e| ObjectError::Encode(e.to_string()))
    }

    /// Reads stored bytes of any version.
    pub fn decode(bytes: &[u8]) -> Result<Self, ObjectError> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            v: u32,
        }
        let damaged = |why: &dyn std::fmt::Display| ObjectError::Integrity(format!("an upload record {why}"));
        let parse_error = |e: serde_json::Error| damaged(&format_args!("does not parse: {e}"));
        let stored: Stored = match serde_json::from_slice::<Probe>(bytes).map_err(parse_error)?.v {
            0 => {
                let v1: UploadMetaV1 = serde_json::from_slice(bytes).map_err(parse_error)?;
                let object = v1.object.record().map_err(|why| damaged(&why))?;
                return Ok(Self {
                    upload_id: v1.upload_id,
                    initiated: v1.initiated,
                    key: object.key,
                    protection: object.protection,
                    storage_class: None,
                    tags: TagSet::default(),
                    lock: Lock::default(),
                    acl: None,
                    metadata: Metadata::Clear(Private { headers: object.headers, user: object.user }),
                });
            }
            2 | VERSION => serde_json::from_slice(bytes).map_err(parse_error)?,
            v => return Err(damaged(&format_args!("has unknown format version {v}"))),
        };
        let private = Private { headers: stored.headers, user: stored.user };
        let metadata = match (stored.v, stored.sealed) {
            (2, None) => Metadata::Clear(private),
            (VERSION, sealed) if private.is_empty() && sealed.as_deref() != Some("") => {
                Metadata::Sealed(sealed)
            }
            _ => return Err(damaged(&"mixes sealed and clear metadata")),
        };
        Ok(Self {
            upload_id: stored.upload_id,
            initiated: stored.initiated,
            key: stored.key,
            protection: stored.protection,
            storage_class: stored.storage_class,
            tags: stored.tags,
            lock: stored.lock,
            metadata,
            acl: stored.acl,
        })
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
    pub etag: ETag,
    /// Unix seconds.
    pub last_modified: u64,
    /// The salt of the part's engine header (absent in parts written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "salt_hex")]
    pub salt: Option<Salt>,
    /// The checksums the part's upload carried and its bytes matched, sealed as an
    /// object's metadata is (FORMAT.md §3.8), under the part's label: a checksum of the
    /// plaintext tells about it. Absent when there were none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

impl PartRecord {
    /// Keeps `checksums` (by algorithm name, base64), sealed for part `number` of upload
    /// `upload_id` under `key` (the object's key; none for AONT-RS).
    pub fn seal_checksums(
        &mut self,
        upload_id: &str,
        checksums: Checksums,
        key: Option<&CustomerKey>,
    ) -> Result<(), ObjectError> {
        let private = Private { headers: Headers { checksums, ..Headers::default() }, user: BTreeMap::new() };
        self.sealed = private.seal(key, &part_label(upload_id, self.number))?;
        Ok(())
    }

    /// The checksums [`Self::seal_checksums`] kept, opened with `key`.
    pub fn checksums(&self, upload_id: &str, key: Option<&CustomerKey>) -> Result<Checksums, ObjectError> {
        let what = format!("part {} of upload {upload_id}", self.number);
        let label = part_label(upload_id, self.number);
        Ok(Private::open(self.sealed.as_deref(), key, &label, &what)?.headers.checksums)
    }

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

/// A new multipart upload id: random, unguessable, in the form the stores accept.
pub fn new_upload_id() -> String {
    store::new_upload_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_and_part_records_round_trip_and_older_versions_read() {
        use engine::SecretKey;
        let private = Private {
            headers: Headers { content_type: Some("a/b".into()), ..Headers::default() },
            user: [("x".to_owned(), "y".to_owned())].into(),
        };
        let key = CustomerKey { key: SecretKey::from_bytes([5; 32]), context: b"b/k".to_vec() };
        let new = |sealing: Option<&CustomerKey>, private: &Private| {
            UploadRecord::new(
                "0".repeat(32),
                7,
                "k".into(),
                Protection::SseC { key_md5: "m".into() },
                private,
                sealing,
            )
            .unwrap()
        };
        for k in [None, Some(&key)] {
            let u = new(k, &private);
            let bytes = u.encode().unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains("a/b"), "headers in clear");
            let back = UploadRecord::decode(&bytes).unwrap();
            assert_eq!(back, u);
            assert_eq!(back.metadata(k).unwrap(), private);
            let other = CustomerKey { key: SecretKey::from_bytes([6; 32]), context: b"b/k".to_vec() };
            assert!(back.metadata(Some(&other)).is_err());
            let empty = new(k, &Private::default());
            assert_eq!(
                UploadRecord::decode(&empty.encode().unwrap()).unwrap().metadata(k).unwrap(),
                Private::default()
            );
        }
        // Another upload's sealed metadata does not open under this one's id.
        let a = String::from_utf8(new(Some(&key), &private).encode().unwrap()).unwrap();
        let moved = a.replace(&"0".repeat(32), &"1".repeat(32));
        assert!(UploadRecord::decode(moved.as_bytes()).unwrap().metadata(Some(&key)).is_err());

        let v2 = format!(
            r#"{{"v":2,"upload_id":"{}","initiated":7,"key":"k","protection":{{"mode":"sse-c","key_md5":"m"}},"headers":{{"content_type":"a/b"}},"user":{{"x":"y"}}}}"#,
            "0".repeat(32)
        );
        let read = UploadRecord::decode(v2.as_bytes()).unwrap();
        assert_eq!((read.key.as_str(), read.metadata(None).unwrap()), ("k", private.clone()));
        assert_eq!(
            UploadRecord::decode(&read.encode().unwrap()).unwrap(),
            read,
            "a version 2 record re-encodes as itself"
        );
        let v1 = format!(
            r#"{{"upload_id":"{}","initiated":7,"object":{{"key":"k","size":0,"etag":"","last_modified":0,"content_type":"a/b","user":{{"x":"y"}},"attributes":{{"protection":"sse-c","sse-c-key-md5":"m"}}}}}}"#,
            "0".repeat(32)
        );
        assert_eq!(UploadRecord::decode(v1.as_bytes()).unwrap(), read);
        for bad in [
            "{\"v\":9}".to_owned(),
            v2.replace("\"v\":2", "\"v\":3"),
            v2.replace("\"user\"", "\"sealed\":\"AA==\",\"user\""),
            a.replace("\"sealed\"", "\"user\":{},\"sealed\"")
                .replace("\"user\":{},", "\"user\":{\"x\":\"y\"},"),
        ] {
            assert!(UploadRecord::decode(bad.as_bytes()).is_err(), "{bad}");
        }

        let mut p = PartRecord {
            number: 2,
            size: 9,
            etag: "e".into(),
            last_modified: 3,
            salt: Some([1; 16]),
            sealed: None,
        };
        assert_eq!(PartRecord::decode(&p.encode().unwrap()).unwrap(), p);
        let v1 = br#"{"number":2,"size":9,"stored":99,"etag":"e","last_modified":3,"salt":""}"#;
        assert_eq!(PartRecord::decode(v1).unwrap(), PartRecord { salt: None, ..p.clone() });
        // Checksums sealed for their part: in no clear form, opened for that part only.
        let sums: Checksums = [(crate::ChecksumAlgorithm::Crc32, "c3VtIQ==".to_owned())].into();
        for k in [None, Some(&key)] {
            p.seal_checksums("u1", sums.clone(), k).unwrap();
            let stored = String::from_utf8(p.encode().unwrap()).unwrap();
            assert!(!stored.contains("c3VtIQ"), "{stored}");
            let back = PartRecord::decode(stored.as_bytes()).unwrap();
            assert_eq!(back.checksums("u1", k).unwrap(), sums);
            assert!(back.checksums("u2", k).is_err(), "another upload's label");
            let moved = PartRecord { number: 3, ..back.clone() };
            assert!(moved.checksums("u1", k).is_err(), "another part's label");
        }
        p.seal_checksums("u1", BTreeMap::new(), None).unwrap();
        assert_eq!((p.sealed.as_deref(), p.checksums("u1", None).unwrap()), (None, BTreeMap::new()));
    }
}
