//! Lifecycle rules over a filesystem store, called directly (no HTTP: the e2e suite runs
//! them through boto3 against a server with a shortened day): the configuration's round
//! trip and refusals as S3 answers them, `x-amz-expiration`, and passes run at chosen
//! times over unversioned, versioned and locked buckets and multipart uploads.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use engine::Backend;
use object::lifecycle::Day;
use object::lifecycle_pass::{Action, Counts, Event, Pacer};
use object::{BucketRecord, Objects};
use s3::CipherS3;
use s3s::dto::*;
use s3s::{Body, S3, S3Request, S3Result};
use store::fs::FsStore;

const DAY: u64 = 86_400;

struct Fixture {
    s3: CipherS3,
    objects: Objects,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = FsStore::open(&dir.path().join("store")).unwrap();
    let objects = Objects::new(Arc::new(store));
    Fixture { s3: CipherS3::new(objects.clone(), Backend::Accelerated, None), objects, _dir: dir }
}

fn req<T>(input: T) -> S3Request<T> {
    common::s3_request(input, "alice")
}

fn code<T>(r: S3Result<T>) -> String {
    match r {
        Ok(_) => "OK".into(),
        Err(e) => e.code().as_str().to_owned(),
    }
}

/// Records what a pass did; never stops it.
#[derive(Default)]
struct Log(Mutex<Vec<Event>>);

