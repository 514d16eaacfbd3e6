//! The cluster store (docs/SCALE-OUT.md) on real etcd and a real Ceph RGW: buckets,
//! objects small (one backend PUT) and large (streamed multipart), ranged reads across
//! blobs, ordered listings, overwrites that free the replaced blob, concurrent writers that
//! leave one whole object, unfinished writes that leave nothing, orphans swept, multipart
//! uploads completed without copying, two stores (gateways) sharing one cluster — also
//! through the S3 operations — and 503-class errors when etcd has no quorum.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
use common::Wait;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster::blobs::{Blobs, PART};
use cluster::etcd::EtcdKv;
use cluster::kv::Kv;
use cluster::requests;
use common::ceph::Ceph;
use common::etcd::Etcd;
use common::plaintext;
use common::versions::{self, Step};
use engine::Backend;
use futures_util::StreamExt;
use s3::CipherS3;
use s3s::dto::*;
use s3s::{Body, S3, S3Request};
use store::cluster::{ClusterStore, DEFAULT_INLINE_MAX, MAX_INLINE};
use store::prelude::*;
use store::{SequentialReader, StoreError};

/// A store whose objects of at most `inline_max` stored bytes live in their entries.
async fn store(etcd: &Etcd, ceph: &Ceph, inline_max: usize) -> ClusterStore {
    let kv = EtcdKv::connect(&etcd.config("/cipherstore/test/")).await.unwrap();
    let s = ClusterStore::new(Arc::new(kv), Blobs::new(&ceph.blob_config()).unwrap()).unwrap();
    s.with_inline_max(inline_max).unwrap()
}

fn put(s: &dyn Store, b: &str, key: &str, body: &[u8]) {
    let mut w = s.put(b, key).wait().unwrap();
    for chunk in body.chunks(1 << 20) {
        w.write_all(chunk).unwrap();
    }
    w.commit(format!("record of {key}").as_bytes()).wait().unwrap();
}

fn read(s: &dyn Store, b: &str, key: &str) -> Vec<u8> {
    let o = s.get(b, key).wait().unwrap();
    let mut out = Vec::new();
    SequentialReader::new(o.body.as_ref(), 0).read_to_end(&mut out).unwrap();
    assert_eq!(out.len() as u64, o.body.len());
    out
}

fn names(listed: Vec<store::Named>) -> Vec<String> {
    listed.into_iter().map(|n| n.name).collect()
}

async fn blob_names(ceph: &Ceph) -> Vec<String> {
    let blobs = Blobs::new(&ceph.blob_config()).unwrap();
    let mut out: Vec<String> = blobs.list("").await.unwrap().into_iter().map(|b| b.name).collect();
    out.sort();
    out
}

