//! MD5 where S3 defines it (ETags of single and multipart objects, `Content-MD5`, the
//! MD5 checksum), never for security. One serial stream per body: a PUT of a default or
//! SSE-KP object runs no faster than this hash, so it is aws-lc's assembly implementation
//! (already linked for everything else aws-lc does) behind a safe incremental hasher.
//! `cargo bench --bench engine -- md5` compares it with RustCrypto's `md-5`, which the
//! tests use as the reference.

use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Init, MD5_Update};

/// Length of an MD5 digest.
pub const LEN: usize = 16;

/// An incremental MD5.
#[derive(Clone)]
pub struct Md5 {
    ctx: MD5_CTX,
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5 {
    /// A hasher over no bytes yet.
    pub fn new() -> Self {
        let mut ctx = MD5_CTX { h: [0; 4], Nl: 0, Nh: 0, data: [0; 64], num: 0 };
        // SAFETY: `ctx` is a live, writable MD5_CTX; MD5_Init only writes into it and
        // cannot fail (it always returns 1).
        unsafe { MD5_Init(&mut ctx) };
        Self { ctx }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: `self.ctx` was initialised by MD5_Init; `data` is valid for reads of
        // `data.len()` bytes for the duration of the call, which keeps no pointer to it.
        unsafe { MD5_Update(&mut self.ctx, data.as_ptr().cast(), data.len()) };
    }

    /// The digest of everything added.
    pub fn finalize(mut self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        // SAFETY: `out` has room for the 16 bytes MD5_Final writes; `self.ctx` was
        // initialised by MD5_Init and is consumed here.
        unsafe { MD5_Final(out.as_mut_ptr(), &mut self.ctx) };
        out
    }

    /// The digest of `data`.
    pub fn digest(data: &[u8]) -> [u8; LEN] {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;
    use proptest::prelude::*;

    #[test]
    fn known_answers() {
        // RFC 1321, appendix A.5.
        let cases: [(&[u8], &str); 4] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(crate::hex::encode(&Md5::digest(input)), want);
        }
    }

    proptest! {
        /// Equal to RustCrypto's md-5 for any input fed in any cuts.
        #[test]
        fn equals_the_reference(data in proptest::collection::vec(any::<u8>(), 0..5000),
                                cuts in proptest::collection::vec(0usize..5000, 0..8)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut h = Md5::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                h.update(&data[at..c]);
                at = c;
            }
            let want: [u8; 16] = md5::Md5::digest(&data).into();
            prop_assert_eq!(h.clone().finalize(), want);
            prop_assert_eq!(Md5::digest(&data), want);
        }
    }
}
