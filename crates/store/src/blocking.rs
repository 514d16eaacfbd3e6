//! Blocking work inside an async store operation: file system calls that walk
//! directories or wait for the disk.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work`, which blocks (directory walks, `fsync`), from an async store operation
/// without stalling the other tasks of the runtime: on a multi-threaded runtime's worker
/// it hands the worker's queue to another thread first (`block_in_place`); elsewhere (a
/// current-thread runtime, a plain or blocking-pool thread) it simply runs. Borrowed
/// arguments stay borrowed, unlike `spawn_blocking`.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
