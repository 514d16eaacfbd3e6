//! Decrypting from random-access sources (stored objects): only the units holding the
//! requested bytes are read, each is authenticated before any of its bytes is released,
//! and plaintext goes to a sink in order, one batch of units at a time so memory stays
//! bounded.

use std::io;

use bytes::Bytes;

use super::budget;
use super::error::PipelineError;
use super::pool::{Buf, MAPPED_MIN};
use super::units::{open_each, units_of};
use engine::{Opener, UnitLayout};

/// Plaintext bytes decrypted per batch (whole units, at least one).
const BATCH_BYTES: usize = 4 << 20;

/// The units holding plaintext bytes `[first, last)` (even an empty read authenticates
/// the single, empty unit).
fn units_for(layout: &UnitLayout, first: u64, last: u64) -> Result<std::ops::Range<u64>, PipelineError> {
    Ok(if last > first { layout.units_for_range(first, last - 1)?.0 } else { 0..1 })
}

/// The stored bytes [`decrypt_range`] reads for plaintext bytes `[first, last)`.
pub fn stored_range(
    layout: &UnitLayout,
    first: u64,
    last: u64,
) -> Result<std::ops::Range<u64>, PipelineError> {
    let units = units_for(layout, first, last)?;
    let end = units.end.saturating_sub(1).max(units.start);
    Ok(layout.stored_offset(units.start)..layout.stored_offset(end) + layout.stored_unit_len(end) as u64)
}

/// Decrypts plaintext bytes `[first, last)` of an object whose stored bytes `read_at`
/// returns, passing them to `sink` in order, each batch in a buffer of its own (no copy
/// after decryption). Each unit's data is read straight into place and its trailer aside.
/// `layout` comes from the opener and the stored length.
pub fn decrypt_range(
    read_at: &dyn Fn(&mut [u8], u64) -> io::Result<usize>,
    opener: &Opener,
    layout: &UnitLayout,
    first: u64,
    last: u64,
    sink: &mut dyn FnMut(Bytes) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let units = units_for(layout, first, last)?;
    let per = (BATCH_BYTES / layout.unit_size()).max(1) as u64;
    let overhead = layout.overhead();
    let mut trailers = Vec::new();
    let mut u = units.start;
    let stored_unit = layout.unit_size() + overhead;
    // Reads shorter than a pooled map (most small GETs) are one heap batch, outside the
    // budget: it bounds the large batches that many requests could hold at once.
    let stored = stored_unit.saturating_mul(usize::try_from(units.end - units.start).unwrap_or(usize::MAX));
    let member = (stored >= MAPPED_MIN).then(|| budget::global().join());
    while u < units.end {
        // As many units as the budget grants (at least one): a batch lives until the
        // client has been sent it.
        let wanted = (units.end - u).min(per);
        let grant = member.as_ref().map(|m| m.take(stored_unit.saturating_mul(wanted as usize), stored_unit));
        let granted = grant.as_ref().map_or(wanted, |g| (g.bytes() / stored_unit) as u64);
        let end = u + granted.clamp(1, wanted);
        let refs = units_of(layout, u..end);
        let len = refs.iter().map(|r| r.len).sum();
        let mut data = Buf::with_capacity(len);
        data.resize(len);
        if let Some(g) = grant {
            data.hold(g);
        }
        trailers.resize(refs.len() * overhead, 0);
        let mut off = 0;
        for (i, r) in refs.iter().enumerate() {
            let at = layout.stored_offset(r.index);
            read_full_at(read_at, &mut data[off..off + r.len], at)?;
            read_full_at(read_at, &mut trailers[i * overhead..(i + 1) * overhead], at + r.len as u64)?;
            off += r.len;
        }
        open_each(opener, &refs, &mut data, &mut trailers, true)?;
        let p0 = layout.plain_offset(u);
        let (from, to) = (p0.max(first), (p0 + data.len() as u64).min(last));
        if from < to {
            sink(data.into_bytes().slice((from - p0) as usize..(to - p0) as usize))?;
        }
        u = end;
    }
    Ok(())
}

fn read_full_at(
    read_at: &dyn Fn(&mut [u8], u64) -> io::Result<usize>,
    buf: &mut [u8],
    offset: u64,
) -> Result<(), PipelineError> {
    let mut done = 0;
    while done < buf.len() {
        match read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                return Err(engine::Error::Truncated {
                    expected: offset + buf.len() as u64,
                    found: offset + done as u64,
                }
                .into());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PipelineError::io("cannot read the stored object")(e)),
        }
    }
    Ok(())
}
