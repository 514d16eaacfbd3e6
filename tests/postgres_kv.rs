//! The cluster store's metadata service on real PostgreSQL (docs/SCALE-OUT.md §9): the
//! contract every metadata service keeps (tests/common/kv_suite.rs, also run on etcd), a
//! watch that goes on across a server restart without missing a change, clean
//! unavailability while the server is down, a watch told it fell behind the change log,
//! TLS only when asked and then required, and refusals of bad settings that name the fault.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::kv::{Event, Kv, KvError, Op, prefix_end};
use cluster::postgres::{PgConfig, PgKv};
use common::kv_suite::{self, put, txn};
use common::postgres::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kv_contract() {
    let pg = Postgres::start().await;
    let kv: Arc<dyn Kv> = Arc::new(PgKv::connect(&pg.config("c1")).await.unwrap());
    let other = PgKv::connect(&pg.config("c2")).await.unwrap();
    kv_suite::ranges_and_transactions(kv.as_ref(), &other).await;
    kv_suite::watches_miss_nothing(kv.clone()).await;
    kv_suite::concurrent_compare_and_swap_loses_no_update(kv.clone()).await;
    kv_suite::concurrent_claims_have_one_winner(kv.clone()).await;
    kv_suite::a_lease_has_one_holder_and_passes_on_when_it_lapses(kv).await;
}

/// The server is killed (as a crash) and started again: requests meanwhile fail as
/// unavailable within the request timeout, the same client works again afterwards, and a
/// watch running all along reports every change made before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_is_unavailability_and_the_watch_goes_on() {
    let mut pg = Postgres::start().await;
    let kv = PgKv::connect(&pg.config("restart")).await.unwrap();
    let mut watch = kv.watch(b"o/", 0).await.unwrap();
    kv.txn(txn(vec![], vec![put("o/before", "1")])).await.unwrap().unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first, Event::Put(e) if e.key == b"o/before"));

    pg.kill();
    let started = Instant::now();
    let refused = kv.txn(txn(vec![], vec![put("o/down", "1")])).await;
    assert!(matches!(refused, Err(KvError::Unavailable(_))), "{refused:?}");
    assert!(matches!(kv.get(b"o/before").await, Err(KvError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(12), "refused in {:?}", started.elapsed());

    pg.restart().await;
    let mut back = false;
    for _ in 0..40 {
        if kv.get(b"o/before").await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(back, "the same client reads again once the server is back");
    assert_eq!(
        kv.get(b"o/before").await.unwrap().unwrap().value,
        b"1",
        "an acknowledged write survived the crash"
    );
    assert!(kv.get(b"o/down").await.unwrap().is_none(), "the refused write did not happen");
    kv.txn(txn(vec![], vec![put("o/after", "2")])).await.unwrap().unwrap();
    // The watch may have ended while the server was down (a follower then reads again);
    // if it did not, it reports the change made after the restart.
    match tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap() {
        Some(Ok(Event::Put(e))) => assert_eq!(e.key, b"o/after"),
        Some(Err(KvError::Unavailable(_))) | None => {}
        other => panic!("unexpected {other:?}"),
    }
    // A watch resumed from the revision before the crash misses nothing since.
    let mut resumed = kv.watch(b"o/", first_revision(&kv, b"o/before").await - 1).await.unwrap();
    let mut seen = BTreeMap::new();
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), resumed.next()).await.unwrap().unwrap().unwrap() {
            Event::Put(e) => seen.insert(e.key, e.value),
            other => panic!("unexpected {other:?}"),
        };
    }
    assert_eq!(seen.get(&b"o/after"[..]).map(Vec::as_slice), Some(&b"2"[..]));
}

async fn first_revision(kv: &PgKv, key: &[u8]) -> i64 {
    kv.get(key).await.unwrap().unwrap().mod_revision
}

