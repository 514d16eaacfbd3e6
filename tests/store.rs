//! The filesystem store: listings agree with a simple model for any keys (hostile ones
//! included), writes are all-or-nothing, leftovers of a crash are cleaned at start-up, and
//! buckets follow S3's rules. Records are opaque bytes to the store: what was committed
//! comes back unchanged.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::io::{Read, Write};

mod common;
use common::Wait;

use proptest::prelude::*;
use store::fs::FsStore;
use store::prelude::*;
use store::{Named, SequentialReader, StoreError};

/// A record for `name` (the store never looks inside).
fn record(name: &str, size: usize) -> Vec<u8> {
    format!("{{\"record of\":{name:?},\"size\":{size}}}").into_bytes()
}

fn create_bucket(s: &FsStore, name: &str) -> Result<(), StoreError> {
    s.create_bucket(name, &record(name, 0)).wait()
}

fn put(s: &FsStore, b: &str, key: &str, body: &[u8]) {
    let mut w = s.put(b, key).wait().unwrap();
    w.write_all(body).unwrap();
    w.commit(&record(key, body.len())).wait().unwrap();
}

fn names(listed: Vec<Named>) -> Vec<String> {
    listed.into_iter().map(|n| n.name).collect()
}

fn read(s: &FsStore, b: &str, key: &str) -> Vec<u8> {
    let o = s.get(b, key).wait().unwrap();
    let mut out = Vec::new();
    SequentialReader::new(o.body.as_ref(), 0).read_to_end(&mut out).unwrap();
    assert_eq!(out.len() as u64, o.body.len());
    out
}

#[test]
fn hostile_keys_stay_inside_the_bucket_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = FsStore::open(dir.path()).unwrap();
    create_bucket(&s, "data").unwrap();
    let keys =
        ["../../escape", "a//b", "/", ".", "..", "ключ/数据", "\u{0}nul", "x".repeat(1024).as_str(), "a"]
            .map(str::to_owned);
    for (i, k) in keys.iter().enumerate() {
        put(&s, "data", k, &[i as u8; 100]);
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(read(&s, "data", k), vec![i as u8; 100], "{k:?}");
        assert_eq!(s.head("data", k).wait().unwrap(), record(k, 100));
    }
    // Nothing outside the data directory, and every path component inside is hex.
    for entry in walk(dir.path()) {
        assert!(entry.starts_with(dir.path()));
    }
    assert!(!dir.path().parent().unwrap().join("escape").exists());
    let listed = s.list("data", Page::new("", None, 100)).wait().unwrap();
    assert!(listed.iter().all(|n| n.record == record(&n.name, 100)));
    let listed = names(listed);
    let mut want = keys.to_vec();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed, want);
    assert!(matches!(s.put("data", "").wait(), Err(StoreError::InvalidKey(_))));
    assert!(matches!(s.put("data", &"k".repeat(1025)).wait(), Err(StoreError::InvalidKey(_))));
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(p).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn unfinished_writes_leave_nothing_and_crash_leftovers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = FsStore::open(dir.path()).unwrap();
    create_bucket(&s, "data").unwrap();
    put(&s, "data", "k", b"old");
    {
        let mut w = s.put("data", "k").wait().unwrap();
        w.write_all(b"new but never committed").unwrap();
    }
    assert_eq!(read(&s, "data", "k"), b"old");
    assert!(matches!(s.get("data", "never").wait(), Err(StoreError::NoSuchKey { .. })));
    // A crash mid-write: a temporary file is left behind; reopening removes it.
    std::fs::write(dir.path().join("tmp/put-crashed"), b"partial").unwrap();
    drop(s);
    let (s, removed) = FsStore::open(dir.path()).unwrap();
    assert_eq!(removed, 1);
    assert_eq!(read(&s, "data", "k"), b"old");
    assert_eq!(s.list("data", Page::new("", None, 10)).wait().unwrap().len(), 1);
}

