//! Decrypting from random-access sources (stored objects): only the units holding the
//! requested bytes are read, each is authenticated before any of its bytes is released,
//! and plaintext goes to a sink in order, one batch of units at a time so memory stays
//! bounded.

use std::io;

use bytes::Bytes;

use super::budget;
use super::error::PipelineError;
use super::pool::{Buf, MAPPED_MIN};
use super::units::{UnitRef, open_each, units_of};
use engine::{InOut, Opener, UnitLayout};
use rayon::prelude::*;

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

/// A window of an object's stored bytes held in memory (a mapped file region).
pub type Window = Box<dyn AsRef<[u8]> + Send>;

/// Where [`decrypt_range`] finds an object's stored bytes.
#[derive(Clone, Copy)]
pub enum Stored<'a> {
    /// Read by `read_at(buf, offset)` (up to `buf.len()` bytes, 0 at the end): each unit's
    /// data is read straight into the batch buffer and decrypted there.
    ReadAt(&'a dyn Fn(&mut [u8], u64) -> io::Result<usize>),
    /// Windows `map(offset, len)` of exactly `len` bytes, read in place: each unit is
    /// decrypted from the window into the batch buffer, so its bytes are copied by nothing
    /// but the decryption (a GET of a file mapped from the page cache).
    Mapped(&'a dyn Fn(u64, usize) -> io::Result<Window>),
}

/// Decrypts plaintext bytes `[first, last)` of an object whose stored bytes `stored`
/// gives, passing them to `sink` in order, each batch in a buffer of its own (no copy
/// after decryption). `layout` comes from the opener and the stored length.
pub fn decrypt_range(
    stored: Stored<'_>,
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
    let total = stored_unit.saturating_mul(usize::try_from(units.end - units.start).unwrap_or(usize::MAX));
    let member = (total >= MAPPED_MIN).then(|| budget::global().join());
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
        match stored {
            Stored::ReadAt(read_at) => {
                trailers.resize(refs.len() * overhead, 0);
                let mut off = 0;
                for (i, r) in refs.iter().enumerate() {
                    let at = layout.stored_offset(r.index);
                    read_full_at(read_at, &mut data[off..off + r.len], at)?;
                    read_full_at(
                        read_at,
                        &mut trailers[i * overhead..(i + 1) * overhead],
                        at + r.len as u64,
                    )?;
                    off += r.len;
                }
                open_each(opener, &refs, &mut data, &mut trailers, true)?;
            }
            Stored::Mapped(map) => {
                let start = layout.stored_offset(u);
                let window = map(start, len + refs.len() * overhead)
                    .map_err(PipelineError::io("cannot map the stored object"))?;
                open_from(opener, layout, &refs, (*window).as_ref(), start, &mut data)?;
            }
        }
        let p0 = layout.plain_offset(u);
        let (from, to) = (p0.max(first), (p0 + data.len() as u64).min(last));
        if from < to {
            sink(data.into_bytes().slice((from - p0) as usize..(to - p0) as usize))?;
        }
        u = end;
    }
    Ok(())
}

