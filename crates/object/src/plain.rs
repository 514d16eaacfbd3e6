//! The plaintext view of a stored object ([`PlainSource`]), by range: its stored bytes
//! are one engine object (single PUT) or several laid end to end (multipart, one per part,
//! located by the record's part manifest, FORMAT.md §3.5). Only the parts a range touches
//! are opened, and each header opened must carry the salt the record holds for it (§3.7).

use std::io;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::error::ObjectError;
use super::record::{self, ObjectRecord, Protection, Salt};
use engine::format::{FIXED_HEADER_LEN, Header};
use engine::{Backend, CustomerKey, Opener, UnitLayout};
use pipeline::PipelineError;
use pipeline::random::{self, Stored};
use store::ObjectReader;

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

/// Whether an object's bytes were stored unencrypted by a benchmark build.
fn passthrough(record: &ObjectRecord) -> bool {
    cfg!(feature = "bench-plaintext") && record.protection == Protection::Plaintext
}

/// A stored object ready to be decrypted, by range.
pub struct PlainSource {
    body: Box<dyn ObjectReader>,
    raw: bool,
    /// The first span, opened already by [`PlainSource::open`] (key unsealing is not free).
    first: Option<(Opener, UnitLayout)>,
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
) -> Result<(Opener, UnitLayout), PipelineError> {
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
    if salt.is_some_and(|s| s != &opener.header().salt) {
        // The header is not the one the record was written for.
        return Err(engine::Error::Corrupted { unit: 0 }.into());
    }
    let layout = opener.layout(stored.end - stored.start)?;
    Ok((opener, layout))
}

/// Opens one span, checking its header against the part manifest.
fn open_span(
    body: &dyn ObjectReader,
    span: &Span,
    key: Option<&CustomerKey>,
    backend: Backend,
) -> Result<(Opener, UnitLayout), PipelineError> {
    let (opener, layout) = open_at(body, &span.stored, span.number, span.salt.as_ref(), key, backend)?;
    if layout.plaintext_len() != span.plain.end - span.plain.start {
        // The part's header disagrees with the object's part manifest.
        return Err(engine::Error::Corrupted { unit: 0 }.into());
    }
    Ok((opener, layout))
}

impl PlainSource {
    /// Opens the stored bytes `body` of the object `record` describes with `key` (whose
    /// record has been verified with it): the first header is opened here, so a wrong key
    /// is known before any byte is sent.
    pub fn open(
        body: Box<dyn ObjectReader>,
        record: &ObjectRecord,
        key: Option<CustomerKey>,
        backend: Backend,
    ) -> Result<Self, ObjectError> {
        let stored_len = body.len();
        let raw = passthrough(record);
        let mut first = None;
        let spans = match &record.layout {
            record::Layout::Single { .. } if raw => {
                vec![Span { number: 0, plain: 0..stored_len, stored: 0..stored_len, salt: None }]
            }
            record::Layout::Single { salt } => {
                // One engine object: its plaintext length is in its header.
                let stored = 0..stored_len;
                let opened = open_at(body.as_ref(), &stored, 0, salt.as_ref(), key.as_ref(), backend)
                    .map_err(open_error)?;
                let span = Span { number: 0, plain: 0..opened.1.plaintext_len(), stored, salt: *salt };
                first = Some(opened);
                vec![span]
            }
            // Callers refuse a marker before they open it; it has no bytes to read.
            record::Layout::DeleteMarker => return Err(ObjectError::DeleteMarker { named: false }),
            record::Layout::Parts(parts) => {
                let mut spans = Vec::with_capacity(parts.len());
                let (mut plain, mut stored) = (0u64, 0u64);
                for p in parts {
                    let overflow =
                        || ObjectError::Integrity(format!("the part manifest of {} overflows", record.key));
                    let plain_end = plain.checked_add(p.size).ok_or_else(overflow)?;
                    let stored_end = stored.checked_add(p.stored).ok_or_else(overflow)?;
                    spans.push(Span {
                        number: p.number,
                        plain: plain..plain_end,
                        stored: stored..stored_end,
                        salt: p.salt,
                    });
                    plain = plain_end;
                    stored = stored_end;
                }
                if stored != stored_len {
                    let e = engine::Error::Truncated { expected: stored, found: stored_len };
                    return Err(ObjectError::Pipeline(e.into()));
                }
                // The first part tells a wrong key before any byte is sent.
                if let Some(span) = spans.first().filter(|_| !raw) {
                    first = Some(open_span(body.as_ref(), span, key.as_ref(), backend).map_err(open_error)?);
                }
                spans
            }
        };
        Ok(Self { body, raw, first, key, backend, spans })
    }

