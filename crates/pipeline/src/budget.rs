//! The memory that batch buffers of streamed bodies may hold, shared by every request of
//! the process: uploads being sealed (PUTs, parts) and range reads being sent (GETs, until
//! the client has been sent each batch; reads shorter than a pooled map, most small GETs,
//! are left out). A request joins the budget for as long as it
//! streams, and each of its batches takes whole units, never waiting:
//!
//! - at most its fair share, the limit divided among the requests streaming now, for the
//!   [`IN_FLIGHT`] batches each keeps alive: a request that came first does not hold
//!   large batches while later ones go on in batches of one unit;
//! - at most what is left of the limit;
//! - but never less than one unit, which may take it over the limit by that much.
//!
//! So many requests at once cost a bounded amount of memory, and no request waits for
//! another's client: a stalled reader holds only the batches it already has.
//!
//! Back-pressure comes from the pipeline's bounded channels: a reader with a full channel
//! stops reading, its body waits in the kernel's socket buffers, and TCP slows its client.

use std::sync::{Mutex, PoisonError};

/// The limit unless the configuration sets one (`[limits] stream_buffers_mib`).
pub const DEFAULT_BYTES: usize = 64 << 20;

/// Batches a streaming request keeps alive at once, in the usual case (one being read, one
/// being sealed or sent, one being written, one queued).
pub const IN_FLIGHT: usize = 4;

struct Held {
    limit: usize,
    held: usize,
    /// Requests streaming now.
    members: usize,
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
        Self { held: Mutex::new(Held { limit, held: 0, members: 0 }) }
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

    /// Joins the budget for the life of one streaming request.
    pub fn join(&self) -> Member<'_> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).members += 1;
        Member { budget: self }
    }
}

/// One streaming request's place in a budget; its batches take from it.
pub struct Member<'a> {
    budget: &'a Budget,
}

impl<'a> Member<'a> {
    /// Takes up to `want` bytes for a new batch, without waiting: no more than this
    /// request's fair share nor what is left of the limit, but never less than `floor`
    /// (one unit), which may go over it.
    pub fn take(&self, want: usize, floor: usize) -> Grant<'a> {
        let mut h = self.budget.held.lock().unwrap_or_else(PoisonError::into_inner);
        let share = h.limit / (h.members.max(1) * IN_FLIGHT);
        let bytes = want.min(h.limit.saturating_sub(h.held).min(share).max(floor));
        h.held += bytes;
        Grant { budget: self.budget, bytes }
    }
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        let mut h = self.budget.held.lock().unwrap_or_else(PoisonError::into_inner);
        h.members = h.members.saturating_sub(1);
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
        let budget = Budget::new(40);
        let one = budget.join();
        // Alone: a quarter of the limit at most (IN_FLIGHT batches), or what was wanted.
        let (a, b) = (one.take(30, 1), one.take(7, 1));
        assert_eq!((a.bytes(), b.bytes(), budget.held()), (10, 7, 17));
        let (c, d) = (one.take(30, 1), one.take(30, 1));
        assert_eq!(budget.held(), 37);
        // What is left, though the share is more.
        let e = one.take(30, 1);
        assert_eq!((e.bytes(), budget.held()), (3, 40));
        // Nothing left: the floor, over the limit.
        let f = one.take(30, 2);
        assert_eq!((f.bytes(), budget.held()), (2, 42));
        drop((a, f));
        assert_eq!(budget.held(), 30);
        // Never more than wanted.
        assert_eq!(one.take(3, 5).bytes(), 3);
        drop((b, c, d, e));
        assert_eq!(budget.held(), 0);
        budget.set_limit(80);
        assert_eq!(one.take(100, 1).bytes(), 20);
        assert_eq!((budget.held(), budget.limit()), (0, 80));
    }

    #[test]
    fn requests_streaming_at_once_share_the_limit() {
        let budget = Budget::new(64);
        let first = budget.join();
        assert_eq!(first.take(64, 1).bytes(), 16);
        let others: Vec<_> = (0..3).map(|_| budget.join()).collect();
        // Four requests: 64 / (4 * 4) each, the first one included.
        assert_eq!(first.take(64, 1).bytes(), 4);
        assert!(others.iter().all(|m| m.take(64, 1).bytes() == 4));
        // Their share grows back as they finish; the floor still holds when it is small.
        drop(others);
        assert_eq!(first.take(64, 1).bytes(), 16);
        assert_eq!(first.take(64, 20).bytes(), 20);
    }
}
