//! STREAM chunks, FORMAT.md §3.2: AES-256-GCM per chunk with `nonce = u64(i) ‖ 0³ ‖ final`
//! and `AAD = D ‖ u32(part)`.
//!
//! Guarantees: a chunk opens only at its own index, finality, header digest and part
//! number, under the data key that sealed it.

use super::primitives::{DIGEST_LEN, Gcm, InOut, NONCE_LEN, PrimitiveError, TAG_LEN};

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

/// Seals chunk `index` in place: `data` becomes ciphertext, `tag` receives the GCM tag.
pub fn seal_chunk(
    gcm: &Gcm,
    aad: &[u8; AAD_LEN],
    index: u64,
    is_final: bool,
    data: &mut [u8],
    tag: &mut [u8; TAG_LEN],
) -> Result<(), PrimitiveError> {
    *tag = gcm.seal(&nonce(index, is_final), aad, data)?;
    Ok(())
}

/// Opens chunk `index` from `io`'s input (in place, or apart: a mapped file) into its
/// output. On failure the output must not be released.
pub fn open_chunk(
    gcm: &Gcm,
    aad: &[u8; AAD_LEN],
    index: u64,
    is_final: bool,
    io: InOut<'_>,
    tag: &[u8; TAG_LEN],
) -> Result<(), PrimitiveError> {
    gcm.open_io(&nonce(index, is_final), aad, io, tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SecretKey;
    use crate::primitives::Backend;

    #[test]
    fn chunks_bind_index_finality_digest_and_part() {
        let gcm = Gcm::new(Backend::Accelerated, &SecretKey::from_bytes([4; 32])).unwrap();
        let a = aad(&[1; 32], 0);
        let mut buf = vec![7u8; 300];
        let mut tag = [0u8; TAG_LEN];
        seal_chunk(&gcm, &a, 5, false, &mut buf, &mut tag).unwrap();
        assert!(open_chunk(&gcm, &a, 6, false, InOut::InPlace(&mut buf.clone()), &tag).is_err());
        assert!(open_chunk(&gcm, &a, 5, true, InOut::InPlace(&mut buf.clone()), &tag).is_err());
        assert!(
            open_chunk(&gcm, &aad(&[1; 32], 1), 5, false, InOut::InPlace(&mut buf.clone()), &tag).is_err()
        );
        assert!(
            open_chunk(&gcm, &aad(&[2; 32], 0), 5, false, InOut::InPlace(&mut buf.clone()), &tag).is_err()
        );
        let other = Gcm::new(Backend::Portable, &SecretKey::from_bytes([5; 32])).unwrap();
        assert!(open_chunk(&other, &a, 5, false, InOut::InPlace(&mut buf.clone()), &tag).is_err());
        let same = Gcm::new(Backend::Portable, &SecretKey::from_bytes([4; 32])).unwrap();
        open_chunk(&same, &a, 5, false, InOut::InPlace(&mut buf), &tag).unwrap();
        assert!(buf.iter().all(|&b| b == 7));
    }

    #[test]
    fn nonce_layout_is_as_documented() {
        assert_eq!(nonce(0x0102, true), [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }
}
