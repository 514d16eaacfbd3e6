//! Sealing of the private metadata kept beside an object (its standard headers and user
//! metadata), so that a store's operator reads none of it: FORMAT.md §3.8.
//!
//! - Keyed objects (SSE-C, SSE-KP): AES-256-GCM under a key derived by HKDF-SHA256 from
//!   the customer or bucket key, a fresh random salt, the caller's label and the key's
//!   context. Stored as `salt (16) ‖ ciphertext ‖ tag (16)`. Only the key's holder opens
//!   it; a changed byte or another key fails.
//! - Keyless objects (AONT-RS): one AONT-RS segment (§3.1, AES-256-GCM and SHA-256, index
//!   0, final) whose header digest is SHA-256 of the label. Stored as
//!   `ciphertext ‖ tag (16) ‖ tail (32)`. As confidential as the object's own bytes: whoever
//!   holds the whole package opens it.
//!
//! The label names what is sealed (an object record, or one multipart upload), so sealed
//! metadata moved to another kind of record, or another upload, does not open.

use aws_lc_rs::digest;
use zeroize::Zeroizing;

use super::aont::{AontSuite, Trailer};
use super::envelope::CustomerKey;
use super::error::Error;
use super::format::{AONT_OVERHEAD, CipherId, HashId};
use super::key::{KEY_LEN, SecretKey};
use super::primitives::{Backend, DIGEST_LEN, Gcm, NONCE_LEN, TAG_LEN, fill_random, hkdf_sha256};

/// Length of the random salt of keyed sealed metadata.
pub const SALT_LEN: usize = 16;

/// The AONT-RS suite keyless metadata uses (fixed by the format; the backend only picks an
/// implementation, both produce the same bytes).
const SUITE: AontSuite =
    AontSuite { cipher: CipherId::Aes256Gcm, hash: HashId::Sha256, backend: Backend::Accelerated };

/// Seals `plain` for an object opened with `key` (none for AONT-RS), under `label`.
pub fn seal(key: Option<&CustomerKey>, label: &[u8], plain: &[u8]) -> Result<Vec<u8>, Error> {
    match key {
        Some(k) => {
            let mut out = vec![0u8; SALT_LEN];
            fill_random(&mut out);
            let gcm = Gcm::new(Backend::Accelerated, &derive(k, &out[..SALT_LEN], label)?)?;
            let body = out.len();
            out.extend_from_slice(plain);
            let tag = gcm.seal(&[0; NONCE_LEN], label, &mut out[body..])?;
            out.extend_from_slice(&tag);
            Ok(out)
        }
        None => {
            let mut out = Vec::with_capacity(plain.len() + AONT_OVERHEAD);
            out.extend_from_slice(plain);
            let mut trailer: Trailer = [0; AONT_OVERHEAD];
            SUITE.encode(&label_digest(label), 0, true, &mut out, &mut trailer)?;
            out.extend_from_slice(&trailer);
            Ok(out)
        }
    }
}

/// Opens what [`seal`] produced with the same key and label; any other bytes, key or label
/// fail with [`Error::MetadataCorrupted`] and release nothing.
pub fn open(key: Option<&CustomerKey>, label: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    match key {
        Some(k) => {
            if sealed.len() < SALT_LEN + TAG_LEN {
                return Err(Error::MetadataCorrupted);
            }
            let (salt, rest) = sealed.split_at(SALT_LEN);
            let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
            let mut tag_bytes = [0u8; TAG_LEN];
            tag_bytes.copy_from_slice(tag);
            let gcm = Gcm::new(Backend::Accelerated, &derive(k, salt, label)?)?;
            let mut plain = Zeroizing::new(body.to_vec());
            gcm.open(&[0; NONCE_LEN], label, &mut plain, &tag_bytes).map_err(|_| Error::MetadataCorrupted)?;
            Ok(plain)
        }
        None => {
            let Some(body_len) = sealed.len().checked_sub(AONT_OVERHEAD) else {
                return Err(Error::MetadataCorrupted);
            };
            let (body, trailer) = sealed.split_at(body_len);
            let mut tail: Trailer = [0; AONT_OVERHEAD];
            tail.copy_from_slice(trailer);
            let mut plain = Zeroizing::new(body.to_vec());
            SUITE
                .decode(&label_digest(label), 0, true, &mut plain, &tail)
                .map_err(|_| Error::MetadataCorrupted)?;
            Ok(plain)
        }
    }
}

/// The sealing key: HKDF-SHA256(key, salt, label ‖ 0x00 ‖ context). Labels hold no zero
/// byte, so label and context cannot be confused.
fn derive(k: &CustomerKey, salt: &[u8], label: &[u8]) -> Result<SecretKey, Error> {
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    hkdf_sha256(k.key.expose(), salt, &[label, &[0], &k.context], okm.as_mut())?;
    Ok(SecretKey::from_bytes(*okm))
}

fn label_digest(label: &[u8]) -> [u8; DIGEST_LEN] {
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(digest::digest(&digest::SHA256, label).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL: &[u8] = b"cipherstore/test\n";

    #[test]
    fn sealed_metadata_opens_only_with_its_key_context_and_label() {
        let k = CustomerKey { key: SecretKey::from_bytes([7; 32]), context: b"b/o".to_vec() };
        let other_ctx = CustomerKey { key: SecretKey::from_bytes([7; 32]), context: b"b/p".to_vec() };
        let other_key = CustomerKey { key: SecretKey::from_bytes([8; 32]), context: b"b/o".to_vec() };
        let plain = b"{\"user\":{\"colour\":\"secret-marker\"}}";
        for key in [Some(&k), None] {
            let sealed = seal(key, LABEL, plain).unwrap();
            assert!(!sealed.windows(13).any(|w| w == b"secret-marker"), "plaintext in the sealed bytes");
            assert_eq!(open(key, LABEL, &sealed).unwrap().as_slice(), plain);
            assert_ne!(seal(key, LABEL, plain).unwrap(), sealed, "two seals of one text differ");
            assert_eq!(open(key, b"cipherstore/other\n", &sealed), Err(Error::MetadataCorrupted));
            for at in [0, sealed.len() / 2, sealed.len() - 1] {
                let mut bad = sealed.clone();
                bad[at] ^= 1;
                assert_eq!(open(key, LABEL, &bad), Err(Error::MetadataCorrupted), "flip at {at}");
            }
            for len in [0, 1, sealed.len() - 1] {
                assert_eq!(open(key, LABEL, &sealed[..len]), Err(Error::MetadataCorrupted), "length {len}");
            }
            assert_eq!(open(key, LABEL, &seal(key, LABEL, b"").unwrap()).unwrap().as_slice(), b"");
        }
        let sealed = seal(Some(&k), LABEL, plain).unwrap();
        for wrong in [Some(&other_ctx), Some(&other_key), None] {
            assert_eq!(open(wrong, LABEL, &sealed), Err(Error::MetadataCorrupted));
        }
        assert_eq!(open(Some(&k), LABEL, &seal(None, LABEL, plain).unwrap()), Err(Error::MetadataCorrupted));
    }
}
