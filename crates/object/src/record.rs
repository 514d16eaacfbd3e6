//! The object record: everything cipherstore keeps about an object besides its stored
//! bytes, as types. How it is protected ([`Protection`], with that mode's parameters), its
//! plaintext size and ETag, how its bytes are laid out ([`Layout`]: one engine object and
//! its header salt, or parts with their manifest), the standard HTTP headers it was stored
//! with ([`Headers`]) and its user metadata. [`super::codec`] turns a record into the bytes
//! a store keeps (sealed with the metadata tag) and back, reading records written before
//! this type existed too.

use std::collections::BTreeMap;

use iam::acl::Acl;
use serde::{Deserialize, Serialize};

use super::checksum::Checksums;
use super::etag::ETag;
use super::lock::Lock;
use super::tags::TagSet;
use engine::format::SALT_LEN;
use store::VersionId;

/// The random salt of a stored engine header (FORMAT.md §1), recorded so that stored bytes
/// are tied to their record (§3.7).
pub type Salt = [u8; SALT_LEN];

/// How an object's bytes are protected, with what a reader needs to find its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Protection {
    /// AONT-RS packages: keyless, the default.
    Aont,
    /// SSE-C: a customer key sent with every request; only its MD5 is kept.
    SseC {
        /// Base64 MD5 of the customer key, as S3 echoes it.
        key_md5: String,
    },
    /// SSE-KP, aws:kms and SSE-S3: a bucket key (one per bucket and root key) wrapped by
    /// an HSM root key.
    SseKp {
        /// The root key's CRN.
        root: String,
        /// Asked for as SSE-S3 (`AES256`, under the instance default key): answered as
        /// such.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sse_s3: bool,
    },
    /// Stored unencrypted by a `bench-plaintext` build (the benchmark baseline only).
    Plaintext,
}

impl Protection {
    /// The SSE-C key MD5, for SSE-C objects.
    pub fn sse_c_md5(&self) -> Option<&str> {
        match self {
            Self::SseC { key_md5 } => Some(key_md5),
            _ => None,
        }
    }

    /// The root key CRN, for SSE-KP objects.
    pub fn kp_root(&self) -> Option<&str> {
        match self {
            Self::SseKp { root, .. } => Some(root),
            _ => None,
        }
    }
}

/// The standard HTTP headers an object was stored with and is served with, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers {
    /// Content-Type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Cache-Control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Content-Disposition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// Content-Encoding (without the transport's `aws-chunked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// Content-Language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// Expires, as an HTTP date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `x-amz-website-redirect-location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_redirect_location: Option<String>,
    /// The full-object checksums the client sent and the body matched, by algorithm
    /// (keyed by name in the JSON: `crc32`, `sha256`, …; base64), served with
    /// `x-amz-checksum-mode: ENABLED`. Sealed with the rest: a checksum of the plaintext
    /// tells about it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: Checksums,
}

impl Headers {
    /// None of the headers is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One part of a multipart object, in object order: the part manifest (FORMAT.md §3.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// Part number as uploaded (bound into its STREAM chunks).
    pub number: u32,
    /// Plaintext length.
    pub size: u64,
    /// Stored length.
    pub stored: u64,
    /// The salt its header must carry; absent in objects written before salts were kept.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "salt_hex")]
    pub salt: Option<Salt>,
}

/// How an object's stored bytes are made. Kept in a record as its `layout` field and, for
/// a delete marker, `delete_marker` beside it (FORMAT.md §6.1, §6.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "wire::Fields", into = "wire::Fields")]
pub enum Layout {
    /// One engine object (a single PUT or a copy).
    Single {
        /// The salt its header must carry; absent in objects written before salts were kept.
        salt: Option<Salt>,
    },
    /// Engine objects laid end to end, one per part (CompleteMultipartUpload).
    Parts(Vec<PartEntry>),
    /// A delete marker: a version without bytes.
    DeleteMarker,
}

/// [`Layout`] as records keep it.
mod wire {
    use serde::{Deserialize, Serialize};

    use super::{Layout, PartEntry, Salt, salt_hex};