#[async_trait::async_trait]
impl Pacer for Log {
    async fn next(&self) -> bool {
        true
    }
    fn done(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Fixture {
    async fn bucket(&self, name: &str, versioned: bool, locked: bool) {
        let input = CreateBucketInput {
            bucket: name.into(),
            object_lock_enabled_for_bucket: locked.then_some(true),
            ..Default::default()
        };
        self.s3.create_bucket(req(input)).await.unwrap();
        if versioned && !locked {
            let input = PutBucketVersioningInput {
                bucket: name.into(),
                versioning_configuration: VersioningConfiguration {
                    status: Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
                    ..Default::default()
                },
                checksum_algorithm: None,
                content_md5: None,
                expected_bucket_owner: None,
                mfa: None,
            };
            self.s3.put_bucket_versioning(req(input)).await.unwrap();
        }
    }

    async fn rules(&self, bucket: &str, rules: Vec<LifecycleRule>) -> S3Result<()> {
        let input = PutBucketLifecycleConfigurationInput {
            bucket: bucket.into(),
            lifecycle_configuration: Some(BucketLifecycleConfiguration { rules }),
            ..Default::default()
        };
        self.s3.put_bucket_lifecycle_configuration(req(input)).await.map(|_| ())
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8], tagging: Option<&str>) -> PutObjectOutput {
        let input = PutObjectInput {
            bucket: bucket.into(),
            key: key.into(),
            body: Some(StreamingBlob::from(Body::from(Bytes::copy_from_slice(body)))),
            content_length: Some(body.len() as i64),
            tagging: tagging.map(str::to_owned),
            ..Default::default()
        };
        self.s3.put_object(req(input)).await.unwrap().output
    }

    async fn record(&self, bucket: &str) -> BucketRecord {
        self.objects.bucket(bucket).await.unwrap()
    }

    /// Runs a pass over `bucket` as of `now`; returns its counts and events.
    async fn pass(&self, bucket: &str, now: u64) -> (Counts, Vec<Event>) {
        let record = self.record(bucket).await;
        let log = Log::default();
        let rules = record.lifecycle.clone().unwrap();
        let counts = self.objects.lifecycle_pass(&record, &rules, now, Day::default(), &log).await.unwrap();
        (counts, log.0.into_inner().unwrap())
    }

    /// Every version of `bucket` as (key, marker, latest), in listing order.
    async fn versions(&self, bucket: &str) -> Vec<(String, bool, bool)> {
        let listed = self.objects.list_versions(bucket, "", None, None, 1000).await.unwrap();
        listed.into_iter().map(|v| (v.key, v.marker, v.latest)).collect()
    }
}

fn rule(id: &str) -> LifecycleRule {
    LifecycleRule {
        id: Some(id.into()),
        status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
        filter: Some(LifecycleRuleFilter::default()),
        abort_incomplete_multipart_upload: None,
        expiration: None,
        noncurrent_version_expiration: None,
        noncurrent_version_transitions: None,
        prefix: None,
        transitions: None,
    }
}

fn expire_days(id: &str, days: i32) -> LifecycleRule {
    LifecycleRule {
        expiration: Some(LifecycleExpiration { days: Some(days), ..Default::default() }),
        ..rule(id)
    }
}

fn with_prefix(mut r: LifecycleRule, prefix: &str) -> LifecycleRule {
    r.filter = Some(LifecycleRuleFilter { prefix: Some(prefix.into()), ..Default::default() });
    r
}

fn now() -> u64 {
    base::clock::now_unix()
}

#[tokio::test]
async fn configurations_round_trip_and_bad_ones_are_refused() {
    let f = fixture();
    f.bucket("bkt", false, false).await;
    let get = || async {
        f.s3.get_bucket_lifecycle_configuration(req(GetBucketLifecycleConfigurationInput {
            bucket: "bkt".into(),
            ..Default::default()
        }))
        .await
    };
    assert_eq!(code(get().await), "NoSuchLifecycleConfiguration");
    let legacy = LifecycleRule { filter: None, prefix: Some("old/".into()), ..expire_days("legacy", 3) };
    let and = LifecycleRule {
        filter: Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some("a/".into()),
                tags: Some(vec![Tag { key: Some("k".into()), value: Some("versioned".into()) }]),
                object_size_greater_than: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        }),
        noncurrent_version_expiration: Some(NoncurrentVersionExpiration {
            noncurrent_days: Some(2),
            newer_noncurrent_versions: Some(1),
        }),
        ..rule("and")
    };
    let abort = LifecycleRule {
        abort_incomplete_multipart_upload: Some(AbortIncompleteMultipartUpload {
            days_after_initiation: Some(1),
        }),
        ..rule("")
    };
    f.rules("bkt", vec![legacy.clone(), and.clone(), abort]).await.unwrap();
    let got = get().await.unwrap().output.rules.unwrap();
    assert_eq!(got[0], legacy, "the legacy Prefix reads back as sent");
    assert_eq!(got[1], and);
    assert_eq!(got[2].id.as_ref().map(String::len), Some(32), "an id is made for a rule without one");
    // Each refusal, with the code AWS gives.
    let transition = LifecycleRule {
        transitions: Some(vec![Transition {
            days: Some(1),
            storage_class: Some(TransitionStorageClass::from_static(TransitionStorageClass::GLACIER)),
            date: None,
        }]),
        ..expire_days("t", 3)
    };
    let cases: Vec<(&str, Vec<LifecycleRule>, &str)> = vec![
        ("no rules", vec![], "MalformedXML"),
        ("same id twice", vec![expire_days("x", 1), expire_days("x", 2)], "InvalidArgument"),
        ("no action", vec![rule("n")], "InvalidRequest"),
        ("days zero", vec![expire_days("z", 0)], "InvalidArgument"),
        (
            "filter and prefix",
            vec![LifecycleRule { prefix: Some("p".into()), ..expire_days("p", 1) }],
            "MalformedXML",
        ),
        (
            "status",
            vec![LifecycleRule { status: ExpirationStatus::from("On".to_owned()), ..expire_days("s", 1) }],
            "MalformedXML",
        ),
        ("transition to an archive class", vec![transition], "InvalidStorageClass"),
    ];
    for (name, rules, want) in cases {
        assert_eq!(code(f.rules("bkt", rules).await), want, "{name}");
    }
    assert_eq!(
        get().await.unwrap().output.rules.unwrap().len(),
        3,
        "a refused configuration changes nothing"
    );
    f.s3.delete_bucket_lifecycle(req(DeleteBucketLifecycleInput {
        bucket: "bkt".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    assert_eq!(code(get().await), "NoSuchLifecycleConfiguration");
    let other = common::s3_request(
        PutBucketLifecycleConfigurationInput {
            bucket: "bkt".into(),
            lifecycle_configuration: Some(BucketLifecycleConfiguration { rules: vec![expire_days("x", 1)] }),
            ..Default::default()
        },
        "mallory",
    );
    assert_eq!(code(f.s3.put_bucket_lifecycle_configuration(other).await), "AccessDenied");
}

#[tokio::test]
async fn expiration_headers_name_the_earliest_rule() {
    let f = fixture();
    f.bucket("bkt", false, false).await;
    f.rules("bkt", vec![expire_days("month", 30), with_prefix(expire_days("tmp", 1), "tmp/")]).await.unwrap();
    let put = f.put("bkt", "tmp/a", b"x", None).await;
    let header = put.expiration.unwrap();
    assert!(header.starts_with("expiry-date=\"") && header.ends_with("GMT\", rule-id=\"tmp\""), "{header}");
    let day = Day::default();
    let at = day.after(now(), 1);
    let date = httpdate(at);
    assert!(
        header.contains(&date) || header.contains(&httpdate(day.after(now() - 5, 1))),
        "{header} vs {date}"
    );
    let head = f
        .s3
        .head_object(req(HeadObjectInput { bucket: "bkt".into(), key: "tmp/a".into(), ..Default::default() }))
        .await
        .unwrap();
    assert_eq!(head.output.expiration.as_deref(), Some(header.as_str()));
    let get = f
        .s3
        .get_object(req(GetObjectInput { bucket: "bkt".into(), key: "tmp/a".into(), ..Default::default() }))
        .await
        .unwrap();
    assert_eq!(get.output.expiration.as_deref(), Some(header.as_str()));
    let other = f.put("bkt", "keep", b"x", None).await.expiration.unwrap();
    assert!(other.ends_with("rule-id=\"month\""), "{other}");
}

fn httpdate(at: u64) -> String {
    let mut out = Vec::new();
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at))
        .format(TimestampFormat::HttpDate, &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn unversioned_objects_expire_by_prefix_tag_and_size() {
    let f = fixture();
    f.bucket("bkt", false, false).await;
    let tagged = LifecycleRule {
        filter: Some(LifecycleRuleFilter {
            tag: Some(Tag { key: Some("class".into()), value: Some("scratch".into()) }),
            ..Default::default()
        }),
        ..expire_days("tagged", 1)
    };
    let big = LifecycleRule {
        filter: Some(LifecycleRuleFilter { object_size_greater_than: Some(100), ..Default::default() }),
        ..expire_days("big", 2)
    };
    f.rules("bkt", vec![with_prefix(expire_days("logs", 1), "logs/"), tagged, big]).await.unwrap();
    f.put("bkt", "logs/1", b"a", None).await;
    f.put("bkt", "keep/1", b"a", None).await;
    f.put("bkt", "keep/2", b"a", Some("class=keep")).await;
    f.put("bkt", "scratch", b"a", Some("class=scratch")).await;
    f.put("bkt", "large", &[7u8; 200], None).await;
    let (counts, _) = f.pass("bkt", now()).await;
    assert_eq!(counts.of(Action::Expired), 0, "nothing is due yet");
    let (counts, events) = f.pass("bkt", now() + DAY + DAY).await;
    assert_eq!(counts.of(Action::Expired), 2, "{events:?}");
    let mut gone: Vec<(String, String)> = events.iter().map(|e| (e.key.clone(), e.rule.clone())).collect();
    gone.sort();
    assert_eq!(gone, [("logs/1".to_owned(), "logs".to_owned()), ("scratch".to_owned(), "tagged".to_owned())]);
    let (counts, _) = f.pass("bkt", now() + 3 * DAY).await;
    assert_eq!(counts.of(Action::Expired), 1, "the large object, a day later");
    let left: Vec<String> = f.versions("bkt").await.into_iter().map(|v| v.0).collect();
    assert_eq!(left, ["keep/1", "keep/2"]);
}

#[tokio::test]
async fn versioned_buckets_get_markers_then_lose_old_versions_and_bare_markers() {
    let f = fixture();
    f.bucket("versioned", true, false).await;
    let noncurrent = LifecycleRule {
        noncurrent_version_expiration: Some(NoncurrentVersionExpiration {
            noncurrent_days: Some(1),
            newer_noncurrent_versions: Some(1),
        }),
        ..rule("old")
    };
    let markers = LifecycleRule {
        expiration: Some(LifecycleExpiration {
            expired_object_delete_marker: Some(true),
            ..Default::default()
        }),
        ..rule("markers")
    };
    f.rules("versioned", vec![expire_days("current", 1), noncurrent, markers]).await.unwrap();
    for i in 0..3 {
        f.put("versioned", "k", format!("v{i}").as_bytes(), None).await;
    }
    // The current version expires: a delete marker hides it.
    let (counts, _) = f.pass("versioned", now() + 2 * DAY).await;
    assert_eq!(counts.of(Action::MarkerMade), 1);
    assert_eq!(counts.of(Action::NoncurrentRemoved), 1, "the oldest of two noncurrent versions");
    assert_eq!(
        f.versions("versioned").await,
        [("k".into(), true, true), ("k".into(), false, false), ("k".into(), false, false)]
    );
    // A day after the marker: the one noncurrent version kept by NewerNoncurrentVersions
    // stays, the one made noncurrent by the marker goes. Nothing is left but the marker
    // and the newest noncurrent version.
    let (counts, _) = f.pass("versioned", now() + 4 * DAY).await;
    assert_eq!(counts.of(Action::NoncurrentRemoved), 1);
    assert_eq!(counts.of(Action::MarkerRemoved), 0, "a version is still under the marker");
    assert_eq!(f.versions("versioned").await.len(), 2);
    // Without NewerNoncurrentVersions the last one goes, then the bare marker.
    f.rules(
        "versioned",
        vec![LifecycleRule {
            noncurrent_version_expiration: Some(NoncurrentVersionExpiration {
                noncurrent_days: Some(1),
                newer_noncurrent_versions: None,
            }),
            expiration: Some(LifecycleExpiration {
                expired_object_delete_marker: Some(true),
                ..Default::default()
            }),
            ..rule("all")
        }],
    )
    .await
    .unwrap();
    let (counts, events) = f.pass("versioned", now() + 6 * DAY).await;
    assert_eq!(counts.of(Action::NoncurrentRemoved), 1, "{events:?}");
    assert_eq!(counts.of(Action::MarkerRemoved), 1, "{events:?}");
    assert!(f.versions("versioned").await.is_empty());
}

#[tokio::test]
async fn locked_versions_are_kept_and_counted() {
    let f = fixture();
    f.bucket("locked", true, true).await;
    let input = PutObjectLockConfigurationInput {
        bucket: "locked".into(),
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule: Some(ObjectLockRule {
                default_retention: Some(DefaultRetention {
                    days: Some(30),
                    mode: Some(ObjectLockRetentionMode::from_static(ObjectLockRetentionMode::COMPLIANCE)),
                    years: None,
                }),
            }),
        }),
        ..Default::default()
    };
    f.s3.put_object_lock_configuration(req(input)).await.unwrap();
    let noncurrent = LifecycleRule {
        noncurrent_version_expiration: Some(NoncurrentVersionExpiration {
            noncurrent_days: Some(1),
            newer_noncurrent_versions: None,
        }),
        ..expire_days("all", 1)
    };
    f.rules("locked", vec![noncurrent]).await.unwrap();
    f.put("locked", "k", b"1", None).await;
    f.put("locked", "k", b"2", None).await;
    let (counts, _) = f.pass("locked", now() + 3 * DAY).await;
    assert_eq!(counts.of(Action::MarkerMade), 1, "a marker does not remove the locked version");
    assert_eq!(counts.of(Action::KeptLocked), 1, "the noncurrent version is retained");
    assert_eq!(counts.of(Action::NoncurrentRemoved), 0);
    let versions = f.versions("locked").await;
    assert_eq!(versions.iter().filter(|v| !v.1).count(), 2, "both written versions are kept");
}

