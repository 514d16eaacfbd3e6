//! The dispersal store at the store interface: real engine objects (AONT-RS with 4 KiB
//! segments, so small objects have many stripes) dispersed over target directories, with
//! records in the embedded filesystem store; round trips, lost and damaged targets, the
//! write threshold, multipart, and slices removed with their objects.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
use common::Wait;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use engine::{Backend, SealSpec, Sealer, Sealing};
use store::dispersal::rebuild::{RebuildOptions, RebuildReport};
use store::dispersal::targets::TargetConfig;
use store::dispersal::{DispersalConfig, DispersedStore};
use store::fs::FsStore;
use store::prelude::*;
use store::{ObjectReader, Store, StoreError};

struct Fixture {
    _dir: tempfile::TempDir,
    targets: Vec<PathBuf>,
    inner: Arc<FsStore>,
    store: DispersedStore,
}

fn fixture(k: usize, n: usize, w: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<PathBuf> = (0..n).map(|i| dir.path().join(format!("t{i}"))).collect();
    for t in &targets {
        std::fs::create_dir(t).unwrap();
    }
    let (inner, _) = FsStore::open(&dir.path().join("records")).unwrap();
    let inner = Arc::new(inner);
    let config = DispersalConfig {
        threshold: k,
        write_threshold: w,
        targets: targets.iter().cloned().map(TargetConfig::Dir).collect(),
        scrub_interval: None,
        scrub_rate: 0,
    };
    let store = DispersedStore::new(inner.clone(), &config).unwrap();
    store.create_bucket("bkt", b"{}").wait().unwrap();
    Fixture { _dir: dir, targets, inner, store }
}

/// An AONT-RS object of `plain` with 4 KiB segments, as stored bytes.
fn sealed(plain: &[u8]) -> Vec<u8> {
    let mut spec = SealSpec::new(Sealing::Aont, Backend::Accelerated);
    spec.unit_size = 4096;
    let sealer = Sealer::new(&spec, Some(plain.len() as u64)).unwrap();
    let mut out = sealer.header_bytes().to_vec();
    let chunks: Vec<&[u8]> = if plain.is_empty() { vec![&[]] } else { plain.chunks(4096).collect() };
    let last = chunks.len() - 1;
    for (i, c) in chunks.iter().enumerate() {
        let mut data = c.to_vec();
        let mut trailer = vec![0u8; sealer.overhead()];
        sealer.seal_unit(i as u64, i == last, &mut data, &mut trailer).unwrap();
        out.extend_from_slice(&data);
        out.extend_from_slice(&trailer);
    }
    out
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn put(s: &dyn Store, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let mut w = s.put("bkt", key).wait()?;
    // In uneven writes, as a body arrives.
    for c in bytes.chunks(1000) {
        w.write_all(c).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    }
    w.commit(format!("record of {key}").as_bytes()).wait()
}

fn read_all(r: &dyn ObjectReader) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; r.len() as usize];
    let mut at = 0;
    while at < out.len() {
        let n = r.read_at(&mut out[at..], at as u64)?;
        assert!(n > 0, "short read at {at}");
        at += n;
    }
    Ok(out)
}

fn slice_files(f: &Fixture) -> Vec<Vec<PathBuf>> {
    f.targets
        .iter()
        .map(|t| {
            let mut files = Vec::new();
            if !t.is_dir() {
                return files;
            }
            for d in std::fs::read_dir(t).unwrap() {
                for e in std::fs::read_dir(d.unwrap().path()).unwrap() {
                    files.push(e.unwrap().path());
                }
            }
            files.sort();
            files
        })
        .collect()
}

#[test]
fn objects_round_trip_whole_and_by_range_at_every_shape() {
    for (k, n) in [(3, 5), (10, 16)] {
        let f = fixture(k, n, n);
        for (i, len) in [0usize, 1, 4095, 4096, 4097, 50_000].into_iter().enumerate() {
            let stored = sealed(&pattern(len, i as u8));
            let key = format!("k{len}");
            put(&f.store, &key, &stored).unwrap();
            let got = f.store.get("bkt", &key).wait().unwrap();
            assert_eq!(
                got.record,
                format!("record of {key}").as_bytes(),
                "the object layer's record comes back as given"
            );
            assert_eq!(read_all(got.body.as_ref()).unwrap(), stored, "{k} of {n}, {len} bytes");
            // Ranges that start and end inside stripes.
            for (a, b) in [(0, 1), (45, 47), (100, 5000), (stored.len() - 3, stored.len())] {
                if b <= stored.len() && a < b {
                    let mut buf = vec![0u8; b - a];
                    assert_eq!(got.body.read_at(&mut buf, a as u64).unwrap(), b - a);
                    assert_eq!(buf, stored[a..b], "range {a}..{b}");
                }
            }
            assert_eq!(f.store.head("bkt", &key).wait().unwrap(), format!("record of {key}").as_bytes());
        }
        let files = slice_files(&f);
        assert!(files.iter().all(|t| t.len() == 6), "one slice per object on every target: {files:?}");
        let listed = f.store.list("bkt", Page::new("", None, 100)).wait().unwrap();
        assert_eq!(listed.len(), 6);
        assert!(listed.iter().all(|x| x.record == format!("record of {}", x.name).as_bytes()));
    }
}

