//! The protection policy (DESIGN.md's table of protections): which protection a new object
//! gets from what its request asked for and what its bucket says ([`Policy::for_new_object`]),
//! which root key an AWS-style request names ([`Policy::requested`]), and which key opens a
//! stored object or writes a part of an upload ([`ReadKey`]). Keys are bound to the
//! object's name ([`binding`]), so an object's bytes open under that name only.
//!
//! HTTP-free: the S3 layer parses headers into [`ServerSide`] and a [`SentKey`], calls
//! here, and renders [`ProtectionError`] as the S3 error clients expect.

use std::sync::Arc;

use engine::{CustomerKey, SecretKey};
use keys::{KeyRef, KeySource, KeysError};

use super::bucket::BucketRecord;
pub use super::error::ProtectionError;
use super::record::Protection;

/// Root-key protection asked for by a request (`x-amz-server-side-encryption`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSide {
    /// `AES256`: SSE-S3, the instance's default root key.
    SseS3,
    /// `aws:kms` (the key id, if one was sent, travels beside it).
    Kms,
    /// `aws:kms:dsse`, which is not offered.
    KmsDsse,
    /// Any other value, as sent.
    Other(String),
}

/// A root key a new object is to be protected by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    /// The root key's CRN.
    pub root: String,
    /// SSE-S3 (`AES256`): the instance default root key, answered as `AES256`.
    pub sse_s3: bool,
}

/// An SSE-C key a request sent, its MD5 checked already, bound to the object it names.
pub struct SentKey {
    /// The key, bound to bucket and object ([`binding`]).
    pub key: CustomerKey,
    /// Base64 MD5 of the key, as sent.
    pub md5: String,
}

/// The binding context of an object's keys: `bucket/object`.
pub fn binding(bucket: &str, object: &str) -> Vec<u8> {
    [bucket.as_bytes(), b"/", object.as_bytes()].concat()
}

/// The protection policy of one service: its key manager (none without an HSM) and
/// whether new default-protection objects are stored unencrypted (benchmark builds only).
#[derive(Clone)]
pub struct Policy {
    keys: Option<Arc<dyn KeySource>>,
    plaintext: bool,
}

impl Policy {
    /// A policy over `keys` (`None`: no HSM, so no root-key protections).
    pub fn new(keys: Option<Arc<dyn KeySource>>) -> Self {
        Self { keys, plaintext: false }
    }

    /// Benchmark baseline only: new default-protection objects are recorded as plaintext.
    #[cfg(feature = "bench-plaintext")]
    pub fn with_plaintext(mut self, on: bool) -> Self {
        self.plaintext = on;
        self
    }

    /// The key manager, if the server has an HSM.
    pub fn keys(&self) -> Option<&dyn KeySource> {
        self.keys.as_deref()
    }

    /// The key manager, for reading or writing an object under a root key.
    pub fn manager(&self) -> Result<&dyn KeySource, ProtectionError> {
        self.keys().ok_or(ProtectionError::NoKeyManager)
    }

    /// The key manager for an object-level encryption request (`what` names it).
    fn manager_for(&self, what: &'static str) -> Result<&dyn KeySource, ProtectionError> {
        self.keys().ok_or(ProtectionError::NoHsm(what))
    }

    /// The root key an AWS-style request asks for (`asked`, `key_id`): `None` if it asks
    /// for nothing (the bucket's default applies). aws:kms with a key id: that key;
    /// without one: the bucket's default root key, else the instance default key. AES256
    /// (SSE-S3): the instance default key. An SSE-KP bucket accepts its own root key only,
    /// as IBM COS does.
    pub fn requested(
        &self,
        bucket: &BucketRecord,
        asked: Option<&ServerSide>,
        key_id: Option<&str>,
    ) -> Result<Option<Requested>, ProtectionError> {
        let Some(asked) = asked else {
            return match key_id {
                Some(_) => Err(ProtectionError::KeyIdWithoutKms),
                None => Ok(None),
            };
        };
        let sse_kp_only = |what: String| ProtectionError::SseKpBucket {
            root: bucket.root().unwrap_or_default().to_owned(),
            what,
        };
        let requested = match asked {
            ServerSide::SseS3 => {
                if key_id.is_some() {
                    return Err(ProtectionError::KeyIdWithSseS3);
                }
                if bucket.bound_at_creation() {
                    return Err(sse_kp_only("SSE-S3 (AES256)".into()));
                }
                let root = self.manager_for("SSE-S3 (AES256)")?.default_key()?;
                Requested { root, sse_s3: true }
            }
            ServerSide::Kms => {
                let m = self.manager_for("SSE-KMS (aws:kms)")?;
                let root = match key_id {
                    Some(id) => match m.crn_of(&KeyRef::from_kms(id)) {
                        Ok(crn) => crn,
                        Err(KeysError::KeyNotFound(_)) => {
                            return Err(ProtectionError::KmsKeyNotFound(id.to_owned()));
                        }
                        Err(e) => return Err(e.into()),
                    },
                    None => match bucket.kms_default() {
                        Some(root) => root.to_owned(),
                        None => m.default_key()?,
                    },
                };
                if bucket.bound_at_creation() && bucket.root() != Some(root.as_str()) {
                    return Err(sse_kp_only(format!("root key {}", key_id.unwrap_or(&root))));
                }
                Requested { root, sse_s3: false }
            }
            ServerSide::KmsDsse => return Err(ProtectionError::Dsse),
            ServerSide::Other(other) => return Err(ProtectionError::Unsupported(other.clone())),
        };
        Ok(Some(requested))
    }

