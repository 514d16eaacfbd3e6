//! Engine throughput against baseline crypto, all in one run (64 MiB in memory, one
//! thread unless a group says otherwise). Ratios of these figures are in BENCHMARKS.md.
//!
//! Groups: `baseline` (memcpy, raw aws-lc-rs / ring / RustCrypto AES-256-GCM), `stream`
//! (engine STREAM seal/open and chunk sizes), `aont` (engine AONT-RS with each cipher/hash
//! pair, the paper's AES-256-CTR + SHA-256 among them), `aont_segment` (segment sizes),
//! `primitives` (CTR and hash implementations), `threads` (rayon 1 vs 2 threads, and two
//! independent threads as the machine's own scaling reference), `metadata` (what a
//! record costs per request: the metadata tag alone, as version 2 records had, against
//! tag plus sealed headers and user metadata, FORMAT.md §3.8, and a 4 KiB SSE-C object).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use engine::codec::DEFAULT_CHUNK_SIZE;
use engine::primitives::{CtrImpl, Gcm, HashKind, Hasher, ctr_xor_at};
use engine::{Backend, CipherId, CustomerKey, HashId, Opener, SealSpec, Sealer, Sealing, SecretKey};
use pipeline::units::InMemory;

const N: usize = 64 << 20;

fn plaintext() -> Vec<u8> {
    (0..N).map(|i| (i as u8).wrapping_mul(31)).collect()
}

fn sealed(spec: &SealSpec, plain: &[u8]) -> (Sealer, InMemory) {
    let sealer = Sealer::new(spec, Some(plain.len() as u64)).unwrap();
    let mut object = InMemory::new(&sealer.layout(plain.len() as u64).unwrap(), plain);
    object.seal(&sealer, true).unwrap();
    (sealer, object)
}

fn sse_c_spec(unit: u32) -> SealSpec {
    let mut s =
        SealSpec::new(Sealing::SseC(CustomerKey::new(SecretKey::from_bytes([7; 32]))), Backend::Accelerated);
    s.unit_size = unit;
    s
}

fn aont_spec(cipher: CipherId, hash: HashId, unit: u32, backend: Backend) -> SealSpec {
    SealSpec {
        aont_cipher: cipher,
        aont_hash: hash,
        unit_size: unit,
        ..SealSpec::new(Sealing::Aont, backend)
    }
}

fn bench_seal_open(c: &mut Criterion, group: &str, name: &str, spec: &SealSpec, plain: &[u8]) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(plain.len() as u64));
    let (sealer, mut object) = sealed(spec, plain);
    g.bench_function(format!("{name}/seal"), |b| {
        b.iter(|| black_box(&mut object).seal(&sealer, false).unwrap())
    });
    let (sealer, pristine) = sealed(spec, plain);
    let opener = Opener::new(sealer.header_bytes(), spec.protection.key(), spec.backend).unwrap();
    g.bench_function(format!("{name}/open"), |b| {
        b.iter_batched_ref(|| pristine.clone(), |o| o.open(&opener, false).unwrap(), BatchSize::PerIteration)
    });
    g.finish();
}

fn baseline(c: &mut Criterion) {
    let plain = plaintext();
    let mut g = c.benchmark_group("baseline");
    g.throughput(Throughput::Bytes(N as u64));
    let mut dst = vec![0u8; N];
    g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&plain))));
    let key = SecretKey::from_bytes([7; 32]);
    let mut buf = plain.clone();
    let aws = Gcm::new(Backend::Accelerated, &key).unwrap();
    g.bench_function("aws-lc-rs-gcm/seal", |b| {
        b.iter(|| aws.seal(&[1; 12], b"", black_box(&mut buf)).unwrap())
    });
    let tag = aws.seal(&[1; 12], b"", &mut buf).unwrap();
    let ct = buf.clone();
    g.bench_function("aws-lc-rs-gcm/open", |b| {
        b.iter_batched_ref(
            || ct.clone(),
            |w| aws.open(&[1; 12], b"", w, &tag).unwrap(),
            BatchSize::PerIteration,
        )
    });
    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key.expose()).unwrap(),
    );
    g.bench_function("ring-gcm/seal", |b| {
        b.iter(|| {
            ring_key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key([1; 12]),
                    ring::aead::Aad::empty(),
                    black_box(&mut buf),
                )
                .unwrap()
        })
    });
    {
        use aes_gcm_010::aead::{AeadInPlace, KeyInit};
        let rc = aes_gcm_010::Aes256Gcm::new(key.expose().into());
        g.bench_function("rustcrypto-aes-gcm-0.10/seal", |b| {
            b.iter(|| rc.encrypt_in_place_detached(&[1u8; 12].into(), b"", black_box(&mut buf)).unwrap())
        });
    }
    let portable = Gcm::new(Backend::Portable, &key).unwrap();
    g.bench_function("rustcrypto-aes-gcm-0.11/seal", |b| {
        b.iter(|| portable.seal(&[1; 12], b"", black_box(&mut buf)).unwrap())
    });
    g.finish();
}