#[test]
fn tag_sets_sit_beside_objects_and_go_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = FsStore::open(dir.path()).unwrap();
    create_bucket(&s, "tags").unwrap();
    assert!(matches!(common::set_annex(&s, "tags", "absent", Some(b"t")), Err(StoreError::NoSuchKey { .. })));
    put(&s, "tags", "dir/o", b"bytes");
    assert_eq!(s.get("tags", "dir/o").wait().unwrap().annex, None);
    common::set_annex(&s, "tags", "dir/o", Some(b"one")).unwrap();
    common::set_annex(&s, "tags", "dir/o", Some(b"two")).unwrap();
    let o = s.get("tags", "dir/o").wait().unwrap();
    assert_eq!(o.annex.as_deref(), Some(&b"two"[..]));
    assert_eq!((read(&s, "tags", "dir/o"), o.record), (b"bytes".to_vec(), record("dir/o", 5)));
    assert_eq!(
        names(s.list("tags", Page::new("", None, 10)).wait().unwrap()),
        ["dir/o"],
        "a tag set is not an object"
    );
    common::set_annex(&s, "tags", "dir/o", None).unwrap();
    assert_eq!(s.get("tags", "dir/o").wait().unwrap().annex, None);
    common::set_annex(&s, "tags", "dir/o", Some(b"three")).unwrap();
    assert!(s.delete("tags", "dir/o").wait().unwrap());
    assert!(
        walk(dir.path()).iter().all(|p| !p.to_string_lossy().contains("/objects/")),
        "nothing left behind"
    );
    s.delete_bucket("tags").wait().unwrap();
}

#[test]
fn tag_sets_are_found_after_a_restart_and_in_buckets_older_than_the_untagged_marker() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = FsStore::open(dir.path()).unwrap();
    create_bucket(&s, "fresh").unwrap();
    create_bucket(&s, "older").unwrap();
    put(&s, "fresh", "o", b"1");
    put(&s, "older", "o", b"2");
    // A bucket made before the marker existed: no `untagged` file, tag sets looked for.
    std::fs::remove_file(dir.path().join("buckets/older/untagged")).unwrap();
    std::fs::write(dir.path().join("buckets/older/bucket.json"), record("older", 1)).unwrap();
    drop(s);
    let (s, _) = FsStore::open(dir.path()).unwrap();
    assert_eq!(s.bucket("older").wait().unwrap(), record("older", 1), "read from disk after a restart");
    assert_eq!(s.get("fresh", "o").wait().unwrap().annex, None);
    common::set_annex(&s, "fresh", "o", Some(b"f")).unwrap();
    common::set_annex(&s, "older", "o", Some(b"o")).unwrap();
    assert!(!dir.path().join("buckets/fresh/untagged").exists(), "the first tag set removes the marker");
    drop(s);
    let (s, _) = FsStore::open(dir.path()).unwrap();
    assert_eq!(s.get("fresh", "o").wait().unwrap().annex.as_deref(), Some(&b"f"[..]));
    assert_eq!(s.get("older", "o").wait().unwrap().annex.as_deref(), Some(&b"o"[..]));
    // A record changed after the first tag set keeps tag sets visible.
    s.update_bucket("fresh", &record("fresh", 0), b"changed").wait().unwrap();
    assert_eq!(s.get("fresh", "o").wait().unwrap().annex.as_deref(), Some(&b"f"[..]));
}

