//! The embedded filesystem backend. Layout under the data directory:
//!
//! ```text
//! tmp/                               writes in progress (emptied at start-up)
//! buckets/<bucket>/bucket.json       bucket record
//! buckets/<bucket>/untagged          present while no object of the bucket ever had an annex
//! buckets/<bucket>/objects/<c1>/…/<cn>.o   one file per object (keypath.rs)
//! buckets/<bucket>/objects/<c1>/…/<cn>.t   its annex (tags, retention, legal hold set after
//!                                          it was written), if it has one
//! buckets/<bucket>/objects/<c1>/…/<cn>.v/   its noncurrent versions (versions.rs)
//! buckets/<bucket>/uploads/<id>/…          multipart uploads in progress (uploads.rs)
//! ```
//!
//! An object file is the object's bytes, then its record (as the object layer encoded it),
//! then the record's length (u32 little-endian) and the magic `CSMETA01`, so record and
//! data appear together with one rename: a write goes to `tmp/`, is flushed, renamed into place and
//! the directory flushed. Directories are created 0700, files 0600. A file written as a
//! version (its bucket keeps versions) has the version's id and flags (33 bytes) between
//! its record and the length, and the magic `CSMETA02`.
//!
//! Bucket records are kept in memory once read (known.rs): the data directory belongs to
//! one process. Buckets made before `untagged` existed have no such file and are looked
//! through for annexes as before.

mod known;
mod uploads;
mod versions;

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use known::{Bucket, Known};

use super::keypath::{self, CHUNK};
use super::{
    Named, ObjectReader, ObjectWriter, StoreError, StoredObject, Version, check_bucket_name, check_key,
};

const MAGIC: &[u8; 8] = b"CSMETA01";
/// The magic of a file with a version block.
const MAGIC_VERSIONED: &[u8; 8] = b"CSMETA02";
/// A version block: the id, then the flags byte.
const VERSION_BLOCK: usize = super::versions::ID_LEN + 1;
const TRAILER: usize = 12;
const MAX_META: u32 = 1 << 20;
/// Object files up to this long are read whole with one read when opened, not in the
/// six or more small reads of trailer, record, header, units and tags (small GETs spent
/// ~13% of their CPU in those reads' copies, one page cache lookup each).
const READ_WHOLE_MAX: u64 = 64 << 10;
const SUFFIX: &str = ".o";
/// The suffix of the file holding a version's annex (tags, retention, legal hold),
/// beside its object file.
const TAGS_SUFFIX: &str = "t";
/// The file whose presence says that no object of its bucket ever had an annex.
const UNTAGGED: &str = "untagged";

/// Objects in a directory tree. A clone is another handle on the same store (cheap: its
/// state is shared), which blocking work on the blocking pool owns.
#[derive(Clone)]
pub struct FsStore {
    root: Arc<Path>,
    known: Arc<Known>,
    locks: Arc<versions::KeyLocks>,
}

fn mkdirs(path: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(StoreError::io(format!("cannot create {}", path.display())))
}

fn sync_dir(path: &Path) {
    // Durability of a rename; a directory that cannot be opened does not undo it.
    if let Ok(d) = File::open(path) {
        let _ = d.sync_all();
    }
}

impl FsStore {
    /// Opens (creating) a store in `root` and removes writes left over from a crash.
    /// Returns the store and how many leftovers it removed.
    pub fn open(root: &Path) -> Result<(Self, usize), StoreError> {
        mkdirs(&root.join("tmp"))?;
        mkdirs(&root.join("buckets"))?;
        let mut removed = 0;
        for entry in fs::read_dir(root.join("tmp")).map_err(StoreError::io("cannot read tmp/"))? {
            let path = entry.map_err(StoreError::io("cannot read tmp/"))?.path();
            let r = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            r.map_err(StoreError::io(format!("cannot remove leftover {}", path.display())))?;
            removed += 1;
        }
        Ok((Self { root: Arc::from(root), known: Arc::default(), locks: Arc::default() }, removed))
    }

    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf, StoreError> {
        check_bucket_name(bucket)?;
        Ok(self.root.join("buckets").join(bucket))
    }

