//! Eight MD5 streams at once, one per 32-bit lane of the AVX2 registers: the multi-buffer
//! kernel for CPUs without AVX-512 (AMD Zen 2 and 3, most Intel desktop parts), where
//! [`super::x16`] cannot run. Same technique and contract as `x16`, written from RFC 1321.
//! AVX2 has no rotate or ternary-logic instruction, so each step costs a few more
//! operations; two groups of eight streams are hashed interleaved, so one group's
//! dependency chain runs while the other's waits.
//!
//! [`compress`] takes the lanes' chaining values and the same number of 64-byte blocks of
//! each stream; padding and lengths stay with the caller.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Streams hashed at once: two interleaved groups of eight.
pub const LANES: usize = 16;

/// Streams per AVX2 register.
#[cfg(target_arch = "x86_64")]
const GROUP: usize = 8;

/// Whether this CPU runs [`compress`] (AVX2). std caches the detection.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
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
        // SAFETY: `available()` confirmed that this CPU supports AVX2, the only feature
        // `compress_avx2` is compiled for.
        unsafe { compress_avx2(states, data, blocks) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One step on both groups: `a = b + rotl(a + f(b, c, d) + m + k, s)`.
#[cfg(target_arch = "x86_64")]
macro_rules! step {
    ($f:ident, $s:literal, $a:ident, $b:ident, $c:ident, $d:ident, $m:ident, $g:expr, $k:expr) => {
        let k = _mm256_set1_epi32($k as i32);
        for h in 0..2 {
            let f = $f($b[h], $c[h], $d[h]);
            let sum = _mm256_add_epi32(_mm256_add_epi32($a[h], f), _mm256_add_epi32($m[h][$g], k));
            let rotated =
                _mm256_or_si256(_mm256_slli_epi32::<$s>(sum), _mm256_srli_epi32::<{ 32 - $s }>(sum));
            $a[h] = _mm256_add_epi32($b[h], rotated);
        }
    };
}

/// Four steps of a round with its four rotations, message words `g(i)` for steps
/// `i..i + 4`.
#[cfg(target_arch = "x86_64")]
macro_rules! four {
    ($f:ident, [$s0:literal, $s1:literal, $s2:literal, $s3:literal], $i:expr, $g:expr,
     $a:ident, $b:ident, $c:ident, $d:ident, $m:ident) => {
        step!($f, $s0, $a, $b, $c, $d, $m, $g($i), super::x16::K[$i]);
        step!($f, $s1, $d, $a, $b, $c, $m, $g($i + 1), super::x16::K[$i + 1]);
        step!($f, $s2, $c, $d, $a, $b, $m, $g($i + 2), super::x16::K[$i + 2]);
        step!($f, $s3, $b, $c, $d, $a, $m, $g($i + 3), super::x16::K[$i + 3]);
    };
}

/// F = (b ∧ c) ∨ (¬b ∧ d), as d ⊕ (b ∧ (c ⊕ d)).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn f_(b: __m256i, c: __m256i, d: __m256i) -> __m256i {
    _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d)))
}

/// G = (b ∧ d) ∨ (c ∧ ¬d), as c ⊕ (d ∧ (b ⊕ c)).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn g_(b: __m256i, c: __m256i, d: __m256i) -> __m256i {
    _mm256_xor_si256(c, _mm256_and_si256(d, _mm256_xor_si256(b, c)))
}

/// H = b ⊕ c ⊕ d.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn h_(b: __m256i, c: __m256i, d: __m256i) -> __m256i {
    _mm256_xor_si256(_mm256_xor_si256(b, c), d)
}

