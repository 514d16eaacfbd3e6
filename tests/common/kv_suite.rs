//! The contract every metadata service behind `cluster::kv::Kv` keeps (docs/SCALE-OUT.md
//! §2), run on etcd (tests/etcd_kv.rs) and on PostgreSQL (tests/postgres_kv.rs): ordered
//! ranges with limits and `more`, namespaces kept apart, transactions all or nothing whose
//! compares hold under concurrency, and watches that, replayed over the range read they
//! start from, end at the store's state with no change missed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cluster::kv::{Compare, Event, Kv, KvError, Op, Txn, prefix_end};

pub(crate) fn put(k: &str, v: &str) -> Op {
    Op::Put(k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

pub(crate) fn txn(compares: Vec<Compare>, ops: Vec<Op>) -> Txn {
    Txn { compares, ops }
}

/// Ranges, limits, namespaces, compare-and-swap, deletes and range deletes.
pub(crate) async fn ranges_and_transactions(kv: &dyn Kv, other: &dyn Kv) {
    let keys = ["o/b\0z", "o/b\0a", "o/b\0a/1", "o/c\0x", "b/b", "o/b\0\u{7f}", "o/b\0\u{80}"];
    let rev = kv.txn(txn(vec![], keys.iter().map(|k| put(k, k)).collect())).await.unwrap().unwrap();
    let page = kv.range(b"o/b\0", &prefix_end(b"o/b\0"), 2).await.unwrap();
    let got: Vec<&[u8]> = page.entries.iter().map(|e| e.key.as_slice()).collect();
    assert_eq!(got, [&b"o/b\0a"[..], b"o/b\0a/1"]);
    assert!(page.more);
    assert!(page.entries.iter().all(|e| e.mod_revision == rev && e.value == e.key));
    // Byte order, not a collation: 0x7f sorts before 0xc2 0x80 (U+0080 in UTF-8), 'z' before both.
    let all = kv.range(b"o/b\0", &prefix_end(b"o/b\0"), 100).await.unwrap();
    let got: Vec<Vec<u8>> = all.entries.iter().map(|e| e.key.clone()).collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted, "keys in byte order");
    assert_eq!(got.len(), 5);
    assert!(!all.more);
    let rest = kv.range(b"o/b\0a/1\0", &prefix_end(b"o/b\0"), 10).await.unwrap();
    assert_eq!(rest.entries.len(), 3);
    assert!(!rest.more);
    assert_eq!(
        kv.range(b"", &[0], 100).await.unwrap().entries.len(),
        keys.len(),
        "everything in the namespace"
    );
    assert!(other.range(b"", &[0], 100).await.unwrap().entries.is_empty(), "namespaces are apart");
    assert!(kv.range(b"o/b\0z", b"o/b\0a", 10).await.unwrap().entries.is_empty(), "an empty range");

    // Compare-and-swap: a stale revision or a present key refuses the whole transaction.
    let entry = kv.get(b"o/b\0a").await.unwrap().unwrap();
    let stale =
        txn(vec![Compare::Revision(b"o/b\0a".to_vec(), entry.mod_revision - 1)], vec![put("o/b\0a", "x")]);
    assert_eq!(kv.txn(stale).await.unwrap(), None);
    let absent = txn(vec![Compare::Absent(b"o/b\0a".to_vec())], vec![put("o/b\0new", "x")]);
    assert_eq!(kv.txn(absent).await.unwrap(), None);
    let present = txn(vec![Compare::Present(b"o/none".to_vec())], vec![put("o/b\0new", "x")]);
    assert_eq!(kv.txn(present).await.unwrap(), None);
    assert!(kv.get(b"o/b\0new").await.unwrap().is_none(), "a refused transaction changes nothing");
    let swap = txn(
        vec![Compare::Revision(b"o/b\0a".to_vec(), entry.mod_revision), Compare::Present(b"b/b".to_vec())],
        vec![put("o/b\0a", "v2"), Op::Delete(b"o/c\0x".to_vec()), put("o/b\0empty", "")],
    );
    let rev2 = kv.txn(swap).await.unwrap().unwrap();
    assert!(rev2 > rev);
    let a = kv.get(b"o/b\0a").await.unwrap().unwrap();
    assert_eq!((a.value.as_slice(), a.mod_revision), (&b"v2"[..], rev2));
    assert_eq!(kv.get(b"o/b\0empty").await.unwrap().unwrap().value, b"", "an empty value is a value");
    assert!(kv.get(b"o/c\0x").await.unwrap().is_none());
    kv.txn(txn(vec![], vec![Op::DeleteRange(b"o/b\0".to_vec(), prefix_end(b"o/b\0"))])).await.unwrap();
    assert!(kv.range(b"o/", &prefix_end(b"o/"), 10).await.unwrap().entries.is_empty());
    assert!(kv.get(b"b/b").await.unwrap().is_some(), "a range delete stays in its range");
    kv.txn(txn(vec![], vec![Op::DeleteRange(b"".to_vec(), vec![0])])).await.unwrap();
    assert!(kv.range(b"", &[0], 10).await.unwrap().entries.is_empty(), "[\"\", \\0) is everything");
}

/// A watch started at a range read's revision, while writers change, delete and recreate
/// keys, replays to the final state; each key's revisions only grow.
pub(crate) async fn watches_miss_nothing(kv: Arc<dyn Kv>) {
    kv.txn(txn(vec![], (0..20).map(|i| put(&format!("w/{i:02}"), "0")).collect())).await.unwrap();
    let page = kv.range(b"w/", &prefix_end(b"w/"), 1000).await.unwrap();
    let mut state: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> =
        page.entries.iter().map(|e| (e.key.clone(), (e.mod_revision, Some(e.value.clone())))).collect();
    let mut watch = kv.watch(b"w/", page.revision).await.unwrap();
    // A key outside the prefix is never reported.
    kv.txn(txn(vec![], vec![put("x/outside", "1")])).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..4 {
        let kv = kv.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..30 {
                let key = format!("w/{:02}", (w * 7 + round) % 25);
                let op = if round % 5 == 4 {
                    Op::Delete(key.into_bytes())
                } else {
                    put(&key, &format!("{w}.{round}"))
                };
                kv.txn(txn(vec![], vec![op])).await.unwrap().unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let fin = kv.range(b"w/", &prefix_end(b"w/"), 1000).await.unwrap();
    let want: BTreeMap<Vec<u8>, Vec<u8>> =
        fin.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
    let current = |state: &BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)>| -> BTreeMap<Vec<u8>, Vec<u8>> {
        state.iter().filter_map(|(k, (_, v))| Some((k.clone(), v.clone()?))).collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while current(&state) != want {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event =
            tokio::time::timeout(left, watch.next()).await.expect("the watch caught up").unwrap().unwrap();
        let (key, rev, value) = match event {
            Event::Put(e) => (e.key, e.mod_revision, Some(e.value)),
            Event::Delete(k, r) => (k, r, None),
        };
        assert!(key.starts_with(b"w/"), "only the prefix: {key:?}");
        let held = state.get(&key).map_or(0, |(r, _)| *r);
        if rev > held {
            state.insert(key, (rev, value));
        }
    }
    assert_eq!(current(&state), want);
}

/// Read-increment-compare-and-swap by four writers: no increment is lost.
pub(crate) async fn concurrent_compare_and_swap_loses_no_update(kv: Arc<dyn Kv>) {
    kv.txn(txn(vec![], vec![put("counter", "0")])).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            let mut retries = 0;
            for _ in 0..25 {
                loop {
                    let e = kv.get(b"counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&e.value).unwrap().parse().unwrap();
                    let next = txn(
                        vec![Compare::Revision(b"counter".to_vec(), e.mod_revision)],
                        vec![put("counter", &(n + 1).to_string())],
                    );
                    if kv.txn(next).await.unwrap().is_some() {
                        break;
                    }
                    retries += 1;
                }
            }
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    let value = kv.get(b"counter").await.unwrap().unwrap().value;
    assert_eq!(value, b"100", "every increment kept ({retries} compare failures retried)");
}

/// Eight writers race to claim the same names with "absent, then put" — and to record the
/// claim under another key, which only the compare guards: each name has one winner, and
/// every record names the winner.
pub(crate) async fn concurrent_claims_have_one_winner(kv: Arc<dyn Kv>) {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for n in 0..20 {
                let claim = txn(
                    vec![Compare::Absent(format!("claim/{n}").into_bytes())],
                    vec![
                        put(&format!("claim/{n}"), &w.to_string()),
                        put(&format!("owner/{n}"), &w.to_string()),
                    ],
                );
                if kv.txn(claim).await.unwrap().is_some() {
                    won.push(n);
                }
            }
            (w, won)
        }));
    }
    let mut winners = BTreeMap::new();
    for t in tasks {
        let (w, won) = t.await.unwrap();
        for n in won {
            assert!(winners.insert(n, w).is_none(), "name {n} claimed twice");
        }
    }
    assert_eq!(winners.len(), 20, "every name claimed once");
    for (n, w) in winners {
        let owner = kv.get(format!("owner/{n}").as_bytes()).await.unwrap().unwrap().value;
        assert_eq!(owner, w.to_string().as_bytes(), "the record of name {n} names its winner");
    }
}

