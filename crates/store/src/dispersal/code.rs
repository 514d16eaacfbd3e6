//! The Reed-Solomon code and the stripe geometry of dispersal (docs/FORMAT.md §7): how a
//! piece's stored bytes are cut into stripes (its engine header, then each unit), how a
//! stripe becomes `k` data shards and `n − k` parity shards, where shard `j` of slice `i`
//! lies in slice file `i`, and the check that makes a damaged shard count as missing.

use std::sync::Arc;

use reed_solomon_erasure::galois_8::ReedSolomon;

use super::gf::Parity;
use engine::format::{FIXED_HEADER_LEN, Header, MAGIC};

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
    /// The same parity rows, for the one-pass kernel.
    parity: Arc<Parity>,
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
        // The library's parity rows, read off it: parity of the unit stripes, data shard
        // `d` one byte of 1 and the others 0, is column `d` of the rows.
        let mut rows = vec![vec![0u8; k]; n - k];
        for d in 0..k {
            let unit: Vec<[u8; 1]> = (0..k).map(|i| [u8::from(i == d)]).collect();
            let mut out = vec![[0u8; 1]; n - k];
            rs.encode_sep(&unit, &mut out).map_err(CodeError::Library)?;
            for (row, o) in rows.iter_mut().zip(&out) {
                row[d] = o[0];
            }
        }
        Ok(Self { k, n, rs: Arc::new(rs), parity: Arc::new(Parity::new(&rows)) })
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
    /// and its trailer, say), zero-padded to `k` equal shards. Nothing is copied: each
    /// shard is the parts of the pieces it covers, plus the padding. Coding reads them
    /// block by block and gathers only a block that spans two parts; before, the shard
    /// across a unit and its trailer was copied whole (a sixth of dispersal's CPU).
    pub fn data_shards<'a>(&self, pieces: &[&'a [u8]]) -> DataShards<'a> {
        let total: usize = pieces.iter().map(|p| p.len()).sum();
        let len = self.shard_len(total as u64);
        let mut parts = vec![Vec::new(); self.k];
        let (mut shard, mut room) = (0, len);
        for piece in pieces {
            let mut rest = *piece;
            while !rest.is_empty() && shard < self.k {
                let n = room.min(rest.len());
                parts[shard].push(&rest[..n]);
                rest = &rest[n..];
                room -= n;
                if room == 0 {
                    (shard, room) = (shard + 1, len);
                }
            }
        }
        // The padding (fewer than `k` bytes: `len` is `total / k` rounded up).
        while shard < self.k {
            parts[shard].push(&ZEROS[..room.min(ZEROS.len())]);
            (shard, room) = (shard + 1, len);
        }
        DataShards { len, parts }
    }

    fn parity_buffers(&self, len: usize, parity: &mut Vec<Vec<u8>>) {
        parity.resize_with(self.n - self.k, Vec::new);
        for p in parity.iter_mut() {
            p.resize(len, 0);
        }
    }

    /// Computes the `n − k` parity shards of `data` into `parity`.
    pub fn encode(&self, data: &DataShards<'_>, parity: &mut Vec<Vec<u8>>) -> Result<(), CodeError> {
        self.code_blocks(data, parity, |_, _| {})
    }

    /// [`Code::encode`], with every shard's [`check`] computed in the same pass: the coding
    /// and the hashing go column block by column block, so each block is hashed while it is
    /// still in cache (a third less CPU than coding, then hashing each shard whole).
    pub fn encode_checked(
        &self,
        data: &DataShards<'_>,
        parity: &mut Vec<Vec<u8>>,
        blob: &str,
        index: u64,
    ) -> Result<Vec<[u8; CHECK_LEN]>, CodeError> {
        let mut hashers: Vec<twox_hash::XxHash3_128> =
            (0..self.n).map(|_| twox_hash::XxHash3_128::new()).collect();
        self.code_blocks(data, parity, |i, block| hashers[i].write(block))?;
        Ok(hashers.iter().enumerate().map(|(i, h)| bind(blob, i, index, h.finish_128())).collect())
    }

    /// Codes `data` one column block at a time, handing every shard's block (data, then
    /// parity) to `each` in order.
    fn code_blocks(
        &self,
        data: &DataShards<'_>,
        parity: &mut Vec<Vec<u8>>,
        mut each: impl FnMut(usize, &[u8]),
    ) -> Result<(), CodeError> {
        const BLOCK: usize = 32 << 10;
        let len = data.len;
        self.parity_buffers(len, parity);
        let mut gathered = vec![Vec::new(); self.k];
        let mut col = 0;
        while col < len {
            let end = (col + BLOCK).min(len);
            let cols: Vec<&[u8]> =
                data.parts.iter().zip(gathered.iter_mut()).map(|(p, g)| block_of(p, col, end, g)).collect();
            let mut out: Vec<&mut [u8]> = parity.iter_mut().map(|p| &mut p[col..end]).collect();
            if !self.parity.encode(&cols, &mut out) {
                self.rs.encode_sep(&cols, &mut out).map_err(CodeError::Library)?;
            }
            for (i, block) in cols.iter().copied().chain(out.iter().map(|b| &b[..])).enumerate() {
                each(i, block);
            }
            col = end;
        }
        Ok(())
    }

    /// Shard `i` of a coded stripe, as the parts that make it up in order: a data shard's
    /// parts, or the parity shard.
    pub fn shard<'a>(&self, i: usize, data: &DataShards<'a>, parity: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
        if i < self.k { data.parts[i].clone() } else { vec![&parity[i - self.k][..]] }
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

