//! The bucket record: owner, creation time, the bucket's root key binding (SSE-KP or
//! aws:kms) and its default encryption (that root key, or SSE-S3), as the bytes a store keeps (`{"v":2,…}` JSON) and back, reading version 1
//! records (an `attributes` map of strings) too. It also holds the bucket's settings:
//! versioning, Object Lock and lifecycle rules. The wrapped bucket key itself lives with
//! the key lifecycle state ([`keys`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use iam::acl::{Acl, Ownership};
use serde::{Deserialize, Serialize};

use super::error::ObjectError;
use super::legacy;
use super::lifecycle::Lifecycle;
use super::lock::BucketLock;

/// How a bucket got its root key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// CreateBucket with the IBM SSE-KP headers: bound for life.
    Create,
    /// PutBucketEncryption with aws:kms.
    PutBucketEncryption,
}

/// A bucket's root key binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsBinding {
    /// The root key's CRN.
    pub root: String,
    /// How it was bound.
    pub origin: Origin,
    /// Whether new objects get it when the request names no protection (false once
    /// DeleteBucketEncryption turned the default off).
    pub default: bool,
}

/// What a bucket does with the versions of its objects (S3 versioning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Versioning {
    /// Never turned on: a write replaces the object, a delete removes it.
    #[default]
    Off,
    /// Every write makes a new version; a delete makes a delete marker.
    Enabled,
    /// Writes and deletes make the null version, replacing the one there was; the other
    /// versions stay.
    Suspended,
}

impl Versioning {
    /// The version a write (or, `marker`, a delete) makes now; `None` when versioning was
    /// never on.
    pub fn new_version(self, marker: bool) -> Option<store::Version> {
        match self {
            Self::Off => None,
            Self::Enabled => Some(store::Version::new(false, marker)),
            Self::Suspended => Some(store::Version::new(true, marker)),
        }
    }
}

/// What a bucket is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// Name.
    pub name: String,
    /// Owning access key.
    pub owner: String,
    /// Unix seconds.
    pub created: u64,
    /// The root key binding, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsBinding>,
    /// New objects get SSE-S3 when the request names no protection (PutBucketEncryption
    /// with AES256).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sse_s3: bool,
    /// Its versioning state.
    #[serde(default, skip_serializing_if = "is_off")]
    pub versioning: Versioning,
    /// Its Object Lock configuration, once enabled (for good; versioning stays enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<BucketLock>,
    /// Its lifecycle rules, if any (PutBucketLifecycleConfiguration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Its bucket policy, the JSON document as it was put (checked then; docs/ACCESS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Arc<str>>,
    /// Its public access block, if one is set (new buckets get every part on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    /// Its object ownership controls (`None`: BucketOwnerEnforced, ACLs off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    /// Its ACL (`None`: its owner's, private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Acl>,
}

