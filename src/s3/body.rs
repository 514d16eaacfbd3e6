//! Moving request and response bodies between async HTTP and the synchronous pipeline:
//! a bounded tokio channel feeds a blocking task (back-pressure both ways), MD5 for the
//! ETag runs on the pipeline's reader thread, concurrently with encryption.

use std::io::{self, Read};

use bytes::Bytes;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3Result};
use tokio::sync::mpsc;

use super::error;
use crate::engine::{Layout, Opener, SealSpec};
use crate::pipeline::{PipelineError, random, stream};
use crate::store::{ObjectMeta, ObjectWriter, StoredObject};

/// Batches of body bytes waiting for the pipeline.
const DEPTH: usize = 8;

/// A `Read` over body chunks arriving from the async side, hashing what passes.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    md5: Option<Md5>,
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
        if let Some(m) = &mut self.md5 {
            m.update(&chunk);
        }
        buf[..n].copy_from_slice(&chunk);
        Ok(n)
    }
}

/// Encrypts a request body into `writer` and commits it with `meta` (size filled in, and
/// the ETag: the plaintext's MD5, unless `meta.etag` is already set, as for SSE-C). Nothing
/// becomes visible unless the whole body arrived and was encrypted.
pub async fn put(
    body: StreamingBlob,
    writer: Box<dyn ObjectWriter>,
    spec: SealSpec,
    content_length: Option<u64>,
    meta: ObjectMeta,
) -> S3Result<ObjectMeta> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    let feed = async move {
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let item = chunk.map_err(|e| io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let (_, written) = tokio::join!(feed, write(rx, writer, spec, content_length, meta));
    written
}

/// Streams the plaintext bytes `[first, last)` of a stored object, decrypting on a
/// blocking task; an integrity failure ends the stream with an error.
pub fn get(object: StoredObject, opener: Opener, layout: Layout, first: u64, last: u64) -> StreamingBlob {
    let (tx, rx) = mpsc::channel::<Result<Bytes, S3Error>>(4);
    tokio::task::spawn_blocking(move || {
        let read_at = |buf: &mut [u8], off: u64| object.body.read_at(buf, off);
        let mut sink = |bytes: &[u8]| -> Result<(), PipelineError> {
            for piece in bytes.chunks(1 << 20) {
                if tx.blocking_send(Ok(Bytes::copy_from_slice(piece))).is_err() {
                    return Err(PipelineError::io("client went away")(io::ErrorKind::BrokenPipe.into()));
                }
            }
            Ok(())
        };
        if let Err(e) = random::decrypt_range(&read_at, &opener, &layout, first, last, &mut sink) {
            let _ = tx.blocking_send(Err(error::pipeline(e)));
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    StreamingBlob::wrap(stream)
}

/// Decrypts `source` (plaintext `[0, len)`) and encrypts it into `writer` under `spec`,
/// committing with `meta` (size and, unless preset, the MD5 ETag filled in). Both run on
/// blocking tasks joined by a bounded channel, so memory stays bounded for any size.
pub async fn reencrypt(
    source: StoredObject,
    opener: Opener,
    layout: Layout,
    writer: Box<dyn ObjectWriter>,
    spec: SealSpec,
    meta: ObjectMeta,
) -> S3Result<ObjectMeta> {
    let len = layout.plaintext_len();
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    let reader = tokio::task::spawn_blocking(move || {
        let read_at = |buf: &mut [u8], off: u64| source.body.read_at(buf, off);
        let mut sink = |bytes: &[u8]| -> Result<(), PipelineError> {
            for piece in bytes.chunks(1 << 20) {
                if tx.blocking_send(Ok(Bytes::copy_from_slice(piece))).is_err() {
                    return Err(PipelineError::io("copy target stopped")(io::ErrorKind::BrokenPipe.into()));
                }
            }
            Ok(())
        };
        let r = random::decrypt_range(&read_at, &opener, &layout, 0, len, &mut sink);
        if let Err(e) = &r {
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
        r
    });
    let written = write(rx, writer, spec, Some(len), meta).await;
    reader.await.map_err(|e| error::internal(&e))?.map_err(error::pipeline)?;
    written
}

/// Encrypts what arrives on `rx` into `writer` and commits it (see [`put`]).
async fn write(
    rx: mpsc::Receiver<io::Result<Bytes>>,
    mut writer: Box<dyn ObjectWriter>,
    spec: SealSpec,
    content_length: Option<u64>,
    mut meta: ObjectMeta,
) -> S3Result<ObjectMeta> {
    let want_md5 = meta.etag.is_empty();
    let (writer, size, etag) = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader { rx, current: Bytes::new(), md5: want_md5.then(Md5::new) };
        let size = stream::encrypt_stream(&mut reader, &mut writer, &spec, content_length, &())?;
        let etag: Option<String> =
            reader.md5.map(|m| m.finalize().iter().map(|b| format!("{b:02x}")).collect());
        Ok::<_, PipelineError>((writer, size, etag))
    })
    .await
    .map_err(|e| error::internal(&e))?
    .map_err(error::pipeline)?;
    meta.size = size;
    if let Some(etag) = etag {
        meta.etag = etag;
    }
    tokio::task::spawn_blocking(move || writer.commit(meta))
        .await
        .map_err(|e| error::internal(&e))?
        .map_err(error::store)
}
