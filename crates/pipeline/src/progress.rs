//! Progress reporting: the pipeline calls [`Progress::advance`] as plaintext bytes are
//! done; the CLI plugs a terminal progress bar in, everything else passes `&()`.

/// Receives progress from any worker thread.
pub trait Progress: Sync {
    /// `bytes` more plaintext bytes were processed.
    fn advance(&self, bytes: u64);
}

impl Progress for () {
    fn advance(&self, _bytes: u64) {}
}
