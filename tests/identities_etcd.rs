//! Identities kept in etcd (iam::KvKeep): concurrent changes from several writers all land
//! (none lost to a race), a follower sees each change within seconds, and what is kept
//! reads back whole.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use cluster::etcd::EtcdKv;
use cluster::kv::Kv;
use common::etcd::Etcd;
use iam::{Directory, Identities, Keep, KvKeep, NewCredential, NewUser, Refusal, Role, StoredSecret};

fn user(name: &str) -> NewUser {
    NewUser { name: name.into(), create_buckets: true, ..NewUser::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_all_land_and_followers_see_them() {
    let etcd = Etcd::start(1).await;
    let kv: Arc<dyn Kv> = Arc::new(EtcdKv::connect(&etcd.config("/iam/")).await.unwrap());
    let keep: Arc<dyn Keep> = Arc::new(KvKeep::new(kv.clone()));
    let (live, errors) = Identities::open(keep.clone(), None).await.unwrap();
    assert!(errors.is_empty());
    live.follow();

    // 8 writers, each adding 5 users with a key each, at once.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let keep = Arc::new(KvKeep::new(kv.clone()));
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let name = format!("u{w}-{i}");
                let mut add = |d: &mut Directory| {
                    d.create_user(user(&name), 1)?;
                    let c = NewCredential {
                        user: name.clone(),
                        access_key_id: format!("AK{w}X{i}"),
                        secret: StoredSecret::Plain(format!("secret-{w}-{i}")),
                        expires: None,
                    };
                    d.add_credential(c, 1).map(|_| ())
                };
                keep.change(&mut add).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (d, _) = keep.load().await.unwrap();
    assert_eq!(d.users.len(), 40, "no change lost to a race");
    assert_eq!(d.credentials.len(), 40);

    // The follower took every change in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while live.snapshot().counts() != (40, 40) {
        assert!(tokio::time::Instant::now() < deadline, "the follower lags: {:?}", live.snapshot().counts());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A disable made through another keep is in force within seconds.
    let mut off = |d: &mut Directory| d.set_enabled("AK3X2", false);
    KvKeep::new(kv.clone()).change(&mut off).await.unwrap();
    while live.snapshot().secret("AK3X2", 2) != Err(Refusal::Disabled) {
        assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(5), "disable not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Deleting a user deletes its records; a grant reads back.
    let mut change = |d: &mut Directory| {
        d.delete_user("u0-0")?;
        d.grant("u1-1", "photos", Role::Writer)
    };
    keep.change(&mut change).await.unwrap();
    let (d, _) = keep.load().await.unwrap();
    assert!(!d.users.contains_key("u0-0") && !d.credentials.contains_key("AK0X0"));
    assert_eq!(d.users["u1-1"].grants["photos"], Role::Writer);
    let records = kv.range(b"i/", &cluster::kv::prefix_end(b"i/"), 1000).await.unwrap().entries.len();
    assert_eq!(records, 39 + 39 + 1, "a record per user and per key, and the guard");

    // Key service API keys and the token key are kept too, and a token issued here is
    // honoured by the follower (another gateway), until its API key is deleted.
    live.ensure_token_key().await.unwrap();
    let digest = iam::apikey::digest("csk_test-secret");
    let mut add = |d: &mut Directory| {
        let new = iam::NewApiKey { name: "svc".into(), role: Role::Writer, user: None };
        d.add_apikey(new, digest.clone(), 1).map(|_| ())
    };
    keep.change(&mut add).await.unwrap();
    let (other, _) = Identities::open(Arc::new(KvKeep::new(kv.clone())), None).await.unwrap();
    let now = base::clock::now_unix();
    let (issued, caller) = other.snapshot().exchange_apikey("csk_test-secret", now).unwrap();
    assert_eq!(caller.role, Role::Writer);
    while live.snapshot().bearer(&issued.access_token, now).is_err() {
        assert!(
            tokio::time::Instant::now() < deadline + Duration::from_secs(10),
            "the follower lacks the API key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut remove = |d: &mut Directory| d.delete_apikey("svc").map(|_| ());
    keep.change(&mut remove).await.unwrap();
    while live.snapshot().bearer(&issued.access_token, now).is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline + Duration::from_secs(15),
            "a deleted API key's token still works"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
