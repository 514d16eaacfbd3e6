//! The primitives the engine is built from (AES-256-GCM, AES-256-CTR, SHA-256, BLAKE3, the
//! CSPRNG, HKDF) and the choice of implementation behind each.
//!
//! Two backends produce identical bytes:
//! - [`Backend::Accelerated`]: aws-lc-rs assembly for GCM (VAES + VPCLMULQDQ where the CPU
//!   has them) and SHA-256 (SHA-NI), the `aes` crate's runtime-detected VAES/AES-NI path for
//!   CTR keystream, BLAKE3 with its runtime-detected AVX-512/AVX2/SSE4.1 kernels;
//! - [`Backend::Portable`]: pure Rust from RustCrypto (`aes-gcm`, `aes` + `ctr`, `sha2`) and
//!   BLAKE3. It builds on any target; on CPUs without AES instructions `aes` falls back to
//!   its constant-time bitsliced software implementation.
//!
//! The backend is chosen at run time, `CIPHERSTORE_BACKEND=portable` forces the portable one.

use std::str::FromStr;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use sha2::Digest;
use zeroize::Zeroize;

use super::key::SecretKey;
pub use super::random::fill_random;

/// Environment variable that selects the backend (`accelerated` or `portable`).
pub const BACKEND_ENV: &str = "CIPHERSTORE_BACKEND";

/// GCM nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Digest length of every hash the format uses.
pub const DIGEST_LEN: usize = 32;

/// A primitive refused its input: an authentication tag did not verify, or the library
/// rejected a length. Carries no detail on purpose: callers turn it into a format error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cryptographic operation failed")]
pub struct PrimitiveError;

/// Which implementation family serves the primitives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The fastest implementations available on this CPU.
    #[default]
    Accelerated,
    /// Pure-Rust implementations, usable on any target.
    Portable,
}

impl Backend {
    /// Reads [`BACKEND_ENV`]; unset or empty means [`Backend::Accelerated`].
    pub fn from_env() -> Result<Self, UnknownBackend> {
        match std::env::var(BACKEND_ENV) {
            Ok(v) if !v.is_empty() => v.parse(),
            _ => Ok(Self::Accelerated),
        }
    }

    /// Short lowercase name, as accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Accelerated => "accelerated",
            Self::Portable => "portable",
        }
    }
}

/// A backend name that is neither `accelerated` nor `portable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?} in {BACKEND_ENV}: expected \"accelerated\" or \"portable\"")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "accelerated" | "auto" => Ok(Self::Accelerated),
            "portable" => Ok(Self::Portable),
            _ => Err(UnknownBackend(s.to_owned())),
        }
    }
}

/// AES-256-GCM under one key, with in-place seal and open.
pub enum Gcm {
    /// aws-lc-rs (assembly).
    AwsLc(LessSafeKey),
    /// RustCrypto `aes-gcm` (pure Rust).
    RustCrypto(Box<aes_gcm::Aes256Gcm>),
}

impl Gcm {
    /// Schedules `key` for the chosen backend.
    pub fn new(backend: Backend, key: &SecretKey) -> Result<Self, PrimitiveError> {
        Ok(match backend {
            Backend::Accelerated => {
                let unbound = UnboundKey::new(&AES_256_GCM, key.expose()).map_err(|_| PrimitiveError)?;
                Self::AwsLc(LessSafeKey::new(unbound))
            }
            Backend::Portable => Self::RustCrypto(Box::new(aes_gcm::Aes256Gcm::new(key.expose().into()))),
        })
    }

    /// Encrypts `buf` in place and returns the tag.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], PrimitiveError> {
        match self {
            Self::AwsLc(k) => {
                let tag = k
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
                    .map_err(|_| PrimitiveError)?;
                let mut out = [0u8; TAG_LEN];
                out.copy_from_slice(tag.as_ref());
                Ok(out)
            }
            Self::RustCrypto(k) => {
                let tag =
                    k.encrypt_inout_detached(nonce.into(), aad, buf.into()).map_err(|_| PrimitiveError)?;
                Ok(tag.into())
            }
        }
    }

    /// Verifies `tag` and decrypts `buf` in place. On failure the contents of `buf` are
    /// unspecified and must not be released.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), PrimitiveError> {
        self.open_io(nonce, aad, InOut::InPlace(buf), tag)
    }

    /// Verifies `tag` and decrypts `io`'s input into its output. On failure the output is
    /// unspecified and must not be released.
    pub fn open_io(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        io: InOut<'_>,
        tag: &[u8; TAG_LEN],
    ) -> Result<(), PrimitiveError> {
        let nonce_lc = || Nonce::assume_unique_for_key(*nonce);
        match (self, io) {
            (Self::AwsLc(k), InOut::InPlace(buf)) => k
                .open_in_place_separate_tag(nonce_lc(), Aad::from(aad), tag, buf)
                .map(|_| ())
                .map_err(|_| PrimitiveError),
            (Self::AwsLc(k), InOut::Copy { input, output }) => k
                .open_separate_gather(nonce_lc(), Aad::from(aad), input, tag, output)
                .map_err(|_| PrimitiveError),
            (Self::RustCrypto(k), InOut::InPlace(buf)) => k
                .decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into())
                .map_err(|_| PrimitiveError),
            (Self::RustCrypto(k), InOut::Copy { input, output }) => {
                let buf = aes_gcm::aead::inout::InOutBuf::new(input, output).map_err(|_| PrimitiveError)?;
                k.decrypt_inout_detached(nonce.into(), aad, buf, tag.into()).map_err(|_| PrimitiveError)
            }
        }
    }
}

