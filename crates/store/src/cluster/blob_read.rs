//! Reading a cluster object's bytes by range, for the synchronous decryption pipeline:
//! a small object's from its entry ([`Inline`]), a larger one's from its blobs laid end
//! to end ([`BlobReader`]), where a small or scattered read is one ranged backend GET of
//! a window (a whole 4 KiB object is one request), and a long sequential read is one
//! streamed backend GET whose body flows in while earlier bytes are being decrypted, so a
//! 1 GiB object costs two backend requests and no per-window round trip.

use std::io;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::blob_error;
use crate::ObjectReader;
use ::cluster::blobs::{BlobError, Blobs};
use ::cluster::bridge::Bridge;

/// Bytes fetched by a ranged read that does not start a stream: the header of an object
/// and, for a small object, all of it.
pub(crate) const WINDOW: u64 = 256 << 10;
/// Chunks of a streamed read held between the backend and the reader (with the socket's
/// own buffers, a few MiB: enough to keep the backend sending while a batch decrypts).
const STREAM_CHUNKS: usize = 64;

/// A small object's bytes, kept in its entry.
pub(crate) struct Inline(Bytes);

impl Inline {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Self(bytes)
    }
}

impl ObjectReader for Inline {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let at = usize::try_from(offset).unwrap_or(usize::MAX).min(self.0.len());
        let n = (self.0.len() - at).min(buf.len());
        buf[..n].copy_from_slice(&self.0[at..at + n]);
        Ok(n)
    }
}

/// One blob of an object.
pub(crate) struct Piece {
    /// The blob's name.
    pub name: String,
    /// Its first byte's offset in the object.
    pub start: u64,
    /// Its length.
    pub len: u64,
}

/// Bytes fetched by one ranged read.
#[derive(Default)]
struct Window {
    /// Object offset of `bytes[0]`.
    start: u64,
    bytes: Bytes,
}

/// A streamed read of object bytes `[pos, end)` (within one blob), received in order.
struct Streamed {
    /// Object offset of `pending[0]`.
    pos: u64,
    end: u64,
    pending: Bytes,
    rx: mpsc::Receiver<Result<Bytes, BlobError>>,
    task: JoinHandle<()>,
}

impl Drop for Streamed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct State {
    window: Window,
    stream: Option<Streamed>,
    /// Where the last read ended: a read starting here continues a sequential scan.
    next: u64,
    /// The range the caller said it is about to read.
    planned: Option<Range<u64>>,
}

/// An object's bytes in its blobs.
pub(crate) struct BlobReader {
    blobs: Blobs,
    bridge: Bridge,
    pieces: Vec<Piece>,
    len: u64,
    state: Mutex<State>,
}

impl BlobReader {
    /// The object made of `pieces` (in order, contiguous from 0).
    pub(crate) fn new(blobs: Blobs, bridge: Bridge, pieces: Vec<Piece>) -> Self {
        let len = pieces.last().map_or(0, |p| p.start + p.len);
        Self { blobs, bridge, pieces, len, state: Mutex::default() }
    }

    /// The blob holding object offset `offset`.
    fn piece(&self, offset: u64) -> Option<&Piece> {
        self.pieces.iter().rev().find(|p| p.start <= offset && offset < p.start + p.len)
    }

    /// Fetches object bytes `[from, to)` (within one blob) with one ranged GET.
    fn fetch(&self, piece: &Piece, from: u64, to: u64) -> io::Result<Bytes> {
        let range = from - piece.start..to - piece.start;
        self.bridge
            .wait(self.blobs.get_range(&piece.name, range))
            .map_err(|e| io::Error::other(blob_error(e)))
    }

    /// Starts a streamed GET of object bytes `[from, to)` (within one blob).
    fn stream(&self, piece: &Piece, from: u64, to: u64) -> Streamed {
        let (tx, rx) = mpsc::channel(STREAM_CHUNKS);
        let blobs = self.blobs.clone();
        let name = piece.name.clone();
        let range = from - piece.start..to - piece.start;
        let task = self.bridge.handle().spawn(async move {
            match blobs.stream(&name, range).await {
                Ok(mut body) => {
                    while let Some(chunk) = body.next().await {
                        let failed = chunk.is_err();
                        if tx.send(chunk).await.is_err() || failed {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Streamed { pos: from, end: to, pending: Bytes::new(), rx, task }
    }

    /// Copies the next streamed bytes into `buf`, waiting for them if need be.
    fn take(&self, s: &mut Streamed, buf: &mut [u8]) -> io::Result<usize> {
        while s.pending.is_empty() {
            let next = match s.rx.try_recv() {
                Ok(chunk) => Some(chunk),
                Err(mpsc::error::TryRecvError::Empty) => self.bridge.wait(s.rx.recv()),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
            match next {
                Some(Ok(chunk)) => s.pending = chunk,
                Some(Err(e)) => return Err(io::Error::other(blob_error(e))),
                None => {
                    let cut = BlobError::Unavailable("the backend ended a streamed read early".into());
                    return Err(io::Error::other(blob_error(cut)));
                }
            }
        }
        let n = s.pending.len().min(buf.len()).min(usize::try_from(s.end - s.pos).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&s.pending[..n]);
        s.pending = s.pending.slice(n..);
        s.pos += n as u64;
        Ok(n)
    }
}

impl ObjectReader for BlobReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn will_read(&self, range: Range<u64>) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).planned = Some(range);
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let st = &mut *st;
        let n = match offset.checked_sub(st.window.start) {
            // In the last window.
            Some(at) if at < st.window.bytes.len() as u64 => {
                let available = &st.window.bytes[at as usize..];
                let n = available.len().min(buf.len());
                buf[..n].copy_from_slice(&available[..n]);
                n
            }
            _ => match &mut st.stream {
                // Where the stream is.
                Some(s) if s.pos == offset && offset < s.end => self.take(s, buf)?,
                _ => {
                    st.stream = None;
                    let Some(piece) = self.piece(offset) else { return Ok(0) };
                    let blob_end = piece.start + piece.len;
                    // A planned range, or a scan going on, is streamed to its end; any other
                    // read fetches a window.
                    let until = match &st.planned {
                        Some(p) if p.contains(&offset) => Some(p.end.min(blob_end)),
                        _ if offset == st.next && offset > 0 => Some(blob_end),
                        _ => None,
                    };
                    match until {
                        Some(end) if end - offset > WINDOW => {
                            let s = st.stream.insert(self.stream(piece, offset, end));
                            self.take(s, buf)?
                        }
                        _ => {
                            let size = WINDOW.max(buf.len() as u64);
                            let bytes = self.fetch(piece, offset, blob_end.min(offset + size))?;
                            let n = bytes.len().min(buf.len());
                            buf[..n].copy_from_slice(&bytes[..n]);
                            st.window = Window { start: offset, bytes };
                            n
                        }
                    }
                }
            },
        };
        st.next = offset + n as u64;
        Ok(n)
    }
}
