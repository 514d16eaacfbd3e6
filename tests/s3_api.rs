//! The S3 operations called directly (no HTTP, no signatures: those are the e2e tests'
//! job) over a filesystem store: multipart in every protection mode and its error rules,
//! conditional reads, digest verification, size limits, ownership, bucket encryption with
//! a real SoftHSM2 token, and integrity failures on damaged multipart objects.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use common::hsm::with_token;
use common::plaintext;
use engine::Backend;
use futures_util::StreamExt;
use keys::KeyRef;
use md5::{Digest, Md5};
use s3::CipherS3;
use s3s::dto::*;
use s3s::{Body, S3, S3Request, S3Result};
use store::fs::FsStore;

const MIB: usize = 1 << 20;

struct Fixture {
    s3: CipherS3,
    dir: tempfile::TempDir,
}

fn fixture(keys: Option<Arc<keys::KeyManager>>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = FsStore::open(&dir.path().join("store")).unwrap();
    let keys = keys.map(|k| k as Arc<dyn keys::KeySource>);
    Fixture { s3: CipherS3::new(object::Objects::new(Arc::new(store)), Backend::Accelerated, keys), dir }
}

fn req<T>(input: T, user: &str) -> S3Request<T> {
    common::s3_request(input, user)
}

fn blob(bytes: &[u8]) -> Option<StreamingBlob> {
    Some(StreamingBlob::from(Body::from(Bytes::copy_from_slice(bytes))))
}