    /// The bucket's default for a new object that asks for no protection: SSE-S3 if
    /// PutBucketEncryption set AES256, else its default root key.
    pub fn bucket_default(&self, bucket: &BucketRecord) -> Result<Option<Requested>, ProtectionError> {
        if bucket.sse_s3 {
            let root = self.manager_for("the bucket's SSE-S3 default")?.default_key()?;
            return Ok(Some(Requested { root, sse_s3: true }));
        }
        Ok(bucket.default_root().map(|root| Requested { root: root.to_owned(), sse_s3: false }))
    }

    /// The protection of a new object `object` in `bucket`: SSE-C if the request carries a
    /// key, else the root key asked for (`kms`, see [`Policy::requested`]) or the bucket's
    /// default (SSE-S3 or a root key), else AONT-RS. Returns how the engine seals it and
    /// how its record names it.
    pub fn for_new_object(
        &self,
        bucket: &BucketRecord,
        object: &str,
        sse_c: Option<SentKey>,
        kms: Option<Requested>,
    ) -> Result<(engine::Sealing, Protection), ProtectionError> {
        if sse_c.is_some() && kms.is_some() {
            return Err(ProtectionError::Both);
        }
        let root = match (&sse_c, kms) {
            (None, None) => self.bucket_default(bucket)?,
            (_, kms) => kms,
        };
        Ok(match (sse_c, root) {
            (Some(k), _) => (engine::Sealing::SseC(k.key), Protection::SseC { key_md5: k.md5 }),
            (None, Some(Requested { root, sse_s3 })) => {
                let key = self.new_object_key(bucket, object, &root)?;
                let recorded = Protection::SseKp { root: root.clone(), sse_s3 };
                (engine::Sealing::SseKp { key, crn: root }, recorded)
            }
            (None, None) => {
                let recorded = if self.plaintext { Protection::Plaintext } else { Protection::Aont };
                (engine::Sealing::Aont, recorded)
            }
        })
    }

    /// The bucket key of (`bucket`, root key `crn`), bound to `bucket/object`, for reading
    /// an object stored under it.
    pub fn object_key(&self, bucket: &str, object: &str, crn: &str) -> Result<CustomerKey, ProtectionError> {
        let key = self.manager()?.bucket_key(bucket, &KeyRef::parse(crn))?;
        Ok(bind(key, bucket, object))
    }

    /// [`Policy::object_key`] for writing a new object: the pair's bucket key is created
    /// (one HSM wrap) on its first use.
    fn new_object_key(
        &self,
        bucket: &BucketRecord,
        object: &str,
        crn: &str,
    ) -> Result<CustomerKey, ProtectionError> {
        let retain = bucket.object_lock.is_some();
        let key = self.manager()?.bucket_key_for_write(&bucket.name, &KeyRef::parse(crn), retain)?;
        Ok(bind(key, &bucket.name, object))
    }

    /// Checks, just before a write under a root key commits, that the key is still
    /// usable: a key suspended or deleted while the body streamed refuses the write, and
    /// nothing is committed. Costs a cache lookup while the key stays enabled.
    pub fn still_usable(&self, bucket: &str, protection: &Protection) -> Result<(), ProtectionError> {
        if let Some(root) = protection.kp_root() {
            self.manager()?.bucket_key(bucket, &KeyRef::parse(root))?;
        }
        Ok(())
    }
}

fn bind(key: SecretKey, bucket: &str, object: &str) -> CustomerKey {
    CustomerKey { key, context: binding(bucket, object) }
}

