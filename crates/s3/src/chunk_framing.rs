//! The framing of `aws-chunked` request bodies (`x-amz-content-sha256: STREAMING-…`), checked
//! as the bytes pass on to s3s, which decodes them and verifies chunk signatures and
//! trailers. One thing s3s lets through: a body that ends cleanly between chunks without
//! the final zero-length chunk. S3 refuses such a body (it cannot tell a complete upload
//! from one cut off at a chunk boundary), and so does cipherstore: [`CheckedBody`] turns
//! that end into a body error, answered 400 IncompleteBody with nothing written.
//!
//! [`Framing`] only follows the framing (chunk-size lines and data lengths) and never
//! allocates more than one bounded header line; a malformed size line makes it stop
//! judging and leaves the error to s3s's decoder.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// Longest chunk-size line followed (a size, `;chunk-signature=` and 64 hex digits, or
/// extensions, fit easily).
const MAX_LINE: usize = 4096;

/// Where a body's framing stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line (the bytes so far).
    Line(Vec<u8>),
    /// Inside a chunk: data bytes plus its closing CRLF still to come.
    Data(u64),
    /// The final zero-length chunk was seen; trailers may follow.
    Final,
    /// The framing is malformed: s3s's decoder reports it.
    Lost,
}

/// Follows the framing of one aws-chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    state: State,
}

/// A body that ended before its final zero-length chunk.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the aws-chunked body ended before its final zero-length chunk")]
pub struct MissingFinalChunk;

impl Default for Framing {
    fn default() -> Self {
        Self { state: State::Line(Vec::new()) }
    }
}

/// The chunk size a size line announces (`<hex>[;extensions]\r\n`), or `None` if the line
/// is malformed.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let hex = line.split(|&b| b == b';').next()?;
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    hex.iter().try_fold(0u64, |acc, &c| {
        let d = char::from(c).to_digit(16)?;
        Some(acc << 4 | u64::from(d))
    })
}

impl Framing {
    /// Follows the next bytes of the body.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Final | State::Lost => return,
                State::Data(left) => {
                    let take = (*left).min(bytes.len() as u64);
                    *left -= take;
                    // `take` ≤ bytes.len(), so it fits in usize.
                    bytes = &bytes[take as usize..];
                    if *left == 0 {
                        self.state = State::Line(Vec::new());
                    }
                }
                State::Line(line) => {
                    let end = bytes.iter().position(|&b| b == b'\n').map(|i| i + 1);
                    let (head, rest) = bytes.split_at(end.unwrap_or(bytes.len()));
                    line.extend_from_slice(head);
                    bytes = rest;
                    if line.len() > MAX_LINE {
                        self.state = State::Lost;
                    } else if end.is_some() {
                        self.state = match chunk_size(line) {
                            Some(0) => State::Final,
                            Some(n) => n.checked_add(2).map_or(State::Lost, State::Data),
                            None => State::Lost,
                        };
                    }
                }
            }
        }
    }

    /// Judges the end of the body: an error unless the final chunk came (or the framing
    /// was already malformed, which s3s reports).
    pub fn finish(&self) -> Result<(), MissingFinalChunk> {
        match self.state {
            State::Final | State::Lost => Ok(()),
            State::Line(_) | State::Data(_) => Err(MissingFinalChunk),
        }
    }
}

/// A request body whose aws-chunked framing is followed; ends with [`MissingFinalChunk`]
/// instead of a clean end when the final chunk never came.
pub struct CheckedBody<B> {
    inner: B,
    framing: Framing,
    ended: bool,
}

impl<B> CheckedBody<B> {
    /// Wraps the raw request body.
    pub fn new(inner: B) -> Self {
        Self { inner, framing: Framing::default(), ended: false }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> Body for CheckedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.framing.feed(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(this.framing.finish().err().map(|e| Err(e.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(chunks: &[&[u8]], fin: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(format!("{:x};chunk-signature={}\r\n", c.len(), "a".repeat(64)).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        if fin {
            out.extend_from_slice(b"0;chunk-signature=00\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n");
        }
        out
    }

    fn judge(body: &[u8], split: usize) -> Result<(), MissingFinalChunk> {
        let mut f = Framing::default();
        for piece in body.chunks(split.max(1)) {
            f.feed(piece);
        }
        f.finish()
    }

    #[test]
    fn complete_bodies_pass_and_missing_final_chunks_do_not() {
        let data = vec![7u8; 70_000];
        let chunks: [&[u8]; 3] = [&data[..65_536], &data[65_536..], b"\r\n0\r\n"];
        for split in [1, 2, 3, 17, 4096, 1 << 20] {
            assert_eq!(judge(&encode(&chunks, true), split), Ok(()), "split {split}");
            assert_eq!(judge(&encode(&chunks, false), split), Err(MissingFinalChunk), "split {split}");
            let full = encode(&chunks, true);
            assert_eq!(judge(&full[..full.len() / 2], split), Err(MissingFinalChunk), "split {split}");
        }
        assert_eq!(judge(b"", 1), Err(MissingFinalChunk));
        assert_eq!(judge(b"0\r\n\r\n", 1), Ok(()));
    }

    #[test]
    fn malformed_framing_is_left_to_the_decoder() {
        for body in [&b"zz;chunk-signature=1\r\nabc"[..], b"11111111111111111\r\n", b"ffffffffffffffff\r\n"] {
            assert_eq!(judge(body, 3), Ok(()), "{body:?}");
        }
        let long = vec![b'1'; MAX_LINE + 10];
        assert_eq!(judge(&long, 100), Ok(()));
    }
}
