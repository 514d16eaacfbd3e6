//! Streams of unknown length (stdin, network bodies): a reader thread fills pooled
//! buffers with whole units, a worker seals or opens each batch across the rayon
//! pool, and the caller's thread writes the results in order. Bounded crossbeam channels
//! between the stages give back-pressure, so at most `2 · CHANNEL_DEPTH + 3` batches are
//! alive at once, whatever the input size. Batches of plaintext being sealed are sized to
//! what the input announced and to this stream's share of the process-wide
//! [`super::budget`] among all concurrent requests.

use std::io::{BufRead, BufReader, IoSlice, Read, Write};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender, bounded};

use super::budget;
use super::error::PipelineError;
use super::pool::Buf;
use super::progress::Progress;
use super::units::{UnitRef, open_each, seal_each, stored_slices};
use engine::format::{FIXED_HEADER_LEN, Header, SALT_LEN};
use engine::{Backend, CustomerKey, Error, Opener, SealSpec, Sealer};

/// Plaintext bytes per batch.
pub const BATCH_BYTES: usize = 4 << 20;
/// Batches waiting between two stages.
pub const CHANNEL_DEPTH: usize = 2;

/// Largest announced input sealed on the calling thread, without the reader and worker
/// threads.
const INLINE_MAX: u64 = 1 << 20;