async fn read_all(b: Option<StreamingBlob>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut b = b.ok_or("no body")?;
    while let Some(chunk) = b.next().await {
        out.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn code<T>(r: S3Result<T>) -> String {
    match r {
        Ok(_) => "OK".into(),
        Err(e) => e.code().as_str().to_owned(),
    }
}

fn md5_hex(b: &[u8]) -> String {
    Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

struct SseC {
    key: String,
    md5: String,
}

fn sse_c(b: u8) -> SseC {
    let raw = [b; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    SseC { key: b64.encode(raw), md5: b64.encode(Md5::digest(raw)) }
}

async fn bucket(s3: &CipherS3, name: &str) {
    let input = CreateBucketInput { bucket: name.into(), ..Default::default() };
    s3.create_bucket(req(input, "alice")).await.unwrap();
}

async fn get(s3: &CipherS3, b: &str, k: &str, key: Option<&SseC>) -> S3Result<Vec<u8>> {
    let input = GetObjectInput {
        bucket: b.into(),
        key: k.into(),
        sse_customer_algorithm: key.map(|_| "AES256".into()),
        sse_customer_key: key.map(|k| k.key.clone()),
        sse_customer_key_md5: key.map(|k| k.md5.clone()),
        ..Default::default()
    };
    let out = s3.get_object(req(input, "alice")).await?;
    read_all(out.output.body).await.map_err(|e| s3s::s3_error!(InternalError, "{e}"))
}

/// Uploads `parts` as a multipart object; returns the Complete result.
async fn multipart(
    s3: &CipherS3,
    b: &str,
    k: &str,
    parts: &[Vec<u8>],
    key: Option<&SseC>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let alg = key.map(|_| "AES256".to_owned());
    let create = CreateMultipartUploadInput {
        bucket: b.into(),
        key: k.into(),
        sse_customer_algorithm: alg.clone(),
        sse_customer_key: key.map(|k| k.key.clone()),
        sse_customer_key_md5: key.map(|k| k.md5.clone()),
        ..Default::default()
    };
    let id = s3.create_multipart_upload(req(create, "alice")).await?.output.upload_id.unwrap();
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let input = UploadPartInput {
            bucket: b.into(),
            key: k.into(),
            upload_id: id.clone(),
            part_number: i as i32 + 1,
            body: blob(p),
            content_length: Some(p.len() as i64),
            sse_customer_algorithm: alg.clone(),
            sse_customer_key: key.map(|k| k.key.clone()),
            sse_customer_key_md5: key.map(|k| k.md5.clone()),
            ..Default::default()
        };
        let etag = s3.upload_part(req(input, "alice")).await?.output.e_tag;
        done.push(CompletedPart { e_tag: etag, part_number: Some(i as i32 + 1), ..Default::default() });
    }
    let input = CompleteMultipartUploadInput {
        bucket: b.into(),
        key: k.into(),
        upload_id: id,
        multipart_upload: Some(CompletedMultipartUpload { parts: Some(done) }),
        sse_customer_algorithm: alg,
        sse_customer_key: key.map(|k| k.key.clone()),
        sse_customer_key_md5: key.map(|k| k.md5.clone()),
        ..Default::default()
    };
    s3.complete_multipart_upload(req(input, "alice")).await
}

use s3s::S3Response;

#[tokio::test(flavor = "multi_thread")]
async fn multipart_objects_round_trip_in_default_and_sse_c_modes() {
    let f = fixture(None);
    bucket(&f.s3, "parts").await;
    let parts = vec![plaintext(5 * MIB, 1), plaintext(5 * MIB + 3, 2), plaintext(777, 3)];
    let whole = parts.concat();
    let done = multipart(&f.s3, "parts", "aont", &parts, None).await.unwrap();
    let mut md5s = Md5::new();
    for p in &parts {
        md5s.update(Md5::digest(p));
    }
    let want: String = md5s.finalize().iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(done.output.e_tag.unwrap().value(), format!("{want}-3"));
    assert_eq!(get(&f.s3, "parts", "aont", None).await.unwrap(), whole);

    // Ranges crossing part boundaries, and each part by number.
    for (first, last) in
        [(0, 0), (5 * MIB - 1, 5 * MIB), (5 * MIB - 10, 10 * MIB + 10), (whole.len() - 1, whole.len() - 1)]
    {
        let input = GetObjectInput {
            bucket: "parts".into(),
            key: "aont".into(),
            range: Some(Range::Int { first: first as u64, last: Some(last as u64) }),
            ..Default::default()
        };
        let out = f.s3.get_object(req(input, "alice")).await.unwrap();
        assert_eq!(read_all(out.output.body).await.unwrap(), &whole[first..=last], "{first}-{last}");
    }
    for (n, p) in parts.iter().enumerate() {
        let input = GetObjectInput {
            bucket: "parts".into(),
            key: "aont".into(),
            part_number: Some(n as i32 + 1),
            ..Default::default()
        };
        let out = f.s3.get_object(req(input, "alice")).await.unwrap();
        assert_eq!(out.output.parts_count, Some(3));
        assert_eq!(&read_all(out.output.body).await.unwrap(), p);
    }

    // SSE-C: the key on every part and on Complete; reads need it.
    let k = sse_c(7);
    let done = multipart(&f.s3, "parts", "secret", &parts, Some(&k)).await.unwrap();
    assert_ne!(done.output.e_tag.unwrap().value(), format!("{want}-3"), "SSE-C ETags reveal no MD5");
    assert_eq!(get(&f.s3, "parts", "secret", Some(&k)).await.unwrap(), whole);
    assert_eq!(code(get(&f.s3, "parts", "secret", None).await), "InvalidRequest");
    assert_eq!(code(get(&f.s3, "parts", "secret", Some(&sse_c(8))).await), "AccessDenied");
    assert_eq!(code(multipart(&f.s3, "parts", "mixed", &parts[..1], None).await), "OK");
    // The stored bytes hold neither the plaintext nor the key.
    for entry in walk(f.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!bytes.windows(64).any(|w| w == &parts[1][1000..1064]), "plaintext in {entry:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_rules_are_enforced() {
    let f = fixture(None);
    bucket(&f.s3, "rules").await;
    let create = CreateMultipartUploadInput { bucket: "rules".into(), key: "k".into(), ..Default::default() };
    let id = f.s3.create_multipart_upload(req(create, "alice")).await.unwrap().output.upload_id.unwrap();
    let part = |n: i32, body: &[u8], user: &str| {
        let input = UploadPartInput {
            bucket: "rules".into(),
            key: "k".into(),
            upload_id: id.clone(),
            part_number: n,
            body: blob(body),
            ..Default::default()
        };
        req(input, user)
    };
    assert_eq!(code(f.s3.upload_part(part(0, b"x", "alice")).await), "InvalidArgument");
    assert_eq!(code(f.s3.upload_part(part(10_001, b"x", "alice")).await), "InvalidArgument");
    assert_eq!(code(f.s3.upload_part(part(1, b"x", "bob")).await), "AccessDenied");
    let e1 = f.s3.upload_part(part(1, b"small", "alice")).await.unwrap().output.e_tag.unwrap();
    let e2 = f.s3.upload_part(part(2, b"tail", "alice")).await.unwrap().output.e_tag.unwrap();
    assert_eq!(e1.value(), md5_hex(b"small"));
    let complete = |parts: Vec<(i32, ETag)>| {
        let parts = parts
            .into_iter()
            .map(|(n, e)| CompletedPart { e_tag: Some(e), part_number: Some(n), ..Default::default() })
            .collect();
        let input = CompleteMultipartUploadInput {
            bucket: "rules".into(),
            key: "k".into(),
            upload_id: id.clone(),
            multipart_upload: Some(CompletedMultipartUpload { parts: Some(parts) }),
            ..Default::default()
        };
        req(input, "alice")
    };
    assert_eq!(code(f.s3.complete_multipart_upload(complete(vec![])).await), "MalformedXML");
    assert_eq!(
        code(f.s3.complete_multipart_upload(complete(vec![(2, e2.clone()), (1, e1.clone())])).await),
        "InvalidPartOrder"
    );
    assert_eq!(code(f.s3.complete_multipart_upload(complete(vec![(1, e2.clone())])).await), "InvalidPart");
    assert_eq!(code(f.s3.complete_multipart_upload(complete(vec![(3, e2.clone())])).await), "InvalidPart");
    assert_eq!(
        code(f.s3.complete_multipart_upload(complete(vec![(1, e1.clone()), (2, e2.clone())])).await),
        "EntityTooSmall"
    );
    // A part uploaded again replaces the earlier one.
    let big = plaintext(5 * MIB, 9);
    let e1 = f.s3.upload_part(part(1, &big, "alice")).await.unwrap().output.e_tag.unwrap();
    let list =
        f.s3.list_parts(req(
            ListPartsInput {
                bucket: "rules".into(),
                key: "k".into(),
                upload_id: id.clone(),
                ..Default::default()
            },
            "alice",
        ))
        .await
        .unwrap();
    let sizes: Vec<_> = list.output.parts.unwrap().iter().map(|p| (p.part_number, p.size)).collect();
    assert_eq!(sizes, vec![(Some(1), Some(5 * MIB as i64)), (Some(2), Some(4))]);
    f.s3.complete_multipart_upload(complete(vec![(1, e1), (2, e2)])).await.unwrap();
    assert_eq!(get(&f.s3, "rules", "k", None).await.unwrap(), [big.as_slice(), b"tail"].concat());
    assert_eq!(code(f.s3.upload_part(part(3, b"late", "alice")).await), "NoSuchUpload");
    let uploads =
        f.s3.list_multipart_uploads(req(
            ListMultipartUploadsInput { bucket: "rules".into(), ..Default::default() },
            "alice",
        ))
        .await
        .unwrap();
    assert!(uploads.output.uploads.unwrap().is_empty());

    // Abort leaves nothing; a bogus id is NoSuchUpload.
    let create =
        CreateMultipartUploadInput { bucket: "rules".into(), key: "gone".into(), ..Default::default() };
    let id = f.s3.create_multipart_upload(req(create, "alice")).await.unwrap().output.upload_id.unwrap();
    let abort = AbortMultipartUploadInput {
        bucket: "rules".into(),
        key: "gone".into(),
        upload_id: id.clone(),
        ..Default::default()
    };
    f.s3.abort_multipart_upload(req(abort.clone(), "alice")).await.unwrap();
    assert_eq!(code(f.s3.abort_multipart_upload(req(abort, "alice")).await), "NoSuchUpload");
    let bogus = AbortMultipartUploadInput {
        bucket: "rules".into(),
        key: "gone".into(),
        upload_id: "../../x".into(),
        ..Default::default()
    };
    assert_eq!(code(f.s3.abort_multipart_upload(req(bogus, "alice")).await), "NoSuchUpload");
}

#[tokio::test(flavor = "multi_thread")]
async fn conditions_digests_and_limits() {
    let mut f = fixture(None);
    f.s3.set_max_object_size(MIB as u64);
    bucket(&f.s3, "cond").await;
    let body = plaintext(1000, 4);
    let put = |key: &str, body: &[u8], md5: Option<String>, sha: Option<String>| {
        let input = PutObjectInput {
            bucket: "cond".into(),
            key: key.into(),
            body: blob(body),
            content_length: Some(body.len() as i64),
            content_md5: md5,
            checksum_sha256: sha,
            ..Default::default()
        };
        req(input, "alice")
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let etag =
        f.s3.put_object(put("o", &body, Some(b64.encode(Md5::digest(&body))), None))
            .await
            .unwrap()
            .output
            .e_tag
            .unwrap();
    assert_eq!(
        code(f.s3.put_object(put("bad", &body, Some(b64.encode(Md5::digest(b"x"))), None)).await),
        "BadDigest"
    );
    let sha = b64.encode(sha2::Sha256::digest(&body));
    assert_eq!(code(f.s3.put_object(put("sha", &body, None, Some(sha))).await), "OK");
    let wrong = b64.encode(sha2::Sha256::digest(b"x"));
    assert_eq!(code(f.s3.put_object(put("bad", &body, None, Some(wrong))).await), "BadDigest");
    assert_eq!(code(get(&f.s3, "cond", "bad", None).await), "NoSuchKey", "nothing stored after BadDigest");
    assert_eq!(code(f.s3.put_object(put("big", &plaintext(MIB + 1, 1), None, None)).await), "EntityTooLarge");

    let cond = |m: Option<ETagCondition>, n: Option<ETagCondition>| {
        let input = GetObjectInput {
            bucket: "cond".into(),
            key: "o".into(),
            if_match: m,
            if_none_match: n,
            ..Default::default()
        };
        req(input, "alice")
    };
    let same = ETagCondition::ETag(etag.clone());
    let other = ETagCondition::ETag(ETag::Strong("nope".into()));
    assert_eq!(code(f.s3.get_object(cond(Some(same.clone()), None)).await), "OK");
    assert_eq!(code(f.s3.get_object(cond(Some(other.clone()), None)).await), "PreconditionFailed");
    assert_eq!(code(f.s3.get_object(cond(None, Some(same))).await), "NotModified");
    assert_eq!(code(f.s3.get_object(cond(None, Some(other))).await), "OK");
    assert_eq!(code(get(&f.s3, "cond", "o", None).await), "OK");
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_multipart_objects_fail_their_integrity_check() {
    let f = fixture(None);
    bucket(&f.s3, "dmg").await;
    let k = sse_c(3);
    let parts = vec![plaintext(5 * MIB, 5), plaintext(100_000, 6)];
    multipart(&f.s3, "dmg", "o", &parts, Some(&k)).await.unwrap();
    let file = walk(f.dir.path()).into_iter().find(|p| p.extension().is_some_and(|e| e == "o")).unwrap();
    let original = std::fs::read(&file).unwrap();
    // A flipped bit in the second part's data: the first part still reads, the whole fails.
    let mut damaged = original.clone();
    damaged[5 * MIB + 5000] ^= 1;
    std::fs::write(&file, &damaged).unwrap();
    let input = GetObjectInput {
        bucket: "dmg".into(),
        key: "o".into(),
        sse_customer_algorithm: Some("AES256".into()),
        sse_customer_key: Some(k.key.clone()),
        sse_customer_key_md5: Some(k.md5.clone()),
        ..Default::default()
    };
    let out = f.s3.get_object(req(input, "alice")).await.unwrap();
    let read = read_all(out.output.body).await;
    assert!(read.is_err(), "a damaged object must not read back");
    // Truncated by one byte: refused when opened.
    std::fs::write(&file, [&original[..5 * MIB], &original[5 * MIB + 1..]].concat()).unwrap();
    assert!(get(&f.s3, "dmg", "o", Some(&k)).await.is_err());
    std::fs::write(&file, &original).unwrap();
    assert_eq!(get(&f.s3, "dmg", "o", Some(&k)).await.unwrap(), parts.concat());
}

/// PutBucketEncryption of `bucket` with aws:kms and root key `key`.
fn kms_rule(bucket: &str, key: &str) -> S3Request<PutBucketEncryptionInput> {
    let by_default = ServerSideEncryptionByDefault {
        sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS),
        kms_master_key_id: Some(key.to_owned()),
    };
    let config = ServerSideEncryptionConfiguration {
        rules: vec![ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(by_default),
            bucket_key_enabled: Some(true),
        }],
    };
    let input = PutBucketEncryptionInput::builder()
        .bucket(bucket.into())
        .server_side_encryption_configuration(config)
        .build()
        .unwrap();
    req(input, "alice")
}

#[test]
fn a_root_key_suspended_while_a_body_streams_refuses_the_commit() {
    with_token("a_root_key_suspended_while_a_body_streams_refuses_the_commit", |token| {
        let manager = Arc::new(token.manager(std::time::Duration::from_secs(60)));
        let crn = manager.create("upload-root").unwrap().crn;
        let f = fixture(Some(manager.clone()));
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            bucket(&f.s3, "kp-bucket").await;
            f.s3.put_bucket_encryption(kms_rule("kp-bucket", &crn)).await.unwrap();
            for (key, action) in [("suspended", "disable"), ("deleted", "delete")] {
                // The key is usable when the upload starts.
                if action == "delete" {
                    manager.enable(&KeyRef::parse(&crn)).unwrap();
                }
                let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
                let stream =
                    futures_util::stream::unfold(
                        rx,
                        |mut rx| async move { rx.recv().await.map(|i| (i, rx)) },
                    );
                let input = PutObjectInput {
                    bucket: "kp-bucket".into(),
                    key: key.into(),
                    body: Some(StreamingBlob::wrap(stream)),
                    content_length: Some(2 * MIB as i64),
                    ..Default::default()
                };
                let feed = async {
                    tx.send(Ok(Bytes::from(plaintext(MIB, 1)))).await.unwrap();
                    if action == "disable" {
                        manager.disable(&KeyRef::parse(&crn)).unwrap();
                    } else {
                        manager.delete(&KeyRef::parse(&crn), true).unwrap();
                    }
                    // The request may already have failed (the key is gone): then nobody reads.
                    let _ = tx.send(Ok(Bytes::from(plaintext(MIB, 2)))).await;
                    drop(tx);
                };
                let (put, ()) = tokio::join!(f.s3.put_object(req(input, "alice")), feed);
                assert_eq!(code(put), "AccessDenied", "{action} during the body");
                let head =
                    HeadObjectInput { bucket: "kp-bucket".into(), key: key.into(), ..Default::default() };
                assert_eq!(
                    code(f.s3.head_object(req(head, "alice")).await),
                    "NoSuchKey",
                    "nothing committed"
                );
            }
            assert!(walk(&f.dir.path().join("store/tmp")).is_empty(), "temporary files left");
        });
    });
}

#[test]
fn bucket_encryption_maps_aws_kms_onto_root_keys() {
    with_token("bucket_encryption_maps_aws_kms_onto_root_keys", |token| {
        let manager = Arc::new(token.manager(std::time::Duration::from_secs(60)));
        let crn = manager.create("bucket-root").unwrap().crn;
        let other = manager.create("other-root").unwrap().crn;
        let f = fixture(Some(manager.clone()));
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            bucket(&f.s3, "kms").await;
            let get_enc =
                || req(GetBucketEncryptionInput { bucket: "kms".into(), ..Default::default() }, "alice");
            assert_eq!(
                code(f.s3.get_bucket_encryption(get_enc()).await),
                "ServerSideEncryptionConfigurationNotFoundError"
            );
            let rule = |key: &str| kms_rule("kms", key);
            assert_eq!(code(f.s3.put_bucket_encryption(rule("no-such-key")).await), "KMS.NotFoundException");
            // The default may move from one root key to another (objects keep theirs).
            f.s3.put_bucket_encryption(rule(&other)).await.unwrap();
            f.s3.put_bucket_encryption(rule(&crn)).await.unwrap();
            let got = f.s3.get_bucket_encryption(get_enc()).await.unwrap();
            let r = &got.output.server_side_encryption_configuration.unwrap().rules[0];
            assert_eq!(
                r.apply_server_side_encryption_by_default.as_ref().unwrap().kms_master_key_id.as_deref(),
                Some(crn.as_str())
            );

            let body = plaintext(300_000, 8);
            let input = PutObjectInput {
                bucket: "kms".into(),
                key: "o".into(),
                body: blob(&body),
                ..Default::default()
            };
            let put = f.s3.put_object(req(input, "alice")).await.unwrap();
            assert_eq!(put.headers.get("x-amz-server-side-encryption-aws-kms-key-id").unwrap(), crn.as_str());
            assert_eq!(put.output.e_tag.unwrap().value(), md5_hex(&body));
            let parts = vec![plaintext(5 * MIB, 1), plaintext(10, 2)];
            multipart(&f.s3, "kms", "mp", &parts, None).await.unwrap();
            assert_eq!(get(&f.s3, "kms", "mp", None).await.unwrap(), parts.concat());
            assert_eq!(get(&f.s3, "kms", "o", None).await.unwrap(), body);

            // Neither the bucket key nor any object's data key (derived from it and the
            // object's salt, found here from each stored header) reaches a file: not the
            // store, not the key state (it holds the bucket key wrapped), not the audit
            // log, not the token's own files.
            let bucket_key = manager.bucket_key("kms", &KeyRef::parse(&crn)).unwrap();
            let mut secrets = vec![("the bucket key".to_owned(), bucket_key.expose().to_vec())];
            for entry in walk(f.dir.path()) {
                let bytes = std::fs::read(&entry).unwrap();
                let Ok((header, _)) = engine::format::Header::parse(&bytes) else { continue };
                for object in ["o", "mp"] {
                    let ck = engine::CustomerKey {
                        key: bucket_key.clone(),
                        context: format!("kms/{object}").into_bytes(),
                    };
                    if let Ok(dk) = ck.open_kp(&header.salt, &header.envelope) {
                        secrets.push((format!("the data key of {object}"), dk.expose().to_vec()));
                    }
                }
            }
            assert_eq!(secrets.len(), 3, "the data keys of o and mp's first part were not all found");
            let mut scanned = 0;
            for entry in walk(f.dir.path()).into_iter().chain(walk(&token.dir)) {
                let bytes = std::fs::read(&entry).unwrap();
                for (name, raw) in &secrets {
                    let hex = base::hex::encode(raw);
                    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                    for form in [&raw[..], hex.as_bytes(), hex.to_uppercase().as_bytes(), b64.as_bytes()] {
                        assert!(!bytes.windows(form.len()).any(|w| w == form), "{name} is in {entry:?}");
                    }
                }
                scanned += 1;
            }
            assert!(scanned > 5, "only {scanned} files scanned");

            manager.disable(&KeyRef::parse(&crn)).unwrap();
            assert_eq!(code(get(&f.s3, "kms", "o", None).await), "AccessDenied");
            assert_eq!(code(get(&f.s3, "kms", "mp", None).await), "AccessDenied");
            manager.enable(&KeyRef::parse(&crn)).unwrap();
            let del = DeleteBucketEncryptionInput { bucket: "kms".into(), ..Default::default() };
            f.s3.delete_bucket_encryption(req(del, "alice")).await.unwrap();
            let input = PutObjectInput {
                bucket: "kms".into(),
                key: "plain".into(),
                body: blob(b"p"),
                ..Default::default()
            };
            let put = f.s3.put_object(req(input, "alice")).await.unwrap();
            assert!(put.headers.get("x-amz-server-side-encryption").is_none());
            assert_eq!(get(&f.s3, "kms", "o", None).await.unwrap(), body, "old objects keep their key");
            manager.delete(&KeyRef::parse(&crn), true).unwrap();
            assert_eq!(code(get(&f.s3, "kms", "mp", None).await), "AccessDenied", "crypto-shredded");
        });
    });
}

