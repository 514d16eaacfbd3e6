//! Files that appear only when complete: written to a temporary file in the target
//! directory, flushed to disk, then renamed over the target and the directory flushed.
//! Dropped without [`AtomicOutput::commit`], the temporary file is removed, so a failure
//! leaves nothing and keeps any previous file. Used for CLI outputs and key state.

use std::fs::File;
use std::path::{Path, PathBuf};

use std::io;

/// A file being written that becomes `path` only on [`AtomicOutput::commit`].
pub struct AtomicOutput {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicOutput {
    /// Starts writing `path` (created with mode 0600 on Unix).
    pub fn create(path: &Path) -> io::Result<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new().prefix(".cipherstore-").suffix(".partial").tempfile_in(dir)?;
        Ok(Self { tmp, path: path.to_owned() })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Flushes the data to disk and renames the file into place.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; a directory that cannot be opened (e.g. on some
            // network filesystems) does not undo a completed rename.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// Opens (creating, mode 0600) the lock file `path` that writers of some state take an
/// exclusive `flock` on; its contents are never used.
pub fn open_lock(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let out = AtomicOutput::create(path)?;
    out.file().write_all(bytes)?;
    out.commit()
}

/// Appends `line` and a newline to `path`, creating it if missing (the IAM and lifecycle
/// audit trails: one JSON line per event).
pub fn append_line(path: &Path, line: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{line}")
}
