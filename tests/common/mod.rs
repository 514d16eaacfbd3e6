//! Helpers shared by the integration tests: deterministic plaintext and in-memory
//! encrypt/decrypt through the streaming pipeline.

#![allow(dead_code)]

pub(crate) mod ceph;
pub(crate) mod etcd;
pub(crate) mod hsm;
pub(crate) mod kv_suite;
pub(crate) mod ports;
pub(crate) mod postgres;
pub(crate) mod versions;

use std::io::Cursor;

use engine::{Backend, CustomerKey, SealSpec, Sealing, SecretKey};
use pipeline::{PipelineError, stream};

/// Deterministic, non-repeating-looking bytes.
pub(crate) fn plaintext(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(12345);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}

pub(crate) fn customer_key(b: u8) -> CustomerKey {
    CustomerKey::new(SecretKey::from_bytes([b; 32]))
}

pub(crate) fn aont_spec(unit: u32) -> SealSpec {
    SealSpec { unit_size: unit, ..SealSpec::new(Sealing::Aont, Backend::Accelerated) }
}

pub(crate) fn sse_c_spec(unit: u32, key: &CustomerKey) -> SealSpec {
    SealSpec { unit_size: unit, ..SealSpec::new(Sealing::SseC(key.clone()), Backend::Accelerated) }
}

pub(crate) fn sse_kp_spec(unit: u32, bucket_key: &CustomerKey) -> SealSpec {
    let crn = "crn:v1:cipherstore:test:key:11111111-1111-4111-8111-111111111111".to_owned();
    SealSpec {
        unit_size: unit,
        ..SealSpec::new(Sealing::SseKp { key: bucket_key.clone(), crn }, Backend::Accelerated)
    }
}

/// Encrypts through the stream pipeline into memory.
pub(crate) fn encrypt(spec: &SealSpec, plain: &[u8], len_known: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let len = len_known.then_some(plain.len() as u64);
    stream::encrypt_stream(Cursor::new(plain.to_vec()), &mut out, spec, len, &()).unwrap();
    out
}

/// Decrypts through the stream pipeline from memory.
pub(crate) fn decrypt(
    object: &[u8],
    key: Option<&CustomerKey>,
    backend: Backend,
) -> Result<Vec<u8>, PipelineError> {
    let mut out = Vec::new();
    stream::decrypt_stream(Cursor::new(object.to_vec()), &mut out, key, backend, &())?;
    Ok(out)
}

/// An S3 request as s3s hands it to the service after authentication, from `user`.
pub(crate) fn s3_request<T>(input: T, user: &str) -> s3s::S3Request<T> {
    s3s::S3Request {
        input,
        method: http::Method::PUT,
        uri: http::Uri::from_static("/"),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::new(),
        credentials: Some(s3s::auth::Credentials { access_key: user.into(), secret_key: "secret".into() }),
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// Keeps `annex` (or nothing) beside the current version of `key`, whatever was there.
pub(crate) fn set_annex(
    s: &dyn store::Store,
    bucket: &str,
    key: &str,
    annex: Option<&[u8]>,
) -> Result<(), store::StoreError> {
    s.set_annex(bucket, key, store::AnnexEdit { at: None, change: &mut |_, _| Ok(annex.map(<[u8]>::to_vec)) })
        .wait()
}

/// Removes a version of `key`, whatever its annex says.
pub(crate) fn delete_version(
    s: &dyn store::Store,
    bucket: &str,
    key: &str,
    wanted: &store::Wanted,
) -> Result<Option<(store::Version, Vec<u8>)>, store::StoreError> {
    s.delete_version(bucket, key, store::Removal { wanted, allow: &mut |_, _| Ok(()) }).wait()
}

/// Waits for a store operation from synchronous test code (the store is async): on a
/// multi-threaded runtime's worker through `block_in_place`, elsewhere on a
/// current-thread runtime of the calling thread's own.
pub(crate) trait Wait: std::future::Future + Sized {
    /// The future's output, waited for.
    fn wait(self) -> Self::Output {
        thread_local! {
            static OWN: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a test runtime");
        }
        match tokio::runtime::Handle::try_current() {
            Ok(h) => tokio::task::block_in_place(|| h.block_on(self)),
            Err(_) => OWN.with(|rt| rt.block_on(self)),
        }
    }
}

impl<F: std::future::Future> Wait for F {}
