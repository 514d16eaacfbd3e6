//! The cluster store's blob backend against a real Ceph RGW (scripts/dev/ceph): whole,
//! conditional and streamed multipart writes, ranged reads, listings and deletes, with
//! bodies unsigned (the default) and signed (`sign_payload`); an aborted or unfinished streamed write leaves no blob; radosgw stopped gives a clean
//! error after bounded retries, and the same client works again once it is back.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster::blobs::{BlobConfig, BlobError, Blobs, PART};
use common::ceph::Ceph;
use common::plaintext;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_on_ceph_rgw() {
    let ceph = Ceph::start();
    let mut config = ceph.blob_config();
    config.max_retries = 3;
    config.retry_timeout = Duration::from_secs(4);
    config.request_timeout = Duration::from_secs(5);
    let blobs = Blobs::new(&config).unwrap();

    // Whole writes and ranged reads.
    let small = plaintext(100_000, 1);
    blobs.put("d/one", Bytes::from(small.clone())).await.unwrap();
    assert_eq!(blobs.len("d/one").await.unwrap(), 100_000);
    assert_eq!(blobs.get_range("d/one", 0..100_000).await.unwrap(), small);
    assert_eq!(blobs.get_range("d/one", 4096..4200).await.unwrap(), small[4096..4200]);
    assert!(blobs.get_range("d/one", 7..7).await.unwrap().is_empty());
    assert!(matches!(blobs.len("d/none").await, Err(BlobError::NotFound(_))));
    assert!(matches!(blobs.get_range("d/none", 0..1).await, Err(BlobError::NotFound(_))));

    // Conditional writes: the second create of one name is refused, the blob unchanged.
    blobs.create("d/once", Bytes::from_static(b"first")).await.unwrap();
    let again = blobs.create("d/once", Bytes::from_static(b"second")).await;
    assert!(matches!(again, Err(BlobError::Exists(_))), "{again:?}");
    assert_eq!(blobs.get_range("d/once", 0..5).await.unwrap(), &b"first"[..]);

    // Streamed writes: parts go out as they fill; nothing is visible before finish.
    let big = plaintext(2 * PART + 12_345, 2);
    let mut w = blobs.writer("d/big").await.unwrap();
    for chunk in big.chunks(1 << 20) {
        w.write(chunk).await.unwrap();
    }
    assert!(matches!(blobs.len("d/big").await, Err(BlobError::NotFound(_))), "invisible until finished");
    assert_eq!(w.finish().await.unwrap(), big.len() as u64);
    assert_eq!(blobs.len("d/big").await.unwrap(), big.len() as u64);
    let mid = PART as u64 - 10..PART as u64 + 10;
    assert_eq!(
        blobs.get_range("d/big", mid.clone()).await.unwrap(),
        big[mid.start as usize..mid.end as usize]
    );
    assert_eq!(blobs.get_range("d/big", 0..big.len() as u64).await.unwrap(), big);
    let mut aborted = blobs.writer("d/aborted").await.unwrap();
    aborted.write(&big[..PART + 1]).await.unwrap();
    aborted.abort().await.unwrap();
    assert!(matches!(blobs.len("d/aborted").await, Err(BlobError::NotFound(_))));

    // Signed bodies (the backend checks each body's SHA-256): whole and streamed writes are
    // accepted and read back the same through the unsigned client.
    let signing = Blobs::new(&BlobConfig { sign_payload: true, ..config.clone() }).unwrap();
    signing.put("s/whole", Bytes::from(small.clone())).await.unwrap();
    assert_eq!(blobs.get_range("s/whole", 0..100_000).await.unwrap(), small);
    let mut w = signing.writer("s/streamed").await.unwrap();
    for chunk in big.chunks(3 << 20) {
        w.write(chunk).await.unwrap();
    }
    assert_eq!(w.finish().await.unwrap(), big.len() as u64);
    assert_eq!(blobs.get_range("s/streamed", 0..big.len() as u64).await.unwrap(), big);

    // Listings by prefix; deletes are idempotent.
    blobs.put("p/part", Bytes::from_static(b"p")).await.unwrap();
    let mut listed: Vec<(String, u64)> =
        blobs.list("d").await.unwrap().into_iter().map(|b| (b.name, b.len)).collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![("d/big".into(), big.len() as u64), ("d/once".into(), 5), ("d/one".into(), 100_000)]
    );
    assert!(blobs.list("").await.unwrap().iter().all(|b| b.modified > 1_700_000_000));
    blobs.delete("d/one").await.unwrap();
    blobs.delete("d/one").await.unwrap();
    assert!(matches!(blobs.len("d/one").await, Err(BlobError::NotFound(_))));

    // radosgw down: a clean error once the retries are spent, within the retry bound.
    ceph.stop_rgw();
    let started = Instant::now();
    let down = blobs.get_range("d/once", 0..5).await;
    assert!(matches!(down, Err(BlobError::Unavailable(_))), "{down:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "gave up after {:?}", started.elapsed());
    assert!(matches!(
        blobs.put("d/while-down", Bytes::from_static(b"x")).await,
        Err(BlobError::Unavailable(_))
    ));
    // Back: the same client is served again, without a restart.
    ceph.start_rgw();
    assert_eq!(blobs.get_range("d/once", 0..5).await.unwrap(), &b"first"[..]);
    assert!(matches!(blobs.len("d/while-down").await, Err(BlobError::NotFound(_))), "nothing half-written");
}
