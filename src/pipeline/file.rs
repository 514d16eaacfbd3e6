//! File to file: the input is memory-mapped one window at a time (never whole, so resident
//! memory stays bounded), each window's units are processed across the rayon pool, and
//! every task writes its result with a positional write. Units are released only after
//! they authenticate.

use std::fs::File;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;

use memmap2::{Advice, Mmap, MmapOptions};
use rayon::prelude::*;

use super::error::PipelineError;
use super::progress::Progress;
use super::units::{UnitRef, open_each, seal_each, stored_slices, units_of};
use super::{ByteRange, WINDOW_BYTES, units_per_task};
use crate::engine::format::{FIXED_HEADER_LEN, Header};
use crate::engine::{Error, Layout, Opener, SealSpec, Sealer};

/// Writes all of `slices` at `offset`, with as few `pwritev` calls as the kernel allows.
fn write_all_vectored_at(file: &File, slices: &mut [IoSlice<'_>], mut offset: u64) -> Result<(), PipelineError> {
    let mut rest = slices;
    while !rest.is_empty() {
        match rustix::io::pwritev(file, &rest[..rest.len().min(1024)], offset) {
            Ok(0) => {
                return Err(PipelineError::io("cannot write the output file")(std::io::ErrorKind::WriteZero.into()));
            }
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut rest, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(PipelineError::io("cannot write the output file")(e.into())),
        }
    }
    Ok(())
}

/// Maps `len` bytes of `file` from `offset`, read-only.
fn map_window(file: &File, offset: u64, len: usize) -> Result<Mmap, PipelineError> {
    // SAFETY: the mapping is read-only and private to this function's caller, and lives
    // only while one window is processed. The file is opened by cipherstore for reading;
    // if another process truncates it meanwhile, reads past the new end fault (SIGBUS),
    // the accepted hazard of mapping files (as in ripgrep); the size is re-checked after
    // the last window so a file that changed is reported, never encrypted silently.
    let map = unsafe { MmapOptions::new().offset(offset).len(len).map(file) }
        .map_err(PipelineError::io("cannot map the input file"))?;
    // Advice is only a hint; failure to apply it changes nothing.
    let _ = map.advise(Advice::Sequential);
    Ok(map)
}

/// Unit windows covering `units`, each at most [`WINDOW_BYTES`] of plaintext.
fn windows(layout: &Layout, units: std::ops::Range<u64>) -> impl Iterator<Item = std::ops::Range<u64>> {
    let per = (WINDOW_BYTES / layout.unit_size()).max(1) as u64;
    let end = units.end;
    (units.start..end).step_by(per as usize).map(move |w| w..(w + per).min(end))
}

/// Task groups (first unit, end unit) within a window.
fn tasks(layout: &Layout, window: std::ops::Range<u64>) -> Vec<(u64, u64)> {
    let per = units_per_task(layout.unit_size()) as u64;
    let end = window.end;
    (window.start..end).step_by(per as usize).map(|t| (t, (t + per).min(end))).collect()
}

/// Encrypts the regular file `input` into `output` (which it sizes and fills from byte 0).
/// Returns the stored size.
pub fn encrypt_file(input: &File, output: &File, spec: &SealSpec, progress: &dyn Progress) -> Result<u64, PipelineError> {
    let len = input.metadata().map_err(PipelineError::io("cannot read the input's size"))?.len();
    let sealer = Sealer::new(spec, Some(len))?;
    let layout = sealer.layout(len)?;
    let overhead = sealer.overhead();
    output.set_len(layout.stored_len()).map_err(PipelineError::io("cannot size the output file"))?;
    output.write_all_at(sealer.header_bytes(), 0).map_err(PipelineError::io("cannot write the output file"))?;
    for window in windows(&layout, 0..layout.units()) {
        let start = layout.plain_offset(window.start);
        let last = window.end - 1;
        let end = layout.plain_offset(last) + layout.plain_len(last) as u64;
        let map = if end > start { Some(map_window(input, start, (end - start) as usize)?) } else { None };
        let source: &[u8] = map.as_deref().unwrap_or(&[]);
        tasks(&layout, window).into_par_iter().try_for_each_init(
            || (Vec::new(), Vec::new()),
            |(data, trailers): &mut (Vec<u8>, Vec<u8>), (t0, t1)| {
                let units = units_of(&layout, t0..t1);
                let p = (layout.plain_offset(t0) - start) as usize;
                let n: usize = units.iter().map(|u| u.len).sum();
                let src = source.get(p..p + n).ok_or(PipelineError::InputChanged { expected: len, got: start + p as u64 })?;
                data.clear();
                data.extend_from_slice(src);
                trailers.clear();
                trailers.resize(units.len() * overhead, 0);
                seal_each(&sealer, &units, data, trailers, false)?;
                let mut slices = stored_slices(&units, data, trailers, overhead);
                write_all_vectored_at(output, &mut slices, layout.stored_offset(t0))?;
                progress.advance(n as u64);
                Ok::<(), PipelineError>(())
            },
        )?;
    }
    let now = input.metadata().map_err(PipelineError::io("cannot read the input's size"))?.len();
    if now != len {
        return Err(PipelineError::InputChanged { expected: len, got: now });
    }
    Ok(layout.stored_len())
}

/// Reads the header at the start of `input` (at most 1070 bytes).
pub fn read_header(input: &File) -> Result<Vec<u8>, PipelineError> {
    let mut fixed = vec![0u8; FIXED_HEADER_LEN];
    let n = read_at_most(input, &mut fixed, 0)?;
    fixed.truncate(n);
    let total = Header::total_len(&fixed)?;
    let mut all = vec![0u8; total];
    let n = read_at_most(input, &mut all, 0)?;
    if n < total {
        return Err(Error::Truncated { expected: total as u64, found: n as u64 }.into());
    }
    Ok(all)
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> Result<usize, PipelineError> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PipelineError::io("cannot read the input file")(e)),
        }
    }
    Ok(done)
}