async fn get(s3: &CipherS3, key: &str) -> Vec<u8> {
    let input = GetObjectInput { bucket: "photos".into(), key: key.into(), ..Default::default() };
    let mut out = Vec::new();
    let mut body = s3.get_object(req(input)).await.unwrap().output.body.unwrap();
    while let Some(c) = body.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn req<T>(input: T) -> S3Request<T> {
    common::s3_request(input, "alice")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_store_on_etcd_and_ceph() {
    let ceph = Ceph::start();
    let mut etcd = Etcd::start(3).await;
    // Every object in a blob here; small objects kept in their entries are checked below.
    let s = store(&etcd, &ceph, 0).await;

    // Buckets.
    s.create_bucket("data", b"bucket record").wait().unwrap();
    assert!(matches!(s.create_bucket("data", b"again").wait(), Err(StoreError::BucketExists(_))));
    assert!(matches!(s.create_bucket("Bad_Name", b"x").wait(), Err(StoreError::InvalidBucketName(_))));
    assert_eq!(s.bucket("data").wait().unwrap(), b"bucket record");
    s.update_bucket("data", b"bucket record", b"changed").wait().unwrap();
    assert_eq!(s.bucket("data").wait().unwrap(), b"changed");
    assert!(matches!(
        s.update_bucket("data", b"bucket record", b"lost").wait(),
        Err(StoreError::BucketChanged(b)) if b == "data"
    ));
    assert_eq!(s.bucket("data").wait().unwrap(), b"changed", "a change from an old record changes nothing");
    assert!(matches!(s.update_bucket("none", b"x", b"x").wait(), Err(StoreError::NoSuchBucket(_))));
    assert!(matches!(s.bucket("none").wait(), Err(StoreError::NoSuchBucket(_))));
    assert!(matches!(s.put("none", "k").wait(), Err(StoreError::NoSuchBucket(_))));
    s.create_bucket("other", b"o").wait().unwrap();
    assert_eq!(names(s.list_buckets().wait().unwrap()), ["data", "other"]);

    // Objects: small ones (buffered, one backend PUT) and large ones (streamed in parts),
    // hostile keys; bytes and records come back as written, ranges across blob parts.
    let big = plaintext(2 * PART + 777, 3);
    let keys = ["a", "dir/b", "dir/c", "\u{0}nul", "ключ/数据", "../../escape"];
    for (i, k) in keys.iter().enumerate() {
        put(&s, "data", k, &[i as u8; 1000]);
    }
    put(&s, "data", "big", &big);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(read(&s, "data", k), vec![i as u8; 1000], "{k:?}");
        assert_eq!(s.head("data", k).wait().unwrap(), format!("record of {k}").as_bytes());
    }
    // A whole read: one ranged GET for the first window, then one streamed GET.
    let gets = requests::BLOB_GET.get();
    assert!(read(&s, "data", "big") == big);
    assert_eq!(requests::BLOB_GET.get() - gets, 2, "a large sequential read is streamed");
    let o = s.get("data", "big").wait().unwrap();
    let mut buf = vec![0u8; 64];
    let n = o.body.read_at(&mut buf, PART as u64 - 10).unwrap();
    assert_eq!(&buf[..n], &big[PART - 10..PART - 10 + n]);
    // A planned range is streamed to its end, not beyond; reads that jump (back, ahead,
    // into the window) are served exactly, the stream given up only when left.
    let planned = PART as u64 / 2..PART as u64 * 2;
    o.body.will_read(planned.clone());
    let mut at = planned.start;
    let mut chunk = vec![0u8; 100_003];
    for round in 0.. {
        if at >= planned.end {
            break;
        }
        let want = chunk.len().min((planned.end - at) as usize);
        let n = o.body.read_at(&mut chunk[..want], at).unwrap();
        assert!(n > 0 && chunk[..n] == big[at as usize..at as usize + n], "at {at}");
        at += n as u64;
        if round % 5 == 4 {
            // An aside: a small read elsewhere, then back where the stream is.
            let n = o.body.read_at(&mut buf, 5).unwrap();
            assert_eq!(&buf[..n], &big[5..5 + n]);
        }
    }
    for offset in [0, 3 * PART as u64 / 2, big.len() as u64 - 1, PART as u64 - 10] {
        let n = o.body.read_at(&mut buf, offset).unwrap();
        assert!(n > 0 && buf[..n] == big[offset as usize..offset as usize + n], "at {offset}");
    }
    assert_eq!(o.body.read_at(&mut buf, big.len() as u64).unwrap(), 0, "nothing past the end");
    assert!(matches!(s.get("data", "none").wait(), Err(StoreError::NoSuchKey { .. })));
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).chain(["big".to_string()]).collect();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(names(s.list("data", Page::new("", None, 100)).wait().unwrap()), want);
    assert_eq!(names(s.list("data", Page::new("dir/", None, 100)).wait().unwrap()), ["dir/b", "dir/c"]);
    assert_eq!(names(s.list("data", Page::new("dir/", Some("dir/b"), 100)).wait().unwrap()), ["dir/c"]);
    assert_eq!(names(s.list("data", Page::new("", Some("a"), 2)).wait().unwrap()), ["big", "dir/b"]);
    assert!(s.list("data", Page::new("", None, 0)).wait().unwrap().is_empty());
    assert!(s.list("other", Page::new("", None, 10)).wait().unwrap().is_empty());
    let blobs_before = blob_names(&ceph).await.len();
    assert_eq!(blobs_before, keys.len() + 1, "one blob per object");

    // Overwrites and deletes retire the replaced blobs: a GET that began before reads on,
    // whole; the sweep deletes them once their grace is over.
    let reading = s.get("data", "a").wait().unwrap();
    put(&s, "data", "a", b"new a");
    assert_eq!(read(&s, "data", "a"), b"new a");
    let mut old = Vec::new();
    SequentialReader::new(reading.body.as_ref(), 0).read_to_end(&mut old).unwrap();
    assert_eq!(old, vec![0u8; 1000], "a GET begun before the overwrite reads the old object whole");
    assert!(s.delete("data", "dir/c").wait().unwrap());
    assert!(!s.delete("data", "dir/c").wait().unwrap());
    assert_eq!(blob_names(&ceph).await.len(), blobs_before + 1, "two retired blobs, one new");
    assert_eq!(s.sweep(Duration::from_secs(3600)).wait().unwrap(), 0, "retired blobs keep their grace");
    assert_eq!(s.sweep(Duration::ZERO).wait().unwrap(), 2);
    assert_eq!(blob_names(&ceph).await.len(), blobs_before - 1);

    // Unfinished writes leave nothing visible (a streamed one is aborted at the backend).
    {
        let mut w = s.put("data", "never").wait().unwrap();
        w.write_all(&big[..PART + 10]).unwrap();
    }
    {
        let mut w = s.put("data", "never-small").wait().unwrap();
        w.write_all(b"small").unwrap();
    }
    assert!(matches!(s.get("data", "never").wait(), Err(StoreError::NoSuchKey { .. })));
    assert_eq!(blob_names(&ceph).await.len(), blobs_before - 1, "no blob appeared");

    // Concurrent writers of one key: each commit replaces a whole object, one survives.
    std::thread::scope(|scope| {
        for t in 1..=3u8 {
            let s = &s;
            scope.spawn(move || {
                for _ in 0..4 {
                    put(s, "data", "race", &vec![t; 300_000]);
                }
            });
        }
        let s = &s;
        scope.spawn(move || {
            for _ in 0..20 {
                if let Ok(o) = s.get("data", "race").wait() {
                    let mut body = Vec::new();
                    if SequentialReader::new(o.body.as_ref(), 0).read_to_end(&mut body).is_ok() {
                        assert_eq!(body.len(), 300_000);
                        assert!(body.iter().all(|&b| b == body[0]), "mixed object");
                    }
                }
            }
        });
    });
    let race = read(&s, "data", "race");
    assert!(race.iter().all(|&b| b == race[0]) && race.len() == 300_000);
    assert_eq!(s.sweep(Duration::ZERO).wait().unwrap(), 11, "every replaced blob was retired");
    assert_eq!(blob_names(&ceph).await.len(), blobs_before, "exactly one blob left for the raced key");

    // A gateway killed between its blob and its commit leaves an orphan: the sweep removes
    // it (and only it).
    let raw = Blobs::new(&ceph.blob_config()).unwrap();
    raw.put("d/00000000000000000000000000orphan", Bytes::from_static(b"orphan")).await.unwrap();
    assert_eq!(s.sweep(Duration::from_secs(3600)).wait().unwrap(), 0, "too young to sweep");
    assert_eq!(s.sweep(Duration::ZERO).wait().unwrap(), 1);
    assert_eq!(blob_names(&ceph).await.len(), blobs_before);
    assert!(read(&s, "data", "big") == big, "referenced blobs are kept");

    // Small objects kept in their entries (the default): no blob, one range read per GET;
    // a bigger object takes a blob. Overwrites between the two forms, deletes and listings
    // see one object; a GET begun before an overwrite reads the bytes it began with.
    let inl = store(&etcd, &ceph, DEFAULT_INLINE_MAX).await;
    let (puts, gets) = (requests::BLOB_PUT.get(), requests::BLOB_GET.get());
    let small = plaintext(DEFAULT_INLINE_MAX, 4);
    put(&inl, "data", "small", &small);
    put(&inl, "data", "tiny", b"");
    let o = inl.get("data", "small").wait().unwrap();
    assert_eq!((o.body.len(), o.record.as_slice()), (small.len() as u64, &b"record of small"[..]));
    assert!(read(&inl, "data", "small") == small && read(&s, "data", "tiny").is_empty());
    let mut buf = [0u8; 10];
    assert_eq!(o.body.read_at(&mut buf, 100).unwrap(), 10);
    assert_eq!(buf, small[100..110]);
    assert_eq!(o.body.read_at(&mut buf, small.len() as u64).unwrap(), 0);
    assert_eq!((requests::BLOB_PUT.get(), requests::BLOB_GET.get()), (puts, gets), "no blob written or read");
    assert_eq!(blob_names(&ceph).await.len(), blobs_before);
    let listed = inl.list("data", Page::new("s", None, 10)).wait().unwrap();
    assert_eq!(names(listed), ["small"]);
    put(&inl, "data", "small", &big[..DEFAULT_INLINE_MAX + 1]);
    assert_eq!(blob_names(&ceph).await.len(), blobs_before + 1, "one byte more: a blob");
    let mut old = Vec::new();
    SequentialReader::new(o.body.as_ref(), 0).read_to_end(&mut old).unwrap();
    assert!(old == small, "a GET begun before the overwrite reads what it began with");
    assert!(read(&inl, "data", "small") == big[..DEFAULT_INLINE_MAX + 1]);
    put(&inl, "data", "small", b"small again");
    assert_eq!(read(&s, "data", "small"), b"small again", "read through a store that does not inline");
    // A tag set beside an object: set and replaced without touching the entry's bytes or
    // record (inline or in a blob), gone with an overwrite or a delete.
    assert!(matches!(
        common::set_annex(&inl, "data", "absent", Some(b"t")),
        Err(StoreError::NoSuchKey { .. })
    ));
    for (store, key) in [(&inl, "small"), (&s, "big")] {
        let record = store.head("data", key).wait().unwrap();
        common::set_annex(store, "data", key, Some(b"tags one")).unwrap();
        common::set_annex(store, "data", key, Some(b"tags two")).unwrap();
        let o = store.get("data", key).wait().unwrap();
        assert_eq!(o.annex.as_deref(), Some(&b"tags two"[..]), "{key}");
        assert_eq!(o.record, record, "{key}: the record is kept");
    }
    assert_eq!(read(&s, "data", "small"), b"small again");
    assert!(read(&s, "data", "big") == big, "the blob is kept");
    put(&inl, "data", "small", b"overwritten");
    assert_eq!(inl.get("data", "small").wait().unwrap().annex, None, "an overwrite starts without tags");
    common::set_annex(&s, "data", "big", None).unwrap();
    assert_eq!(s.get("data", "big").wait().unwrap().annex, None);
    assert!(inl.delete("data", "small").wait().unwrap() && inl.delete("data", "tiny").wait().unwrap());
    assert!(matches!(inl.get("data", "small").wait(), Err(StoreError::NoSuchKey { .. })));
    assert_eq!(
        inl.sweep(Duration::ZERO).wait().unwrap(),
        1,
        "the blob-sized version was retired, then swept"
    );
    assert_eq!(blob_names(&ceph).await.len(), blobs_before);
    assert!(store(&etcd, &ceph, 0).await.with_inline_max(MAX_INLINE + 1).is_err());
    // A listing page of 1,000 entries at the largest inline size (about 17 MB from etcd).
    let widest = store(&etcd, &ceph, MAX_INLINE).await;
    let body = plaintext(MAX_INLINE, 6);
    s.create_bucket("inline", b"i").wait().unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (st, body) = (widest.clone(), body.clone());
            tokio::task::spawn_blocking(move || {
                for i in (w..1001).step_by(8) {
                    put(&st, "inline", &format!("k{i:04}"), &body);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(blob_names(&ceph).await.len(), blobs_before, "all kept in their entries");
    let page = widest.list("inline", Page::new("", None, 1000)).wait().unwrap();
    assert_eq!((page.len(), page[999].name.as_str()), (1000, "k0999"));
    assert_eq!(names(widest.list("inline", Page::new("", Some("k0999"), 1000)).wait().unwrap()), ["k1000"]);
    assert!(read(&s, "inline", "k0500") == body);

    // Multipart: parts are blobs; completing lays them end to end without copying.
    let id = store::new_upload_id();
    s.create_upload("data", &id, b"upload record").wait().unwrap();
    assert_eq!(s.upload("data", &id).wait().unwrap(), b"upload record");
    let part = |n: u32, body: &[u8]| {
        let mut w = s.put_part("data", &id, n).wait().unwrap();
        w.write_all(body).unwrap();
        w.commit(format!("part {n}").as_bytes()).wait().unwrap()
    };
    let p1 = plaintext(PART + 5, 4);
    assert_eq!(part(1, &p1), p1.len() as u64);
    part(2, b"first two");
    part(2, b"second two");
    part(3, b"never chosen");
    let listed = s.list_parts("data", &id).wait().unwrap();
    assert_eq!(
        listed.iter().map(|p| (p.number, p.stored)).collect::<Vec<_>>(),
        [(1, p1.len() as u64), (2, 10), (3, 12)]
    );
    assert_eq!(listed[1].record, b"part 2");
    assert_eq!(names(s.list_uploads("data").wait().unwrap()), std::slice::from_ref(&id));
    s.complete_upload(
        "data",
        Completion { upload_id: &id, key: "mp", parts: &[1, 2], record: b"mp record", version: None },
    )
    .wait()
    .unwrap();
    assert!(read(&s, "data", "mp") == [p1.as_slice(), b"second two"].concat());
    assert_eq!(s.head("data", "mp").wait().unwrap(), b"mp record");
    assert!(matches!(s.upload("data", &id).wait(), Err(StoreError::NoSuchUpload(_))));
    assert_eq!(blob_names(&ceph).await.len(), blobs_before + 2, "the object's two part blobs, nothing else");
    let other = store::new_upload_id();
    s.create_upload("data", &other, b"u").wait().unwrap();
    s.put_part("data", &other, 1).wait().unwrap();
    let mut w = s.put_part("data", &other, 1).wait().unwrap();
    w.write_all(b"x").unwrap();
    w.commit(b"p").wait().unwrap();
    s.abort_upload("data", &other).wait().unwrap();
    assert!(s.list_uploads("data").wait().unwrap().is_empty());
    assert_eq!(blob_names(&ceph).await.len(), blobs_before + 2);

    // Many parts complete in one transaction (etcd started with room for them).
    let many = store::new_upload_id();
    s.create_upload("data", &many, b"u").wait().unwrap();
    let numbers: Vec<u32> = (1..=300).collect();
    for &n in &numbers {
        let mut w = s.put_part("data", &many, n).wait().unwrap();
        w.write_all(format!("<{n:03}>").as_bytes()).unwrap();
        w.commit(b"p").wait().unwrap();
    }
    s.complete_upload(
        "data",
        Completion { upload_id: &many, key: "many", parts: &numbers, record: b"many record", version: None },
    )
    .wait()
    .unwrap();
    let want: String = numbers.iter().map(|n| format!("<{n:03}>")).collect();
    assert_eq!(read(&s, "data", "many"), want.as_bytes(), "300 parts end to end");
    assert!(s.delete("data", "many").wait().unwrap());

    // A second gateway sees everything the first wrote, and writes for it.
    let b = store(&etcd, &ceph, 0).await;
    assert!(read(&b, "data", "mp") == [p1.as_slice(), b"second two"].concat());
    put(&b, "data", "from-b", b"written by B");
    assert_eq!(read(&s, "data", "from-b"), b"written by B");
    // Bucket records are cached per gateway: a change through A reaches B's cache through
    // its watch; a bucket B has never seen is found in etcd at once; a bucket deleted
    // through A is gone for B too.
    assert_eq!(b.bucket("data").wait().unwrap(), b"changed", "B has the record");
    s.update_bucket("data", b"changed", b"changed through A").wait().unwrap();
    // B changing the record it may still have cached is refused: the check is made
    // against etcd, not against B's cache.
    assert!(matches!(
        b.update_bucket("data", b"changed", b"lost through B").wait(),
        Err(StoreError::BucketChanged(_))
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.bucket("data").wait().unwrap() != b"changed through A" {
        assert!(std::time::Instant::now() < deadline, "B's bucket cache did not follow A's change");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.create_bucket("fresh", b"f").wait().unwrap();
    assert_eq!(
        b.bucket("fresh").wait().unwrap(),
        b"f",
        "a bucket made through A is usable through B at once"
    );
    s.delete_bucket("fresh").wait().unwrap();
    assert!(matches!(s.bucket("fresh").wait(), Err(StoreError::NoSuchBucket(_))), "A notes its own delete");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.bucket("fresh").wait().is_ok() {
        assert!(std::time::Instant::now() < deadline, "B still serves a deleted bucket's record");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(b.put("fresh", "k").wait(), Err(StoreError::NoSuchBucket(_))));
    // A PUT takes a bucket its gateway's cache holds as there without asking (a polled
    // watch may be 50 ms behind); the commit's transaction requires it, so a PUT into a
    // bucket deleted through another gateway meanwhile fails there, and nothing is left.
    s.create_bucket("brief", b"b").wait().unwrap();
    let mut w = b.put("brief", "k").wait().unwrap();
    w.write_all(b"written into a bucket that goes").unwrap();
    s.delete_bucket("brief").wait().unwrap();
    assert!(matches!(w.commit(b"record").wait(), Err(StoreError::NoSuchBucket(_))));
    assert!(matches!(s.get("brief", "k").wait(), Err(StoreError::NoSuchBucket(_))));

    // The same through the S3 operations, encrypted: PUT on A, GET and list on B;
    // multipart created on A, parts on A and B, completed on B.
    let a3 = CipherS3::new(object::Objects::new(Arc::new(s.clone())), Backend::Accelerated, None);
    let b3 = CipherS3::new(object::Objects::new(Arc::new(b.clone())), Backend::Accelerated, None);
    a3.create_bucket(req(CreateBucketInput { bucket: "photos".into(), ..Default::default() })).await.unwrap();
    let marker = b"CLUSTER-PLAINTEXT-MARKER".repeat(20_000);
    let blob = |bytes: &[u8]| Some(StreamingBlob::from(Body::from(Bytes::copy_from_slice(bytes))));
    let put_in = PutObjectInput {
        bucket: "photos".into(),
        key: "p".into(),
        body: blob(&marker),
        ..Default::default()
    };
    a3.put_object(req(put_in)).await.unwrap();
    assert!(get(&b3, "p").await == marker, "PUT on A, GET on B");
    let list = b3.list_objects_v2(req(ListObjectsV2Input { bucket: "photos".into(), ..Default::default() }));
    let listed = list.await.unwrap().output.contents.unwrap();
    assert_eq!(listed[0].size, Some(marker.len() as i64));
    let create =
        CreateMultipartUploadInput { bucket: "photos".into(), key: "m".into(), ..Default::default() };
    let upload_id = a3.create_multipart_upload(req(create)).await.unwrap().output.upload_id.unwrap();
    let p1 = plaintext(5 << 20, 5);
    let mut done = Vec::new();
    for (n, (s3, body)) in [(&a3, p1.as_slice()), (&b3, b"last part".as_slice())].into_iter().enumerate() {
        let input = UploadPartInput {
            bucket: "photos".into(),
            key: "m".into(),
            upload_id: upload_id.clone(),
            part_number: n as i32 + 1,
            body: blob(body),
            content_length: Some(body.len() as i64),
            ..Default::default()
        };
        let etag = s3.upload_part(req(input)).await.unwrap().output.e_tag;
        done.push(CompletedPart { e_tag: etag, part_number: Some(n as i32 + 1), ..Default::default() });
    }
    let complete = CompleteMultipartUploadInput {
        bucket: "photos".into(),
        key: "m".into(),
        upload_id,
        multipart_upload: Some(CompletedMultipartUpload { parts: Some(done) }),
        ..Default::default()
    };
    b3.complete_multipart_upload(req(complete)).await.unwrap();
    assert!(get(&a3, "m").await == [p1.as_slice(), b"last part"].concat(), "multipart across gateways");
    // A small object kept in its entry, written through a gateway that inlines, read
    // through one that does not.
    let i3 = CipherS3::new(object::Objects::new(Arc::new(inl.clone())), Backend::Accelerated, None);
    let put_in = PutObjectInput {
        bucket: "photos".into(),
        key: "s".into(),
        body: blob(&marker[..2400]),
        ..Default::default()
    };
    i3.put_object(req(put_in)).await.unwrap();
    assert!(get(&b3, "s").await == marker[..2400], "an inline object read on another gateway");
    // Only ciphertext reached the backend, and etcd.
    for name in blob_names(&ceph).await {
        let bytes = raw.get_range(&name, 0..raw.len(&name).await.unwrap()).await.unwrap();
        assert!(!bytes.windows(24).any(|w| w == b"CLUSTER-PLAINTEXT-MARKER"), "plaintext in blob {name}");
    }
    let kv = EtcdKv::connect(&etcd.config("/cipherstore/test/")).await.unwrap();
    let all = kv.range(b"\0", &[0xff], 100_000).await.unwrap();
    assert!(all.entries.iter().any(|e| e.value.len() > 2400), "the small object is in etcd");
    for e in &all.entries {
        assert!(!e.value.windows(24).any(|w| w == b"CLUSTER-PLAINTEXT-MARKER"), "plaintext in etcd");
    }

    // Versions (tests/common/versions.rs): a fixed run against the model, inline and in
    // blobs; concurrent writers of one key each keep their version; 2,500 versions of one
    // key page in order, 1,000 at a time. A bucket holding only versions is not empty.
    s.create_bucket("versions", b"v").wait().unwrap();
    let steps = [
        Step::Put { key: 0, null: true, body: 1 },
        Step::Put { key: 0, null: false, body: 2 },
        Step::Put { key: 1, null: false, body: 3 },
        Step::Mark { key: 0, null: false },
        Step::Put { key: 0, null: true, body: 4 },
        Step::Put { key: 2, null: true, body: 5 },
        Step::Remove { key: 0, n: 0 },
        Step::Mark { key: 1, null: true },
        Step::Put { key: 1, null: true, body: 6 },
        Step::Remove { key: 0, n: 1 },
        Step::Remove { key: 1, n: 2 },
        Step::Put { key: 2, null: false, body: 7 },
        Step::Remove { key: 2, n: 0 },
        Step::Remove { key: 2, n: 0 },
        Step::Remove { key: 2, n: 0 },
    ];
    versions::run(&s, "versions", &steps);
    let inline = store(&etcd, &ceph, DEFAULT_INLINE_MAX).await;
    inline.create_bucket("versions-inline", b"v").wait().unwrap();
    versions::run(&inline, "versions-inline", &steps);
    versions::concurrent(&inline, "versions-inline", 4, 10);
    s.create_bucket("annexes", b"a").wait().unwrap();
    versions::annexes(&s, "annexes");
    inline.create_bucket("annexes-inline", b"a").wait().unwrap();
    versions::annexes(&inline, "annexes-inline");
    versions::annex_races(&inline, "annexes-inline", 4, 8);
    let mut made = Vec::new();
    for i in 0..2500u32 {
        let v = store::Version::new(false, false);
        let mut w = inline.put("versions-inline", "deep").wait().unwrap();
        w.write_all(&i.to_le_bytes()).unwrap();
        w.commit_version(b"r", &v).wait().unwrap();
        made.push(v.id);
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut after: Option<store::VersionCursor> = None;
    loop {
        let page =
            inline.list_versions("versions-inline", Page::new("deep", after.as_ref(), 1000)).wait().unwrap();
        let Some(last) = page.last() else { break };
        after = Some(store::VersionCursor { key: last.key.clone(), after_id: Some(last.version.id.clone()) });
        seen.extend(page.into_iter().map(|l| l.version.id));
    }
    assert_eq!(seen, made, "2,500 versions, newest first, in pages");
    let delete_marker = store::Version::new(false, true);
    let w = inline.put("versions", "only-a-marker").wait().unwrap();
    w.commit_version(b"m", &delete_marker).wait().unwrap();
    assert!(matches!(s.delete_bucket("versions").wait(), Err(StoreError::BucketNotEmpty(_))));

    // Buckets with objects stay; empty ones go.
    assert!(matches!(s.delete_bucket("data").wait(), Err(StoreError::BucketNotEmpty(_))));
    s.delete_bucket("other").wait().unwrap();
    assert!(matches!(s.bucket("other").wait(), Err(StoreError::NoSuchBucket(_))));

    // etcd without quorum: the store is unavailable (503 to clients), not broken.
    etcd.kill(0);
    etcd.kill(1);
    // (Bucket records may still come from the gateway's cache; object records cannot.)
    assert!(matches!(s.head("data", "big").wait(), Err(StoreError::Unavailable(_))));
    let code = a3
        .head_object(req(HeadObjectInput { bucket: "photos".into(), key: "p".into(), ..Default::default() }))
        .await
        .err()
        .map(|e| e.code().as_str().to_owned());
    assert_eq!(code.as_deref(), Some("ServiceUnavailable"));
    etcd.restart(1).await;
    // Once the member is back, etcd may still be electing a leader (a client sees 503 with
    // Retry-After meanwhile): served again, whole, within moments.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let input = GetObjectInput { bucket: "photos".into(), key: "p".into(), ..Default::default() };
        match b3.get_object(req(input)).await {
            Ok(r) => {
                let mut out = Vec::new();
                let mut body = r.output.body.unwrap();
                while let Some(c) = body.next().await {
                    out.extend_from_slice(&c.unwrap());
                }
                assert!(out == marker, "served again once quorum is back, and whole");
                break;
            }
            Err(e) => {
                assert_eq!(e.code().as_str(), "ServiceUnavailable", "only unavailable meanwhile: {e:?}");
                assert!(std::time::Instant::now() < deadline, "not served again: {e:?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
