//! Moving request and response bodies between async HTTP and the synchronous pipeline:
//! a bounded tokio channel feeds a blocking task (back-pressure both ways). The digests S3
//! needs (MD5 for the ETag, `Content-MD5`, flexible checksums) run on the pipeline's
//! reader thread, concurrently with encryption, and are verified before the caller
//! commits; an upload that fails anywhere leaves nothing visible.

use std::io::{self, Read, Write};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3Result};
use tokio::sync::mpsc;

use super::digest::{Computed, Digests, Expected};
use super::error;
use super::service::CipherS3;
use engine::SealSpec;
use object::{PlainSource, Salt, Sealed};
use pipeline::pool::Buf;
use pipeline::{PipelineError, stream};

/// Batches of body bytes waiting for the pipeline (1 MiB per upload, from the pool of
/// batch buffers).
const DEPTH: usize = 4;
/// Body bytes gathered before a hand-off to the pipeline.
const BATCH: usize = 256 << 10;
/// What a request body streams under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most bytes (EntityTooLarge beyond).
    pub max: u64,
    /// Longest wait for the next bytes (RequestTimeout beyond).
    pub idle: Duration,
}

/// How feeding a body ended.
enum Fed {
    /// The body ended, or the pipeline stopped reading (it reports why).
    Done,
    /// More than the limit arrived.
    TooLarge,
    /// Nothing arrived for the idle limit.
    Idle,
    /// The body failed to decode or verify (aws-chunked framing, a chunk signature, the
    /// signed SHA-256) or the connection broke: the client's fault, answered as this.
    Refused(s3s::S3Error),
}

/// A `Read` over body chunks arriving from the async side, digesting what passes.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    digests: Digests,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        let chunk = self.current.split_to(n);
        self.digests.update(&chunk);
        buf[..n].copy_from_slice(&chunk);
        Ok(n)
    }
}

/// How a body is sealed.
pub(crate) enum Seal {
    /// By the engine.
    Engine(SealSpec),
    /// Stored as received: the benchmark baseline, compiled only with `bench-plaintext`.
    #[cfg(feature = "bench-plaintext")]
    Passthrough,
}

/// A body encrypted into a writer, not yet committed.
pub(crate) struct Encrypted<W> {
    /// The writer holding the encrypted bytes.
    pub writer: W,
    /// Plaintext bytes.
    pub size: u64,
    /// Digests of the plaintext.
    pub digests: Computed,
    /// The engine header's salt (none for the benchmark's passthrough).
    pub salt: Option<Salt>,
}

impl<W> Encrypted<W> {
    /// The writer, and what sealing measured for the object layer
    /// ([`object::Objects::finish`]).
    pub(super) fn sealed(self) -> (W, Sealed) {
        let sealed = Sealed {
            size: self.size,
            md5: self.digests.md5_hex(),
            checksums: super::headers::checksums(&self.digests),
            salt: self.salt,
        };
        (self.writer, sealed)
    }
}