/// The bytes a decryption reads and writes: one buffer transformed in place, or an input
/// (a mapped file, say) read once and its result written to an output of the same length.
pub enum InOut<'a> {
    /// Read and written in place.
    InPlace(&'a mut [u8]),
    /// Read from `input`, written to `output`.
    Copy {
        /// What is decrypted.
        input: &'a [u8],
        /// Where the result goes; as long as `input`.
        output: &'a mut [u8],
    },
}

impl<'a> InOut<'a> {
    /// The bytes to be read.
    pub fn input(&self) -> &[u8] {
        match self {
            Self::InPlace(buf) => buf,
            Self::Copy { input, .. } => input,
        }
    }

    /// Their length.
    pub fn len(&self) -> usize {
        self.input().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The output with the input's bytes in it (copied there first when apart), for
    /// transforms that only work in place.
    pub fn into_in_place(self) -> Result<&'a mut [u8], PrimitiveError> {
        match self {
            Self::InPlace(buf) => Ok(buf),
            Self::Copy { input, output } => {
                if output.len() != input.len() {
                    return Err(PrimitiveError);
                }
                output.copy_from_slice(input);
                Ok(output)
            }
        }
    }
}

/// Implementations of the AES-256-CTR keystream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrImpl {
    /// aws-lc-rs `cipher` API (AES-NI assembly, 32-bit counter blocks).
    AwsLc,
    /// RustCrypto `aes` 0.9 + `ctr` 0.10: runtime-detected VAES-512/VAES-256/AES-NI, or
    /// constant-time software.
    RustCrypto,
}

impl CtrImpl {
    /// The implementation a backend uses for CTR. The accelerated choice is the faster one
    /// in `cargo bench --bench engine -- ctr` on VAES hardware (see BENCHMARKS.md).
    pub fn for_backend(_backend: Backend) -> Self {
        Self::RustCrypto
    }
}

/// XORs `buf` with the AES-256-CTR keystream for `key` from byte `pos` on, the counter
/// block starting at zero (128-bit big-endian). Used only with single-use keys. Encrypts
/// and decrypts alike.
pub fn ctr_xor_at(imp: CtrImpl, key: &SecretKey, pos: u64, buf: &mut [u8]) -> Result<(), PrimitiveError> {
    match imp {
        CtrImpl::AwsLc => {
            let skip = (pos % 16) as usize;
            let iv = u128::from(pos / 16).to_be_bytes();
            let unbound = UnboundCipherKey::new(&AES_256, key.expose()).map_err(|_| PrimitiveError)?;
            let enc = EncryptingKey::ctr(unbound).map_err(|_| PrimitiveError)?;
            if skip == 0 {
                enc.less_safe_encrypt(buf, EncryptionContext::Iv128(iv.into()))
                    .map_err(|_| PrimitiveError)?;
            } else {
                let mut stream = vec![0u8; skip + buf.len()];
                enc.less_safe_encrypt(&mut stream, EncryptionContext::Iv128(iv.into()))
                    .map_err(|_| PrimitiveError)?;
                buf.iter_mut().zip(&stream[skip..]).for_each(|(b, k)| *b ^= k);
                stream.zeroize();
            }
            Ok(())
        }
        CtrImpl::RustCrypto => {
            let mut c = ctr::Ctr128BE::<aes::Aes256>::new(key.expose().into(), &[0u8; 16].into());
            c.try_seek(pos).map_err(|_| PrimitiveError)?;
            c.try_apply_keystream(buf).map_err(|_| PrimitiveError)
        }
    }
}

/// The hash functions named by the format's hash ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// BLAKE3 with its default 256-bit output.
    Blake3,
}

