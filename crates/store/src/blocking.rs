//! Blocking work inside an async store operation: file system calls that walk
//! directories or wait for the disk.
//!
//! Two ways, chosen per operation:
//! - [`blocking`] (the rule): the work, owning what it needs, runs on the runtime's
//!   blocking pool while the request waits. Request handling, and the memory it
//!   allocates, stays on the runtime's few worker threads.
//! - [`in_place`] (the exception, for work that must call back into the caller's borrowed
//!   closures, or report progress through them): the worker hands its queue to another
//!   thread and runs the work itself (`block_in_place`). Every call moves request handling
//!   to another thread; with glibc's allocator each such thread gets its own arena and
//!   keeps what was freed into it, so under load the server's memory grows with the number
//!   of threads that ever handled a request (the 64-client soak measured 244 MiB of
//!   anonymous memory with every fs operation in place, 2026-12-07, against ~140 with them
//!   on the blocking pool). Kept for operations off the hot path.

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::StoreError;

/// Runs `work`, which blocks (directory walks, `fsync`), on the runtime's blocking pool
/// and waits for it; outside a runtime it simply runs. `work` owns what it uses (the
/// store handle is cheap to clone). A panic in `work` carries on in the caller, as if
/// the work had run there.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    let Ok(handle) = Handle::try_current() else { return work() };
    match handle.spawn_blocking(work).await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(StoreError::Unavailable("the server is shutting down".to_owned())),
    }
}

/// Runs `work`, which blocks, where the caller is (see the module's note on why this is
/// the exception): on a multi-threaded runtime's worker it first hands the worker's queue
/// to another thread (`block_in_place`); elsewhere (a current-thread runtime, a plain or
/// blocking-pool thread) it simply runs. Borrowed arguments stay borrowed.
pub(crate) fn in_place<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
