//! Blobs of the cluster store on any S3-compatible service (Ceph RGW, AWS S3, IBM COS,
//! SeaweedFS, another cipherstore) through Apache Arrow's `object_store` crate: whole and
//! conditional writes, streamed multipart writes with bounded memory, ranged reads,
//! listings and deletes, with retries and bounded exponential back-off, and a custom CA
//! for backends with their own certificates. Only ciphertext is ever handed here
//! (docs/SCALE-OUT.md §1): blob names say nothing about objects.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{
    BackoffConfig, Certificate, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use zeroize::Zeroizing;

use super::requests;

/// Where the blobs go and how to reach it.
#[derive(Clone)]
pub struct BlobConfig {
    /// The service's URL (`https://s3.example.com`, `http://127.0.0.1:7480`).
    pub endpoint: String,
    /// The bucket that holds every blob.
    pub bucket: String,
    /// Signing region.
    pub region: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: Zeroizing<String>,
    /// A PEM file of CA certificates the service's certificate chains to (else the system's).
    pub ca_file: Option<PathBuf>,
    /// Sign each body's SHA-256 into the request (the backend checks it as it arrives).
    /// Off by default, as SDKs do over HTTPS: every blob is authenticated ciphertext whose
    /// tags catch a changed byte on read, and hashing costs both sides a pass over the bytes.
    pub sign_payload: bool,
    /// Tries per request after the first, with exponential back-off.
    pub max_retries: usize,
    /// Longest time spent retrying one request.
    pub retry_timeout: Duration,
    /// Longest wait for one request's answer.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for BlobConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobConfig")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("sign_payload", &self.sign_payload)
            .finish_non_exhaustive()
    }
}

impl BlobConfig {
    /// A configuration with the defaults: region `us-east-1`, unsigned bodies, 5 retries
    /// within 30 s, 60 s per request.
    pub fn new(endpoint: &str, bucket: &str, access_key: &str, secret_key: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            bucket: bucket.to_owned(),
            region: "us-east-1".to_owned(),
            access_key: access_key.to_owned(),
            secret_key: Zeroizing::new(secret_key.to_owned()),
            ca_file: None,
            sign_payload: false,
            max_retries: 5,
            retry_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
        }
    }

    /// Reads `ACCESS_KEY SECRET_KEY` (one line, as in the users file) from `path`.
    pub fn read_credentials(path: &std::path::Path) -> Result<(String, Zeroizing<String>), BlobError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            BlobError::Config(format!("cannot read the backend credentials file {}: {e}", path.display()))
        })?);
        let mut fields = text.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some(ak), Some(sk), None) => Ok((ak.to_owned(), Zeroizing::new(sk.to_owned()))),
            _ => Err(BlobError::Config(format!(
                "the backend credentials file {} must hold one line: ACCESS_KEY SECRET_KEY",
                path.display()
            ))),
        }
    }
}

/// Errors from the blob service.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob of that name.
    #[error("no blob {0}")]
    NotFound(String),
    /// A conditional write found the blob there already.
    #[error("blob {0} exists already")]
    Exists(String),
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The service failed or could not be reached, after retries.
    #[error("the blob service failed: {0}")]
    Unavailable(String),
}

fn error(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { path, .. } => BlobError::NotFound(path),
        object_store::Error::AlreadyExists { path, .. } => BlobError::Exists(path),
        other => BlobError::Unavailable(with_causes(&other)),
    }
}

/// Further tries of an idempotent request whose transport failed in a way the HTTP client
/// could not classify (a pooled connection the service closed as the request went out shows
/// up as "error sending request", which `object_store` does not retry).
const UNCLASSIFIED_RETRIES: u32 = 2;

/// Whether `e` is a transport failure of a kind `object_store` leaves unretried.
fn unclassified_transport_error(e: &object_store::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(http) = c.downcast_ref::<HttpError>() {
            return http.kind() == HttpErrorKind::Unknown;
        }
        cause = c.source();
    }
    false
}

