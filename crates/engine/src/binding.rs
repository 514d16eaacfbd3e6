//! Tags that bind what is stored beside an object (its metadata: key name, size, ETag,
//! Content-Type, user metadata, protection attributes) to the object's key, FORMAT.md §3.6.
//! Keyed objects (SSE-C, SSE-KP) get HMAC-SHA256 under a key derived from the customer or
//! bucket key and its context, so no one without that key can alter the metadata
//! undetected; keyless objects (AONT-RS) get SHA-256, which catches accidental damage only
//! (anyone who can write the disk can recompute it, as they could re-encode the package).

use aws_lc_rs::{digest, hmac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::envelope::CustomerKey;
use super::error::Error;
use super::key::KEY_LEN;
use super::primitives::hkdf_sha256;

const METADATA_INFO: &[u8] = b"cipherstore/v1/metadata";
/// Tag length in bytes.
pub const TAG_LEN: usize = 32;

/// The tag of the concatenation of `pieces` (a record's bytes, after a domain label) for
/// an object opened with `key`.
pub fn metadata_tag(key: Option<&CustomerKey>, pieces: &[&[u8]]) -> Result<[u8; TAG_LEN], Error> {
    let mut tag = [0u8; TAG_LEN];
    match key {
        Some(k) => {
            let mut mac_key = Zeroizing::new([0u8; KEY_LEN]);
            hkdf_sha256(k.key.expose(), &[], &[METADATA_INFO, &k.context], mac_key.as_mut())
                .map_err(|_| Error::Internal)?;
            let key = hmac::Key::new(hmac::HMAC_SHA256, mac_key.as_ref());
            let mut ctx = hmac::Context::with_key(&key);
            pieces.iter().for_each(|p| ctx.update(p));
            tag.copy_from_slice(ctx.sign().as_ref());
        }
        None => {
            let mut ctx = digest::Context::new(&digest::SHA256);
            pieces.iter().for_each(|p| ctx.update(p));
            tag.copy_from_slice(ctx.finish().as_ref());
        }
    }
    Ok(tag)
}

/// Checks `tag` against the concatenation of `pieces` in constant time.
pub fn verify_metadata(key: Option<&CustomerKey>, pieces: &[&[u8]], tag: &[u8]) -> Result<bool, Error> {
    Ok(bool::from(metadata_tag(key, pieces)?.as_slice().ct_eq(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    #[test]
    fn tags_depend_on_key_context_and_bytes() {
        let k = CustomerKey { key: SecretKey::from_bytes([7; 32]), context: b"b/o".to_vec() };
        let other_ctx = CustomerKey { key: SecretKey::from_bytes([7; 32]), context: b"b/p".to_vec() };
        let other_key = CustomerKey { key: SecretKey::from_bytes([8; 32]), context: b"b/o".to_vec() };
        let t = metadata_tag(Some(&k), &[b"meta"]).unwrap();
        assert!(verify_metadata(Some(&k), &[b"meta"], &t).unwrap());
        assert!(!verify_metadata(Some(&k), &[b"metb"], &t).unwrap());
        assert!(!verify_metadata(Some(&other_ctx), &[b"meta"], &t).unwrap());
        assert!(!verify_metadata(Some(&other_key), &[b"meta"], &t).unwrap());
        assert!(!verify_metadata(None, &[b"meta"], &t).unwrap());
        assert!(!verify_metadata(Some(&k), &[b"meta"], &t[..31]).unwrap());
        let plain = metadata_tag(None, &[b"meta"]).unwrap();
        assert!(verify_metadata(None, &[b"meta"], &plain).unwrap());
        assert!(!verify_metadata(None, &[b"meta "], &plain).unwrap());
    }
}