/// S3's public access block of a bucket: which public grants it refuses or ignores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse ACLs that grant to everyone.
    pub block_public_acls: bool,
    /// Ignore ACL grants to everyone.
    pub ignore_public_acls: bool,
    /// Refuse bucket policies that allow everyone.
    pub block_public_policy: bool,
    /// Let only named callers use a public policy's statements.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// Every part on: what a new bucket gets, as on AWS.
    pub const ALL: Self = Self {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

fn is_off(v: &Versioning) -> bool {
    *v == Versioning::Off
}

impl BucketRecord {
    /// Its object ownership (BucketOwnerEnforced unless set).
    pub fn ownership(&self) -> Ownership {
        self.ownership.unwrap_or_default()
    }

    /// Its ACL now: as set, else its owner's, private.
    pub fn acl(&self) -> Acl {
        self.acl.clone().unwrap_or_else(|| Acl::private(&self.owner))
    }

    /// The ACLs its requests are decided under (`None`: ACLs are off).
    pub fn acls_on(&self) -> bool {
        self.ownership().acls_enabled()
    }

    /// The root key CRN of a bound bucket.
    pub fn root(&self) -> Option<&str> {
        self.kms.as_ref().map(|k| k.root.as_str())
    }

    /// The root key new objects get when the request names none.
    pub fn default_root(&self) -> Option<&str> {
        self.kms.as_ref().filter(|k| k.default).map(|k| k.root.as_str())
    }

    /// The root key aws:kms without a key id means here: an SSE-KP bucket's own, else the
    /// bucket's default root key.
    pub fn kms_default(&self) -> Option<&str> {
        if self.bound_at_creation() { self.root() } else { self.default_root() }
    }

    /// Whether the root key was bound at creation (IBM SSE-KP), which nothing can undo.
    pub fn bound_at_creation(&self) -> bool {
        self.kms.as_ref().is_some_and(|k| k.origin == Origin::Create)
    }

    /// The bytes a store keeps.
    pub fn encode(&self) -> Result<Vec<u8>, ObjectError> {
        #[derive(Serialize)]
        struct Out<'a> {
            v: u32,
            #[serde(flatten)]
            record: &'a BucketRecord,
        }
        serde_json::to_vec(&Out { v: 2, record: self }).map_err(|e| ObjectError::Encode(e.to_string()))
    }

    /// Reads stored bytes of either version.
    pub fn decode(bytes: &[u8]) -> Result<Self, ObjectError> {
        #[derive(Deserialize)]
        struct In {
            #[serde(default)]
            v: u32,
            name: String,
            owner: String,
            created: u64,
            #[serde(default)]
            kms: Option<KmsBinding>,
            #[serde(default)]
            sse_s3: bool,
            #[serde(default)]
            versioning: Versioning,
            #[serde(default)]
            object_lock: Option<BucketLock>,
            #[serde(default)]
            lifecycle: Option<Lifecycle>,
            #[serde(default)]
            policy: Option<Arc<str>>,
            #[serde(default)]
            public_access_block: Option<PublicAccessBlock>,
            #[serde(default)]
            ownership: Option<Ownership>,
            #[serde(default)]
            acl: Option<Acl>,
            #[serde(default)]
            attributes: BTreeMap<String, String>,
        }
        let damaged = |why: &dyn std::fmt::Display| ObjectError::Integrity(format!("a bucket record {why}"));
        let wire: In =
            serde_json::from_slice(bytes).map_err(|e| damaged(&format_args!("does not parse: {e}")))?;
        let kms = match wire.v {
            0 => match wire.attributes.get(legacy::ROOT) {
                None => None,
                Some(root) => Some(KmsBinding {
                    root: root.clone(),
                    origin: match wire.attributes.get(legacy::BUCKET_ORIGIN).map(String::as_str) {
                        None | Some("create") => Origin::Create,
                        Some("put-bucket-encryption") => Origin::PutBucketEncryption,
                        Some(_) => return Err(damaged(&"has an unknown key origin")),
                    },
                    default: wire.attributes.get(legacy::BUCKET_DEFAULT).is_none_or(|d| d != "false"),
                }),
            },
            2 => wire.kms,
            v => return Err(damaged(&format_args!("has unknown format version {v}"))),
        };
        Ok(Self {
            name: wire.name,
            owner: wire.owner,
            created: wire.created,
            kms,
            sse_s3: wire.sse_s3,
            versioning: wire.versioning,
            object_lock: wire.object_lock,
            lifecycle: wire.lifecycle,
            policy: wire.policy,
            public_access_block: wire.public_access_block,
            ownership: wire.ownership,
            acl: wire.acl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lock::{DefaultRetention, Mode, Period};

    #[test]
    fn bucket_records_round_trip_and_version_1_reads() {
        let kms = KmsBinding { root: "crn:x".into(), origin: Origin::PutBucketEncryption, default: false };
        let b = BucketRecord {
            name: "b".into(),
            owner: "o".into(),
            created: 5,
            kms: Some(kms),
            sse_s3: false,
            versioning: Versioning::Off,
            object_lock: None,
            lifecycle: None,
            policy: None,
            public_access_block: None,
            ownership: None,
            acl: None,
        };
        assert_eq!(BucketRecord::decode(&b.encode().unwrap()).unwrap(), b);
        let with_acl = BucketRecord {
            ownership: Some(Ownership::ObjectWriter),
            acl: Some(Acl::private("x")),
            ..b.clone()
        };
        assert_eq!(BucketRecord::decode(&with_acl.encode().unwrap()).unwrap(), with_acl);
        assert!(!String::from_utf8(b.encode().unwrap()).unwrap().contains("acl"), "absent when none");
        let s3 = BucketRecord { kms: None, sse_s3: true, ..b.clone() };
        assert_eq!(BucketRecord::decode(&s3.encode().unwrap()).unwrap(), s3);
        assert!(!String::from_utf8(b.encode().unwrap()).unwrap().contains("sse_s3"), "absent when off");
        assert!(!String::from_utf8(b.encode().unwrap()).unwrap().contains("versioning"), "absent when off");
        let versioned = BucketRecord { versioning: Versioning::Suspended, ..b.clone() };
        assert_eq!(BucketRecord::decode(&versioned.encode().unwrap()).unwrap(), versioned);
        let default = DefaultRetention { mode: Mode::Governance, period: Period::Years(2) };
        let locked = BucketRecord {
            versioning: Versioning::Enabled,
            object_lock: Some(BucketLock { default: Some(default) }),
            ..b.clone()
        };
        assert_eq!(BucketRecord::decode(&locked.encode().unwrap()).unwrap(), locked);
        let v1 = br#"{"name":"b","owner":"o","created":5,"attributes":{"sse-kp-root":"crn:x","sse-kp-origin":"put-bucket-encryption","sse-kp-default":"false"}}"#;
        assert_eq!(BucketRecord::decode(v1).unwrap(), b);
        let v1 = br#"{"name":"b","owner":"o","created":5,"attributes":{"sse-kp-root":"crn:x"}}"#;
        let got = BucketRecord::decode(v1).unwrap();
        assert!(got.bound_at_creation());
        assert_eq!(got.default_root(), Some("crn:x"));
        let plain = br#"{"name":"b","owner":"o","created":5,"attributes":{}}"#;
        assert_eq!(BucketRecord::decode(plain).unwrap().kms, None);
        assert!(BucketRecord::decode(br#"{"v":7,"name":"b","owner":"o","created":5}"#).is_err());
        assert!(BucketRecord::decode(b"{").is_err());
    }
}
