//! Dispersal's Reed-Solomon coding against the crate it did not choose, and what
//! dispersal adds to the AONT-RS encode, all in one run (one thread).
//!
//! Groups: `rs/<k>+<m>` — encode one AONT-RS segment package (1 MiB + 48 bytes) into
//! `k` data and `m` parity shards, and rebuild it with the first `min(m, k)` data shards
//! lost, with ours (`reed-solomon-erasure`, GF(2^8)) and `reed-solomon-simd` (GF(2^16),
//! FFT); `aont_rs` — 16 MiB of plaintext sealed as 1 MiB AONT-RS segments alone and then
//! coded 3+2 with every shard's check (the CPU dispersal adds per byte), for the default
//! suite and for the paper's AES-256-CTR + SHA-256 (Resch & Plank, FAST 2011).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use engine::{Backend, CipherId, HashId, SealSpec, Sealer, Sealing};
use pipeline::units::InMemory;
use store::dispersal::code::{Code, check};

const STRIPE: usize = (1 << 20) + 48;
const PLAIN: usize = 16 << 20;

fn stripe() -> Vec<u8> {
    (0..STRIPE).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect()
}

fn bench_rs(c: &mut Criterion) {
    let data = stripe();
    for (k, m) in [(3usize, 2usize), (10, 6)] {
        let mut g = c.benchmark_group(format!("rs/{k}+{m}"));
        g.throughput(Throughput::Bytes(STRIPE as u64));
        let code = Code::new(k, k + m).unwrap();
        let mut parity = Vec::new();
        g.bench_function("ours/encode", |b| {
            b.iter(|| {
                // As the writer does: data shards borrowed (the padding gathered per block).
                let shards = code.data_shards(&[black_box(&data)]);
                code.encode(&shards, &mut parity).unwrap()
            })
        });
        let data_shards = code.data_shards(&[&data]);
        code.encode(&data_shards, &mut parity).unwrap();
        let shards: Vec<Vec<u8>> =
            (0..k + m).map(|i| code.shard(i, &data_shards, &parity).concat()).collect();
        let lose = m.min(k);
        g.bench_function(format!("ours/rebuild-{lose}-lost"), |b| {
            b.iter(|| {
                let mut got: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
                for s in got.iter_mut().take(lose) {
                    *s = None;
                }
                code.rebuild(&mut got, false).unwrap();
                black_box(got)
            })
        });
        let len = code.shard_len(STRIPE as u64).next_multiple_of(2);
        let originals: Vec<Vec<u8>> = (0..k)
            .map(|i| {
                let mut s = data[(i * len).min(STRIPE)..((i + 1) * len).min(STRIPE)].to_vec();
                s.resize(len, 0);
                s
            })
            .collect();
        let mut enc = reed_solomon_simd::ReedSolomonEncoder::new(k, m, len).unwrap();
        g.bench_function("simd/encode", |b| {
            b.iter(|| {
                enc.reset(k, m, len).unwrap();
                for o in &originals {
                    enc.add_original_shard(o).unwrap();
                }
                black_box(enc.encode().unwrap().recovery_iter().count())
            })
        });
        enc.reset(k, m, len).unwrap();
        for o in &originals {
            enc.add_original_shard(o).unwrap();
        }
        let recovery: Vec<Vec<u8>> = enc.encode().unwrap().recovery_iter().map(<[u8]>::to_vec).collect();
        let mut dec = reed_solomon_simd::ReedSolomonDecoder::new(k, m, len).unwrap();
        g.bench_function(format!("simd/rebuild-{lose}-lost"), |b| {
            b.iter(|| {
                dec.reset(k, m, len).unwrap();
                for (i, o) in originals.iter().enumerate().skip(lose) {
                    dec.add_original_shard(i, o).unwrap();
                }
                for (i, r) in recovery.iter().enumerate() {
                    dec.add_recovery_shard(i, r).unwrap();
                }
                black_box(dec.decode().unwrap().restored_original_iter().count())
            })
        });
        g.finish();
    }
}

fn bench_aont_rs(c: &mut Criterion) {
    let plain: Vec<u8> = (0..PLAIN).map(|i| (i as u8).wrapping_mul(13)).collect();
    let mut g = c.benchmark_group("aont_rs");
    g.throughput(Throughput::Bytes(PLAIN as u64));
    let code = Code::new(3, 5).unwrap();
    for (name, cipher, hash) in
        [("default", CipherId::Aes256Gcm, HashId::Blake3), ("paper", CipherId::Aes256Ctr, HashId::Sha256)]
    {
        let spec = SealSpec {
            aont_cipher: cipher,
            aont_hash: hash,
            unit_size: 1 << 20,
            ..SealSpec::new(Sealing::Aont, Backend::Accelerated)
        };
        let sealer = Sealer::new(&spec, Some(PLAIN as u64)).unwrap();
        let layout = sealer.layout(PLAIN as u64).unwrap();
        let mut object = InMemory::new(&layout, &plain);
        g.bench_function(format!("{name}/aont"), |b| {
            b.iter(|| black_box(&mut object).seal(&sealer, false).unwrap())
        });
        let mut parity = Vec::new();
        let overhead = sealer.overhead();
        // As the dispersing writer does: each stored unit and its trailer (written
        // together) coded as one stripe, data shards borrowed where they lie (blocks across
        // the two gathered), and each shard's check computed (the file writes are left out).
        let mut disperse = |object: &InMemory| {
            let mut at = 0;
            for (i, u) in object.units.iter().enumerate() {
                let pieces =
                    [&object.data[at..at + u.len], &object.trailers[i * overhead..(i + 1) * overhead]];
                let shards = code.data_shards(&pieces);
                let blob = "0123456789abcdef0123456789abcdef";
                black_box(code.encode_checked(&shards, &mut parity, blob, i as u64).unwrap());
                at += u.len;
            }
        };
        g.bench_function(format!("{name}/aont+rs3of5"), |b| {
            b.iter(|| {
                object.seal(&sealer, false).unwrap();
                disperse(black_box(&object));
            })
        });
        // The dispersal alone, over the sealed object: its CPU per byte against the seal's
        // is the figure the two above give with less noise (one measurement, not a
        // difference of two).
        object.seal(&sealer, false).unwrap();
        g.bench_function(format!("{name}/rs3of5"), |b| b.iter(|| disperse(black_box(&object))));
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
}

fn bench_checks(c: &mut Criterion) {
    let shard: Vec<u8> = stripe()[..STRIPE / 3].to_vec();
    let mut g = c.benchmark_group("shard_check");
    g.throughput(Throughput::Bytes(shard.len() as u64));
    g.bench_function("ours", |b| {
        b.iter(|| check("0123456789abcdef0123456789abcdef", 1, 2, black_box(&shard)))
    });
    g.bench_function("xxh3-128", |b| b.iter(|| twox_hash::XxHash3_128::oneshot(black_box(&shard))));
    g.bench_function("crc64nvme", |b| {
        b.iter(|| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, black_box(&shard)))
    });
    g.bench_function("blake3", |b| b.iter(|| blake3::hash(black_box(&shard))));
    g.finish();
}

criterion_group! { name = benches; config = config(); targets = bench_rs, bench_aont_rs, bench_checks }
criterion_main!(benches);