/// Runs the idempotent request `attempt`, trying again after a short pause when its
/// transport failed unclassified (what `object_store` classifies it retries itself).
async fn idempotent<T, F, Fut>(what: &str, attempt: F) -> Result<T, object_store::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, object_store::Error>>,
{
    let mut pause = Duration::from_millis(100);
    for _ in 0..UNCLASSIFIED_RETRIES {
        match attempt().await {
            Err(e) if unclassified_transport_error(&e) => {
                tracing::warn!(what, error = %with_causes(&e), "blob request failed in transport; trying again");
                tokio::time::sleep(pause).await;
                pause *= 4;
            }
            done => return done,
        }
    }
    attempt().await
}

/// `e`'s text followed by each underlying cause its text does not already hold: the HTTP
/// client says only "error sending request", the cause says whether the connection was
/// refused, reset or closed by the service.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// A blob as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Name.
    pub name: String,
    /// Length.
    pub len: u64,
    /// When it was last written (Unix seconds).
    pub modified: u64,
}

/// The blob service.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

/// Bytes per part of a streamed write (S3's smallest part is 5 MiB).
pub const PART: usize = 8 << 20;
/// Parts of one streamed write in flight at once: memory per write stays under
/// `PART * (WRITE_CONCURRENCY + 1)`.
pub const WRITE_CONCURRENCY: usize = 2;

impl Blobs {
    /// Connects to the service `config` names (no request is made yet).
    pub fn new(config: &BlobConfig) -> Result<Self, BlobError> {
        let mut options = ClientOptions::new()
            .with_allow_http(config.endpoint.starts_with("http://"))
            .with_timeout(config.request_timeout)
            .with_connect_timeout(Duration::from_secs(5));
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                BlobError::Config(format!("cannot read the backend CA file {}: {e}", ca.display()))
            })?;
            for cert in Certificate::from_pem_bundle(&pem).map_err(|e| {
                BlobError::Config(format!("the backend CA file {} is not PEM: {e}", ca.display()))
            })? {
                options = options.with_root_certificate(cert);
            }
        }
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: config.max_retries,
            retry_timeout: config.retry_timeout,
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(&config.endpoint)
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(config.secret_key.as_str())
            .with_virtual_hosted_style_request(false)
            .with_unsigned_payload(!config.sign_payload)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| BlobError::Config(format!("the blob backend configuration is unusable: {e}")))?;
        Ok(Self { store: Arc::new(store) })
    }

    /// Writes `bytes` as blob `name`, replacing any blob of that name.
    pub async fn put(&self, name: &str, bytes: Bytes) -> Result<(), BlobError> {
        requests::BLOB_PUT.add(1);
        let path = Path::from(name);
        let payload = PutPayload::from(bytes);
        idempotent("put", || self.store.put(&path, payload.clone())).await.map_err(error)?;
        Ok(())
    }

    /// Writes `bytes` as blob `name` only if there is none ([`BlobError::Exists`]).
    pub async fn create(&self, name: &str, bytes: Bytes) -> Result<(), BlobError> {
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        requests::BLOB_PUT.add(1);
        self.store.put_opts(&Path::from(name), PutPayload::from(bytes), options).await.map_err(error)?;
        Ok(())
    }

    /// Starts a streamed write of blob `name` (a backend multipart upload).
    pub async fn writer(&self, name: &str) -> Result<BlobWriter, BlobError> {
        requests::BLOB_MULTIPART.add(1);
        let upload = self.store.put_multipart(&Path::from(name)).await.map_err(error)?;
        Ok(BlobWriter { inner: WriteMultipart::new_with_chunk_size(upload, PART), written: 0 })
    }

    /// All of blob `name`.
    pub async fn get(&self, name: &str) -> Result<Bytes, BlobError> {
        requests::BLOB_GET.add(1);
        let path = Path::from(name);
        idempotent("get", || async { self.store.get(&path).await?.bytes().await }).await.map_err(error)
    }

    /// Bytes `range` of blob `name`.
    pub async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes, BlobError> {
        if range.start == range.end {
            return Ok(Bytes::new());
        }
        requests::BLOB_GET.add(1);
        let path = Path::from(name);
        idempotent("get", || self.store.get_range(&path, range.clone())).await.map_err(error)
    }

    /// Bytes `range` of blob `name` as they arrive, in one request (the body is read as the
    /// stream is polled, so a slow reader holds the backend back instead of filling memory).
    pub async fn stream(
        &self,
        name: &str,
        range: Range<u64>,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        requests::BLOB_GET.add(1);
        let path = Path::from(name);
        let options =
            || GetOptions { range: Some(GetRange::Bounded(range.clone())), ..GetOptions::default() };
        let got = idempotent("get", || self.store.get_opts(&path, options())).await.map_err(error)?;
        Ok(got.into_stream().map(|chunk| chunk.map_err(error)).boxed())
    }

    /// Blob `name`'s length.
    pub async fn len(&self, name: &str) -> Result<u64, BlobError> {
        requests::BLOB_HEAD.add(1);
        let path = Path::from(name);
        Ok(idempotent("head", || self.store.head(&path)).await.map_err(error)?.size)
    }

    /// Deletes blob `name` (nothing if there is none).
    pub async fn delete(&self, name: &str) -> Result<(), BlobError> {
        requests::BLOB_DELETE.add(1);
        let path = Path::from(name);
        match idempotent("delete", || self.store.delete(&path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(error(e)),
        }
    }

    /// Every blob whose name starts with `prefix` (a `/`-separated directory, or empty).
    pub async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, BlobError> {
        let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
        requests::BLOB_LIST.add(1);
        let mut listing = self.store.list(prefix.as_ref());
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(error)?;
            out.push(BlobInfo {
                name: meta.location.to_string(),
                len: meta.size,
                modified: u64::try_from(meta.last_modified.timestamp()).unwrap_or(0),
            });
        }
        Ok(out)
    }
}