/// Decrypts the regular file `input` (whose header `opener` was built from) into `output`,
/// the whole object or the inclusive `range`. Returns the plaintext bytes written.
pub fn decrypt_file(
    input: &File,
    opener: &Opener,
    output: &File,
    range: Option<ByteRange>,
    progress: &dyn Progress,
) -> Result<u64, PipelineError> {
    let stored = input.metadata().map_err(PipelineError::io("cannot read the input's size"))?.len();
    let layout = opener.layout(stored)?;
    let (units, first, last) = match range {
        Some(r) => {
            let (units, end) = layout.units_for_range(r.start, r.end)?;
            (units, r.start, end + 1)
        }
        None => (0..layout.units(), 0, layout.plaintext_len()),
    };
    output.set_len(last - first).map_err(PipelineError::io("cannot size the output file"))?;
    for window in windows(&layout, units) {
        let start = layout.stored_offset(window.start);
        let lastu = window.end - 1;
        let end = layout.stored_offset(lastu) + layout.stored_unit_len(lastu) as u64;
        let map = map_window(input, start, (end - start) as usize)?;
        tasks(&layout, window).into_par_iter().try_for_each_init(
            || (Vec::new(), Vec::new()),
            |(data, trailers): &mut (Vec<u8>, Vec<u8>), (t0, t1)| {
                let units = units_of(&layout, t0..t1);
                gather(&map, start, &layout, &units, data, trailers)
                    .ok_or(PipelineError::InputChanged { expected: stored, got: start + map.len() as u64 })?;
                open_each(opener, &units, data, trailers, false)?;
                let p0 = layout.plain_offset(t0);
                let (from, to) = (p0.max(first), (p0 + data.len() as u64).min(last));
                if from < to {
                    let plain = &data[(from - p0) as usize..(to - p0) as usize];
                    output.write_all_at(plain, from - first).map_err(PipelineError::io("cannot write the output file"))?;
                    progress.advance(to - from);
                }
                Ok::<(), PipelineError>(())
            },
        )?;
    }
    Ok(last - first)
}

/// Copies the stored `units` from a window mapped at `start` into working form: data
/// contiguous in `data`, trailers in `trailers`. `None` if the window is short.
fn gather(map: &[u8], start: u64, layout: &Layout, units: &[UnitRef], data: &mut Vec<u8>, trailers: &mut Vec<u8>) -> Option<()> {
    data.clear();
    trailers.clear();
    let overhead = layout.overhead();
    for u in units {
        let s = (layout.stored_offset(u.index) - start) as usize;
        data.extend_from_slice(map.get(s..s + u.len)?);
        trailers.extend_from_slice(map.get(s + u.len..s + u.len + overhead)?);
    }
    Some(())
}
