//! Writing a dispersed object or part: bytes are cut into stripes as they arrive (the
//! engine header first, then each unit, docs/FORMAT.md §7.1), each stripe is coded into
//! `n` shards, and shard `i` with its check is appended to slice `i`. A slice whose
//! target fails is dropped and the write goes on; the write fails once fewer than the write
//! threshold remain. At commit the slices are made durable (S3 targets all at once), then the record (with the manifest
//! naming the slices that made it) is committed to the record store; nothing is visible
//! before, and a write that does not commit leaves no slice behind.

use std::io::{self, Write};
use std::sync::Arc;

use super::Shared;
use super::code::{Geometry, SliceDigest};
use super::manifest::{Manifest, Piece, wrap};
use super::targets::SliceWriter;
use crate::{ObjectWriter, PartWriter, Result, Store, StoreError, Version, blocking};

/// What the record is committed into.
pub(super) enum Sink {
    Object(Box<dyn ObjectWriter>),
    Part(Box<dyn PartWriter>),
}

/// One slice being written.
struct SliceOut {
    out: SliceWriter,
    digest: SliceDigest,
}

/// An object or part being dispersed.
pub(super) struct DispersingWriter {
    shared: Arc<Shared>,
    blob: String,
    sink: Option<Sink>,
    slices: Vec<Option<SliceOut>>,
    /// Bytes seen before the geometry was decided.
    head: Vec<u8>,
    geometry: Option<(u64, u64)>,
    /// A stripe being gathered from writes that did not hold it whole.
    stripe: Vec<u8>,
    stripe_index: u64,
    written: u64,
    parity: Vec<Vec<u8>>,
    committed: bool,
}

impl DispersingWriter {
    pub(super) fn new(shared: Arc<Shared>, sink: Sink) -> Self {
        let blob = crate::new_upload_id();
        let slices = (0..shared.code.n())
            .map(|i| match shared.targets.create(i, &blob) {
                Ok(out) => Some(SliceOut { out, digest: SliceDigest::default() }),
                Err(e) => {
                    shared.health.failed(i, &e);
                    None
                }
            })
            .collect();
        Self {
            shared,
            blob,
            sink: Some(sink),
            slices,
            head: Vec::new(),
            geometry: None,
            stripe: Vec::new(),
            stripe_index: 0,
            written: 0,
            parity: Vec::new(),
            committed: false,
        }
    }

    fn good(&self) -> usize {
        self.slices.iter().filter(|s| s.is_some()).count()
    }

    /// The write cannot succeed: carried as the store's own error, so the S3 layer answers
    /// 503 and logs why.
    fn too_few(&self) -> io::Error {
        io::Error::other(StoreError::Unavailable(format!(
            "only {} of {} dispersal targets took the write; {} are needed (write_threshold)",
            self.good(),
            self.shared.code.n(),
            self.shared.write_threshold
        )))
    }

    /// Length of the stripe being filled.
    fn stripe_len(&self, (first, unit): (u64, u64)) -> usize {
        let len = if first > 0 && self.stripe_index == 0 { first } else { unit };
        usize::try_from(len).unwrap_or(usize::MAX)
    }

    /// Codes one stripe, whose bytes are `pieces` in order, and appends its shards to the
    /// slices.
    fn code_stripe(&mut self, pieces: &[&[u8]]) -> io::Result<()> {
        let code = self.shared.code.clone();
        let data = code.data_shards(pieces);
        let checks = code
            .encode_checked(&data, &mut self.parity, &self.blob, self.stripe_index)
            .map_err(io::Error::other)?;
        for (i, c) in checks.iter().enumerate() {
            let Some(slice) = &mut self.slices[i] else { continue };
            match slice.out.append(&code.shard(i, &data, &self.parity), c) {
                Ok(()) => slice.digest.update(c),
                Err(e) => {
                    self.shared.health.failed(i, &e);
                    self.slices[i] = None;
                }
            }
        }
        self.stripe_index += 1;
        if self.good() < self.shared.write_threshold {
            return Err(self.too_few());
        }
        Ok(())
    }