#[test]
fn up_to_n_minus_k_lost_or_damaged_targets_still_read_exactly() {
    let f = fixture(3, 5, 5);
    let stored = sealed(&pattern(40_000, 7));
    put(&f.store, "o", &stored).unwrap();
    let files = slice_files(&f);
    // Target 0 gone entirely, target 2's slice has a flipped byte deep inside.
    std::fs::remove_dir_all(&f.targets[0]).unwrap();
    let mut bytes = std::fs::read(&files[2][0]).unwrap();
    bytes[10_000] ^= 1;
    std::fs::write(&files[2][0], &bytes).unwrap();
    let got = f.store.get("bkt", "o").wait().unwrap();
    assert_eq!(read_all(got.body.as_ref()).unwrap(), stored, "two of five lost: exact");
    // Target 4's slice truncated as well: three lost, fewer than k remain for some stripes.
    let bytes = std::fs::read(&files[4][0]).unwrap();
    std::fs::write(&files[4][0], &bytes[..bytes.len() / 2]).unwrap();
    let got = f.store.get("bkt", "o").wait().unwrap();
    let err = read_all(got.body.as_ref()).unwrap_err().to_string();
    assert!(err.contains("only 2 of the 3 slices needed"), "{err}");
    // A target whose directory is gone is down; one that lacks a slice, or holds a short
    // one, still answers: the slice is missing, not the target.
    let health = f.store.health().report();
    assert!(!health.up[0], "target 0's directory is gone");
    assert!(health.up[4], "target 4 only holds a short slice");
    std::fs::remove_file(&files[1][0]).unwrap();
    let got = f.store.get("bkt", "o").wait().unwrap();
    assert!(read_all(got.body.as_ref()).is_err());
    assert!(f.store.health().report().up[1], "target 1 only lacks a slice");
}

#[test]
fn writes_need_the_write_threshold_and_leave_nothing_when_refused() {
    let f = fixture(3, 5, 4);
    std::fs::remove_dir(&f.targets[1]).unwrap();
    let stored = sealed(&pattern(9000, 1));
    put(&f.store, "one-down", &stored).unwrap();
    assert_eq!(read_all(f.store.get("bkt", "one-down").wait().unwrap().body.as_ref()).unwrap(), stored);
    std::fs::remove_dir_all(&f.targets[3]).unwrap();
    let err = put(&f.store, "two-down", &stored).unwrap_err().to_string();
    assert!(err.contains("only 3 of 5 dispersal targets took the write; 4 are needed"), "{err}");
    assert!(matches!(f.store.get("bkt", "two-down").wait(), Err(StoreError::NoSuchKey { .. })));
    let left: usize = slice_files(&f).iter().map(Vec::len).sum();
    assert_eq!(left, 3, "the refused write left no slice: only one-down's three remain");
    // one-down has lost slice 3 as well now: still readable from 0, 2 and 4.
    assert_eq!(read_all(f.store.get("bkt", "one-down").wait().unwrap().body.as_ref()).unwrap(), stored);
    // The target comes back: writes go to all five again.
    std::fs::create_dir(&f.targets[1]).unwrap();
    std::fs::create_dir(&f.targets[3]).unwrap();
    put(&f.store, "all-back", &stored).unwrap();
    assert_eq!(read_all(f.store.get("bkt", "all-back").wait().unwrap().body.as_ref()).unwrap(), stored);
}

