//! The checksum algorithms S3 added after the model `s3s` implements: SHA-512, MD5,
//! XXHASH64, XXHASH3 and XXHASH128 (`x-amz-checksum-<name>`, in headers or aws-chunked
//! trailers, and as `x-amz-sdk-checksum-algorithm`), which current SDKs offer. Values are
//! the base64 of the digest's bytes, big-endian for the xxhash integers, as S3 encodes them.
//! [`super::digest`] runs these beside the ones `s3s` knows.

use base64::Engine as _;
use sha2::{Digest, Sha512};

use std::hash::Hasher as _;

use twox_hash::{XxHash3_64, XxHash3_128, XxHash64};

use engine::md5::Md5;
use object::ChecksumAlgorithm;

/// The algorithms, in the order of every array here.
pub(crate) const NAMES: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Sha512,
    ChecksumAlgorithm::Md5,
    ChecksumAlgorithm::Xxhash64,
    ChecksumAlgorithm::Xxhash3,
    ChecksumAlgorithm::Xxhash128,
];

/// One algorithm's running state.
enum Running {
    Sha512(Box<Sha512>),
    Md5(Box<Md5>),
    Xxhash64(Box<XxHash64>),
    Xxhash3(Box<XxHash3_64>),
    Xxhash128(Box<XxHash3_128>),
}

/// The enabled algorithms' running states.
pub(crate) struct Hashers(Vec<(usize, Running)>);

impl Hashers {
    /// States for the algorithms `enabled` (by [`NAMES`] index); `None` if none is.
    pub(crate) fn new(enabled: [bool; 5]) -> Option<Self> {
        let running: Vec<(usize, Running)> = enabled
            .iter()
            .enumerate()
            .filter(|(_, on)| **on)
            .map(|(i, _)| {
                let r = match i {
                    0 => Running::Sha512(Box::default()),
                    1 => Running::Md5(Box::default()),
                    2 => Running::Xxhash64(Box::new(XxHash64::with_seed(0))),
                    3 => Running::Xxhash3(Box::new(XxHash3_64::new())),
                    _ => Running::Xxhash128(Box::new(XxHash3_128::new())),
                };
                (i, r)
            })
            .collect();
        (!running.is_empty()).then_some(Self(running))
    }

    /// Adds bytes.
    pub(crate) fn update(&mut self, data: &[u8]) {
        for (_, r) in &mut self.0 {
            match r {
                Running::Sha512(h) => h.update(data),
                Running::Md5(h) => h.update(data),
                Running::Xxhash64(h) => h.write(data),
                Running::Xxhash3(h) => h.write(data),
                Running::Xxhash128(h) => h.write(data),
            }
        }
    }

    /// The values (base64), by [`NAMES`] index; `None` for those not enabled.
    pub(crate) fn finish(self) -> [Option<String>; 5] {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out: [Option<String>; 5] = Default::default();
        for (i, r) in self.0 {
            let bytes = match r {
                Running::Sha512(h) => h.finalize().to_vec(),
                Running::Md5(h) => h.finalize().to_vec(),
                Running::Xxhash64(h) => h.finish().to_be_bytes().to_vec(),
                Running::Xxhash3(h) => h.finish().to_be_bytes().to_vec(),
                Running::Xxhash128(h) => h.finish_128().to_be_bytes().to_vec(),
            };
            out[i] = Some(b64.encode(bytes));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_in_pieces() {
        let mut h = Hashers::new([true; 5]).unwrap();
        h.update(b"hello ");
        h.update(b"world");
        let got = h.finish();
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(got[0].as_deref(), Some(b64.encode(Sha512::digest(b"hello world")).as_str()));
        assert_eq!(got[1].as_deref(), Some("XrY7u+Ae7tCTyyK7j1rNww=="));
        // Reference values (the xxHash C library's, through Python's `xxhash`), big-endian
        // as S3 sends them.
        let want: [&[u8]; 3] = [
            &0x45ab_6734_b21e_6968_u64.to_be_bytes(),
            &0xd447_b1ea_40e6_988b_u64.to_be_bytes(),
            &0xdf8d_09e9_3f87_4900_a99b_8775_cc15_b6c7_u128.to_be_bytes(),
        ];
        for (i, want) in want.iter().enumerate() {
            assert_eq!(got[2 + i].as_deref(), Some(b64.encode(want).as_str()), "{}", NAMES[2 + i]);
        }
        assert_eq!(XxHash64::oneshot(0, b""), 0xef46_db37_51d8_e999, "xxh64 of nothing, as published");
        assert_eq!(XxHash3_64::oneshot(b""), 0x2d06_8005_38d3_94c2, "xxh3-64 of nothing, as published");
        assert_eq!(
            XxHash3_128::oneshot(b""),
            0x99aa_06d3_0147_98d8_6001_c324_468d_497f,
            "xxh3-128 of nothing, as published"
        );
        // Across the 240-byte and stripe boundaries of XXH3's long input, in odd pieces.
        let long: Vec<u8> = (0..100_000u32).map(|i| (i * 31 + 7) as u8).collect();
        let mut h = Hashers::new([false, false, true, true, true]).unwrap();
        for piece in long.chunks(977) {
            h.update(piece);
        }
        let got = h.finish();
        assert_eq!(got[4].as_deref(), Some(b64.encode(XxHash3_128::oneshot(&long).to_be_bytes()).as_str()));
        assert_eq!(got[3].as_deref(), Some(b64.encode(XxHash3_64::oneshot(&long).to_be_bytes()).as_str()));
        assert!(Hashers::new([false; 5]).is_none());
    }
}