    /// A private (0700) directory under `tmp/`, to be filled and renamed into place.
    fn staging_dir(&self, prefix: &str) -> Result<tempfile::TempDir, StoreError> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.root.join("tmp"))
            .map_err(StoreError::io("cannot create a temporary directory"))?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
            .map_err(StoreError::io("cannot restrict a temporary directory"))?;
        Ok(dir)
    }

    /// An existing bucket's directory and what is known of it (from memory once read).
    fn known_bucket(&self, bucket: &str) -> Result<(PathBuf, Arc<Bucket>), StoreError> {
        let dir = self.bucket_dir(bucket)?;
        if let Some(known) = self.known.get(bucket) {
            return Ok((dir, known));
        }
        let generation = self.known.generation();
        let path = dir.join("bucket.json");
        let record = match fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchBucket(bucket.to_owned()));
            }
            Err(e) => return Err(StoreError::io(format!("cannot read {}", path.display()))(e)),
        };
        let known = Arc::new(Bucket::new(record, dir.join(UNTAGGED).exists()));
        self.known.keep(bucket, known.clone(), generation);
        Ok((dir, known))
    }

    fn existing_bucket(&self, bucket: &str) -> Result<PathBuf, StoreError> {
        Ok(self.known_bucket(bucket)?.0)
    }

    /// The path of object `key`'s file and what is known of its bucket.
    fn object_in(&self, bucket: &str, key: &str) -> Result<(PathBuf, Arc<Bucket>), StoreError> {
        check_key(key)?;
        let (dir, known) = self.known_bucket(bucket)?;
        let mut path = dir.join("objects");
        let parts = keypath::components(key);
        let (last, dirs) = parts.split_last().ok_or(StoreError::InvalidKey("the key is empty"))?;
        for d in dirs {
            path.push(d);
        }
        path.push(format!("{last}{SUFFIX}"));
        Ok((path, known))
    }

    /// Removes the bucket's `untagged` file (durably) before its first annex is written,
    /// so that GET looks for annexes from then on, in this process and after a restart.
    fn mark_tagged(&self, bucket: &str, known: &Bucket) -> Result<(), StoreError> {
        // Under the change lock, so that an UpdateBucket does not carry the old flag over.
        let _change = self.known.change();
        let dir = self.bucket_dir(bucket)?;
        match fs::remove_file(dir.join(UNTAGGED)) {
            Ok(()) => sync_dir(&dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(format!("cannot update {}", dir.display()))(e)),
        }
        known.mark_tagged();
        if let Some(current) = self.known.get(bucket) {
            current.mark_tagged();
        }
        Ok(())
    }

    fn temp(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        tempfile::Builder::new()
            .prefix("put-")
            .tempfile_in(self.root.join("tmp"))
            .map_err(StoreError::io("cannot create a temporary file"))
    }

    fn read_bucket_record(dir: &Path) -> Result<Vec<u8>, StoreError> {
        let path = dir.join("bucket.json");
        fs::read(&path).map_err(StoreError::io(format!("cannot read {}", path.display())))
    }

    /// Reads the record trailer of an object or part file; returns it, the body length
    /// and the version it was written as, if any.
    fn read_record(file: &File, path: &Path) -> Result<Trailer, StoreError> {
        let len = file.metadata().map_err(StoreError::io(format!("cannot stat {}", path.display())))?.len();
        Self::read_record_of(file, len, path)
    }

    /// [`Self::read_record`] of a file of `len` bytes.
    fn read_record_of(file: &File, len: u64, path: &Path) -> Result<Trailer, StoreError> {
        let mut trailer = [0u8; TRAILER];
        if len >= TRAILER as u64 {
            file.read_exact_at(&mut trailer, len - TRAILER as u64)
                .map_err(StoreError::io(format!("cannot read {}", path.display())))?;
        }
        let split = Self::split_trailer(&trailer, len, path)?;
        let mut meta = vec![0u8; split.meta_len + if split.versioned { VERSION_BLOCK } else { 0 }];
        file.read_exact_at(&mut meta, split.body_len)
            .map_err(StoreError::io(format!("cannot read {}", path.display())))?;
        let version = match split.versioned {
            true => Some(Self::version_block(&meta[split.meta_len..], path)?),
            false => None,
        };
        meta.truncate(split.meta_len);
        Ok(Trailer { record: meta, body_len: split.body_len, version })
    }

    /// The version a version block names.
    fn version_block(block: &[u8], path: &Path) -> Result<Version, StoreError> {
        let (id, flags) = block.split_at_checked(super::versions::ID_LEN).unwrap_or((block, &[]));
        std::str::from_utf8(id)
            .ok()
            .zip(flags.first())
            .and_then(|(id, flags)| Version::from_parts(id, *flags))
            .ok_or_else(|| StoreError::Corrupt {
                path: path.display().to_string(),
                reason: "malformed version block".into(),
            })
    }

    /// Where the body, record and version block of a file of `len` bytes ending in
    /// `trailer` are.
    fn split_trailer(trailer: &[u8; TRAILER], len: u64, path: &Path) -> Result<Split, StoreError> {
        let corrupt =
            |reason: &str| StoreError::Corrupt { path: path.display().to_string(), reason: reason.into() };
        if len < TRAILER as u64 {
            return Err(corrupt("shorter than its trailer"));
        }
        let versioned = match &trailer[4..] {
            m if m == MAGIC => false,
            m if m == MAGIC_VERSIONED => true,
            _ => return Err(corrupt("no metadata trailer")),
        };
        let meta_len = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let block = if versioned { VERSION_BLOCK as u64 } else { 0 };
        if meta_len > MAX_META || u64::from(meta_len) + block + TRAILER as u64 > len {
            return Err(corrupt("metadata length out of range"));
        }
        let body_len = len - TRAILER as u64 - block - u64::from(meta_len);
        Ok(Split { body_len, meta_len: meta_len as usize, versioned })
    }

    /// Opens an object file for reading: its record, a reader of its body (held in
    /// memory when the file is short, see [`READ_WHOLE_MAX`]), and its version.
    fn open_object(file: File, path: &Path) -> Result<(Vec<u8>, FsReader, Option<Version>), StoreError> {
        let len = file.metadata().map_err(StoreError::io(format!("cannot stat {}", path.display())))?.len();
        if len > READ_WHOLE_MAX {
            let t = Self::read_record_of(&file, len, path)?;
            return Ok((t.record, FsReader::File { file, len: t.body_len }, t.version));
        }
        let mut whole = vec![0u8; len as usize];
        file.read_exact_at(&mut whole, 0)
            .map_err(StoreError::io(format!("cannot read {}", path.display())))?;
        let mut trailer = [0u8; TRAILER];
        if let Some(end) = whole.len().checked_sub(TRAILER) {
            trailer.copy_from_slice(&whole[end..]);
        }
        let split = Self::split_trailer(&trailer, len, path)?;
        // Lengths checked against `len` above, which is whole.len().
        let body_len = split.body_len as usize;
        let meta_end = body_len + split.meta_len;
        let record = whole[body_len..meta_end].to_vec();
        let version = match split.versioned {
            true => Some(Self::version_block(&whole[meta_end..meta_end + VERSION_BLOCK], path)?),
            false => None,
        };
        whole.truncate(body_len);
        Ok((record, FsReader::Memory(whole), version))
    }

    /// Visits the object files under `dir` (whose components so far spell `hex`) in key
    /// order, from the first key after `after` (or, `inclusive`, from `after` itself), until
    /// `visit` returns `false`; returns `false` then.
    fn walk(
        &self,
        dir: &Path,
        hex: &str,
        prefix: &str,
        after: Option<&str>,
        inclusive: bool,
        visit: &mut dyn FnMut(String, PathBuf) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(StoreError::io(format!("cannot list {}", dir.display()))(e)),
        };
        // (name as hex, is_file)
        let mut names: Vec<(String, bool)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(StoreError::io(format!("cannot list {}", dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry.file_type().map_err(StoreError::io("cannot stat"))?.is_file();
            let stem = if is_file { name.strip_suffix(SUFFIX) } else { Some(name.as_str()) };
            if let Some(stem) = stem.filter(|s| keypath::unhex(s).is_some()) {
                names.push((stem.to_owned(), is_file));
            }
        }
        // Keys sort by hex; a key ending here sorts before longer keys sharing its hex.
        names.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        for (stem, is_file) in names {
            let full = format!("{hex}{stem}");
            if !(full.starts_with(prefix) || (!is_file && prefix.starts_with(&full))) {
                continue;
            }
            if let Some(after) = after {
                // A directory whose keys may still follow `after` is entered; a file is
                // listed only if its key sorts strictly after it.
                let subtree_may_follow = !is_file && after.starts_with(&full);
                let listed = full.as_str() > after || (inclusive && full.as_str() == after);
                if !listed && !subtree_may_follow {
                    continue;
                }
            }
            if is_file {
                let path = dir.join(format!("{stem}{SUFFIX}"));
                let name =
                    keypath::unhex(&full).and_then(|k| String::from_utf8(k).ok()).ok_or_else(|| {
                        StoreError::Corrupt {
                            path: path.display().to_string(),
                            reason: "not a key's file name".into(),
                        }
                    })?;
                if !visit(name, path)? {
                    return Ok(false);
                }
            } else if stem.len() == CHUNK
                && !self.walk(&dir.join(&stem), &full, prefix, after, inclusive, visit)?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Opens a file a listing found; `None` if it was deleted meanwhile.
    fn open_listed(path: &Path) -> Result<Option<File>, StoreError> {
        match File::open(path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(format!("cannot open {}", path.display()))(e)),
        }
    }

    /// Removes empty directories from `dir` up to (not including) `stop`.
    fn prune(dir: &Path, stop: &Path) {
        let mut d = dir.to_path_buf();
        while d.starts_with(stop) && d != stop {
            if fs::remove_dir(&d).is_err() {
                break;
            }
            if !d.pop() {
                break;
            }
        }
    }
}

/// What a file's trailer holds.
struct Trailer {
    record: Vec<u8>,
    body_len: u64,
    version: Option<Version>,
}

/// Where a file's parts are.
struct Split {
    body_len: u64,
    meta_len: usize,
    versioned: bool,
}

/// The body of an object file being read.
pub(super) enum FsReader {
    /// Read from the file as asked.
    File { file: File, len: u64 },
    /// Read whole when opened.
    Memory(Vec<u8>),
}

impl ObjectReader for FsReader {
    fn len(&self) -> u64 {
        match self {
            Self::File { len, .. } => *len,
            Self::Memory(body) => body.len() as u64,
        }
    }
    fn mappable(&self) -> bool {
        matches!(self, Self::File { .. })
    }
    fn map(&self, offset: u64, len: usize) -> std::io::Result<super::Mapped> {
        let Self::File { file, len: stored } = self else {
            return Err(std::io::ErrorKind::Unsupported.into());
        };
        if offset.checked_add(len as u64).is_none_or(|end| end > *stored) {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        // SAFETY: read-only and private. An object file is never written or truncated once
        // renamed into place (every change is a new file renamed over it; the old inode
        // lives while open), and the range lies within its stored bytes, checked above, so
        // no access can fault past the end of the file.
        let map = unsafe { memmap2::MmapOptions::new().offset(offset).len(len).populate().map(file) }?;
        Ok(Box::new(map))
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let len = self.len();
        if offset >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - offset) as usize);
        match self {
            Self::File { file, .. } => file.read_at(&mut buf[..n], offset),
            Self::Memory(body) => {
                // offset < len = body.len(), so it fits in usize.
                let at = offset as usize;
                buf[..n].copy_from_slice(&body[at..at + n]);
                Ok(n)
            }
        }
    }
}

