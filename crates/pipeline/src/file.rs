//! File to file: the units are split into tasks of about [`super::TASK_BYTES`] that run
//! across the rayon pool; each task maps only its own slice of the input (so resident
//! memory stays bounded by the pool size, whatever the file size, and page-table work runs
//! in parallel), seals or opens its units, and writes them with one positional vectored
//! write. Units are released only after they authenticate.

use std::fs::File;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;

use memmap2::{Advice, Mmap, MmapOptions};
use rayon::prelude::*;

use super::error::PipelineError;
use super::progress::Progress;
use super::units::{UnitRef, open_each, seal_each, stored_slices, units_of};
use super::{ByteRange, units_per_task};
use engine::format::{FIXED_HEADER_LEN, Header};
use engine::{Error, Opener, SealSpec, Sealer, UnitLayout};

/// Writes all of `slices` at `offset`, with as few `pwritev` calls as the kernel allows.
fn write_all_vectored_at(
    file: &File,
    slices: &mut [IoSlice<'_>],
    mut offset: u64,
) -> Result<(), PipelineError> {
    let mut rest = slices;
    while !rest.is_empty() {
        match rustix::io::pwritev(file, &rest[..rest.len().min(1024)], offset) {
            Ok(0) => {
                return Err(PipelineError::io("cannot write the output file")(
                    std::io::ErrorKind::WriteZero.into(),
                ));
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
fn map_range(file: &File, offset: u64, len: usize) -> Result<Mmap, PipelineError> {
    // SAFETY: the mapping is read-only and private to this function's caller, and lives
    // only while one task runs. The file is opened by cipherstore for reading;
    // if another process truncates it meanwhile, reads past the new end fault (SIGBUS),
    // the accepted hazard of mapping files (as in ripgrep); the size is re-checked after
    // the last task so a file that changed is reported, never encrypted silently.
    let map = unsafe { MmapOptions::new().offset(offset).len(len).map(file) }
        .map_err(PipelineError::io("cannot map the input file"))?;
    // Advice is only a hint; failure to apply it changes nothing.
    let _ = map.advise(Advice::Sequential);
    Ok(map)
}

/// Task groups `(first unit, end unit)` covering `units`.
fn tasks(layout: &UnitLayout, units: std::ops::Range<u64>) -> Vec<(u64, u64)> {
    let per = units_per_task(layout.unit_size()) as u64;
    let end = units.end;
    (units.start..end).step_by(per as usize).map(|t| (t, (t + per).min(end))).collect()
}

/// Encrypts the regular file `input` into `output` (which it sizes and fills from byte 0).
/// Returns the stored size.
pub fn encrypt_file(
    input: &File,
    output: &File,
    spec: &SealSpec,
    progress: &dyn Progress,
) -> Result<u64, PipelineError> {
    let len = input.metadata().map_err(PipelineError::io("cannot read the input's size"))?.len();
    let sealer = Sealer::new(spec, Some(len))?;
    let layout = sealer.layout(len)?;
    let overhead = sealer.overhead();
    output.set_len(layout.stored_len()).map_err(PipelineError::io("cannot size the output file"))?;
    output
        .write_all_at(sealer.header_bytes(), 0)
        .map_err(PipelineError::io("cannot write the output file"))?;
    tasks(&layout, 0..layout.units()).into_par_iter().try_for_each_init(
        || (Vec::new(), Vec::new()),
        |(data, trailers): &mut (Vec<u8>, Vec<u8>), (t0, t1)| {
            let units = units_of(&layout, t0..t1);
            let start = layout.plain_offset(t0);
            let n: usize = units.iter().map(|u| u.len).sum();
            data.clear();
            if n > 0 {
                let map = map_range(input, start, n)?;
                data.extend_from_slice(&map);
            }
            trailers.clear();
            trailers.resize(units.len() * overhead, 0);
            seal_each(&sealer, &units, data, trailers, false)?;
            let mut slices = stored_slices(&units, data, trailers, overhead);
            write_all_vectored_at(output, &mut slices, layout.stored_offset(t0))?;
            progress.advance(n as u64);
            Ok::<(), PipelineError>(())
        },
    )?;
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
    tasks(&layout, units).into_par_iter().try_for_each_init(
        || (Vec::new(), Vec::new()),
        |(data, trailers): &mut (Vec<u8>, Vec<u8>), (t0, t1)| {
            let units = units_of(&layout, t0..t1);
            let start = layout.stored_offset(t0);
            let len = layout.stored_offset(t1 - 1) + layout.stored_unit_len(t1 - 1) as u64 - start;
            let map = map_range(input, start, len as usize)?;
            gather(&map, start, &layout, &units, data, trailers)
                .ok_or(PipelineError::InputChanged { expected: stored, got: start + map.len() as u64 })?;
            drop(map);
            open_each(opener, &units, data, trailers, false)?;
            let p0 = layout.plain_offset(t0);
            let (from, to) = (p0.max(first), (p0 + data.len() as u64).min(last));
            if from < to {
                let plain = &data[(from - p0) as usize..(to - p0) as usize];
                output
                    .write_all_at(plain, from - first)
                    .map_err(PipelineError::io("cannot write the output file"))?;
                progress.advance(to - from);
            }
            Ok::<(), PipelineError>(())
        },
    )?;
    Ok(last - first)
}

/// Copies the stored `units` from a window mapped at `start` into working form: data
/// contiguous in `data`, trailers in `trailers`. `None` if the window is short.
fn gather(
    map: &[u8],
    start: u64,
    layout: &UnitLayout,
    units: &[UnitRef],
    data: &mut Vec<u8>,
    trailers: &mut Vec<u8>,
) -> Option<()> {
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
