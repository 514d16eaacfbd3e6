//! MD5 where S3 defines it (ETags of single and multipart objects, `Content-MD5`, the
//! MD5 checksum), never for security. One serial stream per body: a PUT of a default or
//! SSE-KP object runs no faster than this hash.
//!
//! - One stream: aws-lc's assembly (already linked for everything else aws-lc does).
//! - Concurrent uploads: their 64 KiB chunks are gathered and hashed sixteen at a time in
//!   the lanes of AVX-512 registers ([`lanes`], [`x16`]), or of two groups of eight in
//!   AVX2 registers ([`x8`]) on CPUs without AVX-512.
//!
//! `cargo bench --bench engine -- md5` measures both against RustCrypto's `md-5`, which the
//! tests use as the reference.

mod lanes;
pub mod x16;
pub mod x8;

use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Update};

pub use lanes::{CHUNK, rounds};

/// Length of an MD5 digest.
pub const LEN: usize = 16;

/// RFC 1321's initial chaining value.
const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// An incremental MD5. Bytes gather into a chunk of [`CHUNK`] bytes, hashed together with
/// other uploads' chunks; the rest is hashed on [`Md5::finalize`].
pub struct Md5 {
    /// Chaining value after `hashed` bytes.
    state: [u32; 4],
    hashed: u64,
    /// Bytes not hashed yet (fewer than [`CHUNK`]).
    pending: Vec<u8>,
    /// Its chunks in the lanes, from its first whole chunk on; `state` is current only
    /// once it is finished.
    stream: Option<lanes::Stream>,
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

/// An aws-lc context at `state` with nothing buffered.
fn context(state: &[u32; 4], hashed: u64) -> MD5_CTX {
    let bits = hashed.wrapping_mul(8);
    MD5_CTX { h: *state, Nl: bits as u32, Nh: (bits >> 32) as u32, data: [0; 64], num: 0 }
}

/// The 64-byte blocks per stream when `states` and `data` fit a multi-buffer kernel of
/// `lanes` lanes: one chaining value per stream, at most `lanes` streams, each the same
/// whole number of blocks. `None` otherwise.
fn blocks_per_stream(states: &[[u32; 4]], data: &[&[u8]], lanes: usize) -> Option<usize> {
    let blocks = data.first().map_or(0, |d| d.len() / 64);
    let shaped =
        states.len() == data.len() && data.len() <= lanes && data.iter().all(|d| d.len() == blocks * 64);
    shaped.then_some(blocks)
}

/// Hashes whole 64-byte blocks into `state` with aws-lc's single-stream code.
pub(crate) fn scalar_blocks(state: &mut [u32; 4], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % 64, 0);
    let mut ctx = context(state, 0);
    if !blocks.is_empty() {
        // SAFETY: `ctx` is a fully initialised MD5_CTX (the layout aws-lc-sys declares);
        // `blocks` is valid for reads of `blocks.len()` bytes during the call, which keeps
        // no pointer to it. With nothing buffered and whole blocks given, MD5_Update only
        // runs the block function over them.
        unsafe { MD5_Update(&mut ctx, blocks.as_ptr().cast(), blocks.len()) };
    }
    *state = ctx.h;
}

impl Md5 {
    /// A hasher over no bytes yet.
    pub fn new() -> Self {
        Self { state: INIT, hashed: 0, pending: Vec::new(), stream: None }
    }

    /// Adds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.pending.capacity() < CHUNK && self.pending.len() + data.len() >= CHUNK {
                self.pending.reserve_exact(CHUNK - self.pending.len());
            }
            let take = data.len().min(CHUNK - self.pending.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == CHUNK {
                if lanes::available() {
                    let chunk = std::mem::take(&mut self.pending);
                    let state = self.state;
                    self.pending = self.stream.get_or_insert_with(|| lanes::Stream::open(state)).push(chunk);
                } else {
                    scalar_blocks(&mut self.state, &self.pending);
                    self.pending.clear();
                }
                self.hashed += CHUNK as u64;
            }
        }
    }

    /// The digest of everything added.
    pub fn finalize(mut self) -> [u8; LEN] {
        if let Some(stream) = self.stream.take() {
            self.state = stream.finish();
        }
        let whole = self.pending.len() / 64 * 64;
        let mut state = self.state;
        scalar_blocks(&mut state, &self.pending[..whole]);
        let mut ctx = context(&state, self.hashed + whole as u64);
        let rest = &self.pending[whole..];
        ctx.data[..rest.len()].copy_from_slice(rest);
        ctx.num = rest.len() as u32;
        // The bit count covers the buffered bytes too, as MD5_Update would have left it.
        let bits = (self.hashed + self.pending.len() as u64).wrapping_mul(8);
        (ctx.Nl, ctx.Nh) = (bits as u32, (bits >> 32) as u32);
        let mut out = [0u8; LEN];
        // SAFETY: `out` has room for the 16 bytes MD5_Final writes; `ctx` is a fully
        // initialised MD5_CTX holding fewer than 64 buffered bytes (`num`), as MD5_Update
        // leaves one.
        unsafe { MD5_Final(out.as_mut_ptr(), &mut ctx) };
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
            assert_eq!(base::hex::encode(&Md5::digest(input)), want);
        }
    }

    /// Bytes from a seed (proptest's per-byte strategies are slow for 300 KiB inputs).
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn fed_in_cuts(data: &[u8], cuts: &[usize]) -> [u8; LEN] {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut h = Md5::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            h.update(&data[at..c]);
            at = c;
        }
        h.finalize()
    }

    proptest! {
        /// Equal to RustCrypto's md-5 for any input fed in any cuts, across chunk bounds.
        #[test]
        fn equals_the_reference(len in 0usize..(4 * CHUNK + 200), seed in any::<u64>(),
                                cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let data = bytes(seed, len);
            let want: [u8; 16] = md5::Md5::digest(&data).into();
            prop_assert_eq!(fed_in_cuts(&data, &cuts), want);
            prop_assert_eq!(Md5::digest(&data), want);
        }
    }

    #[test]
    fn concurrent_hashers_share_the_lanes_and_stay_exact() {
        let threads: Vec<_> = (0..20u64)
            .map(|t| {
                std::thread::spawn(move || {
                    for round in 0..3 {
                        let data = bytes(t * 100 + round, CHUNK * (1 + (t as usize % 5)) + t as usize * 13);
                        let want: [u8; 16] = md5::Md5::digest(&data).into();
                        let cuts = [t as usize * 977, CHUNK + 5, 3 * CHUNK - 1];
                        assert_eq!(fed_in_cuts(&data, &cuts), want, "thread {t}, round {round}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