/// An incremental hash of one of the [`HashKind`]s.
pub enum Hasher {
    /// aws-lc SHA-256 (SHA-NI where present).
    AwsLcSha256(aws_lc_rs::digest::Context),
    /// RustCrypto `sha2`.
    RustCryptoSha256(sha2::Sha256),
    /// The `blake3` crate.
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    /// A fresh hasher of `kind` from `backend`.
    pub fn new(kind: HashKind, backend: Backend) -> Self {
        match (kind, backend) {
            (HashKind::Sha256, Backend::Accelerated) => {
                Self::AwsLcSha256(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
            }
            (HashKind::Sha256, Backend::Portable) => Self::RustCryptoSha256(sha2::Sha256::new()),
            (HashKind::Blake3, _) => Self::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    /// Absorbs `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::AwsLcSha256(c) => c.update(data),
            Self::RustCryptoSha256(h) => h.update(data),
            Self::Blake3(h) => {
                h.update(data);
            }
        }
    }

    /// The 32-byte digest.
    pub fn finish(self) -> [u8; DIGEST_LEN] {
        let mut out = [0u8; DIGEST_LEN];
        match self {
            Self::AwsLcSha256(c) => out.copy_from_slice(c.finish().as_ref()),
            Self::RustCryptoSha256(h) => out.copy_from_slice(&h.finalize()),
            Self::Blake3(h) => out = *h.finalize().as_bytes(),
        }
        out
    }

    /// One-shot digest of `parts`, concatenated.
    pub fn digest(kind: HashKind, backend: Backend, parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
        let mut h = Self::new(kind, backend);
        for p in parts {
            h.update(p);
        }
        h.finish()
    }
}

/// HKDF-SHA256 (RFC 5869) into `out` (at most 255·32 bytes).
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), PrimitiveError> {
    struct Len(usize);
    impl aws_lc_rs::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, salt).extract(ikm);
    prk.expand(info, Len(out.len())).and_then(|okm| okm.fill(out)).map_err(|_| PrimitiveError)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> [Backend; 2] {
        [Backend::Accelerated, Backend::Portable]
    }

    #[test]
    fn gcm_backends_agree_and_reject_tampering() {
        let key = SecretKey::from_bytes([3; 32]);
        let nonce = [9u8; NONCE_LEN];
        let msg: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut outs = Vec::new();
        for b in both() {
            let g = Gcm::new(b, &key).unwrap();
            let mut buf = msg.clone();
            let tag = g.seal(&nonce, b"aad", &mut buf).unwrap();
            outs.push((buf.clone(), tag));
            let mut bad = buf.clone();
            bad[10] ^= 1;
            assert_eq!(g.open(&nonce, b"aad", &mut bad, &tag), Err(PrimitiveError));
            assert_eq!(g.open(&nonce, b"aaX", &mut buf.clone(), &tag), Err(PrimitiveError));
            g.open(&nonce, b"aad", &mut buf, &tag).unwrap();
            assert_eq!(buf, msg);
        }
        assert_eq!(outs[0], outs[1]);
    }

    #[test]
    fn gcm_matches_a_known_answer() {
        // NIST GCM test case 14 (AES-256, zero key, zero IV, one zero block).
        let key = SecretKey::from_bytes([0; 32]);
        for b in both() {
            let mut buf = [0u8; 16];
            let tag = Gcm::new(b, &key).unwrap().seal(&[0; 12], b"", &mut buf).unwrap();
            assert_eq!(base::hex::encode(&buf), "cea7403d4d606b6e074ec5d3baf39d18");
            assert_eq!(base::hex::encode(&tag), "d0d1c8a799996bf0265b98b5d48ab919");
        }
    }

    #[test]
    fn ctr_implementations_agree_past_a_32_bit_block_boundary() {
        let key = SecretKey::from_bytes([5; 32]);
        let mut a = vec![0u8; 70_001];
        let mut b = a.clone();
        ctr_xor_at(CtrImpl::AwsLc, &key, 0, &mut a).unwrap();
        ctr_xor_at(CtrImpl::RustCrypto, &key, 0, &mut b).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, vec![0u8; 70_001]);
        for pos in [0u64, 5, 16, 69_999] {
            for imp in [CtrImpl::AwsLc, CtrImpl::RustCrypto] {
                let mut tail = vec![0u8; 37];
                ctr_xor_at(imp, &key, pos, &mut tail).unwrap();
                let p = pos as usize;
                let want: Vec<u8> = (p..p + 37).map(|i| a.get(i).copied().unwrap_or(0)).collect();
                if p + 37 <= a.len() {
                    assert_eq!(tail, want, "{imp:?} at {pos}");
                }
            }
        }
    }

    #[test]
    fn hashes_match_known_answers() {
        for b in both() {
            assert_eq!(
                base::hex::encode(&Hasher::digest(HashKind::Sha256, b, &[b"a", b"bc"])),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            );
            assert_eq!(
                base::hex::encode(&Hasher::digest(HashKind::Blake3, b, &[b""])),
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
            );
        }
    }

    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let mut okm = [0u8; 42];
        hkdf_sha256(&ikm, &salt, &[&info], &mut okm).unwrap();
        assert_eq!(
            base::hex::encode(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn backend_names_parse() {
        assert_eq!("Portable".parse::<Backend>(), Ok(Backend::Portable));
        assert_eq!("accelerated".parse::<Backend>(), Ok(Backend::Accelerated));
        assert!("fast".parse::<Backend>().is_err());
    }
}