#[test]
fn multipart_objects_are_their_parts_slices_and_aborts_remove_them() {
    let f = fixture(3, 5, 5);
    let s: &dyn Store = &f.store;
    s.create_upload("bkt", &"a".repeat(32), b"upload").wait().unwrap();
    let parts: Vec<Vec<u8>> = (0..3).map(|i| sealed(&pattern(10_000 + i * 3000, i as u8))).collect();
    for (i, p) in parts.iter().enumerate() {
        let mut w = s.put_part("bkt", &"a".repeat(32), i as u32 + 1).wait().unwrap();
        w.write_all(p).unwrap();
        assert_eq!(w.commit(b"part").wait().unwrap(), p.len() as u64, "a part's stored length is its bytes'");
    }
    let listed = s.list_parts("bkt", &"a".repeat(32)).wait().unwrap();
    assert_eq!(
        listed.iter().map(|p| p.stored).collect::<Vec<_>>(),
        parts.iter().map(|p| p.len() as u64).collect::<Vec<_>>()
    );
    assert!(listed.iter().all(|p| p.record == b"part"));
    // Parts 1 and 3 make the object; part 2's slices go with the upload.
    s.complete_upload(
        "bkt",
        Completion {
            upload_id: &"a".repeat(32),
            key: "mp",
            parts: &[1, 3],
            record: b"object",
            version: None,
        },
    )
    .wait()
    .unwrap();
    let got = s.get("bkt", "mp").wait().unwrap();
    assert_eq!(got.record, b"object");
    assert_eq!(read_all(got.body.as_ref()).unwrap(), [parts[0].clone(), parts[2].clone()].concat());
    assert!(slice_files(&f).iter().all(|t| t.len() == 2), "part 2's slices were removed");
    s.create_upload("bkt", &"c".repeat(32), b"upload").wait().unwrap();
    let mut w = s.put_part("bkt", &"c".repeat(32), 1).wait().unwrap();
    w.write_all(&parts[0]).unwrap();
    w.commit(b"part").wait().unwrap();
    assert!(slice_files(&f).iter().all(|t| t.len() == 3));
    s.abort_upload("bkt", &"c".repeat(32)).wait().unwrap();
    assert!(slice_files(&f).iter().all(|t| t.len() == 2), "an abort removes its parts' slices");
}

#[test]
fn deletes_and_overwrites_remove_slices_and_old_records_still_read() {
    let f = fixture(3, 5, 5);
    put(&f.store, "x", &sealed(&pattern(5000, 1))).unwrap();
    let again = sealed(&pattern(6000, 2));
    put(&f.store, "x", &again).unwrap();
    assert!(slice_files(&f).iter().all(|t| t.len() == 1), "an overwrite removes the old slices");
    assert_eq!(read_all(f.store.get("bkt", "x").wait().unwrap().body.as_ref()).unwrap(), again);
    assert!(f.store.delete("bkt", "x").wait().unwrap());
    assert!(slice_files(&f).iter().all(|t| t.is_empty()), "a delete removes the slices");
    // An object written before dispersal was turned on reads from the record store.
    let old = sealed(&pattern(3000, 3));
    let mut w = f.inner.put("bkt", "before").wait().unwrap();
    w.write_all(&old).unwrap();
    w.commit(b"old record").wait().unwrap();
    let got = f.store.get("bkt", "before").wait().unwrap();
    assert_eq!(got.record, b"old record");
    assert_eq!(read_all(got.body.as_ref()).unwrap(), old);
    // An unfinished write leaves nothing.
    let mut w = f.store.put("bkt", "dropped").wait().unwrap();
    w.write_all(&again).unwrap();
    drop(w);
    assert!(slice_files(&f).iter().all(|t| t.is_empty()));
}

fn rebuild(f: &Fixture, verify: bool, dry_run: bool) -> RebuildReport {
    let options =
        RebuildOptions { verify, dry_run, rate: None, sweep_grace: Some(std::time::Duration::ZERO) };
    let seen = std::cell::Cell::new(0);
    let r = f
        .store
        .rebuild(&options, &|done, total| {
            assert!(done <= total);
            seen.set(done);
        })
        .wait();
    let r = r.unwrap();
    assert_eq!(seen.get(), r.pieces, "progress reached every piece");
    r
}