struct FsWriter {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    objects: PathBuf,
    locks: Arc<versions::KeyLocks>,
}

/// `Write` for a writer whose bytes go to its `tmp` temporary file (flushed at commit).
macro_rules! write_to_tmp {
    ($writer:ty) => {
        impl std::io::Write for $writer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.tmp.as_file_mut().write(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.tmp.as_file_mut().write_vectored(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
use crate::{BucketStore, ObjectStore, Page, blocking};
use write_to_tmp;

write_to_tmp!(FsWriter);

impl FsWriter {
    /// [`ObjectWriter::commit`], blocking.
    fn commit_now(self, record: &[u8]) -> Result<(), StoreError> {
        // No key lock: in a bucket that never kept versions the last rename wins, and
        // holding the lock over this flush would serialise writers of other keys.
        let FsWriter { tmp, target, objects, .. } = self;
        place(tmp, record, None, &target, Some(&objects))
    }

    /// [`ObjectWriter::commit_version`], blocking.
    fn commit_version_now(self, record: &[u8], version: &Version) -> Result<Option<Vec<u8>>, StoreError> {
        let FsWriter { tmp, target, objects, locks } = self;
        let _key = locks.lock(&target);
        versions::install(tmp, record, version, &target, &objects)
    }
}

#[async_trait::async_trait]
impl ObjectWriter for FsWriter {
    async fn commit(self: Box<Self>, record: &[u8]) -> Result<(), StoreError> {
        let record = record.to_vec();
        blocking(move || self.commit_now(&record)).await
    }

    async fn commit_version(
        self: Box<Self>,
        record: &[u8],
        version: &Version,
    ) -> crate::Result<Option<Vec<u8>>> {
        let (record, version) = (record.to_vec(), version.clone());
        blocking(move || self.commit_version_now(&record, &version)).await
    }
}

/// Appends `record` (and `version`'s block) as the trailer to `tmp`, flushes it and
/// renames it to `target`, creating `target`'s parent directories if `create_under` is
/// given (else the parent must exist).
fn place(
    tmp: tempfile::NamedTempFile,
    json: &[u8],
    version: Option<&Version>,
    target: &Path,
    create_under: Option<&Path>,
) -> Result<(), StoreError> {
    let len = u32::try_from(json.len())
        .ok()
        .filter(|l| *l <= MAX_META)
        .ok_or(StoreError::InvalidKey("object metadata is larger than 1 MiB"))?;
    let mut f = tmp.as_file();
    f.write_all(json).map_err(StoreError::io("cannot write object metadata"))?;
    if let Some(v) = version {
        f.write_all(v.id.as_str().as_bytes()).map_err(StoreError::io("cannot write object metadata"))?;
        f.write_all(&[v.flags()]).map_err(StoreError::io("cannot write object metadata"))?;
    }
    f.write_all(&len.to_le_bytes()).map_err(StoreError::io("cannot write object metadata"))?;
    let magic = if version.is_some() { MAGIC_VERSIONED } else { MAGIC };
    f.write_all(magic).map_err(StoreError::io("cannot write object metadata"))?;
    f.sync_all().map_err(StoreError::io("cannot flush the object"))?;
    let parent = target.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut tmp = tmp;
    for attempt in 0..3 {
        if create_under.is_some() {
            mkdirs(&parent)?;
        }
        match tmp.persist(target) {
            Ok(_) => break,
            // A concurrent delete pruned the directory between mkdir and rename.
            Err(e)
                if e.error.kind() == std::io::ErrorKind::NotFound
                    && create_under.is_some()
                    && attempt < 2 =>
            {
                tmp = e.file
            }
            Err(e) => return Err(StoreError::io("cannot move the object into place")(e.error)),
        }
    }
    sync_dir(&parent);
    Ok(())
}

impl FsStore {
    /// Runs `work` on another handle on this store on the blocking pool ([`blocking`]);
    /// `work` owns its arguments.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&FsStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        blocking(move || work(&store)).await
    }

    /// Starts writing `key` in `bucket` ([`ObjectStore::put`]).
    fn writer(&self, bucket: &str, key: &str) -> Result<FsWriter, StoreError> {
        let (target, _) = self.object_in(bucket, key)?;
        let objects = self.existing_bucket(bucket)?.join("objects");
        let locks = self.locks.clone();
        Ok(FsWriter { tmp: self.temp()?, target, objects, locks })
    }

    /// Opens the current object of `key` ([`ObjectStore::get`]): one record read, inline.
    fn current(&self, bucket: &str, key: &str) -> Result<StoredObject, StoreError> {
        let (path, known) = self.object_in(bucket, key)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchKey { bucket: bucket.to_owned(), key: key.to_owned() });
            }
            Err(e) => return Err(StoreError::io(format!("cannot open {}", path.display()))(e)),
        };
        let (record, body, version) = Self::open_object(file, &path)?;
        let annex = versions::read_annex(&path, known.untagged())?;
        Ok(StoredObject { record, body: Box::new(body), annex, version })
    }
}

