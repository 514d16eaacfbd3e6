//! The cluster store's metadata service on real etcd (docs/SCALE-OUT.md §2): the contract
//! every metadata service keeps (tests/common/kv_suite.rs, also run on PostgreSQL), etcd's
//! event-per-change watches, TLS with client certificates, and a three-member cluster that
//! goes on after losing one member and refuses cleanly, with nothing half-written, without
//! quorum.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::etcd::EtcdKv;
use cluster::kv::{Compare, Event, Kv, KvError, Op, prefix_end};
use common::etcd::Etcd;
use common::kv_suite::{self, put, txn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_transactions_and_watches() {
    let etcd = Etcd::start(1).await;
    let kv = EtcdKv::connect(&etcd.config("/t1/")).await.unwrap();
    let other = EtcdKv::connect(&etcd.config("/t2/")).await.unwrap();
    let mut watch = kv.watch(b"o/", 0).await.unwrap();

    // Keys come back in byte order, limited, with `more` telling what is left.
    let keys = ["o/b\0z", "o/b\0a", "o/b\0a/1", "o/c\0x", "b/b"];
    let rev = kv.txn(txn(vec![], keys.iter().map(|k| put(k, k)).collect())).await.unwrap().unwrap();
    let page = kv.range(b"o/b\0", &prefix_end(b"o/b\0"), 2).await.unwrap();
    let got: Vec<&[u8]> = page.entries.iter().map(|e| e.key.as_slice()).collect();
    assert_eq!(got, [&b"o/b\0a"[..], b"o/b\0a/1"]);
    assert!(page.more);
    assert!(page.entries.iter().all(|e| e.mod_revision == rev && e.value == e.key));
    let rest = kv.range(b"o/b\0a/1\0", &prefix_end(b"o/b\0"), 10).await.unwrap();
    assert_eq!(rest.entries.len(), 1);
    assert!(!rest.more);
    assert_eq!(kv.range(b"", &[0], 100).await.unwrap().entries.len(), 5, "everything in the namespace");
    assert!(other.range(b"", &[0], 100).await.unwrap().entries.is_empty(), "namespaces are apart");

    // Compare-and-swap: a stale revision or a present key refuses the whole transaction.
    let entry = kv.get(b"o/b\0a").await.unwrap().unwrap();
    let stale =
        txn(vec![Compare::Revision(b"o/b\0a".to_vec(), entry.mod_revision - 1)], vec![put("o/b\0a", "x")]);
    assert_eq!(kv.txn(stale).await.unwrap(), None);
    let absent = txn(vec![Compare::Absent(b"o/b\0a".to_vec())], vec![put("o/b\0new", "x")]);
    assert_eq!(kv.txn(absent).await.unwrap(), None);
    assert!(kv.get(b"o/b\0new").await.unwrap().is_none(), "a refused transaction changes nothing");
    let swap = txn(
        vec![Compare::Revision(b"o/b\0a".to_vec(), entry.mod_revision), Compare::Present(b"b/b".to_vec())],
        vec![put("o/b\0a", "v2"), Op::Delete(b"o/c\0x".to_vec())],
    );
    let rev2 = kv.txn(swap).await.unwrap().unwrap();
    assert!(rev2 > rev);
    assert_eq!(kv.get(b"o/b\0a").await.unwrap().unwrap().value, b"v2");
    assert!(kv.get(b"o/c\0x").await.unwrap().is_none());
    kv.txn(txn(vec![], vec![Op::DeleteRange(b"o/b\0".to_vec(), prefix_end(b"o/b\0"))])).await.unwrap();
    assert!(kv.range(b"o/", &prefix_end(b"o/"), 10).await.unwrap().entries.is_empty());

    // The watch saw every change under o/, in order, with namespace-free keys.
    let mut seen = Vec::new();
    while seen.len() < 4 + 2 + 3 {
        let event =
            tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap().unwrap();
        seen.push(event);
    }
    assert!(matches!(&seen[0], Event::Put(e) if e.key.starts_with(b"o/")));
    assert!(seen.iter().all(|e| match e {
        Event::Put(e) => e.key.starts_with(b"o/"),
        Event::Delete(k, _) => k.starts_with(b"o/"),
    }));
    assert!(matches!(&seen[4], Event::Put(e) if e.key == b"o/b\0a" && e.value == b"v2"));
    assert!(matches!(&seen[5], Event::Delete(k, r) if k == b"o/c\0x" && *r == rev2));
    assert_eq!(seen.iter().filter(|e| matches!(e, Event::Delete(..))).count(), 4);

    // A watch resumes after a revision: it replays what it missed.
    let mut resumed = kv.watch(b"o/", rev).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), resumed.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first, Event::Put(e) if e.key == b"o/b\0a" && e.mod_revision == rev2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kv_contract() {
    let etcd = Etcd::start(1).await;
    let kv: Arc<dyn Kv> = Arc::new(EtcdKv::connect(&etcd.config("/c1/")).await.unwrap());
    let other = EtcdKv::connect(&etcd.config("/c2/")).await.unwrap();
    kv_suite::ranges_and_transactions(kv.as_ref(), &other).await;
    kv_suite::watches_miss_nothing(kv.clone()).await;
    kv_suite::concurrent_compare_and_swap_loses_no_update(kv.clone()).await;
    kv_suite::concurrent_claims_have_one_winner(kv.clone()).await;
    kv_suite::a_lease_has_one_holder_and_passes_on_when_it_lapses(kv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_survive_one_loss_and_refuse_cleanly_without_quorum() {
    let mut etcd = Etcd::start(3).await;
    let kv = EtcdKv::connect(&etcd.config("/q/")).await.unwrap();
    kv.txn(txn(vec![], vec![put("before", "1")])).await.unwrap();

    etcd.kill(0);
    // One member of three gone: reads and writes go on (the client moves to the others).
    let mut ok = false;
    for _ in 0..20 {
        if kv.txn(txn(vec![], vec![put("one-lost", "1")])).await.is_ok_and(|r| r.is_some()) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ok, "writes go on with two of three members");
    assert_eq!(kv.get(b"before").await.unwrap().unwrap().value, b"1");

    etcd.kill(1);
    // Quorum lost: a clean error within the request timeout, never a hang.
    let started = Instant::now();
    let refused = kv.txn(txn(vec![], vec![put("no-quorum/a", "1"), put("no-quorum/b", "1")])).await;
    assert!(matches!(refused, Err(KvError::Unavailable(_))), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "refused in {:?}", started.elapsed());
    assert!(matches!(kv.get(b"before").await, Err(KvError::Unavailable(_))), "no stale reads either");

    // Quorum back: service resumes without a new client, and the refused write is absent.
    etcd.restart(1).await;
    let mut back = false;
    for _ in 0..40 {
        if kv.get(b"before").await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(back, "the same client reads again once quorum is back");
    // The refused transaction was not acknowledged, so it may or may not have committed
    // (its proposal can outlive the timeout, as with any store): but all or nothing.
    let a = kv.get(b"no-quorum/a").await.unwrap().is_some();
    let b = kv.get(b"no-quorum/b").await.unwrap().is_some();
    assert_eq!(a, b, "nothing half-written");
    assert!(kv.txn(txn(vec![], vec![put("after", "1")])).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let etcd = Etcd::start_tls(1).await;
    let kv = EtcdKv::connect(&etcd.config("/tls/")).await.unwrap();
    let rev = kv.txn(txn(vec![], vec![put("o/k", "v")])).await.unwrap();
    assert!(rev.is_some());
    assert_eq!(kv.get(b"o/k").await.unwrap().unwrap().value, b"v");
    // Without the client certificate the member refuses the connection.
    let mut anonymous = etcd.config("/tls/");
    if let Some(tls) = anonymous.tls.as_mut() {
        tls.client = None;
    }
    let refused = match EtcdKv::connect(&anonymous).await {
        Ok(kv) => kv.get(b"o/k").await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate was served");
    // Plain HTTP to a TLS member gets nowhere either.
    let mut plain = etcd.config("/tls/");
    plain.tls = None;
    plain.endpoints = plain.endpoints.iter().map(|e| e.replace("https://", "http://")).collect();
    let refused = match EtcdKv::connect(&plain).await {
        Ok(kv) => kv.get(b"o/k").await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "plain HTTP was served by a TLS member");
}

/// etcd's quota reached: writes are refused as `Full` (the S3 layer's 507, not a 503 to
/// retry), everything acknowledged before still reads back whole, and reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_reached_is_full_and_nothing_is_corrupted() {
    let etcd = Etcd::start_with_quota(16 << 20).await;
    let kv = EtcdKv::connect(&etcd.config("/quota/")).await.unwrap();
    kv_suite::fill_until_full(&kv, &vec![0x5a; 512 << 10], 5, 500).await;
    let again = kv.txn(txn(vec![], vec![put("o/small", "x")])).await;
    assert!(matches!(again, Err(KvError::Full(_))), "the alarm holds: {again:?}");
}