#[test]
fn rebuild_restores_full_width_and_a_second_finds_nothing() {
    let f = fixture(3, 5, 4);
    let objects: Vec<Vec<u8>> = (0..4).map(|i| sealed(&pattern(7000 * (i + 1), i as u8))).collect();
    for (i, o) in objects.iter().enumerate() {
        put(&f.store, &format!("o{i}"), o).unwrap();
    }
    // One object written while target 4 was down (its manifest lists that slice missing).
    std::fs::rename(&f.targets[4], f.targets[4].with_extension("away")).unwrap();
    let late = sealed(&pattern(12_345, 9));
    put(&f.store, "late", &late).unwrap();
    std::fs::rename(f.targets[4].with_extension("away"), &f.targets[4]).unwrap();
    // Target 1 replaced by an empty directory; one slice on target 2 damaged in place.
    std::fs::remove_dir_all(&f.targets[1]).unwrap();
    std::fs::create_dir(&f.targets[1]).unwrap();
    // The victim must not be the late object's slice: that piece has already lost two
    // (targets 1 and 4), and a third loss would make it unrecoverable, not rebuildable.
    // Blob ids are random, so pick a slice on target 2 whose blob also has one on 4.
    let stem = |p: &PathBuf| p.file_stem().map(|s| s.to_owned());
    let on_4: Vec<_> = slice_files(&f)[4].iter().map(stem).collect();
    let victim = slice_files(&f)[2].iter().find(|p| on_4.contains(&stem(p))).unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 0xFF;
    std::fs::write(&victim, &bytes).unwrap();
    // An orphan: a slice file no record names.
    std::fs::create_dir_all(f.targets[0].join("ff")).unwrap();
    std::fs::write(f.targets[0].join("ff").join("ff00000000000000000000000000000000.0"), b"orphan").unwrap();

    let quick = rebuild(&f, false, true);
    assert_eq!(quick.pieces, 5);
    assert_eq!(quick.missing, vec![0, 5, 0, 0, 1], "a quick look sees what is gone, not what is damaged");
    assert_eq!(quick.damaged, vec![0; 5]);
    assert_eq!(quick.orphans, 1);
    assert!(
        f.targets[0].join("ff").join("ff00000000000000000000000000000000.0").exists(),
        "a dry run removes nothing"
    );
    assert!(slice_files(&f)[1].is_empty(), "a dry run rebuilds nothing");

    let full = rebuild(&f, true, false);
    assert_eq!(full.missing, vec![0, 5, 0, 0, 1]);
    assert_eq!(full.damaged, vec![0, 0, 1, 0, 0], "a verifying rebuild finds the damaged slice");
    assert_eq!(full.rebuilt, vec![0, 5, 1, 0, 1]);
    assert_eq!(full.below_width, 5);
    assert_eq!(full.at_threshold, 2, "the late object and the damaged one had three slices left");
    assert!(full.lost.is_empty() && full.errors.is_empty(), "{full:?}");
    assert_eq!(full.orphans, 1);
    assert!(!f.targets[0].join("ff").join("ff00000000000000000000000000000000.0").exists());

    let again = rebuild(&f, true, false);
    assert_eq!(again.below_width, 0, "a second rebuild finds nothing to do: {again:?}");
    assert_eq!(again.rebuilt, vec![0; 5]);
    assert_eq!(again.orphans, 0);
    // Every object now reads from any three targets, including the rebuilt ones.
    std::fs::remove_dir_all(&f.targets[0]).unwrap();
    std::fs::remove_dir_all(&f.targets[3]).unwrap();
    for (i, o) in objects.iter().enumerate() {
        assert_eq!(&read_all(f.store.get("bkt", &format!("o{i}")).wait().unwrap().body.as_ref()).unwrap(), o);
    }
    assert_eq!(
        read_all(f.store.get("bkt", "late").wait().unwrap().body.as_ref()).unwrap(),
        late,
        "the slice the write missed was restored"
    );
    // With two gone and one more damaged, pieces are reported lost, not rebuilt wrongly.
    for p in &slice_files(&f)[1] {
        std::fs::write(p, b"").unwrap();
    }
    let lost = rebuild(&f, false, false);
    assert_eq!(lost.lost.len(), 5, "{lost:?}");
    assert!(lost.lost[0].contains("2 of 3 slices needed"), "{:?}", lost.lost);
}

#[test]
fn a_target_lost_during_a_write_is_recorded_missing_and_read_around() {
    let f = fixture(3, 5, 4);
    let stored = sealed(&pattern(30_000, 4));
    let mut w = f.store.put("bkt", "during").wait().unwrap();
    w.write_all(&stored[..10_000]).unwrap();
    // The target goes away mid-write: its open slice file is written on, unlinked, and
    // its directory cannot be flushed at commit.
    std::fs::remove_dir_all(&f.targets[2]).unwrap();
    w.write_all(&stored[10_000..]).unwrap();
    w.commit(b"record").wait().unwrap();
    assert_eq!(read_all(f.store.get("bkt", "during").wait().unwrap().body.as_ref()).unwrap(), stored);
    std::fs::create_dir(&f.targets[2]).unwrap();
    let r = rebuild(&f, true, false);
    assert_eq!(r.missing, vec![0, 0, 1, 0, 0]);
    assert_eq!(r.rebuilt, vec![0, 0, 1, 0, 0], "{r:?}");
    std::fs::remove_dir_all(&f.targets[0]).unwrap();
    std::fs::remove_dir_all(&f.targets[1]).unwrap();
    assert_eq!(
        read_all(f.store.get("bkt", "during").wait().unwrap().body.as_ref()).unwrap(),
        stored,
        "the restored slice serves reads"
    );
}