#[async_trait::async_trait]
impl BucketStore for FsStore {
    async fn create_bucket(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        let (name, record) = (name.to_owned(), record.to_vec());
        self.run(move |this| {
            let dir = this.bucket_dir(&name)?;
            let _change = this.known.change();
            if dir.exists() {
                return Err(StoreError::BucketExists(name));
            }
            let staging = this.staging_dir("bucket-")?;
            mkdirs(&staging.path().join("objects"))?;
            base::durable::write_atomic(&staging.path().join(UNTAGGED), b"")
                .map_err(StoreError::io("cannot write bucket metadata"))?;
            base::durable::write_atomic(&staging.path().join("bucket.json"), &record)
                .map_err(StoreError::io("cannot write bucket metadata"))?;
            let staged = staging.keep();
            match fs::rename(&staged, &dir) {
                Ok(()) => {
                    sync_dir(&this.root.join("buckets"));
                    this.known.set(&name, Arc::new(Bucket::new(record, true)));
                    Ok(())
                }
                Err(e) => {
                    let _ = fs::remove_dir_all(&staged);
                    if dir.exists() {
                        Err(StoreError::BucketExists(name))
                    } else {
                        Err(StoreError::io("cannot create the bucket")(e))
                    }
                }
            }
        })
        .await
    }

