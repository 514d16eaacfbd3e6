//! A store written by cipherstore before the typed object record (at commit 4e14973,
//! tests/fixtures/store-v1: version 1 records, the `attributes` map of strings) reads
//! unchanged through the current S3 layer: every object byte for byte with its ETag,
//! Content-Type and user metadata; listings; SSE-C rules; uploads begun then can be
//! completed now; and a version 1 record that is edited fails its tag.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use engine::Backend;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use s3::CipherS3;
use s3s::dto::*;
use s3s::{Body, S3, S3Request, S3Result};
use sha2::Sha256;
use store::fs::FsStore;

const OWNER: &str = "alice-key";
const BUCKET: &str = "legacy";

fn req<T>(input: T) -> S3Request<T> {
    common::s3_request(input, OWNER)
}

/// The bytes the fixture's writer put: SHA-256(seed) repeated, cut to `n`.
fn data(n: usize, seed: &str) -> Vec<u8> {
    Sha256::digest(seed.as_bytes()).iter().copied().cycle().take(n).collect()
}

/// The fixture's SSE-C key: bytes 0 to 31.
fn ssec() -> [Option<String>; 3] {
    let key: Vec<u8> = (0..32).collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    [Some("AES256".into()), Some(b64.encode(&key)), Some(b64.encode(Md5::digest(&key)))]
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn service(dir: &Path) -> CipherS3 {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1");
    copy_dir(&fixture, &dir.join("store"));
    let (store, _) = FsStore::open(&dir.join("store")).unwrap();
    CipherS3::new(object::Objects::new(Arc::new(store)), Backend::Accelerated, None)
}

async fn get(s3: &CipherS3, key: &str, sse: [Option<String>; 3]) -> S3Result<(GetObjectOutput, Vec<u8>)> {
    let [a, k, m] = sse;
    let input = GetObjectInput {
        bucket: BUCKET.into(),
        key: key.into(),
        sse_customer_algorithm: a,
        sse_customer_key: k,
        sse_customer_key_md5: m,
        ..Default::default()
    };
    let mut out = s3.get_object(req(input)).await?.output;
    let mut body = Vec::new();
    let mut blob = out.body.take().unwrap();
    while let Some(chunk) = blob.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    Ok((out, body))
}

fn etag(e: &Option<ETag>) -> String {
    e.as_ref().map(|e| e.value().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn a_version_1_store_reads_as_it_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = service(dir.path());
    let none = || [None, None, None];
    // (key, plaintext, ETag, SSE-C, Content-Type, user metadata)
    let objects = [
        (
            "default.txt",
            data(300_000, "default"),
            "e807a45ea472566cada2b8481716ce0c",
            false,
            Some("text/plain"),
            Some(("color", "red")),
        ),
        (
            "dir/ssec.bin",
            data(70_000, "ssec"),
            "618277e7fe694f7c8f7884142035747a",
            true,
            None,
            Some(("shape", "square")),
        ),
        ("empty", Vec::new(), "d41d8cd98f00b204e9800998ecf8427e", false, None, None),
        (
            "mp-default",
            data(40_000, "mp-default"),
            "3ed379b94efd702b8b6a47625b9d2468-1",
            false,
            Some("application/x-test"),
            None,
        ),
        (
            "mp-ssec",
            data(40_000, "mp-ssec"),
            "38e73232b644c065e46d693f33245ba9-1",
            true,
            Some("application/x-test"),
            None,
        ),
    ];
    for (key, plain, want_etag, is_ssec, content_type, user) in &objects {
        let sse = if *is_ssec { ssec() } else { none() };
        let (out, body) = get(&s3, key, sse.clone()).await.unwrap();
        assert!(body == *plain, "{key}: bytes differ");
        assert_eq!(etag(&out.e_tag), *want_etag, "{key}");
        assert_eq!(out.content_type.as_ref().map(|c| c.to_string()).as_deref(), *content_type, "{key}");
        let got_user = out.metadata.unwrap_or_default();
        assert_eq!(
            got_user.into_iter().collect::<Vec<_>>(),
            user.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>(),
            "{key}"
        );
        assert_eq!(out.sse_customer_key_md5.is_some(), *is_ssec, "{key}");
        let [a, k, m] = sse;
        let head = HeadObjectInput {
            bucket: BUCKET.into(),
            key: key.to_string(),
            sse_customer_algorithm: a,
            sse_customer_key: k,
            sse_customer_key_md5: m,
            ..Default::default()
        };
        let head = s3.head_object(req(head)).await.unwrap().output;
        assert_eq!(head.content_length, Some(plain.len() as i64), "{key}");
        assert_eq!(etag(&head.e_tag), *want_etag, "{key}");
        if *is_ssec {
            let code = get(&s3, key, none()).await.err().map(|e| e.code().as_str().to_owned());
            assert_eq!(code.as_deref(), Some("InvalidRequest"), "{key}: SSE-C object read without its key");
        }
    }
    // A range inside the multipart object.
    let mut input = GetObjectInput { bucket: BUCKET.into(), key: "mp-default".into(), ..Default::default() };
    input.range = Some(Range::Int { first: 100, last: Some(199) });
    let mut out = s3.get_object(req(input)).await.unwrap().output;
    let chunk = out.body.take().unwrap().next().await.unwrap().unwrap();
    assert_eq!(chunk.as_ref(), &data(40_000, "mp-default")[100..200]);

    // Listings answer sizes and ETags from the records.
    let list = ListObjectsV2Input { bucket: BUCKET.into(), ..Default::default() };
    let listed = s3.list_objects_v2(req(list)).await.unwrap().output.contents.unwrap();
    let got: Vec<(String, i64, String)> =
        listed.iter().map(|o| (o.key.clone().unwrap(), o.size.unwrap(), etag(&o.e_tag))).collect();
    let want: Vec<(String, i64, String)> =
        objects.iter().map(|o| (o.0.to_string(), o.1.len() as i64, o.2.to_string())).collect();
    assert_eq!(got, want);

    // Uploads begun by the old writer complete now, their object reads back.
    let uploads = ListMultipartUploadsInput { bucket: BUCKET.into(), ..Default::default() };
    let uploads = s3.list_multipart_uploads(req(uploads)).await.unwrap().output.uploads.unwrap();
    assert_eq!(
        uploads.iter().map(|u| u.key.clone().unwrap()).collect::<Vec<_>>(),
        ["open-default", "open-ssec"]
    );
    for u in uploads {
        let (key, id) = (u.key.unwrap(), u.upload_id.unwrap());
        let sse = if key.ends_with("ssec") { ssec() } else { none() };
        let parts = ListPartsInput {
            bucket: BUCKET.into(),
            key: key.clone(),
            upload_id: id.clone(),
            ..Default::default()
        };
        let parts = s3.list_parts(req(parts)).await.unwrap().output.parts.unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].size, Some(20_000));
        let [a, k, m] = sse.clone();
        let done =
            CompletedPart { e_tag: parts[0].e_tag.clone(), part_number: Some(1), ..Default::default() };
        let complete = CompleteMultipartUploadInput {
            bucket: BUCKET.into(),
            key: key.clone(),
            upload_id: id,
            multipart_upload: Some(CompletedMultipartUpload { parts: Some(vec![done]) }),
            sse_customer_algorithm: a,
            sse_customer_key: k,
            sse_customer_key_md5: m,
            ..Default::default()
        };
        s3.complete_multipart_upload(req(complete)).await.unwrap();
        assert!(get(&s3, &key, sse).await.unwrap().1 == data(20_000, &key), "{key}");
    }

    // Objects written now sit beside the old ones.
    let put = PutObjectInput {
        bucket: BUCKET.into(),
        key: "new".into(),
        body: Some(StreamingBlob::from(Body::from(Bytes::from_static(b"written now")))),
        ..Default::default()
    };
    s3.put_object(req(put)).await.unwrap();
    assert_eq!(get(&s3, "new", none()).await.unwrap().1, b"written now");
}

#[tokio::test]
async fn an_edited_version_1_record_fails_its_tag() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = service(dir.path());
    // default.txt's file: bytes, record JSON, u32 length, magic.
    let path = dir.path().join("store/buckets/legacy/objects/64656661756c742e747874.o");
    let raw = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&raw[raw.len() - 400..]).into_owned();
    assert!(text.contains(r#""color":"red""#), "the fixture's record is where expected");
    let edited: Vec<u8> = {
        let at = raw.windows(5).rposition(|w| w == b"\"red\"").unwrap();
        let mut e = raw.clone();
        e[at + 1..at + 4].copy_from_slice(b"tan");
        e
    };
    std::fs::write(&path, edited).unwrap();
    let code = get(&s3, "default.txt", [None, None, None]).await.err().map(|e| e.code().as_str().to_owned());
    assert_eq!(code.as_deref(), Some("InternalError"));
    std::fs::write(&path, raw).unwrap();
    assert!(get(&s3, "default.txt", [None, None, None]).await.is_ok());
}