    /// Codes the stripe gathered so far.
    fn flush_stripe(&mut self) -> io::Result<()> {
        let stripe = std::mem::take(&mut self.stripe);
        self.code_stripe(&[&stripe])?;
        self.stripe = stripe;
        self.stripe.clear();
        Ok(())
    }

    /// Takes bytes (`bufs`, in order) once the geometry is known. A stripe the buffers
    /// hold whole is coded from them in place; the rest is gathered.
    fn take(&mut self, bufs: &[&[u8]], geometry: (u64, u64)) -> io::Result<()> {
        let mut rest: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
        while let Some(first) = rest.first().copied() {
            let full = self.stripe_len(geometry);
            if self.stripe.is_empty() && rest.iter().map(|b| b.len()).sum::<usize>() >= full {
                let mut pieces = Vec::with_capacity(2);
                let (mut need, mut used) = (full, 0);
                while need > 0 {
                    let b = rest[used];
                    let n = need.min(b.len());
                    pieces.push(&b[..n]);
                    need -= n;
                    if n == b.len() {
                        used += 1;
                    } else {
                        rest[used] = &b[n..];
                    }
                }
                self.code_stripe(&pieces)?;
                rest.drain(..used);
                continue;
            }
            let n = (full - self.stripe.len()).min(first.len());
            self.stripe.extend_from_slice(&first[..n]);
            if n == first.len() {
                rest.remove(0);
            } else {
                rest[0] = &first[n..];
            }
            if self.stripe.len() == full {
                self.flush_stripe()?;
            }
        }
        Ok(())
    }

    /// Decides the geometry from the bytes seen so far (`complete`: there are no more).
    fn decide(&mut self, complete: bool) -> io::Result<()> {
        if self.geometry.is_some() {
            return Ok(());
        }
        let Some(g) = Geometry::decide(&self.head, complete) else { return Ok(()) };
        self.geometry = Some(g);
        let head = std::mem::take(&mut self.head);
        self.take(&[&head], g)
    }

    /// Flushes the last stripe and the slice files; returns the piece.
    fn finish(&mut self) -> Result<Piece, StoreError> {
        let unavailable = |e: io::Error| StoreError::Unavailable(e.to_string());
        self.decide(true).map_err(unavailable)?;
        let (first, unit) = self.geometry.unwrap_or((0, super::code::PLAIN_STRIPE));
        if !self.stripe.is_empty() {
            self.flush_stripe().map_err(unavailable)?;
        }
        let (open, digests): (Vec<(usize, SliceWriter)>, Vec<SliceDigest>) = self
            .slices
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.take().map(|s| ((i, s.out), s.digest)))
            .unzip();
        let (indexes, writers): (Vec<usize>, Vec<SliceWriter>) = open.into_iter().unzip();
        let mut digests_by_slice = vec![None; self.shared.code.n()];
        let results = self.shared.targets.finish_all(writers);
        for ((i, result), digest) in indexes.into_iter().zip(results).zip(digests) {
            match result {
                Ok(()) => digests_by_slice[i] = Some(digest.finish()),
                Err(e) => self.shared.health.failed(i, &e),
            }
        }
        let digests = digests_by_slice;
        let piece = Piece { blob: self.blob.clone(), len: self.written, first, unit, slices: digests };
        if piece.present() < self.shared.write_threshold {
            return Err(StoreError::Unavailable(format!(
                "only {} of {} dispersal targets took the write; {} are needed (write_threshold)",
                piece.present(),
                self.shared.code.n(),
                self.shared.write_threshold
            )));
        }
        for (i, s) in piece.slices.iter().enumerate() {
            if s.is_some() {
                self.shared.health.ok(i);
            }
        }
        Ok(piece)
    }

    async fn commit_into(self, record: &[u8]) -> Result<(u64, Piece), StoreError> {
        self.commit_as(record, None).await.map(|(len, piece, _)| (len, piece))
    }

    /// [`Self::commit_into`] as `version` of an object; returns the record of the null
    /// version it replaced for good, as stored.
    pub(super) async fn commit_version_into(
        self,
        record: &[u8],
        version: &Version,
    ) -> Result<Option<Vec<u8>>> {
        self.commit_as(record, Some(version)).await.map(|(_, _, removed)| removed)
    }

    async fn commit_as(
        self,
        record: &[u8],
        version: Option<&Version>,
    ) -> Result<(u64, Piece, Option<Vec<u8>>)> {
        // The last stripe is coded and every slice made durable: blocking work, which
        // takes the writer along and hands it back (dropped on the way, it removes the slices).
        let (mut this, piece) = blocking(move || {
            let mut writer = self;
            let piece = writer.finish();
            Ok((writer, piece))
        })
        .await?;
        let piece = piece?;
        let manifest =
            Manifest { k: this.shared.code.k(), n: this.shared.code.n(), pieces: vec![piece.clone()] };
        let wrapped = wrap(&manifest, record)?;
        let result = match (this.sink.take(), version) {
            (Some(Sink::Object(w)), None) => w.commit(&wrapped).await.map(|()| (piece.len, None)),
            (Some(Sink::Object(w)), Some(v)) => w.commit_version(&wrapped, v).await.map(|r| (piece.len, r)),
            (Some(Sink::Part(w)), _) => w.commit(&wrapped).await.map(|_| (piece.len, None)),
            (None, _) => Err(StoreError::Unavailable("the write was already committed".to_owned())),
        };
        // Committed or not, the record store has decided: on failure the slices go.
        this.committed = result.is_ok();
        result.map(|(len, removed)| (len, piece, removed))
    }
}