fn stream(c: &mut Criterion) {
    let plain = plaintext();
    bench_seal_open(c, "stream", "default-256KiB", &sse_c_spec(DEFAULT_CHUNK_SIZE), &plain);
    for unit in [16u32 << 10, 64 << 10, 1 << 20] {
        bench_seal_open(c, "stream_chunk", &format!("{}KiB", unit >> 10), &sse_c_spec(unit), &plain);
    }
    let mut portable = sse_c_spec(DEFAULT_CHUNK_SIZE);
    portable.backend = Backend::Portable;
    bench_seal_open(c, "stream", "portable-256KiB", &portable, &plain);
}

fn aont(c: &mut Criterion) {
    let plain = plaintext();
    for (cipher, hash, name) in [
        (CipherId::Aes256Ctr, HashId::Sha256, "paper-ctr-sha256"),
        (CipherId::Aes256Ctr, HashId::Blake3, "ctr-blake3"),
        (CipherId::Aes256Gcm, HashId::Blake3, "default-gcm-blake3"),
        (CipherId::Aes256Gcm, HashId::Sha256, "gcm-sha256"),
    ] {
        bench_seal_open(c, "aont", name, &aont_spec(cipher, hash, 1 << 20, Backend::Accelerated), &plain);
    }
    bench_seal_open(
        c,
        "aont",
        "portable-gcm-blake3",
        &aont_spec(CipherId::Aes256Gcm, HashId::Blake3, 1 << 20, Backend::Portable),
        &plain,
    );
}

fn aont_segment(c: &mut Criterion) {
    let plain = plaintext();
    for unit in [64u32 << 10, 256 << 10, 1 << 20, 4 << 20] {
        let spec = aont_spec(CipherId::Aes256Gcm, HashId::Blake3, unit, Backend::Accelerated);
        bench_seal_open(c, "aont_segment", &format!("{}KiB", unit >> 10), &spec, &plain);
    }
}

fn primitives(c: &mut Criterion) {
    let plain = plaintext();
    let mut g = c.benchmark_group("primitives");
    g.throughput(Throughput::Bytes(N as u64));
    let key = SecretKey::from_bytes([7; 32]);
    let mut buf = plain.clone();
    for (imp, name) in [(CtrImpl::AwsLc, "ctr/aws-lc-rs"), (CtrImpl::RustCrypto, "ctr/rustcrypto-aes-0.9")] {
        g.bench_function(name, |b| {
            b.iter(|| {
                for seg in buf.chunks_mut(1 << 20) {
                    ctr_xor_at(imp, &key, 0, seg).unwrap();
                }
            })
        });
    }
    for (kind, backend, name) in [
        (HashKind::Sha256, Backend::Accelerated, "hash/sha256-aws-lc-rs"),
        (HashKind::Sha256, Backend::Portable, "hash/sha256-rustcrypto"),
        (HashKind::Blake3, Backend::Accelerated, "hash/blake3"),
    ] {
        g.bench_function(name, |b| b.iter(|| Hasher::digest(kind, backend, &[black_box(&plain)])));
    }
    g.finish();
}

fn threads(c: &mut Criterion) {
    let plain = plaintext();
    let spec = aont_spec(CipherId::Aes256Gcm, HashId::Blake3, 1 << 20, Backend::Accelerated);
    let (sealer, mut object) = sealed(&spec, &plain);
    let mut g = c.benchmark_group("threads");
    g.throughput(Throughput::Bytes(N as u64));
    for t in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        g.bench_function(format!("aont-encode/rayon-{t}"), |b| {
            b.iter(|| pool.install(|| black_box(&mut object).seal(&sealer, true).unwrap()))
        });
    }
    // The machine's own scaling: the same total work as one or two fully independent
    // threads, each with its own buffer and object (no shared state at all).
    let mut halves: Vec<(Sealer, InMemory)> = plain.chunks(N / 2).map(|p| sealed(&spec, p)).collect();
    g.bench_function("independent/1-thread", |b| {
        b.iter(|| {
            for (s, o) in halves.iter_mut() {
                o.seal(s, false).unwrap();
            }
        })
    });
    g.bench_function("independent/2-threads", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for (s, o) in halves.iter_mut() {
                    scope.spawn(move || o.seal(s, false).unwrap());
                }
            })
        })
    });
    g.finish();
}