    async fn bucket(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.known_bucket(name)?.1.record.clone())
    }

    async fn update_bucket(&self, name: &str, expected: &[u8], record: &[u8]) -> Result<(), StoreError> {
        let (name, expected, record) = (name.to_owned(), expected.to_vec(), record.to_vec());
        self.run(move |this| {
            // Every change goes through `change`, and the record in memory is the one on disk.
            let _change = this.known.change();
            let (dir, known) = this.known_bucket(&name)?;
            if known.record != expected {
                return Err(StoreError::BucketChanged(name));
            }
            match base::durable::write_atomic(&dir.join("bucket.json"), &record) {
                Ok(()) => {
                    this.known.set(&name, Arc::new(Bucket::new(record, known.untagged())));
                    Ok(())
                }
                Err(e) => {
                    // Old or new record: read it again next time.
                    this.known.forget(&name);
                    Err(StoreError::io("cannot write bucket metadata")(e))
                }
            }
        })
        .await
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.run(move |this| {
            let _change = this.known.change();
            let dir = this.existing_bucket(&name)?;
            if !this.versions_page(&name, Page::new("", None, 1))?.is_empty() {
                return Err(StoreError::BucketNotEmpty(name));
            }
            // Vanish at once, then clean up at leisure.
            let graveyard = this.staging_dir("deleted-")?.keep();
            let target = graveyard.join("bucket");
            let renamed = fs::rename(&dir, &target);
            this.known.forget(&name);
            renamed.map_err(StoreError::io("cannot delete the bucket"))?;
            sync_dir(&this.root.join("buckets"));
            fs::remove_dir_all(&graveyard).map_err(StoreError::io("cannot remove the deleted bucket"))
        })
        .await
    }

    async fn list_buckets(&self) -> Result<Vec<Named>, StoreError> {
        self.run(|this| {
            let mut out = Vec::new();
            for entry in
                fs::read_dir(this.root.join("buckets")).map_err(StoreError::io("cannot list buckets"))?
            {
                let entry = entry.map_err(StoreError::io("cannot list buckets"))?;
                let dir = entry.path();
                if let Some(name) = entry.file_name().to_str().filter(|n| check_bucket_name(n).is_ok())
                    && dir.join("bucket.json").is_file()
                {
                    out.push(Named {
                        name: name.to_owned(),
                        record: Self::read_bucket_record(&dir)?,
                        annex: None,
                    });
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }
}

#[async_trait::async_trait]
impl ObjectStore for FsStore {
    async fn put(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError> {
        Ok(Box::new(self.writer(bucket, key)?))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<StoredObject, StoreError> {
        self.current(bucket, key)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<bool, StoreError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.run(move |this| {
            let (path, known) = this.object_in(&bucket, &key)?;
            match known.untagged() {
                true => {}
                false => match fs::remove_file(path.with_extension(TAGS_SUFFIX)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(format!("cannot delete {}", path.display()))(e)),
                },
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    let objects = this.existing_bucket(&bucket)?.join("objects");
                    if let Some(parent) = path.parent() {
                        sync_dir(parent);
                        Self::prune(parent, &objects);
                    }
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(StoreError::io(format!("cannot delete {}", path.display()))(e)),
            }
        })
        .await
    }

    async fn list(&self, bucket: &str, page: Page<'_>) -> Result<Vec<Named>, StoreError> {
        let Page { prefix, after: start_after, limit } = page;
        let prefix = keypath::hex(prefix.as_bytes());
        let after = start_after.map(|a| keypath::hex(a.as_bytes()));
        let bucket = bucket.to_owned();
        self.run(move |this| {
            let (dir, known) = this.known_bucket(&bucket)?;
            let objects = dir.join("objects");
            let mut out = Vec::new();
            if limit > 0 {
                this.walk(&objects, "", &prefix, after.as_deref(), false, &mut |name, path| {
                    let Some(file) = Self::open_listed(&path)? else { return Ok(true) };
                    let t = Self::read_record(&file, &path)?;
                    if !t.version.is_some_and(|v| v.marker) {
                        let annex = versions::read_annex(&path, known.untagged())?;
                        out.push(Named { name, record: t.record, annex });
                    }
                    Ok(out.len() < limit)
                })?;
            }
            Ok(out)
        })
        .await
    }
}
