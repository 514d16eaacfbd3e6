//! The pipeline's error type.

use std::io;

use engine;

/// Errors from moving bytes through the engine.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The engine refused the data (bad header, wrong key, integrity failure, …).
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// Reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The input changed size while it was being read.
    #[error("the input changed while it was being read (expected {expected} bytes, got {got})")]
    InputChanged {
        /// Bytes expected.
        expected: u64,
        /// Bytes seen.
        got: u64,
    },
}

impl PipelineError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { what, source }
    }
}
