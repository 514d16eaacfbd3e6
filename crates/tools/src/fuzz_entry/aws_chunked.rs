//! aws-chunked request bodies through the whole S3 service: the framing follower
//! ([`s3::chunk_framing`]), s3s's decoder (chunk sizes, chunk signatures,
//! trailers), the body pipeline and the error mapping. The request's header signature is
//! computed here (SigV4, current time), so every input reaches body decoding. Whatever
//! the body, the answer must not be a 500: a body is the client's fault or fine.
//!
//! [`lifecycle_config`] sends its input as the XML of PutBucketLifecycleConfiguration
//! through the same service: s3s's XML decoder and the rules' validation must answer a 4xx
//! or accept it, never a 500.
//!
//! aws-chunked input: byte 0 chooses the mode (bit 0: unsigned with a checksum trailer, else signed
//! chunks; bit 1: announce a CRC32 trailer), bytes 1–2 the decoded length (little-endian),
//! the rest is the body.

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use s3s::Body;
use s3s::service::{S3Service, S3ServiceBuilder};

use crate::sigv4::{Signer, amz_date};
use base::clock::now_unix;
use engine::Backend;
use s3::CipherS3;
use s3::auth::Auth;
use s3::chunk_framing::CheckedBody;
use store::fs::FsStore;

const ACCESS: &str = "fuzz-user";
const SECRET: &str = "fuzz-secret-123";
const REGION: &str = "us-east-1";

struct Harness {
    runtime: tokio::runtime::Runtime,
    service: S3Service,
}

/// Where the fuzzing store lives: one directory per process, removed by [`cleanup`].
fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("cipherstore-fuzz-aws-chunked-{}", std::process::id()))
}

/// Removes the store made for this process's runs (call when done).
pub fn cleanup() {
    let _ = std::fs::remove_dir_all(dir());
}

/// A SigV4-signed request (path-style, no query) with `headers` signed.
fn signed(
    method: &str,
    path: &str,
    payload_hash: &str,
    headers: &[(String, String)],
    body: Body,
) -> http::Request<Body> {
    let signer = Signer {
        access_key: ACCESS.into(),
        secret_key: SECRET.into(),
        region: REGION.into(),
        host: "localhost".into(),
    };
    let mut builder = http::Request::builder().method(method).uri(path);
    for (k, v) in signer.headers(method, path, &amz_date(now_unix()), payload_hash, headers) {
        builder = builder.header(k, v);
    }
    // Only this module's fixed header names and values: the builder cannot fail.
    builder.body(body).unwrap_or_else(|e| unreachable!("a request built from fixed parts: {e}"))
}

/// The identities of the users file `users`, kept under `root`.
async fn identities(
    root: &std::path::Path,
    users: &std::path::Path,
) -> Option<std::sync::Arc<iam::Identities>> {
    let keep = std::sync::Arc::new(iam::FileKeep::open(&root.join("iam")).ok()?);
    let (ids, _) = iam::Identities::open(keep, None).await.ok()?;
    let listed = iam::users::load(users).ok()?;
    let mut import = |d: &mut iam::Directory| iam::users::import(d, &listed, None, now_unix()).map(|_| ());
    ids.change(&mut import).await.ok()?;
    Some(ids)
}

fn harness() -> Option<&'static Harness> {
    static HARNESS: OnceLock<Option<Harness>> = OnceLock::new();
    HARNESS
        .get_or_init(|| {
            let root = dir();
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).ok()?;
            let users = root.join("users");
            std::fs::write(&users, format!("{ACCESS} {SECRET}\n")).ok()?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            let ids = runtime.block_on(identities(&root, &users))?;
            let (store, _) = FsStore::open(&root.join("store")).ok()?;
            let mut s3 =
                CipherS3::new(object::Objects::new(std::sync::Arc::new(store)), Backend::Accelerated, None);
            s3.set_identities(ids.clone());
            let mut builder = S3ServiceBuilder::new(s3);
            builder.set_auth(Auth::new(ids));
            let service = builder.build();
            let create = signed("PUT", "/fuzz", "UNSIGNED-PAYLOAD", &[], Body::empty());
            let made = runtime.block_on(service.call(create)).ok()?;
            made.status().is_success().then_some(Harness { runtime, service })
        })
        .as_ref()
}

/// One aws-chunked PUT with this input; panics on a 500 or a service error. Returns the
/// response status (0 for an input too short to make a request).
pub fn aws_chunked(data: &[u8]) -> u16 {
    let (Some(&mode), Some(len)) = (data.first(), data.get(1..3)) else {
        return 0;
    };
    let Some(h) = harness() else {
        panic!("the fuzzing S3 service did not start in {}", dir().display());
    };
    let body = Bytes::copy_from_slice(&data[3..]);
    let decoded = u16::from_le_bytes([len[0], len[1]]);
    let unsigned = mode & 1 == 1;
    let mut headers = vec![
        ("content-encoding".to_owned(), "aws-chunked".to_owned()),
        ("x-amz-decoded-content-length".to_owned(), decoded.to_string()),
        ("content-length".to_owned(), body.len().to_string()),
    ];
    if mode & 2 == 2 || unsigned {
        headers.push(("x-amz-trailer".to_owned(), "x-amz-checksum-crc32".to_owned()));
    }
    let payload =
        if unsigned { "STREAMING-UNSIGNED-PAYLOAD-TRAILER" } else { "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" };
    let req =
        signed("PUT", "/fuzz/k", payload, &headers, Body::http_body(CheckedBody::new(Body::from(body))));
    let response = h.runtime.block_on(h.service.call(req));
    match response {
        Ok(r) => {
            assert!(!r.status().is_server_error(), "a request body answered {}", r.status());
            r.status().as_u16()
        }
        Err(e) => panic!("the service failed: {e:?}"),
    }
}

/// One PutBucketLifecycleConfiguration with this input as its XML body; panics on a 500
/// or a service error. Returns the response status.
pub fn lifecycle_config(data: &[u8]) -> u16 {
    let Some(h) = harness() else {
        panic!("the fuzzing S3 service did not start in {}", dir().display());
    };
    let headers = vec![("content-length".to_owned(), data.len().to_string())];
    let body = Body::from(Bytes::copy_from_slice(data));
    let req = signed("PUT", "/fuzz?lifecycle", "UNSIGNED-PAYLOAD", &headers, body);
    match h.runtime.block_on(h.service.call(req)) {
        Ok(r) => {
            assert!(!r.status().is_server_error(), "a lifecycle configuration answered {}", r.status());
            r.status().as_u16()
        }
        Err(e) => panic!("the service failed: {e:?}"),
    }
}
