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
        "dualAuthDelete": {"enabled": k.dual_auth_delete},
        "deleted": k.state == KeyState::Destroyed,
        "keyRingID": k.key_ring,
    });
    if let Some(d) = &k.description {
        v["description"] = json!(d);
    }
    if let Some(r) = &k.rotation {
        v["rotation"] = json!({"enabled": r.enabled, "interval_month": r.interval_month});
    }
    if let Some(a) = &k.deletion_authorized {
        v["dualAuthDelete"]["keySetForDeletion"] = json!(true);
        v["dualAuthDelete"]["authExpiration"] = json!(rfc3339(a.at + keys::policy::AUTHORIZATION_SECS));
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

/// The policy collection type.
pub const POLICY_TYPE: &str = "application/vnd.ibm.kms.policy+json";

/// A key's policies, as `GET /keys/{id}/policies` answers them (`only`: one of them).
pub fn key_policies(k: &KeyView, only: Option<&str>) -> Value {
    let mut out = Vec::new();
    let stamp = |name: &str, by: &str, created: u64, updated: u64| {
        json!({
            "type": POLICY_TYPE,
            "id": version_id(&format!("{}/policy/{name}", k.id), 0),
            "crn": format!("{}:policy:{name}", k.crn),
            "createdBy": by,
            "creationDate": rfc3339(created),
            "updatedBy": by,
            "lastUpdateDate": rfc3339(updated),
        })
    };
    if let Some(r) = k.policies.rotation.as_ref().filter(|_| only.is_none_or(|o| o == "rotation")) {
        let mut v = stamp("rotation", &r.by, r.created, r.updated);
        v["rotation"] = json!({"enabled": r.value.enabled, "interval_month": r.value.interval_month});
        out.push(v);
    }
    if let Some(d) =
        k.policies.dual_auth_delete.as_ref().filter(|_| only.is_none_or(|o| o == "dualAuthDelete"))
    {
        let mut v = stamp("dualAuthDelete", &d.by, d.created, d.updated);
        v["dualAuthDelete"] = json!({"enabled": d.value});
        out.push(v);
    }
    collection(POLICY_TYPE, out, None)
}

/// The instance's policies, as `GET /instance/policies` answers them.
pub fn instance_policies(p: &keys::policy::Policies, only: Option<&str>) -> Value {
    let mut out = Vec::new();
    let stamp = |kind: &str, data: Value, by: &str, created: u64, updated: u64| {
        json!({
            "policy_type": kind,
            "policy_data": data,
            "createdBy": by,
            "creationDate": rfc3339(created),
            "updatedBy": by,
            "lastUpdated": rfc3339(updated),
        })
    };
    if let Some(d) = p.dual_auth_delete.as_ref().filter(|_| only.is_none_or(|o| o == "dualAuthDelete")) {
        out.push(stamp("dualAuthDelete", json!({"enabled": d.value}), &d.by, d.created, d.updated));
    }
    if let Some(r) = p.rotation.as_ref().filter(|_| only.is_none_or(|o| o == "rotation")) {
        let data =
            json!({"enabled": r.value.enabled, "attributes": {"interval_month": r.value.interval_month}});
        out.push(stamp("rotation", data, &r.by, r.created, r.updated));
    }
    collection(POLICY_TYPE, out, None)
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