#[test]
fn buckets_follow_s3_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = FsStore::open(dir.path()).unwrap();
    assert!(matches!(create_bucket(&s, "Bad_Name"), Err(StoreError::InvalidBucketName(_))));
    assert!(matches!(s.bucket("../etc").wait(), Err(StoreError::InvalidBucketName(_))));
    create_bucket(&s, "one").unwrap();
    assert!(matches!(create_bucket(&s, "one"), Err(StoreError::BucketExists(_))));
    create_bucket(&s, "two").unwrap();
    let buckets = s.list_buckets().wait().unwrap();
    assert!(buckets.iter().all(|b| b.record == record(&b.name, 0)));
    assert_eq!(names(buckets), ["one", "two"]);
    put(&s, "one", "x", b"1");
    assert!(matches!(s.delete_bucket("one").wait(), Err(StoreError::BucketNotEmpty(_))));
    assert!(s.delete("one", "x").wait().unwrap());
    assert!(!s.delete("one", "x").wait().unwrap());
    s.delete_bucket("one").wait().unwrap();
    assert!(matches!(s.bucket("one").wait(), Err(StoreError::NoSuchBucket(_))));
    assert!(matches!(s.put("one", "x").wait(), Err(StoreError::NoSuchBucket(_))));
    s.update_bucket("two", &record("two", 0), b"changed").wait().unwrap();
    assert_eq!(s.bucket("two").wait().unwrap(), b"changed");
    // A change made from a record that is no longer the bucket's is refused, and changes nothing.
    assert!(matches!(
        s.update_bucket("two", &record("two", 0), b"lost").wait(),
        Err(StoreError::BucketChanged(b)) if b == "two"
    ));
    assert_eq!(s.bucket("two").wait().unwrap(), b"changed");
    drop(s);
    let (s, _) = FsStore::open(dir.path()).unwrap();
    assert_eq!(s.bucket("two").wait().unwrap(), b"changed", "and on disk");
    assert!(matches!(s.update_bucket("two", b"lost", b"x").wait(), Err(StoreError::BucketChanged(_))));
    assert!(matches!(s.update_bucket("one", b"x", b"x").wait(), Err(StoreError::NoSuchBucket(_))));
    // A bucket deleted and made again is the new one, from memory as from disk.
    s.delete_bucket("two").wait().unwrap();
    assert!(matches!(s.get("two", "x").wait(), Err(StoreError::NoSuchBucket(_))));
    create_bucket(&s, "two").unwrap();
    assert_eq!(s.bucket("two").wait().unwrap(), record("two", 0));
    assert!(matches!(s.get("two", "x").wait(), Err(StoreError::NoSuchKey { .. })));
}

