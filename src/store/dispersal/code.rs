//! The Reed-Solomon code and the stripe geometry of dispersal (docs/FORMAT.md §7): how a
//! piece's stored bytes are cut into stripes (its engine header, then each unit), how a
//! stripe becomes `k` data shards and `n − k` parity shards, where shard `j` of slice `i`
//! lies in slice file `i`, and the check that makes a damaged shard count as missing.

use std::sync::Arc;

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::engine::format::{FIXED_HEADER_LEN, Header, MAGIC};

/// Bytes of the check that follows every shard in a slice file.
pub const CHECK_LEN: usize = 16;
/// Stripe length for bytes that are not an engine object (benchmark plaintext builds).
pub const PLAIN_STRIPE: u64 = 1 << 20;
/// The widest configuration accepted (GF(2^8) allows 256 slices; wider is not useful).
pub const MAX_WIDTH: usize = 64;

/// Errors of the code.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// `k` and `n` do not make a code.
    #[error("dispersal needs 1 ≤ threshold < width ≤ {MAX_WIDTH}; got threshold {k}, width {n}")]
    Shape {
        /// Threshold.
        k: usize,
        /// Width.
        n: usize,
    },
    /// Fewer than `k` good shards of a stripe were found.
    #[error("only {found} of the {k} slices needed could be read")]
    TooFew {
        /// Good shards found.
        found: usize,
        /// Needed.
        k: usize,
    },
    /// The Reed-Solomon library refused its input.
    #[error("Reed-Solomon coding failed: {0:?}")]
    Library(reed_solomon_erasure::Error),
}

/// A (k, n) code: `k` data shards, `n − k` parity shards per stripe.
#[derive(Clone)]
pub struct Code {
    k: usize,
    n: usize,
    rs: Arc<ReedSolomon>,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Code({} of {})", self.k, self.n)
    }
}

impl Code {
    /// The code with threshold `k` and width `n`.
    pub fn new(k: usize, n: usize) -> Result<Self, CodeError> {
        if k == 0 || k >= n || n > MAX_WIDTH {
            return Err(CodeError::Shape { k, n });
        }
        let rs = ReedSolomon::new(k, n - k).map_err(CodeError::Library)?;
        Ok(Self { k, n, rs: Arc::new(rs) })
    }

    /// Threshold: shards that rebuild a stripe.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Width: shards per stripe.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Shard length for a stripe of `len` bytes.
    pub fn shard_len(&self, len: u64) -> usize {
        usize::try_from(len.div_ceil(self.k as u64)).unwrap_or(usize::MAX).max(1)
    }