    /// Plaintext length.
    pub fn size(&self) -> u64 {
        self.spans.last().map_or(0, |s| s.plain.end)
    }

    /// Number of parts (0 for a single PUT).
    pub fn parts_count(&self) -> usize {
        if self.spans.first().is_some_and(|s| s.number == 0) { 0 } else { self.spans.len() }
    }

    /// The plaintext range of the `n`th part (1-based position); a single PUT is part 1.
    pub fn part_range(&self, n: usize) -> Option<Range<u64>> {
        self.spans.get(n.checked_sub(1)?).map(|s| s.plain.clone())
    }

    /// Decrypts plaintext `[first, last)` into `sink`, in order, authenticating every unit
    /// before releasing its bytes.
    pub fn decrypt(
        &self,
        first: u64,
        last: u64,
        sink: &mut dyn FnMut(Bytes) -> Result<(), PipelineError>,
    ) -> Result<(), PipelineError> {
        let body = self.body.as_ref();
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
            let map = |off: u64, len: usize| body.map(base + off, len);
            let from = first.max(span.plain.start) - span.plain.start;
            let to = last.min(span.plain.end).max(span.plain.start) - span.plain.start;
            let stored = random::stored_range(layout, from, to.max(from))?;
            let source = if mapped(body, stored.end - stored.start) {
                Stored::Mapped(&map)
            } else {
                Stored::ReadAt(&read_at)
            };
            body.will_read(base + stored.start..base + stored.end);
            random::decrypt_range(source, opener, layout, from, to.max(from), sink)?;
            if first == last {
                break;
            }
        }
        Ok(())
    }
}

/// Bytes per buffer passed on by [`copy_raw`], as many as a decryption batch.
const BATCH: u64 = 4 << 20;

/// Reads shorter than this are copied out of the file rather than mapped: mapping and
/// unmapping (page tables, and a TLB flush on every core the process runs on) cost more
/// than copying a few pages.
const MAP_MIN: u64 = 256 << 10;

/// Whether `len` stored bytes of `body` are read from a map.
fn mapped(body: &dyn ObjectReader, len: u64) -> bool {
    len >= MAP_MIN && body.mappable()
}

/// A mapped region handed on as [`Bytes`] without a copy.
struct MappedBytes(store::Mapped);

impl AsRef<[u8]> for MappedBytes {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// Passes stored bytes `[from, to)` through unchanged (benchmark baseline objects): mapped
/// and handed on without a copy where the store maps, else read into buffers.
fn copy_raw(
    body: &dyn ObjectReader,
    mut from: u64,
    to: u64,
    sink: &mut dyn FnMut(Bytes) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    while from < to && mapped(body, to - from) {
        let n = (to - from).min(BATCH) as usize;
        let window = body.map(from, n).map_err(PipelineError::io("cannot read an object"))?;
        sink(Bytes::from_owner(MappedBytes(window)))?;
        from += n as u64;
    }
    while from < to {
        let mut buf = BytesMut::zeroed((to - from).min(BATCH) as usize);
        let got = body.read_at(&mut buf, from).map_err(PipelineError::io("cannot read an object"))?;
        if got == 0 {
            return Err(engine::Error::Truncated { expected: to, found: from }.into());
        }
        buf.truncate(got);
        sink(buf.freeze())?;
        from += got as u64;
    }
    Ok(())
}

fn open_error(e: PipelineError) -> ObjectError {
    match e {
        // The key matched the one the record holds (SSE-C key MD5, the bucket's root key):
        // stored bytes that do not open with it belong to another object.
        PipelineError::Engine(engine::Error::WrongKey) => {
            ObjectError::Integrity("the stored bytes do not open with the object's key".into())
        }
        other => ObjectError::Pipeline(other),
    }
}
