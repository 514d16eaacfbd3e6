//! The places slices go: `n` targets, one per slice index, each meant to be its own disk,
//! machine or service (docs/ARCHITECTURE.md, dispersal). A target is a directory or a
//! bucket on an S3-compatible service. Slice `i` of blob `B` is `<2 hex of B>/<B>.<i>`
//! under the target: a file below the directory, or an object of that name in the bucket.
//!
//! A directory target's own directory must exist: one that is gone (an unmounted disk, a
//! lost node) is reported unavailable, never silently re-created, while the fan-out
//! directories beneath it are made as needed (so a target replaced by an empty directory
//! is refilled by a rebuild). An S3 target is unavailable when its requests fail after the
//! client's retries; its requests have their own timeout, so a hung service is read
//! around instead of holding a GET.
//!
//! Slices are written through a [`SliceWriter`] (durable once [`Targets::finish_all`]
//! says so, and nothing left behind if dropped unfinished) and read through a
//! [`SliceHandle`]; reads of one stripe's shards go to every S3 target at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use ::cluster::blobs::{BlobConfig, BlobError, BlobWriter, Blobs, PART};
use ::cluster::bridge::Bridge;

/// Where one slice index goes, as configured.
#[derive(Debug, Clone)]
pub enum TargetConfig {
    /// A directory (its own disk or mount).
    Dir(PathBuf),
    /// A bucket on an S3-compatible service.
    S3(Box<BlobConfig>),
}

impl std::fmt::Display for TargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(p) => write!(f, "{}", p.display()),
            Self::S3(c) => write!(f, "{} bucket {}", c.endpoint, c.bucket),
        }
    }
}

/// An S3 target: its client, and the runtime the client runs on.
#[derive(Clone)]
pub struct S3Target {
    blobs: Blobs,
    bridge: Bridge,
}

#[derive(Clone)]
enum Target {
    Dir(PathBuf),
    S3(S3Target),
}

/// The slice targets, in slice order.
#[derive(Clone)]
pub struct Targets {
    targets: Vec<Target>,
    labels: Vec<String>,
}

/// A target that cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("dispersal target {index} ({label}): {reason}")]
pub struct TargetError {
    index: usize,
    label: String,
    reason: String,
}

fn blob_io(e: BlobError) -> io::Error {
    match e {
        BlobError::NotFound(name) => io::Error::new(io::ErrorKind::NotFound, format!("no slice {name}")),
        other => io::Error::other(other),
    }
}

/// The name of slice `i` of `blob` below its target.
fn slice_name(i: usize, blob: &str) -> String {
    format!("{}/{blob}.{i}", blob.get(..2).unwrap_or("00"))
}

impl Targets {
    /// Targets as configured (slice `i` in `configs[i]`). S3 targets need a Tokio runtime
    /// to be current: their clients run on it.
    pub fn connect(configs: &[TargetConfig]) -> Result<Self, TargetError> {
        let mut targets = Vec::with_capacity(configs.len());
        for (index, c) in configs.iter().enumerate() {
            let fail = |reason: String| TargetError { index, label: c.to_string(), reason };
            targets.push(match c {
                TargetConfig::Dir(p) => Target::Dir(p.clone()),
                TargetConfig::S3(config) => {
                    let bridge = Bridge::current()
                        .ok_or_else(|| fail("S3 targets need the async runtime to be running".to_owned()))?;
                    let blobs = Blobs::new(config).map_err(|e| fail(e.to_string()))?;
                    Target::S3(S3Target { blobs, bridge })
                }
            });
        }
        Ok(Self { targets, labels: configs.iter().map(ToString::to_string).collect() })
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Target `i` as an operator knows it (a path, or an endpoint and bucket).
    pub fn label(&self, i: usize) -> &str {
        &self.labels[i]
    }

    /// Whether `error`, from reading a slice of target `i`, says the target answered but
    /// lacks that slice (gone or short) rather than that the target itself is failing. A
    /// directory target counts as answering while its directory is there.
    pub fn only_the_slice(&self, i: usize, error: &io::Error) -> bool {
        let absent = matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof);
        absent
            && match self.targets.get(i) {
                Some(Target::Dir(dir)) => dir.is_dir(),
                Some(Target::S3(_)) => true,
                None => false,
            }
    }

