//! Root key lifecycle state shared by gateways through etcd (docs/SCALE-OUT.md §6): two key
//! managers over one SoftHSM2 token and one etcd see each other's keys and bindings; a key
//! disabled or deleted through one is refused by the other at once, although its bucket
//! key cache lives an hour (the watch, not the TTL); lifecycle changes made concurrently
//! through both lose nothing; a lock left by a killed writer is taken over once it lapses.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::etcd::EtcdKv;
use cluster::kv::{Kv, Op, Txn};
use common::etcd::Etcd;
use common::hsm::{Token, with_token};
use keys::state_kv::KvState;
use keys::{Hsm, KeyManager, KeyRef, KeysError, ManagerOptions};

const HOUR: Duration = Duration::from_secs(3600);

fn gateway(rt: &tokio::runtime::Runtime, etcd: &Etcd, token: &Token, name: &str) -> KeyManager {
    let kv = rt.block_on(EtcdKv::connect(&etcd.config("/keys-test/"))).unwrap();
    let state = rt.block_on(KvState::open(Arc::new(kv))).unwrap();
    let mut options = ManagerOptions::new(&token.dir.join(name));
    options.cache_ttl = HOUR;
    KeyManager::with_state(Hsm::open(&token.config()).unwrap(), &options, Box::new(state)).unwrap()
}

/// Polls `f` until it holds, for at most `limit`; returns how long it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Two gateways' key managers over one token and one fresh etcd, after the runtime and
/// etcd they need (bound in this order, they are dropped before them).
fn two_gateways(token: &Token) -> (tokio::runtime::Runtime, Etcd, KeyManager, KeyManager) {
    let rt = runtime();
    let etcd = rt.block_on(Etcd::start(1));
    let a = gateway(&rt, &etcd, token, "a");
    let b = gateway(&rt, &etcd, token, "b");
    (rt, etcd, a, b)
}

#[test]
fn gateways_share_keys_and_refuse_a_disabled_key_at_once() {
    with_token("gateways_share_keys_and_refuse_a_disabled_key_at_once", |token| {
        let (_rt, _etcd, a, b) = two_gateways(token);

        // Made through A, seen and used through B.
        let root = a.create("shared-root").unwrap();
        a.create_bucket_key("photos", &KeyRef::parse(&root.crn)).unwrap();
        assert_eq!(b.show(&KeyRef::parse("shared-root")).unwrap().crn, root.crn);
        assert_eq!(b.bucket_root("photos").unwrap(), root.crn);
        let key_b = b.bucket_key("photos", &KeyRef::parse(&root.crn)).unwrap();
        assert_eq!(
            key_b,
            a.bucket_key("photos", &KeyRef::parse(&root.crn)).unwrap(),
            "one bucket key, unwrapped on both"
        );
        assert!(b.bucket_key("photos", &KeyRef::parse(&root.crn)).is_ok(), "cached on B for an hour");
        let unwraps = b.metrics().hsm_unwraps;

        // Disabled through A: B refuses at once, though its cache entry would live an hour.
        a.disable(&KeyRef::parse(&root.crn)).unwrap();
        let took = within(Duration::from_secs(5), || {
            matches!(b.bucket_key("photos", &KeyRef::parse(&root.crn)), Err(KeysError::KeySuspended(_)))
        });
        eprintln!("B refused the disabled key after {took:?}");
        a.enable(&KeyRef::parse(&root.crn)).unwrap();
        within(Duration::from_secs(5), || b.bucket_key("photos", &KeyRef::parse(&root.crn)).is_ok());
        assert!(b.metrics().hsm_unwraps > unwraps, "the dropped bucket key was unwrapped again");

        // Rotated through B: A's state follows; both still read the bucket.
        let rotated = b.rotate(&KeyRef::parse("shared-root"), None).unwrap();
        assert_eq!(rotated.version, 2);
        assert_eq!(a.show(&KeyRef::parse("shared-root")).unwrap().version, 2, "A reads the committed state");
        assert_eq!(
            a.bucket_key("photos", &KeyRef::parse(&root.crn)).unwrap(),
            key_b,
            "rotation rewraps, the bucket key stays"
        );

        // Deleted through B (crypto-shredding): A refuses, as deleted.
        b.delete(&KeyRef::parse("shared-root"), true).unwrap();
        within(Duration::from_secs(5), || {
            matches!(a.bucket_key("photos", &KeyRef::parse(&root.crn)), Err(KeysError::KeyDestroyed(_)))
        });
        assert!(b.bucket_key("photos", &KeyRef::parse(&root.crn)).is_err());
    });
}

#[test]
fn concurrent_lifecycle_changes_through_two_gateways_lose_nothing() {
    with_token("concurrent_lifecycle_changes_through_two_gateways_lose_nothing", |token| {
        let (_rt, _etcd, a, b) = two_gateways(token);
        a.create("rotated").unwrap();
        std::thread::scope(|s| {
            for (m, side) in [(&a, "a"), (&b, "b")] {
                s.spawn(move || {
                    for i in 0..6 {
                        m.create(&format!("{side}-{i}")).unwrap();
                        m.rotate(&KeyRef::parse("rotated"), None).unwrap();
                    }
                });
            }
        });
        let keys = b.list().unwrap();
        assert_eq!(keys.len(), 13, "every key created on either side is there");
        let rotated = a.show(&KeyRef::parse("rotated")).unwrap();
        let versions: Vec<u32> = rotated.versions.iter().map(|v| v.version).collect();
        assert_eq!(versions, (1..=13).collect::<Vec<u32>>(), "12 rotations, each its own version");
        // Every version is in the HSM: a bucket bound now wraps under v13 and unwraps.
        a.create_bucket_key("after", &KeyRef::parse("rotated")).unwrap();
        assert!(b.bucket_key("after", &KeyRef::parse("rotated")).is_ok());
        // A name taken through one gateway is refused through the other.
        assert!(matches!(b.create("a-0"), Err(KeysError::Refused(_))));
    });
}

#[test]
fn a_lock_left_by_a_killed_writer_is_taken_over_once_it_lapses() {
    with_token("a_lock_left_by_a_killed_writer_is_taken_over_once_it_lapses", |token| {
        let rt = runtime();
        let etcd = rt.block_on(Etcd::start(1));
        let kv = rt.block_on(EtcdKv::connect(&etcd.config("/keys-test/"))).unwrap();
        let a = gateway(&rt, &etcd, token, "a");
        // What a writer killed mid-change leaves: a lock whose lease ran out.
        let lapsed = br#"{"owner":"gone:1","until_ms":1}"#.to_vec();
        let left = Txn { compares: vec![], ops: vec![Op::Put(b"k/lock".to_vec(), lapsed)] };
        rt.block_on(kv.txn(left)).unwrap().unwrap();
        let start = Instant::now();
        a.create("after-crash").unwrap();
        assert!(start.elapsed() < Duration::from_secs(5), "a lapsed lock is taken over at once");
        assert!(rt.block_on(kv.get(b"k/lock")).unwrap().is_none(), "released after the change");
        assert_eq!(a.list().unwrap().len(), 1);
    });
}
