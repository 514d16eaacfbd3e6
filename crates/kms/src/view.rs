//! What the service answers, in Key Protect's shapes: a key resource (numeric state,
//! algorithm, current version, deletion and restore dates), collections with their
//! `metadata`, key versions, registrations and aliases. Version ids are UUIDs derived from
//! the key id and the version number, stable across hosts.

use serde_json::{Value, json};
use sha2::Digest as _;

use base::clock::rfc3339;
use keys::state::KeyState;
use keys::{KeyView, Registration};

/// Key Protect's numeric state: 1 active, 2 suspended, 5 destroyed.
pub fn state_code(s: KeyState) -> u8 {
    match s {
        KeyState::Active => 1,
        KeyState::Suspended => 2,
        KeyState::Destroyed => 5,
    }
}

/// The id of version `version` of key `key_id`: a UUID derived from both.
pub fn version_id(key_id: &str, version: u32) -> String {
    let d = sha2::Sha256::digest(format!("cipherstore key version\0{key_id}\0{version}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = base::hex::encode(&b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// `{"id": …}` of a key version, as wrap and unwrap answer it.
pub fn version_ref(key_id: &str, version: u32) -> Value {
    json!({"id": version_id(key_id, version)})
}

/// A collection: `{"metadata":{"collectionType","collectionTotal"[,"totalCount"]},"resources":[…]}`.
pub fn collection(kind: &str, resources: Vec<Value>, total: Option<usize>) -> Value {
    let mut metadata = json!({"collectionType": kind, "collectionTotal": resources.len()});
    if let Some(t) = total {
        metadata["totalCount"] = json!(t);
    }
    json!({"metadata": metadata, "resources": resources})
}

/// The key collection type.
pub const KEY_TYPE: &str = "application/vnd.ibm.kms.key+json";

/// A key as Key Protect shows it. `restore_window` and `purge_wait` (seconds) date the
/// restore and purge of a deleted key.
pub fn key(k: &KeyView, restore_window: u64, purge_wait: u64) -> Value {
    let current = k.versions.iter().find(|v| v.version == k.version);
    let mut v = json!({
        "type": KEY_TYPE,
        "id": k.id,
        "name": k.name,
        "aliases": k.aliases,
        "state": state_code(k.state),
        "extractable": false,
        "crn": k.crn,
        "imported": matches!(k.origin, keys::state::Origin::Imported),
        "creationDate": k.created,
        "createdBy": k.created_by.clone().unwrap_or_else(|| "local".into()),
        "algorithmType": "AES",
        "algorithmBitSize": 256,
        "algorithmMetadata": {"bitLength": "256", "mode": k.wrap_method.name()},
        "algorithmMode": k.wrap_method.name(),
        "lastUpdateDate": k.updated,
        "keyVersion": {
            "id": version_id(&k.id, k.version),
            "creationDate": current.map(|c| rfc3339(c.created)).unwrap_or_else(|| k.created.clone()),
        },
        "dualAuthDelete": {"enabled": false},
        "deleted": k.state == KeyState::Destroyed,
        "keyRingID": "default",
    });
    if let Some(d) = &k.description {
        v["description"] = json!(d);
    }
    if k.versions.len() > 1
        && let Some(c) = current
    {
        v["lastRotateDate"] = json!(rfc3339(c.created));
    }
    if let Some(at) = k.destroyed_unix.filter(|_| k.state == KeyState::Destroyed) {
        let now = base::clock::now_unix();
        let restore_until = at + restore_window;
        let restorable = k.restorable || matches!(k.origin, keys::state::Origin::Imported);
        v["deletionDate"] = json!(rfc3339(at));
        v["restoreExpirationDate"] = json!(rfc3339(restore_until));
        v["restoreAllowed"] = json!(restorable && now <= restore_until);
        v["purgeAllowedFrom"] = json!(rfc3339(at + purge_wait));
        v["purgeAllowed"] = json!(now >= at + purge_wait);
    }
    v
}

/// The CRN of a bucket as registrations name it.
pub fn bucket_crn(instance: &str, bucket: &str) -> String {
    format!("crn:v1:cipherstore:{instance}:bucket:{bucket}")
}

/// A registration (a bucket the key protects).
pub fn registration(r: &Registration, instance: &str, key_name: Option<&str>) -> Value {
    let mut v = json!({
        "keyId": r.key_id,
        "resourceCrn": bucket_crn(instance, &r.bucket),
        "createdBy": "cipherstore-s3",
        "creationDate": r.created,
        "updatedBy": "cipherstore-s3",
        "lastUpdated": r.created,
        "description": format!("bucket {}", r.bucket),
        "preventKeyDeletion": r.prevent_key_deletion,
        "keyVersion": {"id": version_id(&r.key_id, r.version), "creationDate": r.created},
    });
    if let Some(n) = key_name {
        v["keyName"] = json!(n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_stable_uuids_per_key_and_version() {
        let a = version_id("k1", 1);
        assert_eq!(a, version_id("k1", 1));
        assert_ne!(a, version_id("k1", 2));
        assert_ne!(a, version_id("k2", 1));
        assert_eq!(a.len(), 36);
        assert!(keys::KeyId::parse(&a).is_some());
    }
}