#[test]
fn concurrent_writers_of_one_key_never_expose_a_partial_object() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = FsStore::open(dir.path()).unwrap();
    create_bucket(&s, "race").unwrap();
    put(&s, "race", "k", &[0u8; 300_000]);
    std::thread::scope(|scope| {
        for t in 1..=3u8 {
            let s = &s;
            scope.spawn(move || {
                for _ in 0..20 {
                    put(s, "race", "k", &vec![t; 300_000]);
                }
            });
        }
        let s = &s;
        scope.spawn(move || {
            for _ in 0..100 {
                let body = read(s, "race", "k");
                assert_eq!(body.len(), 300_000);
                assert!(body.iter().all(|&b| b == body[0]), "mixed object");
                let _ = s.delete("race", "other").wait();
            }
        });
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn listings_match_a_sorted_model(
        ops in proptest::collection::vec(
            (0usize..4, proptest::string::string_regex("[ab/é.]{1,6}").unwrap(), any::<bool>()),
            1..40,
        ),
        prefix_stem in any::<bool>(),
        prefix in proptest::string::string_regex("[ab/é]{0,2}").unwrap(),
        after_stem in 0usize..4,
        after in proptest::option::of(proptest::string::string_regex("[ab/é.]{0,4}").unwrap()),
        limit in 0usize..12,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = FsStore::open(dir.path()).unwrap();
        create_bucket(&s, "model").unwrap();
        let mut model = BTreeMap::new();
        // Half the keys start with a long stem so they cross the 64-byte path components.
        let stems = ["", &"a".repeat(62), &"a".repeat(64), &"ab".repeat(33)];
        for (stem, tail, keep) in &ops {
            let key = format!("{}{tail}", stems[*stem]);
            let key = &key;
            if *keep {
                put(&s, "model", key, key.as_bytes());
                model.insert(key.as_bytes().to_vec(), key.clone());
            } else {
                prop_assert_eq!(s.delete("model", key).wait().unwrap(), model.remove(key.as_bytes()).is_some());
            }
        }
        let prefix = if prefix_stem { format!("{}{prefix}", "a".repeat(63)) } else { prefix };
        let after = after.map(|a| format!("{}{a}", stems[after_stem]));
        let want: Vec<String> = model
            .values()
            .filter(|k| k.starts_with(&prefix))
            .filter(|k| after.as_ref().is_none_or(|a| k.as_bytes() > a.as_bytes()))
            .take(limit)
            .cloned()
            .collect();
        let got = names(s.list("model", Page::new(&prefix, after.as_deref(), limit)).wait().unwrap());
        prop_assert_eq!(got, want);
    }
}

#[test]
fn multipart_uploads_are_all_or_nothing() {
    use store::{StoredPart, new_upload_id};
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = FsStore::open(dir.path()).unwrap();
    create_bucket(&s, "mpu").unwrap();
    let upload_id = new_upload_id();
    s.create_upload("mpu", &upload_id, b"upload record").wait().unwrap();
    assert_eq!(s.upload("mpu", &upload_id).wait().unwrap(), b"upload record");
    assert!(matches!(s.upload("mpu", "../../bucket").wait(), Err(StoreError::NoSuchUpload(_))));
    assert!(matches!(s.create_upload("mpu", "../x", b"r").wait(), Err(StoreError::NoSuchUpload(_))));
    let part = |n: u32, body: &[u8]| {
        let mut w = s.put_part("mpu", &upload_id, n).wait().unwrap();
        w.write_all(body).unwrap();
        w
    };
    let pm = |n: u32, size: usize| record(&format!("part {n}"), size);
    // A part is invisible until committed; committing reports its stored length.
    let pending = part(1, b"first");
    assert!(s.list_parts("mpu", &upload_id).wait().unwrap().is_empty());
    assert_eq!(pending.commit(&pm(1, 5)).wait().unwrap(), 5);
    part(2, b"second").commit(&pm(2, 6)).wait().unwrap();
    part(2, b"SECOND!").commit(&pm(2, 7)).wait().unwrap();
    let parts = s.list_parts("mpu", &upload_id).wait().unwrap();
    assert_eq!(
        parts,
        vec![
            StoredPart { number: 1, stored: 5, record: pm(1, 5) },
            StoredPart { number: 2, stored: 7, record: pm(2, 7) }
        ]
    );
    assert_eq!(
        s.list_uploads("mpu").wait().unwrap(),
        vec![Named { name: upload_id.clone(), record: b"upload record".to_vec(), annex: None }]
    );
    // Nothing under the key until complete; then the parts' bytes in order.
    assert!(matches!(s.get("mpu", "k").wait(), Err(StoreError::NoSuchKey { .. })));
    let late = part(3, b"late");
    s.complete_upload(
        "mpu",
        Completion {
            upload_id: &upload_id,
            key: "k",
            parts: &[1, 2],
            record: &record("k", 12),
            version: None,
        },
    )
    .wait()
    .unwrap();
    assert_eq!(read(&s, "mpu", "k"), b"firstSECOND!");
    assert_eq!(s.head("mpu", "k").wait().unwrap(), record("k", 12));
    assert!(s.list_uploads("mpu").wait().unwrap().is_empty());
    // A part finishing after completion finds its upload gone.
    assert!(matches!(late.commit(&pm(3, 4)).wait(), Err(StoreError::NoSuchUpload(_))));
    // Abort discards everything.
    let other = new_upload_id();
    s.create_upload("mpu", &other, b"other upload").wait().unwrap();
    part_into(&s, &other, 1, b"x");
    s.abort_upload("mpu", &other).wait().unwrap();
    assert!(matches!(s.list_parts("mpu", &other).wait(), Err(StoreError::NoSuchUpload(_))));
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no temporary leftovers");
}

fn part_into(s: &FsStore, id: &str, n: u32, body: &[u8]) {
    let mut w = s.put_part("mpu", id, n).wait().unwrap();
    w.write_all(body).unwrap();
    w.commit(&record("part", body.len())).wait().unwrap();
}

mod versions {
    //! Versions in the filesystem store: against the model (tests/common/versions.rs),
    //! under concurrent writers, across a crash inside a commit, and 100,000 versions of one
    //! key paged through.

    use std::io::Write;

    use proptest::prelude::*;
    use store::fs::FsStore;
    use store::prelude::*;
    use store::{Version, VersionCursor, Wanted};

    use super::common::Wait;
    use super::common::versions::{self, KEYS, Step};

    fn step() -> impl Strategy<Value = Step> {
        let key = 0..KEYS.len();
        prop_oneof![
            3 => (key.clone(), any::<bool>(), any::<u8>()).prop_map(|(key, null, body)| Step::Put { key, null, body }),
            1 => (key.clone(), any::<bool>()).prop_map(|(key, null)| Step::Mark { key, null }),
            2 => (key, 0..8usize).prop_map(|(key, n)| Step::Remove { key, n }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn versions_follow_the_model(steps in proptest::collection::vec(step(), 1..16)) {
            let dir = tempfile::tempdir().unwrap();
            let (s, _) = FsStore::open(dir.path()).unwrap();
            s.create_bucket("ver", b"{}").wait().unwrap();
            versions::run(&s, "ver", &steps);
        }
    }

    #[test]
    fn annexes_stay_with_their_versions_and_refusals_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = FsStore::open(dir.path()).unwrap();
        s.create_bucket("ver", b"{}").wait().unwrap();
        versions::annexes(&s, "ver");
        versions::annex_races(&s, "ver", 8, 25);
    }

    #[test]
    fn concurrent_versions_of_one_key_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = FsStore::open(dir.path()).unwrap();
        s.create_bucket("ver", b"{}").wait().unwrap();
        versions::concurrent(&s, "ver", 8, 25);
    }

    #[test]
    fn a_crash_between_keeping_the_current_version_and_replacing_it_shows_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = FsStore::open(dir.path()).unwrap();
        s.create_bucket("ver", b"{}").wait().unwrap();
        let v1 = Version::new(false, false);
        let mut w = s.put("ver", "k").wait().unwrap();
        w.write_all(b"one").unwrap();
        w.commit_version(b"r1", &v1).wait().unwrap();
        // What a commit killed after its first step leaves: the current file also kept.
        let objects = dir.path().join("buckets/ver/objects");
        let current = objects.join(format!("{}.o", store::keypath::hex(b"k")));
        let kept = current.with_extension("v");
        std::fs::create_dir(&kept).unwrap();
        std::fs::hard_link(&current, kept.join(format!("{}.o", v1.id))).unwrap();
        let listed = s.list_versions("ver", Page::new("", None, 100)).wait().unwrap();
        assert_eq!(listed.len(), 1, "the copy is not a second version");
        // The next commit completes the change: both versions, once each.
        let v2 = Version::new(false, false);
        let mut w = s.put("ver", "k").wait().unwrap();
        w.write_all(b"two").unwrap();
        w.commit_version(b"r2", &v2).wait().unwrap();
        let ids: Vec<store::VersionId> = s
            .list_versions("ver", Page::new("", None, 100))
            .wait()
            .unwrap()
            .into_iter()
            .map(|l| l.version.id)
            .collect();
        assert_eq!(ids, vec![v2.id.clone(), v1.id.clone()]);
        // Removing the current version promotes the other, not a stale copy of itself.
        super::common::delete_version(&s, "ver", "k", &Wanted::Id(v2.id)).unwrap().unwrap();
        assert_eq!(s.get("ver", "k").wait().unwrap().version, Some(v1));
    }

    #[test]
    fn a_hundred_thousand_versions_of_one_key_page_in_order() {
        // On tmpfs where there is one: 100,000 flushed files.
        let base = std::path::Path::new("/dev/shm");
        let dir = if base.is_dir() { tempfile::tempdir_in(base) } else { tempfile::tempdir() }.unwrap();
        let (s, _) = FsStore::open(dir.path()).unwrap();
        s.create_bucket("ver", b"{}").wait().unwrap();
        const N: usize = 100_000;
        let mut made = Vec::with_capacity(N);
        for i in 0..N {
            let v = Version::new(false, false);
            let mut w = s.put("ver", "deep").wait().unwrap();
            w.write_all(&(i as u32).to_le_bytes()).unwrap();
            w.commit_version(b"r", &v).wait().unwrap();
            made.push(v.id);
        }
        // Newest first: the reverse of the order they were made in.
        made.reverse();
        let mut seen = Vec::with_capacity(N);
        let mut after: Option<VersionCursor> = None;
        let mut pages = 0;
        loop {
            let page = s.list_versions("ver", Page::new("", after.as_ref(), 1000)).wait().unwrap();
            pages += 1;
            let Some(last) = page.last() else { break };
            after = Some(VersionCursor { key: last.key.clone(), after_id: Some(last.version.id.clone()) });
            assert_eq!(page.iter().filter(|l| l.latest).count(), usize::from(pages == 1));
            seen.extend(page.into_iter().map(|l| l.version.id));
        }
        assert_eq!(pages, N / 1000 + 1);
        assert_eq!(seen, made);
    }
}