    /// The `layout` and `delete_marker` fields of a record.
    #[derive(Serialize, Deserialize)]
    pub(super) struct Fields {
        layout: Stored,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        delete_marker: bool,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Stored {
        Single {
            #[serde(default, skip_serializing_if = "Option::is_none", with = "salt_hex")]
            salt: Option<Salt>,
        },
        Parts(Vec<PartEntry>),
    }

    impl From<Layout> for Fields {
        fn from(layout: Layout) -> Self {
            let (layout, delete_marker) = match layout {
                Layout::Single { salt } => (Stored::Single { salt }, false),
                Layout::Parts(parts) => (Stored::Parts(parts), false),
                // A marker is kept as a single object without a salt (and without bytes).
                Layout::DeleteMarker => (Stored::Single { salt: None }, true),
            };
            Fields { layout, delete_marker }
        }
    }

    impl TryFrom<Fields> for Layout {
        type Error = &'static str;

        fn try_from(fields: Fields) -> Result<Self, Self::Error> {
            match (fields.layout, fields.delete_marker) {
                (Stored::Single { salt }, false) => Ok(Layout::Single { salt }),
                (Stored::Parts(parts), false) => Ok(Layout::Parts(parts)),
                (Stored::Single { salt: None }, true) => Ok(Layout::DeleteMarker),
                (_, true) => Err("a delete marker with a salt or parts"),
            }
        }
    }
}

/// What an object is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// The object's key.
    pub key: String,
    /// Plaintext length.
    pub size: u64,
    /// ETag as S3 reports it, without quotes.
    pub etag: ETag,
    /// Unix seconds.
    pub last_modified: u64,
    /// How its bytes are protected.
    pub protection: Protection,
    /// How its stored bytes are laid out (a delete marker has none).
    #[serde(flatten)]
    pub layout: Layout,
    /// Standard headers (sealed in stored records, FORMAT.md §6.1).
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// `x-amz-meta-*` user metadata (sealed in stored records, FORMAT.md §6.1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    /// The multipart upload that made it, so that a CompleteMultipartUpload retried after
    /// it succeeded is answered as the first was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// The storage class asked for, when not STANDARD (every class is stored alike; it is
    /// recorded to be answered, in clear, as listings show it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// The tags it was written with (`x-amz-tagging`), in clear: S3 serves tags without
    /// the object's key. PutObjectTagging keeps later ones beside the object
    /// ([`super::tags::beside`]).
    #[serde(default, skip_serializing_if = "TagSet::is_empty")]
    pub tags: TagSet,
    /// Its version id, if it is a version other than the null one. Covered by the tag
    /// with the rest, so one version's record and bytes cannot be served as another's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<VersionId>,
    /// The Object Lock retention and legal hold it was written with (in clear, as S3
    /// serves them without the object's key). PutObjectRetention and PutObjectLegalHold
    /// keep later ones in its annex ([`super::annex`]).
    #[serde(default, skip_serializing_if = "Lock::is_empty")]
    pub lock: Lock,
    /// The ACL it was written with, where the bucket's ACLs are on (`None`: owned by the
    /// bucket's owner, private). PutObjectAcl keeps later ones in its annex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Acl>,
}

impl ObjectRecord {
    /// A record of the object `key`: what every record has, and nothing else yet (no
    /// headers, user metadata, tags, lock, version).
    pub fn new(
        key: String,
        size: u64,
        etag: ETag,
        last_modified: u64,
        protection: Protection,
        layout: Layout,
    ) -> Self {
        Self {
            key,
            size,
            etag,
            last_modified,
            protection,
            layout,
            headers: Headers::default(),
            user: BTreeMap::new(),
            upload_id: None,
            storage_class: None,
            tags: TagSet::default(),
            version_id: None,
            lock: Lock::default(),
            acl: None,
        }
    }

    /// Whether it is a delete marker.
    pub fn is_delete_marker(&self) -> bool {
        self.layout == Layout::DeleteMarker
    }

    /// How many parts it was uploaded in (0 for an object written whole, and a marker).
    pub fn parts_count(&self) -> usize {
        match &self.layout {
            Layout::Single { .. } | Layout::DeleteMarker => 0,
            Layout::Parts(parts) => parts.len(),
        }
    }

