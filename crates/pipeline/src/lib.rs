//! Moving bytes through the engine. Files are memory-mapped a task's slice at a time and
//! their units processed across a rayon pool with positional writes ([`file`]); streams (stdin
//! now, network bodies later) flow through bounded crossbeam channels of `bytes` buffers
//! with back-pressure ([`stream`]). Memory stays bounded whatever the input size. The
//! pipeline never chooses keys or algorithms: it is handed a `Sealer` or an `Opener`.

pub mod budget;
pub mod error;
pub mod file;
pub mod pool;
pub mod progress;
pub mod random;
pub mod stream;
pub mod units;

pub use error::PipelineError;
pub use progress::Progress;

/// Plaintext bytes a parallel task handles at once (a whole number of units, at least one).
pub const TASK_BYTES: usize = 1 << 20;

/// Units per parallel task for a unit size.
pub(crate) fn units_per_task(unit_size: usize) -> usize {
    (TASK_BYTES / unit_size.max(1)).max(1)
}

/// Inclusive plaintext byte range to decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (clamped to the object's end, as HTTP does).
    pub end: u64,
}