/// Encrypts a request body into `writer`. `expected` digests are verified (BadDigest on a
/// mismatch); the MD5 is computed if `md5` (for the ETag) or `Content-MD5` needs it.
pub(crate) async fn encrypt<W: Write + Send + 'static>(
    body: StreamingBlob,
    writer: W,
    spec: Seal,
    content_length: Option<u64>,
    limits: Limits,
    expected: Expected,
    md5: bool,
) -> S3Result<Encrypted<W>> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    let feed = async move {
        let mut body = body;
        let mut received = 0u64;
        // Small frames (HTTP/2 DATA frames are often 16 KiB) are gathered into batches, so
        // the hand-off to the blocking side costs per batch, not per frame.
        // Room for a batch, or for what is still announced when that is less (a small
        // body takes a small buffer).
        let room = |received: u64| {
            content_length.map_or(BATCH, |l| l.saturating_sub(received).clamp(1, BATCH as u64) as usize)
        };
        let mut batch = Buf::with_capacity(room(0));
        loop {
            let chunk = match tokio::time::timeout(limits.idle, body.next()).await {
                Ok(Some(Ok(c))) => c,
                Ok(Some(Err(e))) => {
                    let _ = tx.send(Err(io::Error::other("the request body failed"))).await;
                    return Fed::Refused(refused_body(e.as_ref()));
                }
                Ok(None) => break,
                Err(_) => {
                    let _ = tx.send(Err(io::Error::other("the body stalled"))).await;
                    return Fed::Idle;
                }
            };
            received += chunk.len() as u64;
            if received > limits.max {
                let _ = tx.send(Err(io::Error::other("the body exceeds the size limit"))).await;
                return Fed::TooLarge;
            }
            if batch.is_empty() && chunk.len() >= BATCH {
                if tx.send(Ok(chunk)).await.is_err() {
                    return Fed::Done;
                }
                continue;
            }
            batch.extend_from_slice(&chunk);
            if batch.len() >= BATCH
                && tx
                    .send(Ok(std::mem::replace(&mut batch, Buf::with_capacity(room(received))).into_bytes()))
                    .await
                    .is_err()
            {
                return Fed::Done;
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(Ok(batch.into_bytes())).await;
        }
        Fed::Done
    };
    let digests = expected.digests(md5);
    let (fed, encrypted) = tokio::join!(feed, seal(rx, writer, spec, content_length, digests));
    match fed {
        Fed::TooLarge => {
            return Err(s3s::s3_error!(EntityTooLarge, "at most {} bytes per PUT or part", limits.max));
        }
        Fed::Idle => {
            return Err(s3s::s3_error!(
                RequestTimeout,
                "the request body sent nothing for {} s; nothing was written",
                limits.idle.as_secs()
            ));
        }
        Fed::Refused(e) => return Err(e),
        Fed::Done => {}
    }
    let encrypted = encrypted?.map_err(error::pipeline)?;
    expected.verify(&encrypted.digests)?;
    Ok(encrypted)
}

/// Largest plaintext range a GET decrypts on the request's own task, whole, before the
/// response starts: for small objects (most S3 GETs) that costs less than handing off to
/// a blocking task, and an integrity failure becomes an error response rather than a
/// truncated body.
pub(super) const INLINE_GET_MAX: u64 = 256 << 10;

/// The response body for plaintext `[first, last)` of `source`: decrypted whole here
/// when at most [`INLINE_GET_MAX`] bytes, streamed by [`get`] otherwise.
pub(super) fn get_body(source: PlainSource, first: u64, last: u64) -> S3Result<StreamingBlob> {
    if last - first > INLINE_GET_MAX {
        return Ok(get(source, first, last));
    }
    // Usually one batch, passed on as it is; several (a range over parts) are joined.
    let mut batches: Vec<Bytes> = Vec::with_capacity(1);
    source
        .decrypt(first, last, &mut |bytes: Bytes| {
            batches.push(bytes);
            Ok(())
        })
        .map_err(error::pipeline)?;
    let plain = match batches.len() {
        0 => Bytes::new(),
        1 => batches.swap_remove(0),
        _ => Bytes::from(batches.concat()),
    };
    Ok(StreamingBlob::from(s3s::Body::from(plain)))
}