#[tokio::test]
async fn stale_uploads_are_aborted_and_fresh_ones_kept() {
    let f = fixture();
    f.bucket("uploads", false, false).await;
    let abort = LifecycleRule {
        abort_incomplete_multipart_upload: Some(AbortIncompleteMultipartUpload {
            days_after_initiation: Some(2),
        }),
        filter: Some(LifecycleRuleFilter { prefix: Some("up/".into()), ..Default::default() }),
        ..rule("abort")
    };
    f.rules("uploads", vec![abort]).await.unwrap();
    let mut ids = Vec::new();
    for key in ["up/a", "other/b"] {
        let create =
            CreateMultipartUploadInput { bucket: "uploads".into(), key: key.into(), ..Default::default() };
        ids.push(f.s3.create_multipart_upload(req(create)).await.unwrap().output.upload_id.unwrap());
    }
    let (counts, _) = f.pass("uploads", now() + DAY).await;
    assert_eq!(counts.of(Action::UploadAborted), 0);
    let (counts, events) = f.pass("uploads", now() + 3 * DAY).await;
    assert_eq!(counts.of(Action::UploadAborted), 1);
    assert_eq!(events[0].id.as_deref(), Some(ids[0].as_str()));
    let left = f.objects.list_uploads("uploads").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, "other/b");
}

