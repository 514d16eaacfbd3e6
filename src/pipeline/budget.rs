//! The memory that batch buffers of streamed bodies may hold, shared by every request of
//! the process: uploads being sealed (PUTs, parts) and range reads being sent (GETs, until
//! the client has been sent each batch). A batch takes as many whole units as the budget
//! has left, never waiting: beyond the limit, every request goes on in batches of one unit
//! (which may take it over the limit by that much each). So many requests at once cost a
//! bounded amount of memory instead of seven 4 MiB batches each, and no request waits for
//! another's client: a stalled reader holds only the batches it already has.
//!
//! Back-pressure comes from the pipeline's bounded channels: a reader with a full channel
//! stops reading, its body waits in the kernel's socket buffers, and TCP slows its client.

use std::sync::{Mutex, PoisonError};

/// The limit unless the configuration sets one (`[limits] stream_buffers_mib`).
pub const DEFAULT_BYTES: usize = 128 << 20;

struct Held {
    limit: usize,
    held: usize,
}

/// Bytes that batches may hold at once.
pub struct Budget {
    held: Mutex<Held>,
}

static GLOBAL: Budget = Budget::new(DEFAULT_BYTES);

/// The process's budget, which the stream pipeline takes from.
pub fn global() -> &'static Budget {
    &GLOBAL
}

impl Budget {
    /// A budget of `limit` bytes.
    pub const fn new(limit: usize) -> Self {
        Self { held: Mutex::new(Held { limit, held: 0 }) }
    }

    /// Sets the limit (at start-up; batches already held are not affected).
    pub fn set_limit(&self, bytes: usize) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).limit = bytes.max(1);
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).limit
    }

    /// Bytes held now, for `/metrics`.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).held
    }

    /// Takes up to `want` bytes for a new batch, without waiting: what is left of the
    /// limit, but never less than `floor` (one unit), which may go over it. A batch never
    /// waits for other requests' batches, whose release may hang on how fast a client
    /// reads; beyond the limit every request goes on in batches of one unit.
    pub fn take_some(&self, want: usize, floor: usize) -> Grant<'_> {
        let mut h = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = want.min(h.limit.saturating_sub(h.held).max(floor));
        h.held += bytes;
        Grant { budget: self, bytes }
    }
}

/// Bytes taken from a budget, given back when dropped.
pub struct Grant<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Grant<'_> {
    /// Bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut h = self.budget.held.lock().unwrap_or_else(PoisonError::into_inner);
            h.held = h.held.saturating_sub(self.bytes);
            drop(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_shrink_to_what_is_left_and_never_below_the_floor() {
        let budget = Budget::new(10);
        let a = budget.take_some(6, 1);
        assert_eq!((a.bytes(), budget.held()), (6, 6));
        // What is left, though more was wanted.
        let b = budget.take_some(6, 1);
        assert_eq!((b.bytes(), budget.held()), (4, 10));
        // Nothing left: the floor, over the limit.
        let c = budget.take_some(6, 2);
        assert_eq!((c.bytes(), budget.held()), (2, 12));
        drop((a, c));
        assert_eq!(budget.held(), 4);
        // Never more than wanted.
        let d = budget.take_some(3, 5);
        assert_eq!(d.bytes(), 3);
        drop((b, d));
        assert_eq!(budget.held(), 0);
        budget.set_limit(40);
        assert_eq!(budget.take_some(100, 1).bytes(), 40);
        assert_eq!((budget.held(), budget.limit()), (0, 40));
    }
}
