//! The places slices go: `n` directories, one per slice index, each meant to be on its own
//! disk, machine or mount (docs/ARCHITECTURE.md, dispersal). Slice `i` of blob `B` is the
//! file `<target i>/<first two hex digits of B>/<B>.<i>`. A target's own directory must
//! exist: one that is gone (an unmounted disk, a lost node) is reported unavailable, never
//! silently re-created, while the fan-out directories beneath it are made as needed (so a
//! target replaced by an empty directory is refilled by a rebuild).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The slice targets, in slice order.
#[derive(Debug, Clone)]
pub struct Targets {
    dirs: Vec<PathBuf>,
}

impl Targets {
    /// Targets in these directories (slice `i` in `dirs[i]`).
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Target `i`'s directory.
    pub fn dir(&self, i: usize) -> &Path {
        &self.dirs[i]
    }

    /// The file of slice `i` of `blob`.
    pub fn path(&self, i: usize, blob: &str) -> PathBuf {
        self.dirs[i].join(blob.get(..2).unwrap_or("00")).join(format!("{blob}.{i}"))
    }

    fn present(&self, i: usize) -> io::Result<()> {
        match fs::metadata(&self.dirs[i]) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(io::Error::other(format!("target {} is not a directory", self.dirs[i].display()))),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("target {} is unavailable: {e}", self.dirs[i].display()),
            )),
        }
    }

    /// Creates slice `i` of `blob` (which must not exist), in a target that exists.
    pub fn create(&self, i: usize, blob: &str) -> io::Result<File> {
        self.present(i)?;
        let path = self.path(i, blob);
        if let Some(parent) = path.parent() {
            match fs::DirBuilder::new().mode(0o700).create(parent) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)
    }

    /// Creates slice `i` of `blob` under a temporary name, for a rebuild that renames it
    /// into place with [`Targets::place`] once complete.
    pub fn create_temp(&self, i: usize, blob: &str) -> io::Result<(File, PathBuf)> {
        self.present(i)?;
        let path = self.path(i, blob);
        if let Some(parent) = path.parent() {
            match fs::DirBuilder::new().mode(0o700).create(parent) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let tmp = path.with_extension(format!("{i}.rebuild"));
        let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        Ok((file, tmp))
    }

    /// Moves a rebuilt slice into place, durably.
    pub fn place(&self, i: usize, blob: &str, tmp: &Path) -> io::Result<()> {
        let path = self.path(i, blob);
        fs::rename(tmp, &path)?;
        self.sync_dir(i, blob)
    }

    /// Flushes the directory entry of slice `i` of `blob`.
    pub fn sync_dir(&self, i: usize, blob: &str) -> io::Result<()> {
        match self.path(i, blob).parent() {
            Some(parent) => File::open(parent)?.sync_all(),
            None => Ok(()),
        }
    }

    /// Opens slice `i` of `blob` for reading.
    pub fn open(&self, i: usize, blob: &str) -> io::Result<File> {
        File::open(self.path(i, blob))
    }

    /// Removes every slice of `blob` (those already gone, or on unavailable targets, are
    /// skipped: a rebuild or sweep finds them later).
    pub fn remove(&self, blob: &str) {
        for i in 0..self.dirs.len() {
            match fs::remove_file(self.path(i, blob)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(target = i, error = %e, "cannot remove a slice; a sweep will"),
            }
        }
    }
}