/// A blob being written in parts; nothing is visible under its name until
/// [`BlobWriter::finish`], and [`BlobWriter::abort`] (or an error) leaves nothing.
pub struct BlobWriter {
    inner: WriteMultipart,
    written: u64,
}

impl BlobWriter {
    /// Appends `data`, waiting while [`WRITE_CONCURRENCY`] parts are still being sent.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), BlobError> {
        self.inner.wait_for_capacity(WRITE_CONCURRENCY).await.map_err(error)?;
        self.inner.write(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Sends what is left and completes the blob, durably; returns its length.
    pub async fn finish(self) -> Result<u64, BlobError> {
        // Its parts and the completion (the start was counted when it began).
        requests::BLOB_MULTIPART.add(self.written.div_ceil(PART as u64).max(1) + 1);
        self.inner.finish().await.map_err(error)?;
        Ok(self.written)
    }

    /// Discards the upload.
    pub async fn abort(self) -> Result<(), BlobError> {
        self.inner.abort().await.map_err(error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A service on loopback that answers its first `garbled` requests with bytes that are
    /// not HTTP (a transport failure the HTTP client cannot classify) and the rest with 200.
    fn service(garbled: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body its Content-Length announces.
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let answer: &[u8] = if n < garbled {
                    b"\x00\x01 not http at all\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let _ = stream.write_all(answer);
            }
        });
        (url, seen)
    }

    fn blobs(url: &str) -> Blobs {
        let mut config = BlobConfig::new(url, "b", "ak", "sk");
        config.max_retries = 0;
        Blobs::new(&config).unwrap()
    }

    #[tokio::test]
    async fn an_unclassified_transport_failure_is_tried_again() {
        let (url, seen) = service(UNCLASSIFIED_RETRIES as usize);
        blobs(&url).put("d/x", Bytes::from_static(b"ciphertext")).await.unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), UNCLASSIFIED_RETRIES as usize + 1);
    }

    #[tokio::test]
    async fn a_failure_that_persists_names_its_cause() {
        let (url, seen) = service(usize::MAX);
        let e = blobs(&url).put("d/x", Bytes::from_static(b"ciphertext")).await.unwrap_err();
        assert_eq!(seen.load(Ordering::SeqCst), UNCLASSIFIED_RETRIES as usize + 1);
        let text = e.to_string();
        assert!(matches!(e, BlobError::Unavailable(_)), "{text}");
        assert!(text.contains("error sending request: "), "the cause follows: {text}");
    }
}
