//! The tag that binds an object's stored metadata to its key (FORMAT.md §3.6): sealed into
//! the metadata as the `meta-tag` attribute when an object commits, checked on every GET,
//! HEAD and copy before anything from the metadata is answered. A mismatch is an integrity
//! failure, like a damaged ciphertext unit.

use s3s::S3Result;

use super::error;
use crate::engine::CustomerKey;
use crate::engine::binding::{metadata_tag, verify_metadata};
use crate::store::ObjectMeta;

/// The attribute holding the tag (hex).
pub const TAG: &str = "meta-tag";

/// The bytes the tag covers: the metadata as stored, without the tag.
fn canonical(meta: &ObjectMeta) -> S3Result<Vec<u8>> {
    let mut m = meta.clone();
    m.attributes.remove(TAG);
    serde_json::to_vec(&m).map_err(|e| error::internal(&e))
}

/// Adds the tag for an object opened with `key` (none for AONT-RS).
pub fn seal(meta: &mut ObjectMeta, key: Option<&CustomerKey>) -> S3Result<()> {
    let tag = metadata_tag(key, &canonical(meta)?).map_err(|e| error::internal(&e))?;
    meta.attributes.insert(TAG.to_owned(), crate::hex::encode(&tag));
    Ok(())
}

/// Checks the tag of metadata read from the store.
pub fn check(meta: &ObjectMeta, key: Option<&CustomerKey>) -> S3Result<()> {
    let tag = meta.attributes.get(TAG).and_then(|h| crate::hex::decode(h));
    let ok = match tag {
        Some(t) => verify_metadata(key, &canonical(meta)?, &t).map_err(|e| error::internal(&e))?,
        None => false,
    };
    if ok { Ok(()) } else { Err(error::integrity(&format!("the metadata of {} fails its tag", meta.key))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SecretKey;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            key: "k".into(),
            size: 3,
            etag: "e".into(),
            last_modified: 1,
            content_type: Some("text/plain".into()),
            user: [("a".to_owned(), "b".to_owned())].into(),
            attributes: Default::default(),
        }
    }

    #[test]
    fn any_change_or_another_key_fails() {
        let key = CustomerKey { key: SecretKey::from_bytes([1; 32]), context: b"b/k".to_vec() };
        for k in [None, Some(&key)] {
            let mut m = meta();
            seal(&mut m, k).unwrap();
            check(&m, k).unwrap();
            let mut changed = m.clone();
            changed.user.insert("a".into(), "c".into());
            assert!(check(&changed, k).is_err());
            let mut changed = m.clone();
            changed.size = 4;
            assert!(check(&changed, k).is_err());
            let mut stripped = m.clone();
            stripped.attributes.remove(TAG);
            assert!(check(&stripped, k).is_err());
        }
        let mut m = meta();
        seal(&mut m, Some(&key)).unwrap();
        assert!(check(&m, None).is_err());
    }
}