/// Stops the pass's rules from being the bucket's after `after` actions.
struct ChangesRules<'a> {
    f: &'a Fixture,
    after: usize,
    seen: Mutex<usize>,
}

#[async_trait::async_trait]
impl Pacer for ChangesRules<'_> {
    async fn next(&self) -> bool {
        let n = {
            let mut seen = self.seen.lock().unwrap();
            *seen += 1;
            *seen
        };
        if n == self.after {
            self.f
                .s3
                .delete_bucket_lifecycle(req(DeleteBucketLifecycleInput {
                    bucket: "deleted".into(),
                    ..Default::default()
                }))
                .await
                .unwrap();
        }
        true
    }
    fn done(&self, _: &Event) {}
}

#[tokio::test]
async fn a_pass_stops_soon_after_its_rules_are_deleted() {
    let f = fixture();
    f.bucket("deleted", false, false).await;
    f.rules("deleted", vec![expire_days("all", 1)]).await.unwrap();
    for i in 0..300 {
        f.put("deleted", &format!("k{i:03}"), b"x", None).await;
    }
    let record = f.record("deleted").await;
    let rules = record.lifecycle.clone().unwrap();
    let pacer = ChangesRules { f: &f, after: 10, seen: Mutex::new(0) };
    let counts =
        f.objects.lifecycle_pass(&record, &rules, now() + 2 * DAY, Day::default(), &pacer).await.unwrap();
    let expired = counts.of(Action::Expired);
    assert!((9..=80).contains(&expired), "stopped within a recheck of the deletion: {expired}");
    assert_eq!(f.versions("deleted").await.len() as u64, 300 - expired);
}

