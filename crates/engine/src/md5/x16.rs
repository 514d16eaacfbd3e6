//! Sixteen MD5 streams at once, one per 32-bit lane of the AVX-512 registers (the
//! multi-buffer technique of Intel's ISA-L and MinIO's md5-simd, written here from RFC
//! 1321). MD5's 64 steps are one dependency chain, so a single stream leaves the vector
//! units idle; sixteen independent streams advance together at about the cost of one.
//!
//! [`compress`] takes the lanes' chaining values and the same number of 64-byte blocks of
//! each stream; padding and lengths stay with the caller.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Streams hashed at once.
pub const LANES: usize = 16;

/// Whether this CPU runs [`compress`] (AVX-512F). std caches the detection.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Compresses `data[i]` (whole 64-byte blocks, the same number for every stream) into
/// `states[i]`, for up to [`LANES`] streams. Returns false, changing nothing, when this
/// CPU cannot ([`available`]) or the input is not as described.
pub fn compress(states: &mut [[u32; 4]], data: &[&[u8]]) -> bool {
    let Some(blocks) = super::blocks_per_stream(states, data, LANES).filter(|_| available()) else {
        return false;
    };
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `available()` confirmed that this CPU supports AVX-512F, the only
        // feature `compress_avx512` is compiled for.
        unsafe { compress_avx512(states, data, blocks) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The sine table (RFC 1321, §3.4).
pub(super) const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// One step: `a = b + rotl(a + f(b, c, d) + m + k, s)`, where `f` is the round's function
/// as a ternary-logic truth table (F 0xCA, G 0xE4, H 0x96, I 0x39).
#[cfg(target_arch = "x86_64")]
macro_rules! step {
    ($f:literal, $s:literal, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr) => {
        let f = _mm512_ternarylogic_epi32::<$f>($b, $c, $d);
        let sum =
            _mm512_add_epi32(_mm512_add_epi32($a, f), _mm512_add_epi32($m, _mm512_set1_epi32($k as i32)));
        $a = _mm512_add_epi32($b, _mm512_rol_epi32::<$s>(sum));
    };
}

/// Four steps of a round with its four rotations, message words `g(i)` for steps
/// `i..i + 4`.
#[cfg(target_arch = "x86_64")]
macro_rules! four {
    ($f:literal, [$s0:literal, $s1:literal, $s2:literal, $s3:literal], $i:expr, $g:expr,
     $a:ident, $b:ident, $c:ident, $d:ident, $m:ident) => {
        step!($f, $s0, $a, $b, $c, $d, $m[$g($i)], K[$i]);
        step!($f, $s1, $d, $a, $b, $c, $m[$g($i + 1)], K[$i + 1]);
        step!($f, $s2, $c, $d, $a, $b, $m[$g($i + 2)], K[$i + 2]);
        step!($f, $s3, $b, $c, $d, $a, $m[$g($i + 3)], K[$i + 3]);
    };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn compress_avx512(states: &mut [[u32; 4]], data: &[&[u8]], blocks: usize) {
    let lanes = data.len();
    // Lane i of vector j holds word j of stream i; lanes beyond `lanes` hash zeros and are
    // never read back.
    let column = |j: usize| -> __m512i {
        let mut words = [0u32; LANES];
        for (w, s) in words.iter_mut().zip(states.iter()) {
            *w = s[j];
        }
        zerocopy::transmute!(words)
    };
    let (mut a, mut b, mut c, mut d) = (column(0), column(1), column(2), column(3));
    let f1 = |i: usize| i;
    let f2 = |i: usize| (5 * i + 1) % 16;
    let f3 = |i: usize| (3 * i + 5) % 16;
    let f4 = |i: usize| (7 * i) % 16;
    for block in 0..blocks {
        // Row i: stream i's block (its sixteen little-endian words, as x86 loads them).
        let mut rows = [_mm512_setzero_si512(); LANES];
        for (row, stream) in rows.iter_mut().zip(data) {
            if let Some(bytes) =
                stream.get(block * 64..block * 64 + 64).and_then(|b| <[u8; 64]>::try_from(b).ok())
            {
                *row = zerocopy::transmute!(bytes);
            }
        }
        let m = transpose(rows);
        let (aa, bb, cc, dd) = (a, b, c, d);
        four!(0xCA, [7, 12, 17, 22], 0, f1, a, b, c, d, m);
        four!(0xCA, [7, 12, 17, 22], 4, f1, a, b, c, d, m);
        four!(0xCA, [7, 12, 17, 22], 8, f1, a, b, c, d, m);
        four!(0xCA, [7, 12, 17, 22], 12, f1, a, b, c, d, m);
        four!(0xE4, [5, 9, 14, 20], 16, f2, a, b, c, d, m);
        four!(0xE4, [5, 9, 14, 20], 20, f2, a, b, c, d, m);
        four!(0xE4, [5, 9, 14, 20], 24, f2, a, b, c, d, m);
        four!(0xE4, [5, 9, 14, 20], 28, f2, a, b, c, d, m);
        four!(0x96, [4, 11, 16, 23], 32, f3, a, b, c, d, m);
        four!(0x96, [4, 11, 16, 23], 36, f3, a, b, c, d, m);
        four!(0x96, [4, 11, 16, 23], 40, f3, a, b, c, d, m);
        four!(0x96, [4, 11, 16, 23], 44, f3, a, b, c, d, m);
        four!(0x39, [6, 10, 15, 21], 48, f4, a, b, c, d, m);
        four!(0x39, [6, 10, 15, 21], 52, f4, a, b, c, d, m);
        four!(0x39, [6, 10, 15, 21], 56, f4, a, b, c, d, m);
        four!(0x39, [6, 10, 15, 21], 60, f4, a, b, c, d, m);
        a = _mm512_add_epi32(a, aa);
        b = _mm512_add_epi32(b, bb);
        c = _mm512_add_epi32(c, cc);
        d = _mm512_add_epi32(d, dd);
    }
    let out: [[u32; LANES]; 4] = [a, b, c, d].map(|v| zerocopy::transmute!(v));
    for (lane, state) in states.iter_mut().enumerate().take(lanes) {
        *state = [out[0][lane], out[1][lane], out[2][lane], out[3][lane]];
    }
}

/// The 16×16 matrix of 32-bit words in `rows` turned so that vector j holds word j of
/// every row (row i in lane i): four stages of in-register shuffles instead of 256 scalar
/// moves through memory.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose(r: [__m512i; LANES]) -> [__m512i; LANES] {
    // Pairs of rows interleaved by words: within each 128-bit quarter, words 4q, 4q+1
    // (even index) or 4q+2, 4q+3 (odd) of both rows.
    let mut t = [_mm512_setzero_si512(); LANES];
    for k in 0..LANES / 2 {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    // Groups of four rows: u[4g + w] holds, in quarter q, word 4q + w of rows 4g..4g + 4.
    let mut u = [_mm512_setzero_si512(); LANES];
    for g in 0..LANES / 4 {
        let i = 4 * g;
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    // Word 4q + w of all sixteen rows: quarter q of u[w], u[4 + w], u[8 + w], u[12 + w].
    let mut out = [_mm512_setzero_si512(); LANES];
    for w in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x44>(u[w], u[4 + w]);
        let v1 = _mm512_shuffle_i32x4::<0xEE>(u[w], u[4 + w]);
        let v2 = _mm512_shuffle_i32x4::<0x44>(u[8 + w], u[12 + w]);
        let v3 = _mm512_shuffle_i32x4::<0xEE>(u[8 + w], u[12 + w]);
        out[w] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        out[4 + w] = _mm512_shuffle_i32x4::<0xDD>(v0, v2);
        out[8 + w] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        out[12 + w] = _mm512_shuffle_i32x4::<0xDD>(v1, v3);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1321's initial chaining value.
    const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

    #[test]
    fn every_lane_matches_the_scalar_compression() {
        if !available() {
            eprintln!("no AVX-512F on this CPU: the 16-lane MD5 is not used here");
            return;
        }
        for lanes in [1, 2, 7, 16] {
            let streams: Vec<Vec<u8>> =
                (0..lanes).map(|l| (0..64 * 5).map(|i| (i * 7 + l * 131) as u8).collect()).collect();
            let mut states = vec![INIT; lanes];
            let slices: Vec<&[u8]> = streams.iter().map(Vec::as_slice).collect();
            assert!(compress(&mut states, &slices));
            for (state, stream) in states.iter().zip(&streams) {
                let mut want = INIT;
                super::super::scalar_blocks(&mut want, stream);
                assert_eq!(*state, want, "{lanes} lanes");
            }
        }
        // Misshapen input is refused untouched.
        let mut states = [INIT; 2];
        assert!(!compress(&mut states, &[&[0u8; 64], &[0u8; 128]]));
        assert_eq!(states, [INIT; 2]);
    }
}