/// Opens `units` from `window` (their stored bytes, from stored offset `start`) into
/// `out`, fanned out over the rayon pool when there are several.
fn open_from(
    opener: &Opener,
    layout: &UnitLayout,
    units: &[UnitRef],
    window: &[u8],
    start: u64,
    out: &mut [u8],
) -> Result<(), PipelineError> {
    let overhead = layout.overhead();
    let mut jobs = Vec::with_capacity(units.len());
    let mut rest = out;
    for u in units {
        // Where the unit lies in the window; anything out of it (a short window, or an
        // output shorter than the units) is reported, never indexed.
        let s = usize::try_from(layout.stored_offset(u.index).saturating_sub(start)).unwrap_or(usize::MAX);
        let (d, t) = (s.saturating_add(u.len), s.saturating_add(u.len).saturating_add(overhead));
        let (Some(data), Some(trailer)) = (window.get(s..d), window.get(d..t)) else {
            return Err(engine::Error::Truncated {
                expected: start.saturating_add(t as u64),
                found: start.saturating_add(window.len() as u64),
            }
            .into());
        };
        let Some((o, tail)) = std::mem::take(&mut rest).split_at_mut_checked(u.len) else {
            return Err(engine::Error::InvalidParameter("unit buffers are too small").into());
        };
        rest = tail;
        jobs.push((*u, data, trailer, o));
    }
    let open = |(u, data, trailer, output): (UnitRef, &[u8], &[u8], &mut [u8])| {
        opener.open_unit_io(u.index, u.is_final, InOut::Copy { input: data, output }, trailer)
    };
    if jobs.len() > 1 {
        jobs.into_par_iter().try_for_each(open)?
    } else {
        jobs.into_iter().try_for_each(open)?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{InMemory, stored_slices};
    use engine::{Backend, CustomerKey, SealSpec, Sealer, Sealing};

    /// A whole stored object (header and units) for `spec`, with its plaintext.
    fn stored_object(spec: &SealSpec, len: usize) -> (Vec<u8>, Vec<u8>) {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let sealer = Sealer::new(spec, Some(len as u64)).unwrap();
        let layout = sealer.layout(len as u64).unwrap();
        let mut m = InMemory::new(&layout, &plain);
        m.seal(&sealer, false).unwrap();
        let mut stored = sealer.header_bytes().to_vec();
        for s in stored_slices(&m.units, &m.data, &m.trailers, sealer.overhead()) {
            stored.extend_from_slice(&s);
        }
        (stored, plain)
    }

    /// Plaintext `[first, last)` through `decrypt_range`, reading with positioned reads
    /// (`mapped` false) or windows; `Err` if any unit failed.
    fn read(
        stored: &[u8],
        key: Option<&CustomerKey>,
        first: u64,
        last: u64,
        mapped: bool,
    ) -> Result<Vec<u8>, PipelineError> {
        let opener = Opener::new(stored, key, Backend::Accelerated).unwrap();
        let layout = opener.layout(stored.len() as u64).unwrap();
        let read_at = |buf: &mut [u8], off: u64| -> io::Result<usize> {
            let s = (off as usize).min(stored.len());
            let n = buf.len().min(stored.len() - s);
            buf[..n].copy_from_slice(&stored[s..s + n]);
            Ok(n)
        };
        let map = |off: u64, n: usize| -> io::Result<Window> {
            let s = off as usize;
            Ok(Box::new(stored.get(s..s + n).ok_or(io::ErrorKind::UnexpectedEof)?.to_vec()))
        };
        let source = if mapped { Stored::Mapped(&map) } else { Stored::ReadAt(&read_at) };
        let mut out = Vec::new();
        decrypt_range(source, &opener, &layout, first, last, &mut |b: Bytes| {
            out.extend_from_slice(&b);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn mapped_windows_decrypt_what_positioned_reads_do_and_refuse_what_they_refuse() {
        let key = CustomerKey::new(engine::SecretKey::from_bytes([3; 32]));
        let specs = [
            (SealSpec { unit_size: 4096, ..SealSpec::new(Sealing::Aont, Backend::Accelerated) }, None),
            (
                SealSpec {
                    unit_size: 4096,
                    aont_cipher: engine::CipherId::Aes256Ctr,
                    ..SealSpec::new(Sealing::Aont, Backend::Accelerated)
                },
                None,
            ),
            (
                SealSpec {
                    unit_size: 4096,
                    ..SealSpec::new(Sealing::SseC(key.clone()), Backend::Accelerated)
                },
                Some(&key),
            ),
        ];
        for (spec, k) in &specs {
            let (stored, plain) = stored_object(spec, 5 * 4096 + 100);
            let n = plain.len() as u64;
            for (first, last) in [(0, n), (1, 2), (4095, 4097), (3 * 4096, n), (n, n), (0, 0)] {
                let want = &plain[first as usize..last as usize];
                assert_eq!(read(&stored, *k, first, last, false).unwrap(), want, "{first}..{last}");
                assert_eq!(read(&stored, *k, first, last, true).unwrap(), want, "{first}..{last}, mapped");
            }
            // A flipped bit in unit 2's data or trailer: both sources refuse, and a range
            // that does not touch unit 2 still reads.
            let opener = Opener::new(&stored, *k, Backend::Accelerated).unwrap();
            let (header, overhead) = (opener.header_len(), opener.header().mode.overhead());
            for at in [header + 2 * (4096 + overhead) + 5, header + 3 * (4096 + overhead) - 1] {
                let mut bad = stored.clone();
                bad[at] ^= 0x20;
                for mapped in [false, true] {
                    assert!(read(&bad, *k, 0, n, mapped).is_err(), "mapped {mapped}");
                    assert!(read(&bad, *k, 2 * 4096 + 10, 2 * 4096 + 11, mapped).is_err(), "mapped {mapped}");
                    assert_eq!(read(&bad, *k, 0, 4096, mapped).unwrap(), &plain[..4096]);
                }
            }
        }
    }
}
