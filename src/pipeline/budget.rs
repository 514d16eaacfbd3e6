//! The memory that streamed bodies being sealed (PUTs, parts) may hold in batch buffers,
//! shared by every request of the process. A reader that would go over it waits until
//! batches of other requests have been written: the body it has not read waits in the
//! kernel's socket buffers and TCP slows its client. So many concurrent uploads cost a
//! bounded amount of memory instead of seven batches each. Every grant is returned once
//! its batch is written, so a waiting reader always gets its turn (a batch larger than
//! the whole budget waits for all of it).
//!
//! Only sealing takes from it: its batches are freed as fast as the store takes them.
//! Batches of GETs are freed as fast as clients read, which the server does not control.
//!
//! A batch is taken before its bytes arrive, so an upload whose client sends slowly holds
//! its share while it trickles (silence is bounded by `limits.body_idle_timeout_secs`).
//! The default (256 MiB: 64 uploads with a whole batch each) keeps that from delaying
//! other uploads until more than 64 are in flight.

use std::sync::{Condvar, Mutex, PoisonError};

/// The limit unless the configuration sets one (`[limits] stream_buffers_mib`).
pub const DEFAULT_BYTES: usize = 256 << 20;

struct Held {
    limit: usize,
    held: usize,
}

/// Bytes that batches may hold at once.
pub struct Budget {
    held: Mutex<Held>,
    freed: Condvar,
}

static GLOBAL: Budget = Budget::new(DEFAULT_BYTES);

/// The process's budget, which the stream pipeline takes from.
pub fn global() -> &'static Budget {
    &GLOBAL
}

impl Budget {
    /// A budget of `limit` bytes.
    pub const fn new(limit: usize) -> Self {
        Self { held: Mutex::new(Held { limit, held: 0 }), freed: Condvar::new() }
    }

    /// Sets the limit (at start-up; batches already held are not affected).
    pub fn set_limit(&self, bytes: usize) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).limit = bytes.max(1);
        self.freed.notify_all();
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).limit
    }

    /// Bytes held now, for `/metrics`.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).held
    }

    /// Takes `bytes` (at most the whole budget) for a new batch, waiting while that would
    /// exceed the limit.
    pub fn take(&self, bytes: usize) -> Grant<'_> {
        let mut h = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let bytes = bytes.min(h.limit);
            if h.held + bytes <= h.limit {
                h.held += bytes;
                return Grant { budget: self, bytes };
            }
            h = self.freed.wait(h).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Bytes taken from a budget, given back when dropped.
pub struct Grant<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut h = self.budget.held.lock().unwrap_or_else(PoisonError::into_inner);
            h.held = h.held.saturating_sub(self.bytes);
            drop(h);
            self.budget.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn holders_never_exceed_the_limit_and_all_finish() {
        let budget: &'static Budget = Box::leak(Box::new(Budget::new(10)));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let peak = peak.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let g = budget.take(4);
                        peak.fetch_max(budget.held(), Ordering::SeqCst);
                        std::thread::yield_now();
                        drop(g);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 10);
        assert_eq!(budget.held(), 0);
        // Larger than the whole budget: the whole budget, once nothing else is held.
        let big = budget.take(25);
        assert_eq!(budget.held(), 10);
        drop(big);
        budget.set_limit(40);
        let (a, b) = (budget.take(25), budget.take(15));
        assert_eq!((budget.held(), budget.limit()), (40, 40));
        drop((a, b));
        assert_eq!(budget.held(), 0);
    }
}