/// The lease of `cluster::lease`: one holder at a time; a holder that stops renewing is
/// taken over after a time-to-live seen unchanged; a release frees it at once.
pub(crate) async fn a_lease_has_one_holder_and_passes_on_when_it_lapses(kv: Arc<dyn Kv>) {
    use cluster::lease::Lease;
    use std::time::Instant;
    let ttl = Duration::from_millis(1200);
    let mut a = Lease::new(kv.clone(), "work", "a", ttl);
    let mut b = Lease::new(kv.clone(), "work", "b", ttl);
    assert!(a.hold().await.unwrap() && a.held(), "a free lease is taken");
    assert!(!b.hold().await.unwrap() && !b.held(), "a held lease is not");
    // a renews; b, seeing a new revision each time, never takes over.
    let mut stopped = Instant::now();
    for _ in 0..4 {
        tokio::time::sleep(ttl / 3).await;
        stopped = Instant::now();
        assert!(a.hold().await.unwrap());
        assert!(!b.hold().await.unwrap());
    }
    // a stops renewing: it stops counting the lease as its own after half a TTL, and b
    // takes over once it has seen the same revision for a whole TTL.
    tokio::time::sleep(ttl / 2).await;
    assert!(!a.held(), "a holder that did not renew stops before anyone may take over");
    while !b.hold().await.unwrap() {
        assert!(stopped.elapsed() < ttl * 3, "b takes over a lapsed lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped.elapsed() >= ttl, "not before a whole TTL: {:?}", stopped.elapsed());
    assert!(!a.hold().await.unwrap(), "the old holder finds it taken");
    // A release frees it at once.
    b.release().await.unwrap();
    assert!(a.hold().await.unwrap());
}

/// Writes `value` under new keys `o/b\0NNNNN` until the service refuses one (at most
/// `most` writes); checks the refusal is `Full`, that more than `least` were acknowledged,
/// and that exactly the acknowledged ones read back whole. Returns how many there are.
pub(crate) async fn fill_until_full(kv: &dyn Kv, value: &[u8], least: usize, most: usize) -> usize {
    let mut acknowledged = 0;
    let refused = loop {
        let op = Op::Put(format!("o/b\0{acknowledged:05}").into_bytes(), value.to_vec());
        match kv.txn(txn(vec![], vec![op])).await {
            Ok(Some(_)) => acknowledged += 1,
            other => break other,
        }
        assert!(acknowledged < most, "the service never filled");
    };
    assert!(matches!(refused, Err(KvError::Full(_))), "{refused:?}");
    assert!(acknowledged > least, "{acknowledged} acknowledged before it filled");
    let all = kv.range(b"o/", &prefix_end(b"o/"), 1000).await.unwrap();
    assert_eq!(all.entries.len(), acknowledged, "every acknowledged write reads back, no refused one");
    assert!(all.entries.iter().all(|e| e.value == value));
    acknowledged
}