    fn file_path(dir: &Path, i: usize, blob: &str) -> PathBuf {
        dir.join(slice_name(i, blob))
    }

    fn present(dir: &Path) -> io::Result<()> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(io::Error::other(format!("target {} is not a directory", dir.display()))),
            Err(e) => Err(io::Error::new(e.kind(), format!("target {} is unavailable: {e}", dir.display()))),
        }
    }

    /// Makes the fan-out directory of `path`, in a target directory that exists.
    fn ensure_parent(dir: &Path, path: &Path) -> io::Result<()> {
        Self::present(dir)?;
        if let Some(parent) = path.parent() {
            match fs::DirBuilder::new().mode(0o700).create(parent) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Starts slice `i` of `blob` (which must not exist yet).
    pub fn create(&self, i: usize, blob: &str) -> io::Result<SliceWriter> {
        self.start(i, blob, false)
    }

    /// Starts a rebuilt slice `i` of `blob`: it replaces whatever is there once finished
    /// (a directory target writes it under a temporary name, renamed in at the end).
    pub fn create_rebuilt(&self, i: usize, blob: &str) -> io::Result<SliceWriter> {
        self.start(i, blob, true)
    }

    fn start(&self, i: usize, blob: &str, rebuilt: bool) -> io::Result<SliceWriter> {
        match &self.targets[i] {
            Target::Dir(dir) => {
                let path = Self::file_path(dir, i, blob);
                Self::ensure_parent(dir, &path)?;
                let mut open = OpenOptions::new();
                open.write(true).mode(0o600);
                let (file, tmp) = if rebuilt {
                    let tmp = path.with_extension(format!("{i}.rebuild"));
                    (open.create(true).truncate(true).open(&tmp)?, Some(tmp))
                } else {
                    (open.create_new(true).open(&path)?, None)
                };
                Ok(SliceWriter::Dir { file, tmp, path })
            }
            Target::S3(t) => Ok(SliceWriter::S3 {
                target: t.clone(),
                name: slice_name(i, blob),
                buf: Vec::new(),
                upload: None,
            }),
        }
    }

    /// Finishes slice writers, durably: directory targets one after another, S3 targets
    /// all at once. Each writer's result, in the order given.
    pub fn finish_all(&self, writers: Vec<SliceWriter>) -> Vec<io::Result<()>> {
        let bridge = writers.iter().find_map(|w| match w {
            SliceWriter::S3 { target, .. } => Some(target.bridge.clone()),
            SliceWriter::Dir { .. } => None,
        });
        match bridge {
            None => writers.into_iter().map(Self::bridge_less_finish).collect(),
            Some(bridge) => {
                bridge.wait(futures_util::future::join_all(writers.into_iter().map(SliceWriter::finish)))
            }
        }
    }

    fn bridge_less_finish(w: SliceWriter) -> io::Result<()> {
        match w {
            SliceWriter::Dir { .. } => w.finish_dir(),
            SliceWriter::S3 { .. } => Err(io::Error::other("an S3 slice outside the runtime")),
        }
    }

    /// Opens slice `i` of `blob`, `len` bytes long when whole, for reading (for an S3
    /// target no request is made until the first read).
    pub fn open(&self, i: usize, blob: &str, len: u64) -> io::Result<SliceHandle> {
        match &self.targets[i] {
            Target::Dir(dir) => Ok(SliceHandle::File(File::open(Self::file_path(dir, i, blob))?)),
            Target::S3(t) => Ok(SliceHandle::S3 { target: t.clone(), name: slice_name(i, blob), len }),
        }
    }

    /// Reads each `(slice, offset, length)` in full: from directories one after another,
    /// from S3 targets all at once. Each read's result and how long it took, in the order
    /// given.
    pub fn read_all(&self, reads: &[(&SliceHandle, u64, usize)]) -> Vec<(io::Result<Vec<u8>>, Duration)> {
        let bridge = reads.iter().find_map(|(h, _, _)| match h {
            SliceHandle::S3 { target, .. } => Some(target.bridge.clone()),
            SliceHandle::File(_) => None,
        });
        match bridge {
            None => reads
                .iter()
                .map(|(h, at, len)| {
                    let started = Instant::now();
                    (h.read_file(*at, *len), started.elapsed())
                })
                .collect(),
            Some(bridge) => {
                bridge.wait(futures_util::future::join_all(reads.iter().map(|(h, at, len)| async move {
                    let started = Instant::now();
                    (h.read(*at, *len).await, started.elapsed())
                })))
            }
        }
    }

    /// Removes every slice of `blob` (those already gone, or on unavailable targets, are
    /// skipped: a rebuild or sweep finds them later).
    pub fn remove(&self, blob: &str) {
        for i in 0..self.targets.len() {
            if let Err(e) = self.remove_slice(i, &slice_name(i, blob)) {
                tracing::warn!(target_index = i, error = %e, "cannot remove a slice; a sweep will");
            }
        }
    }

    /// Removes the slice (or unfinished rebuild) of target `i` named `name` (as
    /// [`Targets::entries`] gives it); one already gone is not an error.
    pub fn remove_slice(&self, i: usize, name: &str) -> io::Result<()> {
        match &self.targets[i] {
            Target::Dir(dir) => match fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Target::S3(t) => t.bridge.wait(t.blobs.delete(name)).map_err(blob_io),
        }
    }

    /// Every slice (and unfinished rebuild) on target `i`: its name below the target and
    /// its age.
    pub fn entries(&self, i: usize) -> io::Result<Vec<(String, Duration)>> {
        match &self.targets[i] {
            Target::Dir(dir) => {
                let now = std::time::SystemTime::now();
                let mut out = Vec::new();
                for fanout in fs::read_dir(dir)?.flatten() {
                    let Ok(files) = fs::read_dir(fanout.path()) else { continue };
                    let fan = fanout.file_name().to_string_lossy().into_owned();
                    for file in files.flatten() {
                        let age = file
                            .metadata()
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|m| now.duration_since(m).ok())
                            .unwrap_or_default();
                        out.push((format!("{fan}/{}", file.file_name().to_string_lossy()), age));
                    }
                }
                Ok(out)
            }
            Target::S3(t) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let listed = t.bridge.wait(t.blobs.list("")).map_err(blob_io)?;
                Ok(listed
                    .into_iter()
                    .map(|b| (b.name, Duration::from_secs(now.saturating_sub(b.modified))))
                    .collect())
            }
        }
    }
}