fn transition(id: &str, days: i32, class: &str) -> LifecycleRule {
    LifecycleRule {
        transitions: Some(vec![Transition {
            days: Some(days),
            date: None,
            storage_class: Some(TransitionStorageClass::from(class.to_owned())),
        }]),
        ..rule(id)
    }
}

#[tokio::test]
async fn transitions_change_the_class_reads_and_listings_show() {
    let f = fixture();
    f.bucket("cold", true, false).await;
    let mut staged = transition("ia", 1, "STANDARD_IA");
    staged.transitions.as_mut().unwrap().push(Transition {
        days: Some(3),
        date: None,
        storage_class: Some(TransitionStorageClass::from("GLACIER_IR".to_owned())),
    });
    staged.noncurrent_version_transitions = Some(vec![NoncurrentVersionTransition {
        noncurrent_days: Some(1),
        newer_noncurrent_versions: None,
        storage_class: Some(TransitionStorageClass::from("ONEZONE_IA".to_owned())),
    }]);
    f.rules("cold", vec![staged.clone()]).await.unwrap();
    let got =
        f.s3.get_bucket_lifecycle_configuration(req(GetBucketLifecycleConfigurationInput {
            bucket: "cold".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(got.output.rules.unwrap()[0], staged, "transitions read back as sent");
    f.put("cold", "k", b"old", Some("a=b")).await;
    f.put("cold", "k", b"new", None).await;
    let class = |v: &object::versions::ListedVersion| v.storage_class.clone();
    let (counts, _) = f.pass("cold", now()).await;
    assert_eq!(counts.of(Action::Transitioned), 0, "nothing is due yet");
    let (counts, events) = f.pass("cold", now() + 2 * DAY).await;
    assert_eq!(counts.of(Action::Transitioned), 2, "{events:?}");
    let listed = f.objects.list_versions("cold", "", None, None, 10).await.unwrap();
    let classes: Vec<Option<String>> = listed.iter().map(class).collect();
    assert_eq!(classes, [Some("STANDARD_IA".to_owned()), Some("ONEZONE_IA".to_owned())]);
    let (counts, _) = f.pass("cold", now() + 2 * DAY).await;
    assert_eq!(counts.of(Action::Transitioned), 0, "a class given stays given");
    let (counts, _) = f.pass("cold", now() + 4 * DAY).await;
    assert_eq!(counts.of(Action::Transitioned), 1, "the later transition of the current version");
    let head = f
        .s3
        .head_object(req(HeadObjectInput { bucket: "cold".into(), key: "k".into(), ..Default::default() }))
        .await
        .unwrap();
    assert_eq!(head.output.storage_class.as_ref().map(StorageClass::as_str), Some("GLACIER_IR"));
    let listed = f.objects.list("cold", object::Page::new("", None, 10)).await.unwrap();
    assert_eq!(listed[0].storage_class.as_deref(), Some("GLACIER_IR"));
    let tags =
        f.s3.get_object_tagging(req(GetObjectTaggingInput {
            bucket: "cold".into(),
            key: "k".into(),
            version_id: Some(
                f.objects.list_versions("cold", "", None, None, 10).await.unwrap()[1].version_id.clone(),
            ),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(tags.output.tag_set.len(), 1, "a transition keeps the version's tags");
    let body =
        f.s3.get_object(req(GetObjectInput { bucket: "cold".into(), key: "k".into(), ..Default::default() }))
            .await
            .unwrap();
    assert_eq!(body.output.storage_class.as_ref().map(StorageClass::as_str), Some("GLACIER_IR"));
}

#[tokio::test]
async fn noncurrent_delete_markers_expire_like_versions() {
    let f = fixture();
    f.bucket("markers", true, false).await;
    let noncurrent = LifecycleRule {
        noncurrent_version_expiration: Some(NoncurrentVersionExpiration {
            noncurrent_days: Some(1),
            newer_noncurrent_versions: None,
        }),
        ..rule("old")
    };
    f.rules("markers", vec![noncurrent]).await.unwrap();
    f.put("markers", "k", b"1", None).await;
    f.s3.delete_object(req(DeleteObjectInput {
        bucket: "markers".into(),
        key: "k".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    f.put("markers", "k", b"2", None).await;
    assert_eq!(f.versions("markers").await.iter().filter(|v| v.1).count(), 1, "a noncurrent marker");
    let (counts, events) = f.pass("markers", now() + 2 * DAY).await;
    assert_eq!(counts.of(Action::NoncurrentRemoved), 2, "the marker and the first version: {events:?}");
    assert_eq!(f.versions("markers").await, [("k".to_owned(), false, true)]);
}

#[tokio::test]
async fn expiration_in_days_also_removes_bare_markers_once_as_old() {
    let f = fixture();
    f.bucket("bare", true, false).await;
    f.rules("bare", vec![expire_days("days", 2)]).await.unwrap();
    f.put("bare", "k", b"1", None).await;
    f.s3.delete_object(req(DeleteObjectInput {
        bucket: "bare".into(),
        key: "k".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    let version = f.objects.list_versions("bare", "", None, None, 10).await.unwrap()[1].version_id.clone();
    f.objects.delete_version("bare", "k", &version, None).await.unwrap();
    assert_eq!(f.versions("bare").await, [("k".to_owned(), true, true)], "a bare marker");
    let (counts, _) = f.pass("bare", now() + DAY).await;
    assert_eq!(counts.of(Action::MarkerRemoved), 0, "not before it is two days old");
    let (counts, _) = f.pass("bare", now() + 3 * DAY).await;
    assert_eq!(counts.of(Action::MarkerRemoved), 1);
    assert!(f.versions("bare").await.is_empty());
}