impl DispersingWriter {
    fn write_all_of(&mut self, bufs: &[&[u8]]) -> io::Result<usize> {
        if self.good() < self.shared.write_threshold {
            return Err(self.too_few());
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        self.written += total as u64;
        match self.geometry {
            Some(g) => self.take(bufs, g)?,
            None => {
                for b in bufs {
                    self.head.extend_from_slice(b);
                }
                self.decide(false)?;
            }
        }
        Ok(total)
    }
}

impl Write for DispersingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all_of(&[buf])
    }

    /// Takes every buffer: a stored unit and its trailer, written together, are coded
    /// without being gathered first.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let bufs: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
        self.write_all_of(&bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for DispersingWriter {
    fn drop(&mut self) {
        if !self.committed {
            self.slices.clear();
            self.shared.targets.remove(&self.blob);
        }
    }
}

/// An object write: on an unversioned commit, the slices of the object it replaced go.
pub(super) struct ObjectDispersal {
    pub(super) writer: DispersingWriter,
    /// Where the object an unversioned commit replaces is looked up, only then: the
    /// record store, the bucket and the key.
    pub(super) replaces: (Arc<dyn Store>, String, String),
}

impl Write for ObjectDispersal {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.writer.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectWriter for ObjectDispersal {
    async fn commit(self: Box<Self>, record: &[u8]) -> Result<(), StoreError> {
        let Self { writer, replaces: (records, bucket, key) } = *self;
        let shared = writer.shared.clone();
        let old = super::current_in(records.as_ref(), &bucket, &key).await;
        writer.commit_into(record).await?;
        if let Some(old) = old {
            shared.remove(&old);
        }
        Ok(())
    }

    /// The version replaced stays (noncurrent) with its slices; only a null version
    /// replaced for good loses them.
    async fn commit_version(self: Box<Self>, record: &[u8], version: &Version) -> Result<Option<Vec<u8>>> {
        let shared = self.writer.shared.clone();
        let removed = self.writer.commit_version_into(record, version).await?;
        let Some(removed) = removed else { return Ok(None) };
        match super::manifest::unwrap(&removed)? {
            Some((m, plain)) => {
                let plain = plain.to_vec();
                shared.remove(&m);
                Ok(Some(plain))
            }
            None => Ok(Some(removed)),
        }
    }
}

#[async_trait::async_trait]
impl PartWriter for DispersingWriter {
    async fn commit(self: Box<Self>, record: &[u8]) -> Result<u64, StoreError> {
        self.commit_into(record).await.map(|(len, _)| len)
    }
}