/// Deleted keys stay in the change log for the retention only: a watch resumed from
/// before a pruned delete is told it fell behind, never served a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_behind_the_change_log_is_told_so() {
    let pg = Postgres::start().await;
    let mut config = pg.config("prune");
    config.retention = Duration::from_secs(1);
    let kv = PgKv::connect(&config).await.unwrap();
    let rev = kv.txn(txn(vec![], vec![put("o/a", "1")])).await.unwrap().unwrap();
    kv.txn(txn(vec![], vec![Op::Delete(b"o/a".to_vec())])).await.unwrap().unwrap();
    // The pruner runs every second with a one-second retention.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut watch = kv.watch(b"o/", rev).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(2), watch.next()).await.unwrap().unwrap() {
            Err(KvError::Compacted(at)) => {
                assert!(at > rev);
                break;
            }
            Ok(Event::Delete(k, _)) => assert_eq!(k, b"o/a", "before pruning the delete is reported"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "the delete log was never pruned");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A watch from now on works.
    let mut watch = kv.watch(b"o/", 0).await.unwrap();
    kv.txn(txn(vec![], vec![put("o/b", "1")])).await.unwrap().unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(e, Event::Put(e) if e.key == b"o/b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_when_asked_and_then_required() {
    let pg = Postgres::start_tls().await;
    let kv = PgKv::connect(&pg.config("tls")).await.unwrap();
    kv.txn(txn(vec![], vec![put("o/k", "v")])).await.unwrap().unwrap();
    assert_eq!(kv.get(b"o/k").await.unwrap().unwrap().value, b"v");
    // Without the CA the client does not encrypt, and the server (hostssl only) refuses.
    let mut plain = pg.config("tls");
    plain.ca_file = None;
    let refused = match PgKv::connect(&plain).await {
        Ok(kv) => kv.get(b"o/k").await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a plaintext connection was served");
    // A CA the server's certificate does not chain to: refused, not downgraded.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("ca.pem");
    let ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(&other_ca, ca.pem()).unwrap();
    let mut wrong = pg.config("tls");
    wrong.ca_file = Some(other_ca);
    let refused = match PgKv::connect(&wrong).await {
        Ok(kv) => kv.get(b"o/k").await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a server certificate from another CA was accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_refused_by_name() {
    let refuse = |config: PgConfig| async move {
        match PgKv::connect(&config).await {
            Err(KvError::Refused(why)) => why,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        }
    };
    let mut c = PgConfig::new("postgresql://u:topsecret@127.0.0.1:1/db");
    c.schema = "Bad-Name".into();
    let why = refuse(c).await;
    assert!(why.contains("schema") && !why.contains("topsecret"), "{why}");
    let why = refuse(PgConfig::new("postgresql://u:topsecret@127.0.0.1:1/db?sslmode=require")).await;
    assert!(why.contains("CA") && !why.contains("topsecret"), "{why}");
    let why = refuse(PgConfig::new("not a url at all ===")).await;
    assert!(why.contains("URL"), "{why}");
    // Nobody listening: unavailable (retry), the password nowhere in the error.
    let mut down = PgConfig::new("postgresql://u:topsecret@127.0.0.1:1/db");
    down.connect_timeout = Duration::from_millis(500);
    match PgKv::connect(&down).await {
        Err(e @ KvError::Unavailable(_)) => assert!(!e.to_string().contains("topsecret"), "{e}"),
        other => panic!("{:?}", other.err()),
    }
}

/// Much data through one range read and one transaction (a multipart completion writes
/// thousands of keys at once): limits and `more` page through it exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transactions_and_pages() {
    let pg = Postgres::start().await;
    let kv = PgKv::connect(&pg.config("large")).await.unwrap();
    let ops: Vec<Op> = (0..10_000).map(|i| put(&format!("p/u\0{i:05}"), &"x".repeat(100))).collect();
    kv.txn(txn(vec![], ops)).await.unwrap().unwrap();
    let (mut start, end, mut n, mut pages) = (b"p/".to_vec(), prefix_end(b"p/"), 0, 0);
    loop {
        let page = kv.range(&start, &end, 1000).await.unwrap();
        n += page.entries.len();
        pages += 1;
        match page.entries.last() {
            Some(last) if page.more => start = [last.key.as_slice(), &[0]].concat(),
            _ => break,
        }
    }
    assert_eq!((n, pages), (10_000, 10));
}

/// `meta copy`'s engine: every record under the store's prefixes moves from etcd to
/// PostgreSQL (keys elsewhere stay), the check finds them equal, finds a changed value,
/// a missing key and an extra one, and a copy never merges into a service holding records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_move_from_etcd_to_postgres_and_are_verified() {
    use cluster::copy::{self, CopyError};
    let etcd = common::etcd::Etcd::start(1).await;
    let pg = Postgres::start().await;
    let from = cluster::etcd::EtcdKv::connect(&etcd.config("/copy/")).await.unwrap();
    let to = PgKv::connect(&pg.config("copy")).await.unwrap();
    let prefixes = store::cluster::RECORD_PREFIXES;
    let mut ops: Vec<Op> = (0..2500).map(|i| put(&format!("o/b\0k{i:05}"), &format!("v{i}"))).collect();
    ops.push(Op::Put(b"b/b".to_vec(), vec![0xff; 16 << 10]));
    ops.push(put("k/state", "stays in etcd"));
    for chunk in ops.chunks(100) {
        from.txn(txn(vec![], chunk.to_vec())).await.unwrap().unwrap();
    }
    let mut calls = 0;
    let t = copy::copy(&from, &to, &prefixes, |_| calls += 1).await.unwrap();
    assert_eq!(t.keys, 2501);
    assert!(calls >= 26, "progress after each batch ({calls})");
    assert!(to.get(b"k/state").await.unwrap().is_none(), "the key state is not a record");
    assert_eq!(to.get(b"b/b").await.unwrap().unwrap().value, vec![0xff; 16 << 10]);
    assert_eq!(copy::verify(&from, &to, &prefixes, |_| ()).await.unwrap().keys, 2501);

    let again = copy::copy(&from, &to, &prefixes, |_| ()).await;
    assert!(matches!(again, Err(CopyError::NotEmpty(p)) if p == "b/"), "a copy never merges");

    to.txn(txn(
        vec![],
        vec![put("o/b\0k00007", "changed"), Op::Delete(b"o/b\0k00009".to_vec()), put("o/b\0k99999", "extra")],
    ))
    .await
    .unwrap()
    .unwrap();
    match copy::verify(&from, &to, &prefixes, |_| ()).await {
        Err(CopyError::Differs { differ, first }) => {
            assert_eq!(differ, 3);
            assert_eq!(first, "o/b\0k00007");
        }
        other => panic!("{other:?}"),
    }
}

/// The database's data volume full (a tablespace on a small tmpfs; the write-ahead log on
/// another volume, as in production): a write is refused as `Full` — the S3 layer's 507,
/// not a 503 to retry — everything acknowledged before reads back, and once the volume
/// has room again writes go on with the same client. Needs root (mount).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_volume_is_full_and_nothing_acknowledged_is_lost() {
    use std::process::Command;
    let pg = Postgres::start().await;
    let volume = tempfile::tempdir().unwrap();
    let path = volume.path().to_str().unwrap().to_owned();
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=24m", "tmpfs", &path]).status().unwrap();
    assert!(mounted.success(), "mounting a tmpfs needs root (scripts/test runs as root)");
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").args(["-l", &self.0]).status();
        }
    }
    let _unmount = Unmount(path.clone());
    assert!(Command::new("chown").args(["postgres:postgres", &path]).status().unwrap().success());
    pg.psql(&format!("CREATE TABLESPACE small LOCATION '{path}'"));
    pg.psql("ALTER DATABASE postgres SET default_tablespace = small");
    let kv = PgKv::connect(&pg.config("full")).await.unwrap();

    kv_suite::fill_until_full(&kv, &vec![0x5a; 256 << 10], 10, 200).await;

    let grown = Command::new("mount").args(["-o", "remount,size=64m", &path]).status().unwrap();
    assert!(grown.success());
    let after = kv.txn(txn(vec![], vec![put("o/after", "room again")])).await.unwrap();
    assert!(after.is_some(), "writes go on once there is room");
    drop(kv);
    drop(pg);
}