    /// The `k` data shards of a stripe whose bytes are `pieces`, in order (a stored unit
    /// and its trailer, say). A shard that lies within one piece is borrowed; the others
    /// (across two pieces, or running into the zero padding past the end) are copied into
    /// `pad`. Returns the shard length and the shards. Borrowing spared the writer
    /// gathering each stripe: two thirds of that copy at 3 of 5.
    pub fn data_shards<'a>(&self, pieces: &[&'a [u8]], pad: &'a mut Vec<u8>) -> (usize, Vec<&'a [u8]>) {
        let total: usize = pieces.iter().map(|p| p.len()).sum();
        let len = self.shard_len(total as u64);
        let mut starts = Vec::with_capacity(pieces.len());
        let mut at = 0;
        for p in pieces {
            starts.push(at);
            at += p.len();
        }
        // The piece holding bytes [s, s + len) whole, and the offset in it.
        let within = |s: usize| {
            (0..pieces.len())
                .find(|&p| starts[p] <= s && s + len <= starts[p] + pieces[p].len())
                .map(|p| (p, s - starts[p]))
        };
        let copied: Vec<usize> = (0..self.k).filter(|&i| within(i * len).is_none()).collect();
        pad.clear();
        pad.resize(copied.len() * len, 0);
        for (slot, &i) in copied.iter().enumerate() {
            let (from, to) = (i * len, ((i + 1) * len).min(total));
            for (p, piece) in pieces.iter().enumerate() {
                let (a, b) = (from.max(starts[p]), to.min(starts[p] + piece.len()));
                if a < b {
                    pad[slot * len + a - from..slot * len + b - from]
                        .copy_from_slice(&piece[a - starts[p]..b - starts[p]]);
                }
            }
        }
        let pad: &'a Vec<u8> = pad;
        let shards = (0..self.k)
            .map(|i| match within(i * len) {
                Some((p, off)) => &pieces[p][off..off + len],
                None => {
                    let slot = copied.iter().position(|&c| c == i).unwrap_or(0);
                    &pad[slot * len..(slot + 1) * len]
                }
            })
            .collect();
        (len, shards)
    }

    fn parity_buffers(&self, len: usize, parity: &mut Vec<Vec<u8>>) {
        parity.resize_with(self.n - self.k, Vec::new);
        for p in parity.iter_mut() {
            p.resize(len, 0);
        }
    }

    /// Computes the `n − k` parity shards of the data shards `data` (each `len` bytes, as
    /// [`Code::data_shards`] gives them) into `parity`.
    pub fn encode(&self, data: &[&[u8]], len: usize, parity: &mut Vec<Vec<u8>>) -> Result<(), CodeError> {
        self.parity_buffers(len, parity);
        self.rs.encode_sep(data, parity).map_err(CodeError::Library)
    }

    /// [`Code::encode`], with every shard's [`check`] computed in the same pass: the coding
    /// and the hashing go column block by column block, so each block is hashed while it is
    /// still in cache (a third less CPU than coding, then hashing each shard whole).
    pub fn encode_checked(
        &self,
        data: &[&[u8]],
        len: usize,
        parity: &mut Vec<Vec<u8>>,
        blob: &str,
        index: u64,
    ) -> Result<Vec<[u8; CHECK_LEN]>, CodeError> {
        const BLOCK: usize = 32 << 10;
        self.parity_buffers(len, parity);
        let mut hashers: Vec<twox_hash::XxHash3_128> =
            (0..self.n).map(|_| twox_hash::XxHash3_128::new()).collect();
        let mut col = 0;
        while col < len {
            let end = (col + BLOCK).min(len);
            let cols: Vec<&[u8]> = data.iter().map(|s| &s[col..end]).collect();
            let mut out: Vec<&mut [u8]> = parity.iter_mut().map(|p| &mut p[col..end]).collect();
            self.rs.encode_sep(&cols, &mut out).map_err(CodeError::Library)?;
            for (h, block) in hashers.iter_mut().zip(cols.iter().copied().chain(out.iter().map(|b| &b[..]))) {
                h.write(block);
            }
            col = end;
        }
        Ok(hashers.iter().enumerate().map(|(i, h)| bind(blob, i, index, h.finish_128())).collect())
    }

    /// Shard `i` of a coded stripe: data shard or parity shard.
    pub fn shard<'a>(&self, i: usize, data: &[&'a [u8]], parity: &'a [Vec<u8>]) -> &'a [u8] {
        if i < self.k { data[i] } else { &parity[i - self.k] }
    }

    /// Rebuilds the missing data shards of a stripe from any `k` present shards (by slice
    /// index; `None`: missing). Parity shards are not rebuilt unless `all`.
    pub fn rebuild(&self, shards: &mut [Option<Vec<u8>>], all: bool) -> Result<(), CodeError> {
        let found = shards.iter().filter(|s| s.is_some()).count();
        if found < self.k {
            return Err(CodeError::TooFew { found, k: self.k });
        }
        if all { self.rs.reconstruct(shards) } else { self.rs.reconstruct_data(shards) }
            .map_err(CodeError::Library)
    }
}

/// How a piece's stored bytes are cut into stripes: the first stripe is the engine header
/// (`first` bytes; 0: none), then stripes of `unit` bytes, the last one possibly shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Length of the first stripe (the header), or 0.
    pub first: u64,
    /// Length of every later stripe but the last.
    pub unit: u64,
    /// Stored bytes of the piece.
    pub len: u64,
}

impl Geometry {
    /// The `(first, unit)` stripe lengths for stored bytes that start with `head`: an
    /// engine object's header, then its units; any other bytes in [`PLAIN_STRIPE`]
    /// stripes. `None` while more bytes are needed to tell (`complete`: there are no more).
    pub fn decide(head: &[u8], complete: bool) -> Option<(u64, u64)> {
        let plain = Some((0, PLAIN_STRIPE));
        let prefix = head.len().min(MAGIC.len());
        if head[..prefix] != MAGIC[..prefix] {
            return plain;
        }
        if head.len() < FIXED_HEADER_LEN {
            return if complete { plain } else { None };
        }
        let Ok(total) = Header::total_len(&head[..FIXED_HEADER_LEN]) else { return plain };
        if head.len() < total {
            return if complete { plain } else { None };
        }
        match Header::parse(&head[..total]) {
            Ok((header, len)) => {
                Some((len as u64, u64::from(header.unit_size) + header.mode.overhead() as u64))
            }
            Err(_) => plain,
        }
    }

