//! Round trips through every pipeline path (file and stream, known and unknown length,
//! both backends, whole objects and byte ranges) at the sizes where layouts change.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs::File;
use std::io::{Read, Seek, Write};

use common::*;
use engine::codec::{DEFAULT_CHUNK_SIZE, DEFAULT_SEGMENT_SIZE};
use engine::{Backend, CustomerKey, Opener, SealSpec};
use pipeline::{ByteRange, file};
use proptest::prelude::*;

fn file_encrypt(dir: &tempfile::TempDir, spec: &SealSpec, plain: &[u8]) -> std::path::PathBuf {
    let input = dir.path().join("plain");
    File::create(&input).unwrap().write_all(plain).unwrap();
    let out = dir.path().join("object");
    let o = File::create(&out).unwrap();
    let stored = file::encrypt_file(&File::open(&input).unwrap(), &o, spec, &()).unwrap();
    assert_eq!(stored, std::fs::metadata(&out).unwrap().len());
    out
}

fn file_decrypt(
    path: &std::path::Path,
    key: Option<&CustomerKey>,
    range: Option<ByteRange>,
    backend: Backend,
) -> Vec<u8> {
    let f = File::open(path).unwrap();
    let header = file::read_header(&f).unwrap();
    let opener = Opener::new(&header, key, backend).unwrap();
    let mut out = tempfile::tempfile().unwrap();
    let n = file::decrypt_file(&f, &opener, &out, range, &()).unwrap();
    let mut bytes = Vec::new();
    out.rewind().unwrap();
    out.read_to_end(&mut bytes).unwrap();
    assert_eq!(n, bytes.len() as u64);
    bytes
}

fn check_all_paths(spec: &SealSpec, key: Option<&CustomerKey>, plain: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let by_file = file_encrypt(&dir, spec, plain);
    let stored = std::fs::read(&by_file).unwrap();
    for backend in [Backend::Accelerated, Backend::Portable] {
        assert_eq!(file_decrypt(&by_file, key, None, backend), plain, "file -> file");
        assert_eq!(decrypt(&stored, key, backend).unwrap(), plain, "file -> stream");
    }
    for len_known in [true, false] {
        let streamed = encrypt(spec, plain, len_known);
        assert_eq!(streamed.len(), stored.len(), "same size whichever path wrote it");
        assert_eq!(decrypt(&streamed, key, Backend::Portable).unwrap(), plain, "stream -> stream");
        let p = dir.path().join(format!("streamed-{len_known}"));
        std::fs::write(&p, &streamed).unwrap();
        assert_eq!(file_decrypt(&p, key, None, Backend::Accelerated), plain, "stream -> file");
    }
}

#[test]
fn boundary_sizes_round_trip_in_every_mode_and_path() {
    let key = customer_key(3);
    let unit = 4096usize;
    let sizes = [0, 1, unit - 1, unit, unit + 1, 2 * unit, 3 * unit + 17, 40 * unit + 5];
    for &n in &sizes {
        let plain = plaintext(n, n as u8);
        check_all_paths(&aont_spec(unit as u32), None, &plain);
        check_all_paths(&sse_c_spec(unit as u32, &key), Some(&key), &plain);
        check_all_paths(&sse_kp_spec(unit as u32, &key), Some(&key), &plain);
    }
}

#[test]
fn default_unit_sizes_round_trip_at_their_boundaries() {
    let key = customer_key(4);
    let seg = DEFAULT_SEGMENT_SIZE as usize;
    let chunk = DEFAULT_CHUNK_SIZE as usize;
    for n in [seg - 1, seg + 1] {
        check_all_paths(&aont_spec(DEFAULT_SEGMENT_SIZE), None, &plaintext(n, 1));
    }
    for n in [chunk - 1, chunk + 1, 3 * chunk] {
        check_all_paths(&sse_c_spec(DEFAULT_CHUNK_SIZE, &key), Some(&key), &plaintext(n, 2));
    }
}

#[test]
fn large_object_round_trips_across_many_tasks() {
    // 70 MiB: 70 one-segment tasks across the pool, and a range spanning many of them.
    let plain = plaintext(70 << 20, 9);
    let dir = tempfile::tempdir().unwrap();
    let obj = file_encrypt(&dir, &aont_spec(DEFAULT_SEGMENT_SIZE), &plain);
    assert_eq!(file_decrypt(&obj, None, None, Backend::Accelerated), plain);
    let r = ByteRange { start: (32 << 20) - 5, end: (64 << 20) + 5 };
    assert_eq!(
        file_decrypt(&obj, None, Some(r), Backend::Accelerated),
        plain[r.start as usize..=r.end as usize]
    );
}

#[test]
fn ranges_clamp_like_http_and_reject_past_the_end() {
    let plain = plaintext(10_000, 5);
    let dir = tempfile::tempdir().unwrap();
    let obj = file_encrypt(&dir, &aont_spec(4096), &plain);
    let tail =
        file_decrypt(&obj, None, Some(ByteRange { start: 9_990, end: u64::MAX }), Backend::Accelerated);
    assert_eq!(tail, plain[9_990..]);
    let f = File::open(&obj).unwrap();
    let opener = Opener::new(&file::read_header(&f).unwrap(), None, Backend::Accelerated).unwrap();
    let err = file::decrypt_file(
        &f,
        &opener,
        &tempfile::tempfile().unwrap(),
        Some(ByteRange { start: 10_000, end: 10_001 }),
        &(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("range not satisfiable"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_size_round_trips(len in 0usize..200_000, sse_c: bool, seed: u8) {
        let key = customer_key(seed);
        let plain = plaintext(len, seed);
        let (spec, k) = if sse_c { (sse_c_spec(4096, &key), Some(&key)) } else { (aont_spec(4096), None) };
        let obj = encrypt(&spec, &plain, seed % 2 == 0);
        prop_assert_eq!(decrypt(&obj, k, Backend::Accelerated).unwrap(), plain);
    }

    #[test]
    fn any_range_decrypts_exactly_its_bytes(len in 1usize..60_000, a in 0usize..60_000, b in 0usize..60_000, sse_c: bool) {
        let key = customer_key(7);
        let plain = plaintext(len, 3);
        let (spec, k) = if sse_c { (sse_c_spec(4096, &key), Some(&key)) } else { (aont_spec(4096), None) };
        let dir = tempfile::tempdir().unwrap();
        let obj = file_encrypt(&dir, &spec, &plain);
        let (start, end) = ((a.min(b) % len) as u64, a.max(b) as u64);
        let got = file_decrypt(&obj, k, Some(ByteRange { start, end }), Backend::Accelerated);
        let end = (end as usize).min(len - 1);
        prop_assert_eq!(&got[..], &plain[start as usize..=end]);
    }
}