/// Per-record costs of a small object's PUT and GET: tag, tag + sealed metadata (keyed and
/// keyless), against sealing and opening its 4 KiB of data.
fn metadata(c: &mut Criterion) {
    use engine::binding::{metadata_tag, verify_metadata};
    use engine::sealed_meta;
    let key = CustomerKey {
        key: SecretKey::from_bytes([7; 32]),
        context: b"bucket/photos/2026/img-0001.jpg".to_vec(),
    };
    let record = br#"{"key":"photos/2026/img-0001.jpg","size":4096,"etag":"0123456789abcdef0123456789abcdef","last_modified":1796000000,"protection":{"mode":"sse-c","key_md5":"AAAAAAAAAAAAAAAAAAAAAA=="},"layout":{"single":{"salt":"00112233445566778899aabbccddeeff"}}}"#;
    let private = br#"{"headers":{"content_type":"image/jpeg","cache_control":"max-age=3600"},"user":{"camera":"x100","owner":"alice"}}"#;
    let label: &[u8] = b"cipherstore/v3/object-metadata\n";
    let mut g = c.benchmark_group("metadata");
    for (name, k) in [("keyed", Some(&key)), ("keyless", None)] {
        g.bench_function(format!("{name}/tag-only/write+read"), |b| {
            b.iter(|| {
                let tag = metadata_tag(k, &[black_box(record), private]).unwrap();
                assert!(verify_metadata(k, &[record, private], &tag).unwrap());
            })
        });
        g.bench_function(format!("{name}/tag+sealed/write+read"), |b| {
            b.iter(|| {
                let sealed = sealed_meta::seal(k, label, black_box(private)).unwrap();
                let tag = metadata_tag(k, &[record, &sealed]).unwrap();
                assert!(verify_metadata(k, &[record, &sealed], &tag).unwrap());
                black_box(sealed_meta::open(k, label, &sealed).unwrap());
            })
        });
    }
    let plain = vec![7u8; 4096];
    let spec = sse_c_spec(DEFAULT_CHUNK_SIZE);
    g.bench_function("keyed/4KiB-object/seal+open", |b| {
        b.iter(|| {
            let (sealer, object) = sealed(&spec, black_box(&plain));
            let opener = Opener::new(sealer.header_bytes(), spec.protection.key(), spec.backend).unwrap();
            object.clone().open(&opener, false).unwrap();
        })
    });
    g.finish();
}

/// MD5 (the ETag's hash, one serial stream per upload): aws-lc's assembly as used by the
/// service vs RustCrypto's md-5; then sixteen streams, one after another against the
/// sixteen lanes of `engine::md5::x16` (AVX-512) and of `x8` (AVX2, two groups of eight),
/// and sixteen threads hashing at once (what sixteen
/// concurrent uploads do) with the shared lanes against md-5.
fn md5(c: &mut Criterion) {
    use engine::md5::{Md5, x8, x16};
    use md5::Digest;
    let data = plaintext();
    let mut g = c.benchmark_group("md5");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("aws-lc", |b| b.iter(|| Md5::digest(black_box(&data))));
    g.bench_function("md-5", |b| b.iter(|| md5::Md5::digest(black_box(&data))));
    let streams: Vec<&[u8]> = data.chunks_exact(data.len() / x16::LANES).collect();
    g.bench_function("16 streams/aws-lc one after another", |b| {
        b.iter(|| streams.iter().map(|s| Md5::digest(black_box(s))).collect::<Vec<_>>())
    });
    if x16::available() {
        g.bench_function("16 streams/x16 lanes", |b| {
            b.iter(|| {
                let mut states = [[0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]; x16::LANES];
                assert!(x16::compress(&mut states, black_box(&streams)));
                states
            })
        });
    }
    if x8::available() {
        g.bench_function("16 streams/x8 lanes (AVX2)", |b| {
            b.iter(|| {
                let mut states = [[0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]; x8::LANES];
                assert!(x8::compress(&mut states, black_box(&streams)));
                states
            })
        });
    }
    let threads = |hash: fn(&[u8]) -> [u8; 16]| {
        std::thread::scope(|s| {
            let handles: Vec<_> = streams.iter().map(|st| s.spawn(move || hash(st))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
        })
    };
    g.bench_function("16 threads/shared lanes", |b| b.iter(|| threads(Md5::digest)));
    g.bench_function("16 threads/md-5", |b| b.iter(|| threads(|d| md5::Md5::digest(d).into())));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = baseline, stream, aont, aont_segment, primitives, threads, metadata, md5
}
criterion_main!(benches);
