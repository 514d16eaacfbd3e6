//! AONT-RS segments, FORMAT.md §3.1: `c = E_K(P ‖ canary)`, `tail = K ⊕ H(D ‖ i ‖ final ‖ c)`.
//!
//! Guarantees: decoding succeeds only on the exact bytes encoding produced for this segment
//! index, finality and header digest; otherwise it fails and releases no plaintext.

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::format::{AONT_OVERHEAD, CipherId, HashId};
use super::key::{KEY_LEN, SecretKey};
use super::primitives::{Backend, CtrImpl, DIGEST_LEN, Gcm, Hasher, PrimitiveError, TAG_LEN};

const CANARY_LEN: usize = 16;
const ZERO_NONCE: [u8; 12] = [0; 12];

/// The algorithm choice for a segment: cipher `E`, hash `H` and the backend serving them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AontSuite {
    /// `E`.
    pub cipher: CipherId,
    /// `H`.
    pub hash: HashId,
    /// Implementation family.
    pub backend: Backend,
}

impl AontSuite {
    fn mask(&self, digest: &[u8; DIGEST_LEN], index: u64, is_final: bool, c: &[u8]) -> [u8; DIGEST_LEN] {
        let mut h = Hasher::new(self.hash.kind(), self.backend);
        h.update(digest);
        h.update(&index.to_le_bytes());
        h.update(&[u8::from(is_final)]);
        h.update(c);
        h.finish()
    }

    /// Encodes the plaintext in `buf[..buf.len() - 48]` into a segment, in place.
    pub fn encode(
        &self,
        digest: &[u8; DIGEST_LEN],
        index: u64,
        is_final: bool,
        buf: &mut [u8],
    ) -> Result<(), PrimitiveError> {
        let n = buf.len().checked_sub(AONT_OVERHEAD).ok_or(PrimitiveError)?;
        let key = SecretKey::random();
        let (c, tail) = buf.split_at_mut(n + CANARY_LEN);
        match self.cipher {
            CipherId::Aes256Ctr => {
                c[n..].fill(0);
                super::primitives::ctr_xor(CtrImpl::for_backend(self.backend), &key, c)?;
            }
            CipherId::Aes256Gcm => {
                let (body, tag_slot) = c.split_at_mut(n);
                let tag = Gcm::new(self.backend, &key)?.seal(&ZERO_NONCE, &[], body)?;
                tag_slot.copy_from_slice(&tag);
            }
        }
        let mask = self.mask(digest, index, is_final, c);
        for ((t, k), m) in tail.iter_mut().zip(key.expose()).zip(mask) {
            *t = k ^ m;
        }
        Ok(())
    }

    /// Decodes a segment in place; on success the plaintext is `buf[..returned]`.
    pub fn decode(
        &self,
        digest: &[u8; DIGEST_LEN],
        index: u64,
        is_final: bool,
        buf: &mut [u8],
    ) -> Result<usize, PrimitiveError> {
        let n = buf.len().checked_sub(AONT_OVERHEAD).ok_or(PrimitiveError)?;
        let (c, tail) = buf.split_at_mut(n + CANARY_LEN);
        let mask = self.mask(digest, index, is_final, c);
        let mut k = [0u8; KEY_LEN];
        for ((k, t), m) in k.iter_mut().zip(tail.iter()).zip(mask) {
            *k = t ^ m;
        }
        let key = SecretKey::from_bytes(k);
        k.zeroize();
        match self.cipher {
            CipherId::Aes256Ctr => {
                super::primitives::ctr_xor(CtrImpl::for_backend(self.backend), &key, c)?;
                let ok: bool = c[n..].ct_eq(&[0u8; CANARY_LEN]).into();
                if !ok {
                    return Err(PrimitiveError);
                }
            }
            CipherId::Aes256Gcm => {
                let (body, tag_slot) = c.split_at_mut(n);
                let mut tag = [0u8; TAG_LEN];
                tag.copy_from_slice(tag_slot);
                Gcm::new(self.backend, &key)?.open(&ZERO_NONCE, &[], body, &tag)?;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suites() -> Vec<AontSuite> {
        let mut v = Vec::new();
        for cipher in [CipherId::Aes256Ctr, CipherId::Aes256Gcm] {
            for hash in [HashId::Sha256, HashId::Blake3] {
                for backend in [Backend::Accelerated, Backend::Portable] {
                    v.push(AontSuite { cipher, hash, backend });
                }
            }
        }
        v
    }

    #[test]
    fn segments_round_trip_and_any_flipped_bit_is_rejected() {
        let d = [1u8; 32];
        for s in suites() {
            for n in [0usize, 1, 100] {
                let plain: Vec<u8> = (0..n).map(|i| i as u8 ^ 0x5a).collect();
                let mut buf = plain.clone();
                buf.resize(n + AONT_OVERHEAD, 0);
                s.encode(&d, 3, true, &mut buf).unwrap();
                if n > 0 {
                    assert_ne!(&buf[..n], &plain[..], "{s:?}: plaintext visible");
                }
                for bit in 0..buf.len() * 8 {
                    let mut t = buf.clone();
                    t[bit / 8] ^= 1 << (bit % 8);
                    assert!(s.decode(&d, 3, true, &mut t).is_err(), "{s:?} n={n} bit {bit}");
                }
                assert!(s.decode(&d, 4, true, &mut buf.clone()).is_err());
                assert!(s.decode(&d, 3, false, &mut buf.clone()).is_err());
                assert!(s.decode(&[2; 32], 3, true, &mut buf.clone()).is_err());
                assert_eq!(s.decode(&d, 3, true, &mut buf).unwrap(), n);
                assert_eq!(&buf[..n], &plain[..]);
            }
        }
    }

    #[test]
    fn backends_decode_each_others_segments() {
        let d = [9u8; 32];
        for s in suites() {
            let other = AontSuite {
                backend: match s.backend {
                    Backend::Accelerated => Backend::Portable,
                    Backend::Portable => Backend::Accelerated,
                },
                ..s
            };
            let mut buf = vec![0xAB; 5000 + AONT_OVERHEAD];
            s.encode(&d, 0, false, &mut buf).unwrap();
            assert_eq!(other.decode(&d, 0, false, &mut buf).unwrap(), 5000);
            assert!(buf[..5000].iter().all(|&b| b == 0xAB));
        }
    }
}
