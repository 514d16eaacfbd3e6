//! The annex a store keeps beside one version of an object (FORMAT.md §6.3): what S3
//! lets a client change after the version was written without rewriting it — its tags
//! (PutObjectTagging), its Object Lock state (PutObjectRetention, PutObjectLegalHold), its
//! ACL (PutObjectAcl) and the storage class a lifecycle transition gave it.
//! It is bound to the record it was set on (by the record's SHA-256), so it never
//! outlives its version: an object written later under the same key starts from its own
//! record. It is kept in clear, as tags and lock state are served without the object's
//! key; what it holds replaces the record's own tags or lock state.
//!
//! ```text
//! {"v":2,"record":"<sha-256 hex of the record>","tags":[...],"lock":{...},"storage_class":"…","acl":{...}}
//! ```
//!
//! Version 1 (tags only, written before Object Lock) is read too.

use iam::acl::Acl;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ObjectError;
use super::lock::Lock;
use super::tags::TagSet;

/// What is kept beside a version: each part, if set, replaces the record's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annex {
    /// Tags set after the write.
    pub tags: Option<TagSet>,
    /// Retention and legal hold set after the write.
    pub lock: Option<Lock>,
    /// The storage class a lifecycle transition gave the version after the write.
    pub storage_class: Option<String>,
    /// The ACL set after the write.
    pub acl: Option<Acl>,
}

impl Annex {
    /// Nothing set.
    pub fn is_empty(&self) -> bool {
        self.tags.is_none() && self.lock.is_none() && self.storage_class.is_none() && self.acl.is_none()
    }

    /// The version's storage class now (`None`: STANDARD): a transition's, else the one
    /// it was written with (`written`).
    pub fn storage_class<'a>(&'a self, written: Option<&'a str>) -> Option<&'a str> {
        self.storage_class.as_deref().or(written)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kept {
    v: u32,
    record: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags: Option<TagSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock: Option<Lock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acl: Option<Acl>,
}

const VERSION: u32 = 2;

fn identity(record: &[u8]) -> String {
    base::hex::encode(&Sha256::digest(record))
}

/// The bytes to keep beside the version whose stored record is `record`; `None` when the
/// annex holds nothing.
pub fn encode(record: &[u8], annex: &Annex) -> Result<Option<Vec<u8>>, ObjectError> {
    if annex.is_empty() {
        return Ok(None);
    }
    let kept = Kept {
        v: VERSION,
        record: identity(record),
        tags: annex.tags.clone(),
        lock: annex.lock,
        storage_class: annex.storage_class.clone(),
        acl: annex.acl.clone(),
    };
    serde_json::to_vec(&kept).map(Some).map_err(|e| ObjectError::Encode(e.to_string()))
}

/// The annex kept beside a version whose stored record is `record`: empty if it was set
/// on an earlier object under the same key.
pub fn decode(record: &[u8], bytes: Option<&[u8]>) -> Result<Annex, ObjectError> {
    let Some(bytes) = bytes else { return Ok(Annex::default()) };
    let kept: Kept = serde_json::from_slice(bytes)
        .map_err(|e| ObjectError::Integrity(format!("an annex does not parse: {e}")))?;
    match kept.v {
        // Version 1 held a tag set and nothing else.
        1 if kept.lock.is_none() && kept.storage_class.is_none() && kept.acl.is_none() => {}
        VERSION => {}
        v => return Err(ObjectError::Integrity(format!("an annex has unknown format version {v}"))),
    }
    if kept.record != identity(record) {
        return Ok(Annex::default());
    }
    Ok(Annex { tags: kept.tags, lock: kept.lock, storage_class: kept.storage_class, acl: kept.acl })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Mode, Retention};

    #[test]
    fn an_annex_applies_to_its_record_only() {
        let tags = TagSet::new(vec![("k".into(), "v".into())]).unwrap();
        let lock = Lock {
            retention: Some(Retention { mode: Mode::Compliance, until_ms: 9 }),
            legal_hold: Some(true),
        };
        let a = Annex {
            tags: Some(tags.clone()),
            lock: Some(lock),
            storage_class: Some("STANDARD_IA".into()),
            acl: Some(Acl::private("someone")),
        };
        let kept = encode(b"record one", &a).unwrap().unwrap();
        assert_eq!(decode(b"record one", Some(&kept)).unwrap(), a);
        assert_eq!(decode(b"record two", Some(&kept)).unwrap(), Annex::default());
        assert_eq!(encode(b"r", &Annex::default()).unwrap(), None);
        assert!(decode(b"x", Some(b"{")).is_err());
        assert!(decode(b"x", Some(br#"{"v":3,"record":""}"#)).is_err());
    }

    #[test]
    fn version_1_tag_sets_read() {
        let v1 = format!(r#"{{"v":1,"record":"{}","tags":[["a","b"]]}}"#, identity(b"rec"));
        let got = decode(b"rec", Some(v1.as_bytes())).unwrap();
        assert_eq!(got.tags.unwrap().pairs(), [("a".to_owned(), "b".to_owned())]);
        assert_eq!(got.lock, None);
    }
}
