//! STREAM chunks, FORMAT.md §3.2: AES-256-GCM per chunk with `nonce = u64(i) ‖ 0³ ‖ final`
//! and `AAD = D ‖ u32(part)`.
//!
//! Guarantees: a chunk opens only at its own index, finality, header digest and part
//! number, under the data key that sealed it.

use super::format::STREAM_OVERHEAD;
use super::primitives::{DIGEST_LEN, Gcm, NONCE_LEN, PrimitiveError, TAG_LEN};

/// Length of the per-chunk associated data.
pub const AAD_LEN: usize = DIGEST_LEN + 4;

/// The nonce of chunk `index`.
pub fn nonce(index: u64, is_final: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&index.to_le_bytes());
    n[11] = u8::from(is_final);
    n
}

/// The associated data binding a chunk to its header and part.
pub fn aad(digest: &[u8; DIGEST_LEN], part: u32) -> [u8; AAD_LEN] {
    let mut a = [0u8; AAD_LEN];
    a[..DIGEST_LEN].copy_from_slice(digest);
    a[DIGEST_LEN..].copy_from_slice(&part.to_le_bytes());
    a
}

/// Seals the plaintext in `buf[..buf.len() - 16]` in place and writes the tag after it.
pub fn seal_chunk(
    gcm: &Gcm,
    aad: &[u8; AAD_LEN],
    index: u64,
    is_final: bool,
    buf: &mut [u8],
) -> Result<(), PrimitiveError> {
    let n = buf.len().checked_sub(STREAM_OVERHEAD).ok_or(PrimitiveError)?;
    let (body, tag_slot) = buf.split_at_mut(n);
    let tag = gcm.seal(&nonce(index, is_final), aad, body)?;
    tag_slot.copy_from_slice(&tag);
    Ok(())
}

/// Opens a chunk in place; on success the plaintext is `buf[..returned]`.
pub fn open_chunk(
    gcm: &Gcm,
    aad: &[u8; AAD_LEN],
    index: u64,
    is_final: bool,
    buf: &mut [u8],
) -> Result<usize, PrimitiveError> {
    let n = buf.len().checked_sub(STREAM_OVERHEAD).ok_or(PrimitiveError)?;
    let (body, tag_slot) = buf.split_at_mut(n);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(tag_slot);
    gcm.open(&nonce(index, is_final), aad, body, &tag)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::key::SecretKey;
    use crate::engine::primitives::Backend;

    #[test]
    fn chunks_bind_index_finality_digest_and_part() {
        let gcm = Gcm::new(Backend::Accelerated, &SecretKey::from_bytes([4; 32])).unwrap();
        let a = aad(&[1; 32], 0);
        let mut buf = vec![7u8; 300 + STREAM_OVERHEAD];
        seal_chunk(&gcm, &a, 5, false, &mut buf).unwrap();
        assert!(open_chunk(&gcm, &a, 6, false, &mut buf.clone()).is_err());
        assert!(open_chunk(&gcm, &a, 5, true, &mut buf.clone()).is_err());
        assert!(open_chunk(&gcm, &aad(&[1; 32], 1), 5, false, &mut buf.clone()).is_err());
        assert!(open_chunk(&gcm, &aad(&[2; 32], 0), 5, false, &mut buf.clone()).is_err());
        let other = Gcm::new(Backend::Portable, &SecretKey::from_bytes([5; 32])).unwrap();
        assert!(open_chunk(&other, &a, 5, false, &mut buf.clone()).is_err());
        let same = Gcm::new(Backend::Portable, &SecretKey::from_bytes([4; 32])).unwrap();
        assert_eq!(open_chunk(&same, &a, 5, false, &mut buf).unwrap(), 300);
        assert!(buf[..300].iter().all(|&b| b == 7));
    }

    #[test]
    fn nonce_layout_is_as_documented() {
        assert_eq!(nonce(0x0102, true), [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }
}
