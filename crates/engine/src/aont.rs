//! AONT-RS segments, FORMAT.md §3.1: `c = E_K(P ‖ canary)`, `tail = K ⊕ H(D ‖ i ‖ final ‖ c)`.
//!
//! A segment is handled as its data (`P`, becoming the first `len(P)` bytes of `c`) and a
//! 48-byte trailer (the encrypted canary or GCM tag, then the tail), so the data can sit
//! page-aligned in memory whatever the stored layout.
//!
//! Guarantees: decoding succeeds only on the exact bytes encoding produced for this segment
//! index, finality and header digest; otherwise it fails and releases no plaintext.

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::format::{AONT_OVERHEAD, CipherId, HashId};
use super::key::{KEY_LEN, SecretKey};
use super::primitives::{
    Backend, CtrImpl, DIGEST_LEN, Gcm, Hasher, InOut, PrimitiveError, TAG_LEN, ctr_xor_at,
};

const CANARY_LEN: usize = 16;
const ZERO_NONCE: [u8; 12] = [0; 12];

/// A segment's trailer: encrypted canary (or GCM tag) then tail.
pub type Trailer = [u8; AONT_OVERHEAD];

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
    fn mask(
        &self,
        digest: &[u8; DIGEST_LEN],
        index: u64,
        is_final: bool,
        data: &[u8],
        check: &[u8],
    ) -> [u8; DIGEST_LEN] {
        let mut h = Hasher::new(self.hash.kind(), self.backend);
        h.update(digest);
        h.update(&index.to_le_bytes());
        h.update(&[u8::from(is_final)]);
        h.update(data);
        h.update(check);
        h.finish()
    }

    /// Encodes segment `index` in place: `data` (the plaintext) becomes ciphertext and
    /// `trailer` receives the encrypted canary (or tag) and the tail.
    pub fn encode(
        &self,
        digest: &[u8; DIGEST_LEN],
        index: u64,
        is_final: bool,
        data: &mut [u8],
        trailer: &mut Trailer,
    ) -> Result<(), PrimitiveError> {
        let key = SecretKey::random();
        let (check, tail) = trailer.split_at_mut(CANARY_LEN);
        match self.cipher {
            CipherId::Aes256Ctr => {
                let imp = CtrImpl::for_backend(self.backend);
                ctr_xor_at(imp, &key, 0, data)?;
                check.fill(0);
                ctr_xor_at(imp, &key, data.len() as u64, check)?;
            }
            CipherId::Aes256Gcm => {
                let tag = Gcm::new(self.backend, &key)?.seal(&ZERO_NONCE, &[], data)?;
                check.copy_from_slice(&tag);
            }
        }
        let mask = self.mask(digest, index, is_final, data, check);
        for ((t, k), m) in tail.iter_mut().zip(key.expose()).zip(mask) {
            *t = k ^ m;
        }
        Ok(())
    }

    /// Decodes segment `index` in place: on success `data` holds the plaintext; on failure
    /// its contents are unspecified and must not be released.
    pub fn decode(
        &self,
        digest: &[u8; DIGEST_LEN],
        index: u64,
        is_final: bool,
        data: &mut [u8],
        trailer: &Trailer,
    ) -> Result<(), PrimitiveError> {
        self.decode_io(digest, index, is_final, InOut::InPlace(data), trailer)
    }

    /// Decodes segment `index` from `io`'s input (its stored data) into its output: on
    /// success the output holds the plaintext; on failure its contents are unspecified and
    /// must not be released. Apart, the stored data is read twice (hash, then decryption)
    /// and never copied.
    pub fn decode_io(
        &self,
        digest: &[u8; DIGEST_LEN],
        index: u64,
        is_final: bool,
        io: InOut<'_>,
        trailer: &Trailer,
    ) -> Result<(), PrimitiveError> {
        let (check, tail) = trailer.split_at(CANARY_LEN);
        let mask = self.mask(digest, index, is_final, io.input(), check);
        let mut k = [0u8; KEY_LEN];
        for ((k, t), m) in k.iter_mut().zip(tail).zip(mask) {
            *k = t ^ m;
        }
        let key = SecretKey::from_bytes(k);
        k.zeroize();
        match self.cipher {
            CipherId::Aes256Ctr => {
                let imp = CtrImpl::for_backend(self.backend);
                let mut canary = [0u8; CANARY_LEN];
                canary.copy_from_slice(check);
                ctr_xor_at(imp, &key, io.len() as u64, &mut canary)?;
                let ok: bool = canary.ct_eq(&[0u8; CANARY_LEN]).into();
                if !ok {
                    return Err(PrimitiveError);
                }
                ctr_xor_at(imp, &key, 0, io.into_in_place()?)?;
            }
            CipherId::Aes256Gcm => {
                let mut tag = [0u8; TAG_LEN];
                tag.copy_from_slice(check);
                Gcm::new(self.backend, &key)?.open_io(&ZERO_NONCE, &[], io, &tag)?;
            }
        }
        Ok(())
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
                let mut data = plain.clone();
                let mut trailer = [0u8; AONT_OVERHEAD];
                s.encode(&d, 3, true, &mut data, &mut trailer).unwrap();
                // A short ciphertext can equal its plaintext by chance (1/256 for one
                // byte); from 16 bytes on that is a 2^-128 event.
                if n >= 16 {
                    assert_ne!(data, plain, "{s:?}: plaintext visible");
                }
                for bit in 0..(n + AONT_OVERHEAD) * 8 {
                    let (mut dt, mut tt) = (data.clone(), trailer);
                    let byte = bit / 8;
                    if byte < n {
                        dt[byte] ^= 1 << (bit % 8);
                    } else {
                        tt[byte - n] ^= 1 << (bit % 8);
                    }
                    assert!(s.decode(&d, 3, true, &mut dt, &tt).is_err(), "{s:?} n={n} bit {bit}");
                }
                assert!(s.decode(&d, 4, true, &mut data.clone(), &trailer).is_err());
                assert!(s.decode(&d, 3, false, &mut data.clone(), &trailer).is_err());
                assert!(s.decode(&[2; 32], 3, true, &mut data.clone(), &trailer).is_err());
                // Apart: the stored data read in place, the plaintext written elsewhere.
                let mut out = vec![0u8; n];
                s.decode_io(&d, 3, true, InOut::Copy { input: &data, output: &mut out }, &trailer).unwrap();
                assert_eq!(out, plain, "{s:?}: decoded apart");
                if n > 0 {
                    let mut bad = data.clone();
                    bad[n / 2] ^= 1;
                    let io = InOut::Copy { input: &bad, output: &mut out };
                    assert!(s.decode_io(&d, 3, true, io, &trailer).is_err(), "{s:?}: apart, flipped");
                    let io = InOut::Copy { input: &data, output: &mut out[..n - 1] };
                    assert!(s.decode_io(&d, 3, true, io, &trailer).is_err(), "{s:?}: short output");
                }
                s.decode(&d, 3, true, &mut data, &trailer).unwrap();
                assert_eq!(data, plain);
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
            let mut data = vec![0xAB; 5000];
            let mut trailer = [0u8; AONT_OVERHEAD];
            s.encode(&d, 0, false, &mut data, &mut trailer).unwrap();
            other.decode(&d, 0, false, &mut data, &trailer).unwrap();
            assert!(data.iter().all(|&b| b == 0xAB));
        }
    }
}
