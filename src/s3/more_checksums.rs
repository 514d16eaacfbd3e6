//! The checksum algorithms S3 added after the model `s3s` implements: SHA-512, MD5,
//! XXHASH64, XXHASH3 and XXHASH128 (`x-amz-checksum-<name>`, in headers or aws-chunked
//! trailers, and as `x-amz-sdk-checksum-algorithm`), which current SDKs offer. Values are
//! the base64 of the digest's bytes, big-endian for the xxhash integers, as S3 encodes them.
//! [`super::digest`] runs these beside the ones `s3s` knows.

use base64::Engine as _;
use sha2::{Digest, Sha512};

use crate::engine::md5::Md5;
use xxhash_rust::xxh3::Xxh3Default;
use xxhash_rust::xxh64::Xxh64;

/// Their names, as in `x-amz-checksum-<name>`, in the order of every array here.
pub const NAMES: [&str; 5] = ["sha512", "md5", "xxhash64", "xxhash3", "xxhash128"];

/// One algorithm's running state.
enum Running {
    Sha512(Box<Sha512>),
    Md5(Box<Md5>),
    Xxhash64(Box<Xxh64>),
    /// XXH3 keeps one state for its 64- and 128-bit results.
    Xxhash3(Box<Xxh3Default>, Width),
}

#[derive(Clone, Copy)]
enum Width {
    Bits64,
    Bits128,
}

/// The enabled algorithms' running states.
pub struct Hashers(Vec<(usize, Running)>);

impl Hashers {
    /// States for the algorithms `enabled` (by [`NAMES`] index); `None` if none is.
    pub fn new(enabled: [bool; 5]) -> Option<Self> {
        let running: Vec<(usize, Running)> = enabled
            .iter()
            .enumerate()
            .filter(|(_, on)| **on)
            .map(|(i, _)| {
                let r = match i {
                    0 => Running::Sha512(Box::default()),
                    1 => Running::Md5(Box::default()),
                    2 => Running::Xxhash64(Box::new(Xxh64::new(0))),
                    3 => Running::Xxhash3(Box::new(Xxh3Default::new()), Width::Bits64),
                    _ => Running::Xxhash3(Box::new(Xxh3Default::new()), Width::Bits128),
                };
                (i, r)
            })
            .collect();
        (!running.is_empty()).then_some(Self(running))
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        for (_, r) in &mut self.0 {
            match r {
                Running::Sha512(h) => h.update(data),
                Running::Md5(h) => h.update(data),
                Running::Xxhash64(h) => h.update(data),
                Running::Xxhash3(h, _) => h.update(data),
            }
        }
    }

    /// The values (base64), by [`NAMES`] index; `None` for those not enabled.
    pub fn finish(self) -> [Option<String>; 5] {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out: [Option<String>; 5] = Default::default();
        for (i, r) in self.0 {
            let bytes = match r {
                Running::Sha512(h) => h.finalize().to_vec(),
                Running::Md5(h) => h.finalize().to_vec(),
                Running::Xxhash64(h) => h.digest().to_be_bytes().to_vec(),
                Running::Xxhash3(h, Width::Bits64) => h.digest().to_be_bytes().to_vec(),
                Running::Xxhash3(h, Width::Bits128) => h.digest128().to_be_bytes().to_vec(),
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
        // Reference values of xxHash's one-shot functions, big-endian as S3 sends them.
        let one_shot = [
            xxhash_rust::xxh64::xxh64(b"hello world", 0).to_be_bytes().to_vec(),
            xxhash_rust::xxh3::xxh3_64(b"hello world").to_be_bytes().to_vec(),
            xxhash_rust::xxh3::xxh3_128(b"hello world").to_be_bytes().to_vec(),
        ];
        for (i, want) in one_shot.iter().enumerate() {
            assert_eq!(got[2 + i].as_deref(), Some(b64.encode(want).as_str()), "{}", NAMES[2 + i]);
        }
        assert_eq!(
            xxhash_rust::xxh64::xxh64(b"", 0),
            0xef46_db37_51d8_e999,
            "xxh64 of nothing, as published"
        );
        assert!(Hashers::new([false; 5]).is_none());
    }
}