    /// The plaintext range of its `n`th part (1-based position, as S3's `partNumber`); an
    /// object written whole is part 1.
    pub fn part_range(&self, n: usize) -> Option<std::ops::Range<u64>> {
        match &self.layout {
            Layout::Single { .. } => (n == 1).then_some(0..self.size),
            Layout::DeleteMarker => None,
            Layout::Parts(parts) => {
                let index = n.checked_sub(1).filter(|i| *i < parts.len())?;
                let start: u64 = parts[..index].iter().map(|p| p.size).sum();
                Some(start..start + parts[index].size)
            }
        }
    }

    /// Checks what a record must satisfy whatever wrote it: the parts' plaintext lengths
    /// add up to the size, a multipart object has parts, and a delete marker no bytes.
    pub fn consistent(&self) -> bool {
        match &self.layout {
            Layout::Single { .. } => true,
            Layout::DeleteMarker => self.size == 0,
            Layout::Parts(parts) => {
                !parts.is_empty()
                    && parts.iter().try_fold(0u64, |acc, p| acc.checked_add(p.size)) == Some(self.size)
            }
        }
    }
}

/// Salts as 32 hex digits in records.
pub(crate) mod salt_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Salt;

    pub(crate) fn serialize<S: Serializer>(salt: &Option<Salt>, s: S) -> Result<S::Ok, S::Error> {
        match salt {
            Some(salt) => s.serialize_str(&base::hex::encode(salt)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Salt>, D::Error> {
        // Version 1 part records wrote an empty string for "no salt".
        let text: Option<String> = Option::deserialize(d)?.filter(|t: &String| !t.is_empty());
        text.map(|t| base::hex::decode_array(&t).ok_or_else(|| serde::de::Error::custom("malformed salt")))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_ranges_follow_the_manifest() {
        let part = |number, size| PartEntry { number, size, stored: size + 40, salt: None };
        let mut r = ObjectRecord::new(
            "k".into(),
            10,
            "e".into(),
            0,
            Protection::Aont,
            Layout::Parts(vec![part(1, 6), part(3, 4)]),
        );
        assert_eq!(r.parts_count(), 2);
        assert_eq!((r.part_range(1), r.part_range(2)), (Some(0..6), Some(6..10)));
        assert_eq!((r.part_range(0), r.part_range(3)), (None, None));
        r.layout = Layout::Single { salt: None };
        assert_eq!((r.parts_count(), r.part_range(1), r.part_range(2)), (0, Some(0..10), None));
    }

    #[test]
    fn a_delete_marker_is_kept_as_before_the_variant() {
        let marker =
            ObjectRecord::new("k".into(), 0, ETag::none(), 7, Protection::Aont, Layout::DeleteMarker);
        let json: serde_json::Value = serde_json::to_value(&marker).unwrap();
        assert_eq!(json["layout"], serde_json::json!({"single": {}}));
        assert_eq!(json["delete_marker"], serde_json::json!(true));
        let back: ObjectRecord = serde_json::from_value(json).unwrap();
        assert!(back.is_delete_marker() && back.consistent() && back.part_range(1).is_none());

        // Records written before the variant, with the fields in their old order, and an
        // object beside them.
        let old = r#"{"key":"k","size":0,"etag":"","last_modified":7,"protection":{"mode":"aont"},
            "layout":{"single":{}},"version_id":"00000000000000000000000000000001","delete_marker":true}"#;
        let read: ObjectRecord = serde_json::from_str(old).unwrap();
        assert_eq!(read.layout, Layout::DeleteMarker);
        let object = old.replace(r#","delete_marker":true"#, "");
        let read: ObjectRecord = serde_json::from_str(&object).unwrap();
        assert_eq!(read.layout, Layout::Single { salt: None });
        let json = serde_json::to_value(&read).unwrap();
        assert!(json.get("delete_marker").is_none(), "absent for an object");

        // A marker with bytes is no record cipherstore writes.
        let salted =
            old.replace(r#"{"single":{}}"#, &format!(r#"{{"single":{{"salt":"{}"}}}}"#, "ab".repeat(16)));
        assert!(serde_json::from_str::<ObjectRecord>(&salted).is_err());
        let parts = old.replace(r#"{"single":{}}"#, r#"{"parts":[]}"#);
        assert!(serde_json::from_str::<ObjectRecord>(&parts).is_err());
    }
}