/// Streams plaintext `[first, last)` of `source`, decrypting on a blocking task; an
/// integrity failure ends the stream with an error.
fn get(source: PlainSource, first: u64, last: u64) -> StreamingBlob {
    // Decrypted batches (up to 4 MiB each) waiting for the client: one being sent, one
    // ready, one being decrypted.
    let (tx, rx) = mpsc::channel::<Result<Bytes, S3Error>>(2);
    tokio::task::spawn_blocking(move || {
        let mut sink = |bytes: Bytes| -> Result<(), PipelineError> {
            tx.blocking_send(Ok(bytes))
                .map_err(|_| PipelineError::io("client went away")(io::ErrorKind::BrokenPipe.into()))
        };
        if let Err(e) = source.decrypt(first, last, &mut sink) {
            let _ = tx.blocking_send(Err(error::pipeline(e)));
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    StreamingBlob::wrap(stream)
}

/// Decrypts plaintext `[first, last)` of `source` and encrypts it into `writer` under
/// `spec` (CopyObject, UploadPartCopy). Both run on blocking tasks joined by a bounded
/// channel, so memory stays bounded for any size.
pub(super) async fn reencrypt<W: Write + Send + 'static>(
    source: PlainSource,
    first: u64,
    last: u64,
    writer: W,
    spec: Seal,
    md5: bool,
) -> S3Result<Encrypted<W>> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(2);
    let reader = tokio::task::spawn_blocking(move || {
        let mut sink = |bytes: Bytes| -> Result<(), PipelineError> {
            tx.blocking_send(Ok(bytes))
                .map_err(|_| PipelineError::io("copy target stopped")(io::ErrorKind::BrokenPipe.into()))
        };
        let r = source.decrypt(first, last, &mut sink);
        if let Err(e) = &r {
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
        r
    });
    let digests = Expected::default().digests(md5);
    let written = seal(rx, writer, spec, Some(last - first), digests).await;
    reader.await.map_err(|e| error::internal(&e))?.map_err(error::pipeline)?;
    written?.map_err(error::pipeline)
}

/// Encrypts what arrives on `rx` into `writer`. A pipeline error is returned unmapped: when
/// the feed stopped it, the feed's reason is the answer (and nothing is logged as internal).
async fn seal<W: Write + Send + 'static>(
    rx: mpsc::Receiver<io::Result<Bytes>>,
    mut writer: W,
    spec: Seal,
    content_length: Option<u64>,
    digests: Digests,
) -> S3Result<Result<Encrypted<W>, PipelineError>> {
    tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader { rx, current: Bytes::new(), digests };
        let (size, salt) = match &spec {
            Seal::Engine(spec) => {
                let sealed = stream::encrypt_stream(&mut reader, &mut writer, spec, content_length, &())?;
                (sealed.plaintext_len, Some(sealed.salt))
            }
            #[cfg(feature = "bench-plaintext")]
            Seal::Passthrough => (stream::copy_stream(&mut reader, &mut writer, content_length)?, None),
        };
        Ok::<_, PipelineError>(Encrypted { writer, size, digests: reader.digests.finish(), salt })
    })
    .await
    .map_err(|e| error::internal(&e))
}

/// The S3 error for a request body that failed while arriving. s3s does not export its
/// body errors' types (aws-chunked decoding, the signed-SHA-256 check), so they are told
/// apart by their text, pinned by `tests/e2e/test_auth_framing.py`; anything else is a body that
/// stopped arriving. Never a 500: none of it is the server's fault.
fn refused_body(e: &(dyn std::error::Error + 'static)) -> s3s::S3Error {
    let text = e.to_string();
    let has = |s: &str| text.contains(s);
    if has("SignatureMismatch") {
        s3s::s3_error!(SignatureDoesNotMatch, "an aws-chunked chunk signature does not match")
    } else if has("Sha256Mismatch") {
        let code = s3s::S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into());
        let mut err = s3s::S3Error::with_message(code, "the body does not match x-amz-content-sha256");
        err.set_status_code(http::StatusCode::BAD_REQUEST);
        err
    } else if has("FormatError") || has("TooLarge") || has("TooManyTrailerHeaders") || has("InvalidChecksum")
    {
        s3s::s3_error!(InvalidRequest, "malformed aws-chunked body")
    } else {
        s3s::s3_error!(IncompleteBody, "the request body ended early or broke off")
    }
}

/// How the bytes of a write planned as `plan` are sealed: by the engine, or (benchmark
/// builds only, for objects recorded as plaintext) passed through.
pub(crate) fn sealing(plan: &object::SealPlan) -> Seal {
    #[cfg(feature = "bench-plaintext")]
    if *plan.protection() == object::Protection::Plaintext {
        return Seal::Passthrough;
    }
    Seal::Engine(plan.spec().clone())
}

/// The limits a request body streams under.
pub(crate) fn limits(s: &CipherS3) -> Limits {
    Limits { max: s.max_object, idle: s.body_idle }
}