    /// Number of stripes.
    pub fn stripes(&self) -> u64 {
        let first = self.first.min(self.len);
        u64::from(first > 0) + (self.len - first).div_ceil(self.unit.max(1))
    }

    /// Stored-byte range of stripe `j`.
    pub fn stripe(&self, j: u64) -> std::ops::Range<u64> {
        let first = self.first.min(self.len);
        if first > 0 && j == 0 {
            return 0..first;
        }
        let j = j - u64::from(first > 0);
        let start = first + j * self.unit;
        start..(start + self.unit).min(self.len)
    }

    /// The stripe holding stored byte `offset` (< `len`).
    pub fn stripe_of(&self, offset: u64) -> u64 {
        let first = self.first.min(self.len);
        if offset < first { 0 } else { u64::from(first > 0) + (offset - first) / self.unit.max(1) }
    }

    /// Where stripe `j`'s shard lies in a slice file: offset and shard length (its check
    /// follows it).
    pub fn shard_at(&self, code: &Code, j: u64) -> (u64, usize) {
        let first = self.first.min(self.len);
        let stripe = self.stripe(j);
        let len = code.shard_len(stripe.end - stripe.start);
        let head = if first > 0 { (code.shard_len(first) + CHECK_LEN) as u64 } else { 0 };
        let full = (code.shard_len(self.unit) + CHECK_LEN) as u64;
        let offset = if first > 0 && j == 0 { 0 } else { head + (j - u64::from(first > 0)) * full };
        (offset, len)
    }

    /// Length of every slice file.
    pub fn slice_len(&self, code: &Code) -> u64 {
        match self.stripes() {
            0 => 0,
            s => {
                let (at, len) = self.shard_at(code, s - 1);
                at + (len + CHECK_LEN) as u64
            }
        }
    }
}

/// The check of shard `stripe` of slice `slice` of blob `blob`: XXH3-128 of the shard
/// (fast enough to run over every byte written and read), bound to its place by the first
/// 16 bytes of a BLAKE3 derived-key hash of the blob, slice and stripe and that digest, so
/// a shard that changed, moved to another stripe, slice or blob, or was cut short counts
/// as missing. It guards against damage, not an adversary: one who rewrites a shard with a
/// matching check still fails the engine's authentication of every unit it touches.
pub fn check(blob: &str, slice: usize, stripe: u64, shard: &[u8]) -> [u8; CHECK_LEN] {
    bind(blob, slice, stripe, twox_hash::XxHash3_128::oneshot(shard))
}

/// A shard's check from its XXH3-128 digest.
fn bind(blob: &str, slice: usize, stripe: u64, content: u128) -> [u8; CHECK_LEN] {
    let content = content.to_be_bytes();
    let mut h = blake3::Hasher::new_derive_key("cipherstore 2026 dispersal shard check v1");
    h.update(&(blob.len() as u64).to_le_bytes());
    h.update(blob.as_bytes());
    h.update(&(slice as u64).to_le_bytes());
    h.update(&stripe.to_le_bytes());
    h.update(&content);
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..CHECK_LEN]);
    out
}

/// The digest a manifest records for a whole slice: BLAKE3 of its shards' checks, in
/// stripe order (each check already covers its shard's bytes).
#[derive(Default)]
pub struct SliceDigest(blake3::Hasher);

impl SliceDigest {
    /// Adds the next shard's check.
    pub fn update(&mut self, check: &[u8]) {
        self.0.update(check);
    }

    /// The digest, as hex.
    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_k_shards_rebuild_a_stripe() {
        let code = Code::new(3, 5).unwrap();
        let stripe: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let (mut pad, mut parity) = (Vec::new(), Vec::new());
        let (len, data) = code.data_shards(&[&stripe], &mut pad);
        assert_eq!(len, 334);
        code.encode(&data, len, &mut parity).unwrap();
        let shards: Vec<Vec<u8>> = (0..5).map(|i| code.shard(i, &data, &parity).to_vec()).collect();
        assert!(shards.iter().all(|s| s.len() == 334));
        assert_eq!(shards[0][..], stripe[..334]);
        assert_eq!(shards[2][332..], [0, 0], "the stripe is zero-padded to k shards");
        for lost in [[0, 1], [0, 4], [2, 3], [3, 4], [1, 2]] {
            let mut got: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
            for l in lost {
                got[l] = None;
            }
            code.rebuild(&mut got, false).unwrap();
            let joined: Vec<u8> = got[..3].iter().flat_map(|s| s.clone().unwrap()).collect();
            assert_eq!(joined[..1000], stripe[..], "lost {lost:?}");
        }
        let mut three_gone: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
        three_gone[0] = None;
        three_gone[1] = None;
        three_gone[4] = None;
        assert!(matches!(code.rebuild(&mut three_gone, false), Err(CodeError::TooFew { found: 2, k: 3 })));
    }