/// A slice being written. Dropped unfinished, it leaves nothing: a directory target's
/// temporary file is removed, an S3 target's multipart upload is aborted (a plain write's
/// file is removed by the writer, which knows whether the record committed).
pub enum SliceWriter {
    /// A file in a directory target (`tmp`: the temporary name of a rebuilt slice).
    Dir {
        /// The open file.
        file: File,
        /// Where a rebuilt slice is written until it is complete.
        tmp: Option<PathBuf>,
        /// Where the slice belongs.
        path: PathBuf,
    },
    /// An object on an S3 target: buffered until a part's worth, then a multipart upload.
    S3 {
        /// The service.
        target: S3Target,
        /// The object's name.
        name: String,
        /// Bytes not yet handed to the upload.
        buf: Vec<u8>,
        /// The upload, once the slice outgrew one part.
        upload: Option<BlobWriter>,
    },
}

impl SliceWriter {
    /// Appends `parts` (a shard) then `check`.
    pub fn append(&mut self, parts: &[&[u8]], check: &[u8]) -> io::Result<()> {
        match self {
            Self::Dir { file, .. } => write_parts(file, parts, check),
            Self::S3 { target, name, buf, upload } => {
                for part in parts {
                    buf.extend_from_slice(part);
                }
                buf.extend_from_slice(check);
                if buf.len() < PART {
                    return Ok(());
                }
                let blobs = target.blobs.clone();
                let name = name.clone();
                let pending = std::mem::take(buf);
                let mut current = upload.take();
                let result = target.bridge.wait(async {
                    let w = match &mut current {
                        Some(w) => w,
                        None => current.insert(blobs.writer(&name).await?),
                    };
                    w.write(&pending).await
                });
                *upload = current;
                result.map_err(blob_io)
            }
        }
    }