async fn put_plain(s3: &CipherS3, b: &str, k: &str, body: &[u8]) {
    let input = PutObjectInput { bucket: b.into(), key: k.into(), body: blob(body), ..Default::default() };
    s3.put_object(req(input, "alice")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_listings_copies_and_deletes() {
    let f = fixture(None);
    bucket(&f.s3, "lst").await;
    assert_eq!(
        code(
            f.s3.create_bucket(req(CreateBucketInput { bucket: "lst".into(), ..Default::default() }, "bob"))
                .await
        ),
        "BucketAlreadyExists"
    );
    assert_eq!(
        code(
            f.s3.head_bucket(req(HeadBucketInput { bucket: "lst".into(), ..Default::default() }, "bob"))
                .await
        ),
        "AccessDenied"
    );
    let anonymous = S3Request { credentials: None, ..req(ListBucketsInput::default(), "x") };
    assert_eq!(code(f.s3.list_buckets(anonymous).await), "AccessDenied");
    for k in ["a/1", "a/2", "a/b/3", "c", "ключ"] {
        put_plain(&f.s3, "lst", k, k.as_bytes()).await;
    }
    let v2 = ListObjectsV2Input {
        bucket: "lst".into(),
        prefix: Some("a/".into()),
        delimiter: Some("/".into()),
        ..Default::default()
    };
    let out = f.s3.list_objects_v2(req(v2, "alice")).await.unwrap().output;
    let keys: Vec<_> = out.contents.unwrap_or_default().into_iter().filter_map(|o| o.key).collect();
    let prefixes: Vec<_> =
        out.common_prefixes.unwrap_or_default().into_iter().filter_map(|p| p.prefix).collect();
    assert_eq!((keys, prefixes), (vec!["a/1".to_owned(), "a/2".to_owned()], vec!["a/b/".to_owned()]));
    // Pages of two, v1 with markers, in byte order.
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let v1 = ListObjectsInput {
            bucket: "lst".into(),
            max_keys: Some(2),
            marker: marker.clone(),
            ..Default::default()
        };
        let out = f.s3.list_objects(req(v1, "alice")).await.unwrap().output;
        let page: Vec<String> = out.contents.unwrap_or_default().into_iter().filter_map(|o| o.key).collect();
        marker = out.next_marker.or_else(|| page.last().cloned());
        seen.extend(page);
        if out.is_truncated != Some(true) {
            break;
        }
    }
    assert_eq!(seen, ["a/1", "a/2", "a/b/3", "c", "ключ"]);

    // CopyObject re-encrypts into SSE-C and back, metadata replaced on request.
    let k = sse_c(4);
    let copy = CopyObjectInput::builder()
        .bucket("lst".into())
        .key("c-secret".into())
        .copy_source(CopySource::Bucket { bucket: "lst".into(), key: "c".into(), version_id: None })
        .sse_customer_algorithm(Some("AES256".into()))
        .sse_customer_key(Some(k.key.clone()))
        .sse_customer_key_md5(Some(k.md5.clone()))
        .build()
        .unwrap();
    f.s3.copy_object(req(copy, "alice")).await.unwrap();
    assert_eq!(get(&f.s3, "lst", "c-secret", Some(&k)).await.unwrap(), b"c");
    assert_eq!(code(get(&f.s3, "lst", "c-secret", None).await), "InvalidRequest");
    let back = CopyObjectInput::builder()
        .bucket("lst".into())
        .key("c-back".into())
        .copy_source(CopySource::Bucket { bucket: "lst".into(), key: "c-secret".into(), version_id: None })
        .build()
        .unwrap();
    assert_eq!(
        code(f.s3.copy_object(req(back.clone(), "alice")).await),
        "InvalidRequest",
        "source key needed"
    );
    let back = CopyObjectInput {
        copy_source_sse_customer_algorithm: Some("AES256".into()),
        copy_source_sse_customer_key: Some(k.key.clone()),
        copy_source_sse_customer_key_md5: Some(k.md5.clone()),
        ..back
    };
    f.s3.copy_object(req(back, "alice")).await.unwrap();
    assert_eq!(get(&f.s3, "lst", "c-back", None).await.unwrap(), b"c");

    // DeleteObjects, then the bucket; a non-empty bucket is refused first.
    let del = |b: &str| req(DeleteBucketInput { bucket: b.into(), ..Default::default() }, "alice");
    assert_eq!(code(f.s3.delete_bucket(del("lst")).await), "BucketNotEmpty");
    let objects = ["a/1", "a/2", "a/b/3", "c", "ключ", "c-secret", "c-back", "never-there"]
        .iter()
        .map(|k| ObjectIdentifier { key: (*k).into(), ..Default::default() })
        .collect();
    let input = DeleteObjectsInput::builder()
        .bucket("lst".into())
        .delete(Delete { objects, quiet: None })
        .build()
        .unwrap();
    let out = f.s3.delete_objects(req(input, "alice")).await.unwrap().output;
    assert_eq!(out.deleted.unwrap().len(), 8);
    assert!(out.errors.is_none());
    f.s3.delete_bucket(del("lst")).await.unwrap();
    assert_eq!(
        code(
            f.s3.head_bucket(req(HeadBucketInput { bucket: "lst".into(), ..Default::default() }, "alice"))
                .await
        ),
        "NoSuchBucket"
    );
}
