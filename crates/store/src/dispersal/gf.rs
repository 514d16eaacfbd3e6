//! The parity kernel of dispersal: the `n − k` parity shards of a column block as one pass
//! over its `k` data shards, in GF(2^8) with the polynomial x⁸+x⁴+x³+x²+1 (0x11D) and the
//! coefficients of the encoding matrix the Reed-Solomon library uses (read off it, so the
//! slices stay the library's, byte for byte).
//!
//! The library computes parity one (data shard, parity shard) pair at a time: each pass
//! reads a data shard and reads, updates and writes a parity shard, `k × (n − k)` passes
//! over the block. This kernel loads each 32-byte column of the data shards once and keeps
//! up to four parity columns in registers, multiplying by split-nibble table look-ups
//! (`vpshufb`, the technique of ISA-L and of the library's own kernel): the same
//! multiplications with a third of the memory traffic. It runs where AVX2 is present; the
//! caller falls back to the library elsewhere. Decoding stays with the library.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Parity columns kept in registers at once.
const GROUP: usize = 4;

/// The product of `a` and `b` in GF(2^8) modulo 0x11D.
pub(super) fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    while b != 0 {
        if b & 1 == 1 {
            product ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1d;
        }
        b >>= 1;
    }
    product
}

/// Whether this CPU runs the kernel (AVX2); std caches the detection.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Multiplication by one coefficient as two 16-entry tables: products with the low nibble
/// and with the high nibble of a byte (`c·x = low[x & 15] ^ high[x >> 4]`).
#[derive(Clone, Copy)]
struct Nibbles {
    low: [u8; 16],
    high: [u8; 16],
}

impl Nibbles {
    fn of(c: u8) -> Self {
        let (mut low, mut high) = ([0; 16], [0; 16]);
        for x in 0..16u8 {
            low[usize::from(x)] = mul(c, x);
            high[usize::from(x)] = mul(c, x << 4);
        }
        Self { low, high }
    }

    fn times(&self, x: u8) -> u8 {
        self.low[usize::from(x & 15)] ^ self.high[usize::from(x >> 4)]
    }
}

/// The parity rows of an encoding matrix, ready to multiply with.
pub(super) struct Parity {
    k: usize,
    /// `tables[p * k + d]`: multiplication by the coefficient of data shard `d` in parity
    /// shard `p`.
    tables: Vec<Nibbles>,
}

impl Parity {
    /// The kernel for parity rows `rows` (`rows[p][d]`, each `k` long).
    pub(super) fn new(rows: &[Vec<u8>]) -> Self {
        let k = rows.first().map_or(0, Vec::len);
        let tables = rows.iter().flat_map(|row| row.iter().map(|&c| Nibbles::of(c))).collect();
        Self { k, tables }
    }

    /// Parity shards `out` (each as long as every data shard in `data`) of `data`. Returns
    /// false, changing nothing, when this CPU cannot ([`available`]) or the shapes do not
    /// match the matrix.
    pub(super) fn encode(&self, data: &[&[u8]], out: &mut [&mut [u8]]) -> bool {
        let len = data.first().map_or(0, |d| d.len());
        let shaped = data.len() == self.k
            && out.len() * self.k == self.tables.len()
            && data.iter().all(|d| d.len() == len)
            && out.iter().all(|o| o.len() == len);
        if !shaped || !available() {
            return false;
        }
        let wide = len - len % 32;
        for (g, outs) in out.chunks_mut(GROUP).enumerate() {
            let tables = &self.tables[g * GROUP * self.k..];
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: `available()` confirmed AVX2, the only feature these functions
                // are compiled for; every shard is at least `wide` bytes long (checked
                // above), which is all they read and write.
                unsafe {
                    match outs.len() {
                        1 => columns::<1>(tables, data, outs, wide),
                        2 => columns::<2>(tables, data, outs, wide),
                        3 => columns::<3>(tables, data, outs, wide),
                        _ => columns::<GROUP>(tables, data, outs, wide),
                    }
                }
            }
            // The last bytes, fewer than a column, one at a time.
            for (p, o) in outs.iter_mut().enumerate() {
                for (i, byte) in o.iter_mut().enumerate().skip(wide) {
                    *byte = data
                        .iter()
                        .enumerate()
                        .fold(0, |acc, (d, s)| acc ^ tables[p * self.k + d].times(s[i]));
                }
            }
        }
        true
    }
}

/// The first `wide` bytes (a multiple of 32) of the `G` parity shards `out`, from `data`
/// and `tables` (row-major, `data.len()` per row).
///
/// # Safety
/// The CPU must support AVX2; every shard in `data` and `out` must be at least `wide`
/// bytes long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn columns<const G: usize>(tables: &[Nibbles], data: &[&[u8]], out: &mut [&mut [u8]], wide: usize) {
    let k = data.len();
    let mut wide_tables = Vec::with_capacity(G * k);
    for t in &tables[..G * k] {
        // SAFETY: each table is 16 bytes, what one unaligned 128-bit load reads.
        let (low, high) =
            unsafe { (_mm_loadu_si128(t.low.as_ptr().cast()), _mm_loadu_si128(t.high.as_ptr().cast())) };
        // `vpshufb` looks up within each 128-bit lane: the same table in both.
        wide_tables.push([_mm256_broadcastsi128_si256(low), _mm256_broadcastsi128_si256(high)]);
    }
    let mask = _mm256_set1_epi8(0x0f);
    let mut col = 0;
    while col < wide {
        let mut acc = [_mm256_setzero_si256(); G];
        for (d, shard) in data.iter().enumerate() {
            // SAFETY: `col + 32 <= wide <= shard.len()`.
            let x = unsafe { _mm256_loadu_si256(shard.as_ptr().add(col).cast()) };
            let lo = _mm256_and_si256(x, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi64::<4>(x), mask);
            for (p, a) in acc.iter_mut().enumerate() {
                let [tl, th] = wide_tables[p * k + d];
                let product = _mm256_xor_si256(_mm256_shuffle_epi8(tl, lo), _mm256_shuffle_epi8(th, hi));
                *a = _mm256_xor_si256(*a, product);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            // SAFETY: `col + 32 <= wide <= o.len()`.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().add(col).cast(), a) };
        }
        col += 32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplication_is_the_field_of_0x11d() {
        assert_eq!(mul(0x80, 2), 0x1d);
        assert_eq!(mul(3, 7), 9);
        for a in 0..=255u8 {
            assert_eq!(mul(a, 1), a);
            assert_eq!(mul(a, 0), 0);
            for b in [2u8, 0x53, 0xca, 0xff] {
                assert_eq!(mul(a, b), mul(b, a));
                assert_eq!(Nibbles::of(b).times(a), mul(a, b));
            }
        }
    }

    #[test]
    fn refuses_shapes_it_was_not_made_for() {
        let parity = Parity::new(&[vec![1, 2, 3]]);
        let (a, b) = ([0u8; 40], [0u8; 39]);
        let mut o = [0u8; 40];
        assert!(!parity.encode(&[&a, &a], &mut [&mut o]), "two data shards for three columns");
        assert!(!parity.encode(&[&a, &a, &b], &mut [&mut o]), "unequal shards");
    }
}