    fn finish_dir(mut self) -> io::Result<()> {
        let Self::Dir { file, tmp, path } = &mut self else { return Ok(()) };
        file.sync_data()?;
        if let Some(tmp) = tmp.take() {
            fs::rename(&tmp, &*path)?;
        }
        match path.parent() {
            Some(parent) => File::open(parent)?.sync_all(),
            None => Ok(()),
        }
    }

    /// Makes the slice durable and visible under its name.
    async fn finish(mut self) -> io::Result<()> {
        match &mut self {
            Self::Dir { .. } => self.finish_dir(),
            Self::S3 { target, name, buf, upload } => {
                let pending = std::mem::take(buf);
                let result = match upload.take() {
                    None => target.blobs.put(name, Bytes::from(pending)).await,
                    Some(mut w) => match w.write(&pending).await {
                        Ok(()) => w.finish().await.map(|_| ()),
                        Err(e) => {
                            let _ = w.abort().await;
                            Err(e)
                        }
                    },
                };
                result.map_err(blob_io)
            }
        }
    }
}

impl Drop for SliceWriter {
    fn drop(&mut self) {
        match self {
            Self::Dir { tmp: Some(tmp), .. } => {
                let _ = fs::remove_file(tmp);
            }
            Self::Dir { .. } => {}
            Self::S3 { target, upload, .. } => {
                if let Some(w) = upload.take() {
                    target.bridge.handle().spawn(async move {
                        let _ = w.abort().await;
                    });
                }
            }
        }
    }
}

/// Writes `a` then `b`, in one system call when the file takes both.
fn write_parts(file: &mut File, parts: &[&[u8]], check: &[u8]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> =
        parts.iter().chain([&check]).filter(|p| !p.is_empty()).map(|p| io::IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = file.write_vectored(rest)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// A slice open for reading.
pub enum SliceHandle {
    /// A file in a directory target.
    File(File),
    /// An object on an S3 target.
    S3 {
        /// The service.
        target: S3Target,
        /// The object's name.
        name: String,
        /// Its length when whole.
        len: u64,
    },
}

impl SliceHandle {
    fn read_file(&self, at: u64, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Self::File(file) => {
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, at)?;
                Ok(buf)
            }
            Self::S3 { .. } => Err(io::Error::other("an S3 slice outside the runtime")),
        }
    }

    async fn read(&self, at: u64, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Self::File(_) => self.read_file(at, len),
            Self::S3 { target, name, len: whole } => {
                // A range covering the whole object may be answered with all of it (200, not
                // 206), as RFC 9110 allows and some services do: ask for it whole then.
                let got = if at == 0 && len as u64 >= *whole {
                    target.blobs.get(name).await
                } else {
                    target.blobs.get_range(name, at..at + len as u64).await
                }
                .map_err(blob_io)?;
                if got.len() != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "a slice is shorter than recorded",
                    ));
                }
                Ok(got.to_vec())
            }
        }
    }

    /// Reads `len` bytes at `at`, in full.
    pub fn read_at(&self, at: u64, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Self::File(_) => self.read_file(at, len),
            Self::S3 { target, .. } => target.bridge.wait(self.read(at, len)),
        }
    }

    /// The slice's length as stored (a HEAD request on an S3 target).
    pub fn stored_len(&self) -> io::Result<u64> {
        match self {
            Self::File(file) => Ok(file.metadata()?.len()),
            Self::S3 { target, name, .. } => target.bridge.wait(target.blobs.len(name)).map_err(blob_io),
        }
    }
}