    #[test]
    fn shards_are_the_same_however_the_stripe_is_cut() {
        for (k, n) in [(3, 5), (10, 16), (1, 2)] {
            let code = Code::new(k, n).unwrap();
            for size in [0usize, 1, 2, 47, 1000, 100_003] {
                let stripe: Vec<u8> = (0..size).map(|i| (i * 13 + 5) as u8).collect();
                let mut whole = stripe.clone();
                whole.resize(code.shard_len(size as u64) * k, 0);
                let len = code.shard_len(size as u64);
                let want: Vec<&[u8]> = whole.chunks(len).collect();
                for cuts in
                    [vec![], vec![size / 2], vec![size.saturating_sub(48)], vec![1.min(size), size / 3, size]]
                {
                    let mut pieces: Vec<&[u8]> = Vec::new();
                    let mut at = 0;
                    for c in cuts.iter().copied().chain([size]) {
                        pieces.push(&stripe[at..c.max(at)]);
                        at = c.max(at);
                    }
                    let mut pad = Vec::new();
                    let (got_len, got) = code.data_shards(&pieces, &mut pad);
                    assert_eq!((got_len, &got), (len, &want), "{k} of {n}, size {size}, cuts {cuts:?}");
                }
            }
        }
    }

    #[test]
    fn coding_with_checks_matches_coding_then_checking() {
        let code = Code::new(3, 5).unwrap();
        for size in [1usize, 1000, 100_000, (1 << 20) + 48] {
            let stripe: Vec<u8> = (0..size).map(|i| (i * 13 + 5) as u8).collect();
            let mut pad = Vec::new();
            let (len, data) = code.data_shards(&[&stripe[..size / 2], &stripe[size / 2..]], &mut pad);
            let (mut pa, mut pb) = (Vec::new(), Vec::new());
            code.encode(&data, len, &mut pa).unwrap();
            let checks = code.encode_checked(&data, len, &mut pb, "blob", 7).unwrap();
            assert_eq!(pa, pb);
            for (i, c) in checks.iter().enumerate() {
                assert_eq!(*c, check("blob", i, 7, code.shard(i, &data, &pa)), "size {size} shard {i}");
            }
        }
    }

    #[test]
    fn shapes_are_checked() {
        for (k, n) in [(0, 3), (3, 3), (4, 3), (2, MAX_WIDTH + 1)] {
            assert!(Code::new(k, n).is_err(), "{k} of {n}");
        }
        assert!(Code::new(10, 16).is_ok());
    }

    #[test]
    fn geometry_maps_stripes_to_shards() {
        let code = Code::new(3, 5).unwrap();
        let g = Geometry { first: 46, unit: 1000, len: 46 + 2500 };
        assert_eq!(g.stripes(), 4);
        assert_eq!(g.stripe(0), 0..46);
        assert_eq!(g.stripe(1), 46..1046);
        assert_eq!(g.stripe(3), 2046..2546);
        assert_eq!(g.stripe_of(45), 0);
        assert_eq!(g.stripe_of(46), 1);
        assert_eq!(g.stripe_of(2545), 3);
        assert_eq!(g.shard_at(&code, 0), (0, 16));
        assert_eq!(g.shard_at(&code, 1), (32, 334));
        assert_eq!(g.shard_at(&code, 3), (32 + 2 * 350, 167));
        assert_eq!(g.slice_len(&code), 32 + 2 * 350 + 167 + 16);
        let plain = Geometry { first: 0, unit: 100, len: 250 };
        assert_eq!(plain.stripes(), 3);
        assert_eq!(plain.stripe(2), 200..250);
        assert_eq!(plain.shard_at(&code, 2), (2 * 50, 17));
        assert_eq!(Geometry { first: 0, unit: 100, len: 0 }.stripes(), 0);
    }

    #[test]
    fn checks_bind_position() {
        let a = check("b", 0, 0, b"x");
        assert_ne!(a, check("b", 1, 0, b"x"));
        assert_ne!(a, check("b", 0, 1, b"x"));
        assert_ne!(a, check("c", 0, 0, b"x"));
        assert_ne!(a, check("b", 0, 0, b"y"));
    }
}
