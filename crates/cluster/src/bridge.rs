//! Synchronous callers over async clients: the store traits and the key
//! manager are synchronous, while etcd and the blob backend are reached through async
//! clients. A [`Bridge`] runs a future on the runtime it was made in and waits for it from
//! any thread: a runtime worker (through `block_in_place`), a current-thread runtime (on a
//! scoped helper thread) or a plain thread.

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

/// The runtime async clients run on, and the way back from synchronous code.
#[derive(Debug, Clone)]
pub struct Bridge {
    handle: Handle,
}

impl Bridge {
    /// A bridge to the runtime this is called in; `None` outside any runtime.
    pub fn current() -> Option<Self> {
        Handle::try_current().ok().map(|handle| Self { handle })
    }

    /// The runtime's handle (to spawn background tasks on).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `f` on the runtime and waits for it, from any thread.
    pub fn wait<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| self.handle.block_on(f)),
            // A single-threaded runtime cannot lend its thread: wait on another one.
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| self.handle.block_on(f)).join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            }),
            Err(_) => self.handle.block_on(f),
        }
    }
}