/// I = c ⊕ (b ∨ ¬d).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn i_(b: __m256i, c: __m256i, d: __m256i) -> __m256i {
    let not_d = _mm256_xor_si256(d, _mm256_set1_epi32(-1));
    _mm256_xor_si256(c, _mm256_or_si256(b, not_d))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn compress_avx2(states: &mut [[u32; 4]], data: &[&[u8]], blocks: usize) {
    // Lane i of group h's vector j holds word j of stream 8h + i; lanes beyond `lanes`
    // hash zeros and are never read back.
    let column = |h: usize, j: usize| -> __m256i {
        let mut words = [0u32; GROUP];
        for (w, s) in words.iter_mut().zip(states.iter().skip(h * GROUP)) {
            *w = s[j];
        }
        zerocopy::transmute!(words)
    };
    let mut a = [column(0, 0), column(1, 0)];
    let mut b = [column(0, 1), column(1, 1)];
    let mut c = [column(0, 2), column(1, 2)];
    let mut d = [column(0, 3), column(1, 3)];
    let f1 = |i: usize| i;
    let f2 = |i: usize| (5 * i + 1) % 16;
    let f3 = |i: usize| (3 * i + 5) % 16;
    let f4 = |i: usize| (7 * i) % 16;
    for block in 0..blocks {
        let mut m = [[_mm256_setzero_si256(); 16]; 2];
        for (h, words) in m.iter_mut().enumerate() {
            // Rows of this group: stream i's block as two halves of eight words.
            let mut lo = [_mm256_setzero_si256(); GROUP];
            let mut hi = [_mm256_setzero_si256(); GROUP];
            for (i, stream) in data.iter().skip(h * GROUP).take(GROUP).enumerate() {
                if let Some(bytes) =
                    stream.get(block * 64..block * 64 + 64).and_then(|b| <[u8; 64]>::try_from(b).ok())
                {
                    let halves: [[u8; 32]; 2] = zerocopy::transmute!(bytes);
                    lo[i] = zerocopy::transmute!(halves[0]);
                    hi[i] = zerocopy::transmute!(halves[1]);
                }
            }
            words[..GROUP].copy_from_slice(&transpose(lo));
            words[GROUP..].copy_from_slice(&transpose(hi));
        }
        let (aa, bb, cc, dd) = (a, b, c, d);
        four!(f_, [7, 12, 17, 22], 0, f1, a, b, c, d, m);
        four!(f_, [7, 12, 17, 22], 4, f1, a, b, c, d, m);
        four!(f_, [7, 12, 17, 22], 8, f1, a, b, c, d, m);
        four!(f_, [7, 12, 17, 22], 12, f1, a, b, c, d, m);
        four!(g_, [5, 9, 14, 20], 16, f2, a, b, c, d, m);
        four!(g_, [5, 9, 14, 20], 20, f2, a, b, c, d, m);
        four!(g_, [5, 9, 14, 20], 24, f2, a, b, c, d, m);
        four!(g_, [5, 9, 14, 20], 28, f2, a, b, c, d, m);
        four!(h_, [4, 11, 16, 23], 32, f3, a, b, c, d, m);
        four!(h_, [4, 11, 16, 23], 36, f3, a, b, c, d, m);
        four!(h_, [4, 11, 16, 23], 40, f3, a, b, c, d, m);
        four!(h_, [4, 11, 16, 23], 44, f3, a, b, c, d, m);
        four!(i_, [6, 10, 15, 21], 48, f4, a, b, c, d, m);
        four!(i_, [6, 10, 15, 21], 52, f4, a, b, c, d, m);
        four!(i_, [6, 10, 15, 21], 56, f4, a, b, c, d, m);
        four!(i_, [6, 10, 15, 21], 60, f4, a, b, c, d, m);
        for h in 0..2 {
            a[h] = _mm256_add_epi32(a[h], aa[h]);
            b[h] = _mm256_add_epi32(b[h], bb[h]);
            c[h] = _mm256_add_epi32(c[h], cc[h]);
            d[h] = _mm256_add_epi32(d[h], dd[h]);
        }
    }
    for h in 0..2 {
        let out: [[u32; GROUP]; 4] = [a[h], b[h], c[h], d[h]].map(|v| zerocopy::transmute!(v));
        for (lane, state) in states.iter_mut().skip(h * GROUP).take(GROUP).enumerate() {
            *state = [out[0][lane], out[1][lane], out[2][lane], out[3][lane]];
        }
    }
}

/// The 8×8 matrix of 32-bit words in `r` turned so that vector j holds word j of every
/// row (row i in lane i): three stages of in-register shuffles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transpose(r: [__m256i; GROUP]) -> [__m256i; GROUP] {
    // Pairs of rows interleaved by words, within each 128-bit half.
    let mut t = [_mm256_setzero_si256(); GROUP];
    for k in 0..GROUP / 2 {
        t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    // Groups of four rows: u[4g + w] holds, in half q, word 4q + w of rows 4g..4g + 4.
    let mut u = [_mm256_setzero_si256(); GROUP];
    for g in 0..GROUP / 4 {
        let i = 4 * g;
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    // Word 4q + w of all eight rows: half q of u[w] (rows 0..4) and of u[4 + w] (rows 4..8).
    let mut out = [_mm256_setzero_si256(); GROUP];
    for w in 0..4 {
        out[w] = _mm256_permute2x128_si256::<0x20>(u[w], u[4 + w]);
        out[4 + w] = _mm256_permute2x128_si256::<0x31>(u[w], u[4 + w]);
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
        assert!(
            !cfg!(target_arch = "x86_64") || available(),
            "every x86-64 machine this project runs on has AVX2"
        );
        for lanes in [1, 2, 7, 8, 9, 15, 16] {
            let streams: Vec<Vec<u8>> =
                (0..lanes).map(|l| (0..64 * 5).map(|i| (i * 7 + l * 131) as u8).collect()).collect();
            let mut states: Vec<[u32; 4]> =
                (0..lanes).map(|l| INIT.map(|w| w.wrapping_add(l as u32))).collect();
            let mut want = states.clone();
            let slices: Vec<&[u8]> = streams.iter().map(Vec::as_slice).collect();
            assert!(compress(&mut states, &slices));
            for ((state, want), stream) in states.iter().zip(want.iter_mut()).zip(&streams) {
                super::super::scalar_blocks(want, stream);
                assert_eq!(state, want, "{lanes} lanes");
            }
        }
        // Misshapen input is refused untouched.
        let mut states = [INIT; 2];
        assert!(!compress(&mut states, &[&[0u8; 64], &[0u8; 128]]));
        assert_eq!(states, [INIT; 2]);
        let seventeen = vec![&[0u8; 64][..]; 17];
        let mut states = vec![INIT; 17];
        assert!(!compress(&mut states, &seventeen));
    }
}