/// How a read of a stored object (or a write into an upload) is keyed.
pub struct ReadKey {
    /// The key to open it with: the SSE-C key sent, or the SSE-KP bucket key.
    pub key: Option<CustomerKey>,
    /// The protection the record holds.
    pub protection: Protection,
}

impl ReadKey {
    /// The key of an object protected by `protection`: `sent` (an SSE-C key the S3 layer
    /// checked against the record's key MD5), else the bucket key of an SSE-KP object,
    /// else none (AONT-RS).
    pub fn resolve(
        policy: &Policy,
        bucket: &str,
        object: &str,
        protection: &Protection,
        sent: Option<SentKey>,
    ) -> Result<Self, ProtectionError> {
        let key = match (sent, protection) {
            (Some(k), _) => Some(k.key),
            (None, Protection::SseKp { root, .. }) => Some(policy.object_key(bucket, object, root)?),
            (None, _) => None,
        };
        Ok(Self { key, protection: protection.clone() })
    }

    /// The engine protection that writes new bytes the way this key reads them (parts).
    pub fn sealing(&self) -> engine::Sealing {
        match (&self.key, &self.protection) {
            (Some(k), Protection::SseC { .. }) => engine::Sealing::SseC(k.clone()),
            (Some(k), Protection::SseKp { root, .. }) => {
                engine::Sealing::SseKp { key: k.clone(), crn: root.clone() }
            }
            _ => engine::Sealing::Aont,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> BucketRecord {
        BucketRecord {
            name: "b".into(),
            owner: "owner".into(),
            created: 0,
            kms: None,
            sse_s3: false,
            versioning: Default::default(),
            object_lock: None,
            lifecycle: None,
            policy: None,
            public_access_block: None,
            ownership: None,
            acl: None,
        }
    }

    #[test]
    fn without_an_hsm_the_default_is_aont_and_root_keys_are_refused() {
        let policy = Policy::new(None);
        let b = bucket();
        let (sealing, recorded) = policy.for_new_object(&b, "o", None, None).unwrap();
        assert!(matches!(sealing, engine::Sealing::Aont));
        assert_eq!(recorded, Protection::Aont);
        assert!(matches!(
            policy.requested(&b, Some(&ServerSide::SseS3), None),
            Err(ProtectionError::NoHsm("SSE-S3 (AES256)"))
        ));
        assert!(matches!(
            policy.requested(&b, Some(&ServerSide::Kms), None),
            Err(ProtectionError::NoHsm("SSE-KMS (aws:kms)"))
        ));
        assert!(matches!(policy.requested(&b, None, Some("k")), Err(ProtectionError::KeyIdWithoutKms)));
        assert!(matches!(
            policy.requested(&b, Some(&ServerSide::SseS3), Some("k")),
            Err(ProtectionError::KeyIdWithSseS3)
        ));
        assert!(matches!(policy.requested(&b, Some(&ServerSide::KmsDsse), None), Err(ProtectionError::Dsse)));
        assert!(matches!(
            policy.requested(&b, Some(&ServerSide::Other("rot13".into())), None),
            Err(ProtectionError::Unsupported(v)) if v == "rot13"
        ));
        assert!(policy.requested(&b, None, None).unwrap().is_none());
    }

    #[test]
    fn sse_c_and_a_root_key_together_are_refused_and_sse_c_binds_to_the_name() {
        let policy = Policy::new(None);
        let b = bucket();
        let sent = || SentKey {
            key: CustomerKey { key: SecretKey::from_bytes([7; 32]), context: binding("b", "o") },
            md5: "md5".into(),
        };
        let kms = Requested { root: "r".into(), sse_s3: false };
        assert!(matches!(
            policy.for_new_object(&b, "o", Some(sent()), Some(kms)),
            Err(ProtectionError::Both)
        ));
        let (sealing, recorded) = policy.for_new_object(&b, "o", Some(sent()), None).unwrap();
        assert_eq!(recorded, Protection::SseC { key_md5: "md5".into() });
        let engine::Sealing::SseC(k) = sealing else { panic!("not SSE-C") };
        assert_eq!(k.context, b"b/o");
        let read = ReadKey::resolve(&policy, "b", "o", &recorded, Some(sent())).unwrap();
        assert!(matches!(read.sealing(), engine::Sealing::SseC(_)));
        let aont = ReadKey::resolve(&policy, "b", "o", &Protection::Aont, None).unwrap();
        assert!(aont.key.is_none() && matches!(aont.sealing(), engine::Sealing::Aont));
        let kp = Protection::SseKp { root: "r".into(), sse_s3: false };
        assert!(matches!(ReadKey::resolve(&policy, "b", "o", &kp, None), Err(ProtectionError::NoKeyManager)));
    }
}
