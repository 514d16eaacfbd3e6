//! Streams of unknown length (stdin now, network bodies later): a reader thread fills
//! `bytes` buffers with whole units, a worker seals or opens each batch across the rayon
//! pool, and the caller's thread writes the results in order. Bounded crossbeam channels
//! between the stages give back-pressure, so at most `2 · CHANNEL_DEPTH + 3` batches are
//! alive at once, whatever the input size.

use std::io::{BufRead, BufReader, Read, Write};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender, bounded};
use rayon::prelude::*;

use super::error::PipelineError;
use super::progress::Progress;
use crate::engine::format::{FIXED_HEADER_LEN, Header};
use crate::engine::{Backend, CustomerKey, Error, Opener, SealSpec, Sealer};

/// Plaintext bytes per batch.
pub const BATCH_BYTES: usize = 4 << 20;
/// Batches waiting between two stages.
pub const CHANNEL_DEPTH: usize = 2;

#[derive(Debug, Clone, Copy)]
struct UnitMeta {
    index: u64,
    len: usize,
    is_final: bool,
}

/// Whole units in stored layout: each unit's bytes followed by room for (or holding) its
/// overhead.
struct Batch {
    units: Vec<UnitMeta>,
    buf: BytesMut,
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, PipelineError> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PipelineError::io("cannot read the input")(e)),
        }
    }
    Ok(done)
}

fn at_eof(r: &mut impl BufRead) -> Result<bool, PipelineError> {
    Ok(r.fill_buf().map_err(PipelineError::io("cannot read the input"))?.is_empty())
}

/// Reader stage: cuts the input into units of `read_size` bytes (stored units when
/// decrypting, plaintext units when encrypting) and leaves `room` bytes after each.
fn read_units(
    input: impl Read,
    read_size: usize,
    room: usize,
    tx: Sender<Batch>,
) -> Result<u64, PipelineError> {
    let mut r = BufReader::with_capacity(256 << 10, input);
    let per_batch = (BATCH_BYTES / read_size).max(1);
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        let mut buf = BytesMut::with_capacity(per_batch * (read_size + room));
        let mut units = Vec::with_capacity(per_batch);
        let mut finished = false;
        while units.len() < per_batch {
            let start = buf.len();
            buf.resize(start + read_size, 0);
            let n = read_full(&mut r, &mut buf[start..])?;
            let is_final = n < read_size || at_eof(&mut r)?;
            buf.truncate(start + n);
            buf.resize(start + n + room, 0);
            units.push(UnitMeta { index, len: n, is_final });
            index += 1;
            total += n as u64;
            if is_final {
                finished = true;
                break;
            }
        }
        if tx.send(Batch { units, buf }).is_err() || finished {
            // A closed channel means a later stage stopped; it reports why.
            return Ok(total);
        }
    }
}

/// Runs reader → worker → writer with bounded channels; `work` transforms a batch in
/// place, `write` emits it. Returns the reader's byte count.
fn run<R: Read + Send>(
    input: R,
    read_size: usize,
    room: usize,
    work: &(dyn Fn(&mut Batch) -> Result<(), PipelineError> + Sync),
    write: &mut dyn FnMut(&Batch) -> Result<(), PipelineError>,
) -> Result<u64, PipelineError> {
    let (tx_read, rx_read): (Sender<Batch>, Receiver<Batch>) = bounded(CHANNEL_DEPTH);
    let (tx_done, rx_done): (Sender<Batch>, Receiver<Batch>) = bounded(CHANNEL_DEPTH);
    std::thread::scope(|s| {
        let reader = s.spawn(move || read_units(input, read_size, room, tx_read));
        let worker = s.spawn(move || {
            for mut batch in rx_read {
                work(&mut batch)?;
                if tx_done.send(batch).is_err() {
                    break;
                }
            }
            Ok::<(), PipelineError>(())
        });
        let mut written = Ok(());
        for batch in &rx_done {
            written = write(&batch);
            if written.is_err() {
                break;
            }
        }
        drop(rx_done);
        let read = reader.join().unwrap_or_else(|_| Err(Error::Internal.into()));
        let worked = worker.join().unwrap_or_else(|_| Err(Error::Internal.into()));
        let total = read?;
        worked?;
        written?;
        Ok(total)
    })
}

