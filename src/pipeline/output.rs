//! Output files that appear only when complete: written to a temporary file in the target
//! directory, flushed to disk, then renamed over the target. Dropped without
//! [`AtomicOutput::commit`], the temporary file is removed, so a failure leaves nothing.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::PipelineError;

/// A file being written that becomes `path` only on [`AtomicOutput::commit`].
pub struct AtomicOutput {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicOutput {
    /// Starts writing `path` (created with mode 0600 on Unix).
    pub fn create(path: &Path) -> Result<Self, PipelineError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".cipherstore-")
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(PipelineError::io("cannot create the output file"))?;
        Ok(Self { tmp, path: path.to_owned() })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Flushes the data to disk and renames the file into place.
    pub fn commit(self) -> Result<(), PipelineError> {
        self.tmp.as_file().sync_all().map_err(PipelineError::io("cannot flush the output file"))?;
        self.tmp.persist(&self.path).map_err(|e| PipelineError::Io {
            what: "cannot move the output file into place",
            source: e.error,
        })?;
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
