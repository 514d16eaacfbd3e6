//! Reading stored objects: which key opens them ([`ReadKey`]: the SSE-C key sent, or the
//! SSE-KP bucket key), and the plaintext view of an object ([`PlainSource`]) whose stored
//! bytes are one engine object (single PUT) or several laid end to end (multipart, one per
//! part, located by the object's part manifest). Only the parts a range touches are opened.

use std::io;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use s3s::S3Result;

use super::body_salt::{self, Salt};
use super::{CipherS3, error, kp, manifest, meta_tag, sse};
use crate::engine::format::{FIXED_HEADER_LEN, Header};
use crate::engine::{Backend, CustomerKey, Layout, Opener, Protection};
use crate::pipeline::{PipelineError, random};
use crate::store::{ObjectMeta, ObjectReader, StoredObject};

/// How a read of a stored object (or a write into an upload) is keyed.
pub(super) struct ReadKey {
    /// The key to open it with: the SSE-C key sent, or the SSE-KP bucket key.
    pub key: Option<CustomerKey>,
    /// The SSE-C key MD5 to echo.
    pub sse_c_md5: Option<String>,
    /// The SSE-KP root key to name.
    pub kp_root: Option<String>,
}

impl ReadKey {
    /// Checks the SSE-C headers sent (`alg`, `key`, `md5`) against the object's
    /// protection (recorded in `meta`) and fetches the bucket key of an SSE-KP object.
    pub(super) fn resolve(
        s: &CipherS3,
        bucket: &str,
        object: &str,
        meta: &ObjectMeta,
        sent: [&Option<String>; 3],
    ) -> S3Result<Self> {
        let sent = sse::parse(sent, bucket, object)?;
        let sse_c = sse::for_read(meta, sent)?;
        let kp_root = meta.attributes.get(kp::BUCKET_ROOT).cloned();
        Ok(match (sse_c, &kp_root) {
            (Some(k), _) => Self { key: Some(k.key), sse_c_md5: Some(k.md5), kp_root },
            (None, Some(crn)) => {
                Self { key: Some(kp::object_key(s, bucket, object, crn)?.0), sse_c_md5: None, kp_root }
            }
            (None, None) => Self { key: None, sse_c_md5: None, kp_root: None },
        })
    }

    /// [`ReadKey::resolve`] for a committed object, whose metadata must then carry a
    /// valid tag for this key ([`meta_tag`]) before anything in it is trusted.
    pub(super) fn resolve_stored(
        s: &CipherS3,
        bucket: &str,
        object: &str,
        meta: &ObjectMeta,
        sent: [&Option<String>; 3],
    ) -> S3Result<Self> {
        let read = Self::resolve(s, bucket, object, meta, sent)?;
        meta_tag::check(meta, read.key.as_ref())?;
        Ok(read)
    }

    /// The protection that writes new bytes the way this key reads them (for parts).
    pub(super) fn protection(&self) -> Protection {
        match (&self.key, &self.sse_c_md5, &self.kp_root) {
            (Some(k), Some(_), _) => Protection::SseC(k.clone()),
            (Some(k), None, Some(crn)) => Protection::SseKp { key: k.clone(), crn: crn.clone() },
            _ => Protection::Aont,
        }
    }

    /// The SSE-C algorithm to echo.
    pub(super) fn sse_c_algorithm(&self) -> Option<String> {
        self.sse_c_md5.as_ref().map(|_| "AES256".to_owned())
    }

    /// Adds the SSE-KP response headers.
    pub(super) fn name_key(&self, headers: &mut http::HeaderMap) {
        if let Some(crn) = &self.kp_root {
            kp::name_key(headers, crn);
        }
    }
}

/// One engine object inside a stored object.
struct Span {
    /// Part number bound into it (0 for a single PUT).
    number: u32,
    /// Its plaintext bytes within the object.
    plain: Range<u64>,
    /// Its stored bytes within the object's stored bytes.
    stored: Range<u64>,
    /// The salt its header must carry, when the metadata records one.
    salt: Option<Salt>,
}