/// Whole units in working form (see [`super::units`]).
struct Batch {
    units: Vec<UnitRef>,
    /// Unit data; plaintext batches read from a stream hold their budget grant in it.
    data: Buf,
    trailers: BytesMut,
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

/// How the reader cuts the input into units.
#[derive(Clone, Copy)]
enum Cut {
    /// Plaintext units of `unit` bytes; trailers left zeroed for `overhead` bytes each.
    Plain { unit: usize, overhead: usize },
    /// Stored units of `unit + overhead` bytes, split into data and trailer.
    Stored { unit: usize, overhead: usize },
}

/// Reader stage: cuts the input into batches of units and sends them on. `expected` is
/// the length the input announced (plaintext only): batches are sized to it, never
/// trusted with it (more or fewer bytes are read as they come and reported by the caller).
fn read_units(
    input: impl Read,
    cut: Cut,
    expected: Option<u64>,
    tx: Sender<Batch>,
) -> Result<u64, PipelineError> {
    let (unit, overhead, read_size, plain) = match cut {
        Cut::Plain { unit, overhead } => (unit, overhead, unit, true),
        Cut::Stored { unit, overhead } => (unit, overhead, unit + overhead, false),
    };
    let mut r = BufReader::with_capacity(256 << 10, input);
    let per_batch = (BATCH_BYTES / unit).max(1);
    let mut index = 0u64;
    let mut total = 0u64;
    // At most `cap` bytes, and no more than the plaintext still announced after `total`,
    // plus one to see the end without another read.
    let announced = expected.filter(|_| plain);
    // Sealing takes its batches from the budget, as a member for as long as it reads.
    let member = plain.then(|| budget::global().join());
    let fit = |cap: usize, total: u64| match announced {
        Some(e) => cap.min(usize::try_from(e.saturating_sub(total).saturating_add(1)).unwrap_or(usize::MAX)),
        None => cap,
    };
    loop {
        let mut room = fit(per_batch * unit, total);
        // As many whole units as the budget grants.
        let mut batch_units = per_batch;
        let grant = member.as_ref().map(|m| m.take(room + per_batch * overhead, unit + overhead));
        if let Some(g) = &grant {
            batch_units = (g.bytes() / (unit + overhead)).clamp(1, per_batch);
            room = room.min(batch_units * unit);
        }
        let mut data = Buf::with_capacity(room + overhead);
        if let Some(g) = grant {
            data.hold(g);
        }
        let mut trailers = BytesMut::with_capacity(per_batch * overhead);
        let mut units = Vec::with_capacity(batch_units);
        let mut finished = false;
        while units.len() < batch_units {
            let start = data.len();
            let want = fit(read_size, total);
            data.resize(start + want);
            let mut n = read_full(&mut r, &mut data[start..])?;
            if n == want && want < read_size {
                // More than announced: read the rest of the unit as it comes.
                data.resize(start + read_size);
                n += read_full(&mut r, &mut data[start + n..])?;
            }
            let is_final = n < read_size || at_eof(&mut r)?;
            let len = match cut {
                Cut::Plain { .. } => {
                    trailers.resize(trailers.len() + overhead, 0);
                    n
                }
                Cut::Stored { .. } => {
                    if n < overhead || (n == overhead && index > 0) {
                        return Err(Error::Truncated {
                            expected: total + read_size as u64,
                            found: total + n as u64,
                        }
                        .into());
                    }
                    trailers.extend_from_slice(&data[start + n - overhead..start + n]);
                    n - overhead
                }
            };
            data.truncate(start + len);
            units.push(UnitRef { index, len, is_final });
            index += 1;
            total += n as u64;
            if is_final {
                finished = true;
                break;
            }
        }
        if tx.send(Batch { units, data, trailers }).is_err() || finished {
            // A closed channel means a later stage stopped; it reports why.
            return Ok(total);
        }
    }
}

/// Runs reader → worker → writer with bounded channels; `work` transforms a batch in
/// place, `write` emits it. Returns the reader's byte count.
fn run<R: Read + Send>(
    input: R,
    cut: Cut,
    expected: Option<u64>,
    work: &(dyn Fn(&mut Batch) -> Result<(), PipelineError> + Sync),
    write: &mut dyn FnMut(&Batch) -> Result<(), PipelineError>,
) -> Result<u64, PipelineError> {
    let (tx_read, rx_read): (Sender<Batch>, Receiver<Batch>) = bounded(CHANNEL_DEPTH);
    let (tx_done, rx_done): (Sender<Batch>, Receiver<Batch>) = bounded(CHANNEL_DEPTH);
    std::thread::scope(|s| {
        let reader = s.spawn(move || read_units(input, cut, expected, tx_read));
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

/// Like [`run`] for plaintext held whole in memory, on the calling thread: small objects
/// (most S3 PUTs) skip the reader and worker threads and the 4 MiB batch buffers, which
/// cost more than sealing a few KiB.
fn run_inline(
    input: Buf,
    unit: usize,
    overhead: usize,
    work: &(dyn Fn(&mut Batch) -> Result<(), PipelineError> + Sync),
    write: &mut dyn FnMut(&Batch) -> Result<(), PipelineError>,
) -> Result<u64, PipelineError> {
    // An empty input is one empty, final unit; a full last unit is final too.
    let count = input.len().div_ceil(unit).max(1);
    let units = (0..count)
        .map(|i| UnitRef {
            index: i as u64,
            len: input.len().saturating_sub(i * unit).min(unit),
            is_final: i + 1 == count,
        })
        .collect();
    let mut batch = Batch { units, data: input, trailers: BytesMut::zeroed(count * overhead) };
    work(&mut batch)?;
    write(&batch)?;
    Ok(batch.data.len() as u64)
}

/// Reads a small input whose length `len` was announced, whole, plus one byte more if
/// there is one, so that a longer input is still caught by the length check.
fn read_announced(input: &mut impl Read, len: u64) -> Result<Buf, PipelineError> {
    let want = usize::try_from(len).unwrap_or(usize::MAX).saturating_add(1);
    let mut buf = Buf::with_capacity(want);
    buf.resize(want);
    let n = read_full(input, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Writes every slice in full.
fn write_all_vectored(output: &mut dyn Write, slices: &mut [IoSlice<'_>]) -> Result<(), PipelineError> {
    let mut rest = slices;
    while !rest.is_empty() {
        match output.write_vectored(rest) {
            Ok(0) => {
                return Err(PipelineError::io("cannot write the output")(
                    std::io::ErrorKind::WriteZero.into(),
                ));
            }
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PipelineError::io("cannot write the output")(e)),
        }
    }
    Ok(())
}

/// What [`encrypt_stream`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    /// Plaintext bytes.
    pub plaintext_len: u64,
    /// The object's random header salt: names these stored bytes, so metadata that records
    /// it tells them from another object's (FORMAT.md §3.6).
    pub salt: [u8; SALT_LEN],
}

/// Encrypts `input` into `output` as one object. `expected_len`, when given, is written
/// into the header and checked against what the input delivers.
pub fn encrypt_stream<R: Read + Send>(
    mut input: R,
    output: &mut dyn Write,
    spec: &SealSpec,
    expected_len: Option<u64>,
    progress: &dyn Progress,
) -> Result<Sealed, PipelineError> {
    let sealer = Sealer::new(spec, expected_len)?;
    let overhead = sealer.overhead();
    output.write_all(sealer.header_bytes()).map_err(PipelineError::io("cannot write the output"))?;
    let work = |b: &mut Batch| -> Result<(), PipelineError> {
        Ok(seal_each(&sealer, &b.units, &mut b.data, &mut b.trailers, true)?)
    };
    let mut write = |b: &Batch| -> Result<(), PipelineError> {
        write_all_vectored(output, &mut stored_slices(&b.units, &b.data, &b.trailers, overhead))?;
        progress.advance(b.data.len() as u64);
        Ok(())
    };
    let cut = Cut::Plain { unit: sealer.unit_size(), overhead };
    let total = match expected_len.filter(|&l| l <= INLINE_MAX) {
        Some(len) => {
            // Small objects (most S3 PUTs): read whole, seal on this thread.
            let buf = read_announced(&mut input, len)?;
            // Sequential: a request-per-core server gains nothing from fanning out a few
            // units, and the pool's hand-off costs more than they do.
            let sequential = |b: &mut Batch| -> Result<(), PipelineError> {
                Ok(seal_each(&sealer, &b.units, &mut b.data, &mut b.trailers, false)?)
            };
            run_inline(buf, sealer.unit_size(), overhead, &sequential, &mut write)?
        }
        None => run(input, cut, expected_len, &work, &mut write)?,
    };
    if let Some(expected) = expected_len.filter(|&e| e != total) {
        return Err(PipelineError::InputChanged { expected, got: total });
    }
    output.flush().map_err(PipelineError::io("cannot write the output"))?;
    Ok(Sealed { plaintext_len: total, salt: sealer.header().salt })
}

/// Passes `input` to `output` unchanged through the same reader and writer stages as
/// [`encrypt_stream`], minus the crypto: the baseline of the S3 benchmarks.
/// Like it, small announced inputs are copied on the calling thread.
#[cfg(feature = "bench-plaintext")]
pub fn copy_stream<R: Read + Send>(
    mut input: R,
    output: &mut dyn Write,
    expected_len: Option<u64>,
) -> Result<u64, PipelineError> {
    let total = match expected_len.filter(|&l| l <= INLINE_MAX) {
        Some(len) => {
            let buf = read_announced(&mut input, len)?;
            output.write_all(&buf).map_err(PipelineError::io("cannot write the output"))?;
            buf.len() as u64
        }
        None => {
            let work = |_: &mut Batch| -> Result<(), PipelineError> { Ok(()) };
            let mut write = |b: &Batch| -> Result<(), PipelineError> {
                output.write_all(&b.data).map_err(PipelineError::io("cannot write the output"))
            };
            run(input, Cut::Plain { unit: BATCH_BYTES, overhead: 0 }, expected_len, &work, &mut write)?
        }
    };
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
/// to a file use [`base::durable::AtomicOutput`]. Returns the plaintext length.
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
    let unit = opener.header().unit_size as usize;
    let mut plain_total = 0u64;
    let work = |b: &mut Batch| -> Result<(), PipelineError> {
        Ok(open_each(&opener, &b.units, &mut b.data, &mut b.trailers, true)?)
    };
    let mut write = |b: &Batch| -> Result<(), PipelineError> {
        output.write_all(&b.data).map_err(PipelineError::io("cannot write the output"))?;
        plain_total += b.data.len() as u64;
        progress.advance(b.data.len() as u64);
        Ok(())
    };
    run(input, Cut::Stored { unit, overhead }, None, &work, &mut write)?;
    if let Some(expected) = opener.header().plaintext_len.filter(|&l| l != plain_total) {
        return Err(Error::Truncated { expected, found: plain_total }.into());
    }
    output.flush().map_err(PipelineError::io("cannot write the output"))?;
    Ok(plain_total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Sealing;

    /// Streams longer than the inline limit, with the length announced right, too short
    /// or too long, or not at all: the bytes round-trip when it is right or absent, and a
    /// wrong one is reported, never trusted.
    #[test]
    fn announced_lengths_size_batches_but_are_never_trusted() {
        let unit = 64 << 10;
        let spec = SealSpec { unit_size: unit as u32, ..SealSpec::new(Sealing::Aont, Backend::Accelerated) };
        for len in [INLINE_MAX as usize + 1, 3 * unit * 16, 3 * unit * 16 + 1, BATCH_BYTES * 2 + 7] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for announced in [None, Some(len as u64)] {
                let mut sealed = Vec::new();
                let out = encrypt_stream(plain.as_slice(), &mut sealed, &spec, announced, &()).unwrap();
                assert_eq!(out.plaintext_len, len as u64);
                let mut back = Vec::new();
                decrypt_stream(sealed.as_slice(), &mut back, None, Backend::Accelerated, &()).unwrap();
                assert!(back == plain, "{len} bytes, announced {announced:?}");
            }
            for wrong in [len as u64 - 1, len as u64 + 1] {
                let mut sealed = Vec::new();
                let e = encrypt_stream(plain.as_slice(), &mut sealed, &spec, Some(wrong), &());
                assert!(
                    matches!(e, Err(PipelineError::InputChanged { .. }) | Err(PipelineError::Engine(_))),
                    "{len} bytes announced as {wrong}: {:?}",
                    e.map(|s| s.plaintext_len)
                );
            }
        }
    }
}