/// Splits a batch buffer into `(meta, unit bytes)` pairs.
fn split_units<'a>(units: &[UnitMeta], buf: &'a mut [u8], stored: impl Fn(&UnitMeta) -> usize) -> Vec<(UnitMeta, &'a mut [u8])> {
    let mut out = Vec::with_capacity(units.len());
    let mut rest = buf;
    for u in units {
        let (head, tail) = rest.split_at_mut(stored(u).min(rest.len()));
        out.push((*u, head));
        rest = tail;
    }
    out
}

/// Encrypts `input` into `output` as one object. `expected_len`, when given, is written
/// into the header and checked against what the input delivers. Returns the plaintext
/// length.
pub fn encrypt_stream<R: Read + Send>(
    input: R,
    output: &mut dyn Write,
    spec: &SealSpec,
    expected_len: Option<u64>,
    progress: &dyn Progress,
) -> Result<u64, PipelineError> {
    let sealer = Sealer::new(spec, expected_len)?;
    let overhead = sealer.overhead();
    output.write_all(sealer.header_bytes()).map_err(PipelineError::io("cannot write the output"))?;
    let work = |b: &mut Batch| -> Result<(), PipelineError> {
        split_units(&b.units, &mut b.buf, |u| u.len + overhead)
            .into_par_iter()
            .try_for_each(|(u, bytes)| sealer.seal_unit(u.index, u.is_final, bytes))?;
        Ok(())
    };
    let mut write = |b: &Batch| -> Result<(), PipelineError> {
        output.write_all(&b.buf).map_err(PipelineError::io("cannot write the output"))?;
        progress.advance(b.units.iter().map(|u| u.len as u64).sum());
        Ok(())
    };
    let total = run(input, sealer.unit_size(), overhead, &work, &mut write)?;
    if let Some(expected) = expected_len.filter(|&e| e != total) {
        return Err(PipelineError::InputChanged { expected, got: total });
    }
    output.flush().map_err(PipelineError::io("cannot write the output"))?;
    Ok(total)
}

/// Reads a header from the front of a stream.
fn read_stream_header(input: &mut impl Read) -> Result<Vec<u8>, PipelineError> {
    let mut header = vec![0u8; FIXED_HEADER_LEN];
    let n = read_full(input, &mut header)?;
    header.truncate(n);
    let total = Header::total_len(&header)?;
    header.resize(total, 0);
    let m = read_full(input, &mut header[FIXED_HEADER_LEN..])?;
    if m < total - FIXED_HEADER_LEN {
        return Err(Error::Truncated { expected: total as u64, found: (FIXED_HEADER_LEN + m) as u64 }.into());
    }
    Ok(header)
}

/// Decrypts one object from `input` into `output`, releasing each unit only after it
/// authenticates. An error part-way leaves the units before it written: callers writing
/// to a file use [`super::output::AtomicOutput`]. Returns the plaintext length.
pub fn decrypt_stream<R: Read + Send>(
    mut input: R,
    output: &mut dyn Write,
    key: Option<&CustomerKey>,
    backend: Backend,
    progress: &dyn Progress,
) -> Result<u64, PipelineError> {
    let header = read_stream_header(&mut input)?;
    let opener = Opener::new(&header, key, backend)?;
    let overhead = opener.header().mode.overhead();
    let stored_unit = opener.header().unit_size as usize + overhead;
    let mut plain_total = 0u64;
    let work = |b: &mut Batch| -> Result<(), PipelineError> {
        let units = split_units(&b.units, &mut b.buf, |u| u.len);
        units.into_par_iter().try_for_each(|(u, bytes)| {
            if u.len < overhead || (u.len == overhead && u.index > 0) {
                return Err(Error::Corrupted { unit: u.index });
            }
            opener.open_unit(u.index, u.is_final, bytes).map(|_| ())
        })?;
        Ok(())
    };
    let mut write = |b: &Batch| -> Result<(), PipelineError> {
        let mut off = 0;
        for u in &b.units {
            let n = u.len - overhead;
            output.write_all(&b.buf[off..off + n]).map_err(PipelineError::io("cannot write the output"))?;
            off += u.len;
            plain_total += n as u64;
            progress.advance(n as u64);
        }
        Ok(())
    };
    run(input, stored_unit, 0, &work, &mut write)?;
    if let Some(expected) = opener.header().plaintext_len.filter(|&l| l != plain_total) {
        return Err(Error::Truncated { expected, found: plain_total }.into());
    }
    output.flush().map_err(PipelineError::io("cannot write the output"))?;
    Ok(plain_total)
}