/// Zero bytes for a stripe's padding (fewer than `k` ≤ [`MAX_WIDTH`] bytes).
static ZEROS: [u8; MAX_WIDTH] = [0; MAX_WIDTH];

/// The data shards of one stripe (see [`Code::data_shards`]): each the parts, borrowed
/// from the stripe's pieces, that make it up in order.
#[derive(Debug)]
pub struct DataShards<'a> {
    len: usize,
    parts: Vec<Vec<&'a [u8]>>,
}

impl DataShards<'_> {
    /// Length of each shard.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the shards are empty (never: a shard is at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Data shard `i`, copied into one buffer.
    pub fn to_vec(&self, i: usize) -> Vec<u8> {
        self.parts[i].concat()
    }
}

/// Bytes `from..to` of a shard made of `parts`: borrowed when one part holds them all,
/// else gathered into `gathered`.
fn block_of<'a>(parts: &[&'a [u8]], from: usize, to: usize, gathered: &'a mut Vec<u8>) -> &'a [u8] {
    let mut at = 0;
    for part in parts {
        if from >= at && to <= at + part.len() {
            return &part[from - at..to - at];
        }
        at += part.len();
    }
    gathered.clear();
    let mut at = 0;
    for part in parts {
        let (a, b) = (from.max(at), to.min(at + part.len()));
        if a < b {
            gathered.extend_from_slice(&part[a - at..b - at]);
        }
        at += part.len();
    }
    gathered
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
        let mut parity = Vec::new();
        let data = code.data_shards(&[&stripe]);
        assert_eq!(data.len(), 334);
        code.encode(&data, &mut parity).unwrap();
        let shards: Vec<Vec<u8>> = (0..5).map(|i| code.shard(i, &data, &parity).concat()).collect();
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
                let want: Vec<Vec<u8>> = whole.chunks(len).map(<[u8]>::to_vec).collect();
                for cuts in
                    [vec![], vec![size / 2], vec![size.saturating_sub(48)], vec![1.min(size), size / 3, size]]
                {
                    let mut pieces: Vec<&[u8]> = Vec::new();
                    let mut at = 0;
                    for c in cuts.iter().copied().chain([size]) {
                        pieces.push(&stripe[at..c.max(at)]);
                        at = c.max(at);
                    }
                    let data = code.data_shards(&pieces);
                    let got: Vec<Vec<u8>> = (0..k).map(|i| data.to_vec(i)).collect();
                    assert_eq!((data.len(), &got), (len, &want), "{k} of {n}, size {size}, cuts {cuts:?}");
                    // Every column block, borrowed or gathered, is the same bytes.
                    for (i, parts) in data.parts.iter().enumerate() {
                        for (from, to) in [(0, len), (0, len / 2), (len / 3, len), (len / 2, len / 2 + 1)] {
                            let mut gathered = Vec::new();
                            assert_eq!(block_of(parts, from, to, &mut gathered), &want[i][from..to]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn coding_with_checks_matches_coding_then_checking() {
        let code = Code::new(3, 5).unwrap();
        for size in [1usize, 1000, 100_000, (1 << 20) + 48] {
            let stripe: Vec<u8> = (0..size).map(|i| (i * 13 + 5) as u8).collect();
            let whole = code.data_shards(&[&stripe]);
            let data = code.data_shards(&[&stripe[..size / 2], &stripe[size / 2..]]);
            let (mut pa, mut pb) = (Vec::new(), Vec::new());
            // Parity from whole shards in one call, against parity block by block from cut ones.
            let owned: Vec<Vec<u8>> = (0..3).map(|i| whole.to_vec(i)).collect();
            pa.resize(2, vec![0; whole.len()]);
            code.rs.encode_sep(&owned, &mut pa).unwrap();
            let checks = code.encode_checked(&data, &mut pb, "blob", 7).unwrap();
            assert_eq!(pa, pb);
            for (i, c) in checks.iter().enumerate() {
                assert_eq!(
                    *c,
                    check("blob", i, 7, &code.shard(i, &data, &pa).concat()),
                    "size {size} shard {i}"
                );
            }
        }
    }

    #[test]
    fn the_kernel_codes_what_the_library_codes() {
        assert!(
            super::super::gf::available() || !cfg!(target_arch = "x86_64"),
            "x86-64 machines here have AVX2"
        );
        for (k, n) in [(3, 5), (10, 16), (1, 2), (4, 13), (20, 64)] {
            let code = Code::new(k, n).unwrap();
            for len in [1usize, 31, 32, 33, 95, 1000, (32 << 10) + 7] {
                let data: Vec<Vec<u8>> = (0..k)
                    .map(|d| (0..len).map(|i| ((i * 131 + d * 71 + 17) ^ (i >> 3)) as u8).collect())
                    .collect();
                let cols: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
                let mut want = vec![vec![0u8; len]; n - k];
                code.rs.encode_sep(&cols, &mut want).unwrap();
                let mut got = vec![vec![0xAAu8; len]; n - k];
                let mut out: Vec<&mut [u8]> = got.iter_mut().map(Vec::as_mut_slice).collect();
                assert_eq!(code.parity.encode(&cols, &mut out), super::super::gf::available());
                if super::super::gf::available() {
                    assert!(got == want, "{k} of {n}, {len} bytes");
                }
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