/// Whether `meta`'s bytes were stored unencrypted by a benchmark build.
fn passthrough(meta: &ObjectMeta) -> bool {
    cfg!(feature = "bench-plaintext")
        && meta.attributes.get(sse::PROTECTION).is_some_and(|p| p == "plaintext")
}

/// A stored object ready to be decrypted, by range.
pub(super) struct PlainSource {
    object: StoredObject,
    raw: bool,
    /// The first span, opened already by [`PlainSource::open`] (key unsealing is not free).
    first: Option<(Opener, Layout)>,
    key: Option<CustomerKey>,
    backend: Backend,
    spans: Vec<Span>,
}

/// Reads the header of the engine object stored at `stored` and opens it as part `number`;
/// its salt must be `salt` when one is recorded.
fn open_at(
    body: &dyn ObjectReader,
    stored: &Range<u64>,
    number: u32,
    salt: Option<&Salt>,
    key: Option<&CustomerKey>,
    backend: Backend,
) -> Result<(Opener, Layout), PipelineError> {
    let read = |len: usize| -> Result<Vec<u8>, PipelineError> {
        let mut buf = vec![0u8; len.min((stored.end - stored.start) as usize)];
        let mut filled = 0;
        while filled < buf.len() {
            let n = body
                .read_at(&mut buf[filled..], stored.start + filled as u64)
                .map_err(PipelineError::io("cannot read an object header"))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    };
    let total = Header::total_len(&read(FIXED_HEADER_LEN)?)?;
    let opener = Opener::with_part(&read(total)?, key, number, backend)?;
    body_salt::check(&opener.header().salt, salt)?;
    let layout = opener.layout(stored.end - stored.start)?;
    Ok((opener, layout))
}

/// Opens one span, checking its header against the part manifest.
fn open_span(
    body: &dyn ObjectReader,
    span: &Span,
    key: Option<&CustomerKey>,
    backend: Backend,
) -> Result<(Opener, Layout), PipelineError> {
    let (opener, layout) = open_at(body, &span.stored, span.number, span.salt.as_ref(), key, backend)?;
    if layout.plaintext_len() != span.plain.end - span.plain.start {
        // The part's header disagrees with the object's part manifest.
        return Err(crate::engine::Error::Corrupted { unit: 0 }.into());
    }
    Ok((opener, layout))
}

impl PlainSource {
    /// Opens `object` with `key`: a wrong SSE-C key is 403 here, before any byte is sent.
    pub(super) fn open(s: &CipherS3, object: StoredObject, key: Option<CustomerKey>) -> S3Result<Self> {
        let stored_len = object.body.len();
        let body = object.body.as_ref();
        let raw = passthrough(&object.meta);
        let mut first = None;
        let spans = match manifest::parse(&object.meta).map_err(error::pipeline)? {
            None if raw => vec![Span { number: 0, plain: 0..stored_len, stored: 0..stored_len, salt: None }],
            None => {
                // One engine object: its plaintext length is in its header.
                let stored = 0..stored_len;
                let salt = body_salt::recorded(&object.meta).map_err(error::pipeline)?;
                let opened =
                    open_at(body, &stored, 0, salt.as_ref(), key.as_ref(), s.backend).map_err(open_error)?;
                let span = Span { number: 0, plain: 0..opened.1.plaintext_len(), stored, salt };
                first = Some(opened);
                vec![span]
            }
            Some(parts) => {
                let mut spans = Vec::with_capacity(parts.len());
                let (mut plain, mut stored) = (0u64, 0u64);
                for p in parts {
                    spans.push(Span {
                        number: p.number,
                        plain: plain..plain + p.size,
                        stored: stored..stored + p.stored,
                        salt: p.salt,
                    });
                    plain += p.size;
                    stored += p.stored;
                }
                if stored != stored_len {
                    let e = crate::engine::Error::Truncated { expected: stored, found: stored_len };
                    return Err(error::pipeline(e.into()));
                }
                // The first part tells a wrong key before any byte is sent.
                if let Some(span) = spans.first().filter(|_| !raw) {
                    first = Some(open_span(body, span, key.as_ref(), s.backend).map_err(open_error)?);
                }
                spans
            }
        };
        Ok(Self { object, raw, first, key, backend: s.backend, spans })
    }

    /// Plaintext length.
    pub(super) fn size(&self) -> u64 {
        self.spans.last().map_or(0, |s| s.plain.end)
    }

    /// Number of parts (0 for a single PUT).
    pub(super) fn parts_count(&self) -> usize {
        if self.spans.first().is_some_and(|s| s.number == 0) { 0 } else { self.spans.len() }
    }

    /// The plaintext range of the `n`th part (1-based position); a single PUT is part 1.
    pub(super) fn part_range(&self, n: usize) -> Option<Range<u64>> {
        self.spans.get(n.checked_sub(1)?).map(|s| s.plain.clone())
    }

    /// Decrypts plaintext `[first, last)` into `sink`, in order, authenticating every unit
    /// before releasing its bytes.
    pub(super) fn decrypt(
        &self,
        first: u64,
        last: u64,
        sink: &mut dyn FnMut(Bytes) -> Result<(), PipelineError>,
    ) -> Result<(), PipelineError> {
        let body = self.object.body.as_ref();
        for (i, span) in self.spans.iter().enumerate() {
            let touches = (span.plain.start < last && span.plain.end > first)
                || (first == last && span.plain.start == first);
            if !touches {
                continue;
            }
            if self.raw {
                let from = first.max(span.plain.start) - span.plain.start + span.stored.start;
                let to = last.min(span.plain.end) - span.plain.start + span.stored.start;
                copy_raw(body, from, to, sink)?;
                continue;
            }
            let reopened;
            let (opener, layout) = match (i, &self.first) {
                (0, Some((o, l))) => (o, l),
                _ => {
                    reopened = open_span(body, span, self.key.as_ref(), self.backend)?;
                    (&reopened.0, &reopened.1)
                }
            };
            let base = span.stored.start;
            let end = span.stored.end;
            let read_at = |buf: &mut [u8], off: u64| -> io::Result<usize> {
                let at = base + off;
                if at >= end {
                    return Ok(0);
                }
                let n = buf.len().min((end - at) as usize);
                body.read_at(&mut buf[..n], at)
            };
            let from = first.max(span.plain.start) - span.plain.start;
            let to = last.min(span.plain.end).max(span.plain.start) - span.plain.start;
            random::decrypt_range(&read_at, opener, layout, from, to.max(from), sink)?;
            if first == last {
                break;
            }
        }
        Ok(())
    }
}

/// Bytes per buffer passed on by [`copy_raw`], as many as a decryption batch.
const BATCH: u64 = 4 << 20;

/// Passes stored bytes `[from, to)` through unchanged (benchmark baseline objects).
fn copy_raw(
    body: &dyn ObjectReader,
    mut from: u64,
    to: u64,
    sink: &mut dyn FnMut(Bytes) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    while from < to {
        let mut buf = BytesMut::zeroed((to - from).min(BATCH) as usize);
        let got = body.read_at(&mut buf, from).map_err(PipelineError::io("cannot read an object"))?;
        if got == 0 {
            return Err(crate::engine::Error::Truncated { expected: to, found: from }.into());
        }
        buf.truncate(got);
        sink(buf.freeze())?;
        from += got as u64;
    }
    Ok(())
}

fn open_error(e: PipelineError) -> s3s::S3Error {
    match e {
        // The key matched the one the metadata records (SSE-C key MD5, the bucket's root
        // key): stored bytes that do not open with it belong to another object.
        PipelineError::Engine(crate::engine::Error::WrongKey) => {
            error::integrity(&"the stored bytes do not open with the object's key")
        }
        other => error::pipeline(other),
    }
}
