//! Batch buffers, shared by every request: the gathered body bytes and batches of
//! streamed uploads (PUT, parts, the CLI) and the batches of range reads (GET, until the
//! client has been sent them) come from here and go back when dropped. A buffer may hold
//! a [`Grant`] of the budget for as long as it lives.
//!
//! A buffer of [`MAPPED_MIN`] bytes or more is an anonymous memory map of its own, sized
//! in powers of two. Idle maps are kept for reuse, by size, while they were used within
//! the last [`KEEP`] (at most [`MAX_IDLE_BYTES`] together), then unmapped: memory goes
//! back to the kernel as load falls. Heap buffers of that size would not: malloc keeps
//! freed multi-MiB blocks in its arenas (a 64-client soak held 346 MiB that way). A map's
//! pages are resident only once written, so a short batch costs its own length; reuse
//! spares the page faults and zeroing of fresh memory.
//!
//! Bytes of a reused map beyond what its user wrote are stale bytes of earlier batches of
//! this process, never another process's: every user writes bytes before it reads them
//! (it reads input into the buffer and keeps only what was read).

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use memmap2::MmapMut;

use super::budget::Grant;

/// Buffers of at least this many bytes are maps; shorter ones are on the heap.
pub const MAPPED_MIN: usize = 256 << 10;

/// Maps are made in powers of two from [`MAPPED_MIN`] to this (a 4 MiB batch and its
/// trailers fit the largest) and kept for reuse by size, so a reused map never holds more
/// than twice its batch. Larger ones (units over 4 MiB) are not kept.
const KEPT_MAX: usize = 8 << 20;

/// Sizes of kept maps: MAPPED_MIN << i.
const CLASSES: usize = (KEPT_MAX / MAPPED_MIN).trailing_zeros() as usize + 1;

/// How long an idle map is kept for reuse.
const KEEP: Duration = Duration::from_secs(1);

/// Most bytes of idle maps kept at once, whatever the load was.
const MAX_IDLE_BYTES: usize = 32 << 20;

/// Idle maps by size class, most recently used last, and their bytes together.
struct Idle {
    classes: [Vec<(MmapMut, Instant)>; CLASSES],
    bytes: usize,
}

static IDLE: Mutex<Idle> = Mutex::new(Idle { classes: [const { Vec::new() }; CLASSES], bytes: 0 });

impl Idle {
    /// Moves the `count` oldest maps of `class` into `out`, keeping the byte count.
    fn take(&mut self, class: usize, count: usize, out: &mut Vec<MmapMut>) {
        for (m, _) in self.classes[class].drain(..count) {
            self.bytes -= m.len();
            out.push(m);
        }
    }

    /// Takes out the oldest maps of the largest classes while over [`MAX_IDLE_BYTES`].
    fn over_cap(&mut self, out: &mut Vec<MmapMut>) {
        for c in (0..CLASSES).rev() {
            while self.bytes > MAX_IDLE_BYTES && !self.classes[c].is_empty() {
                self.take(c, 1, out);
            }
        }
    }
}

/// A growable byte buffer from the pool.
pub struct Buf {
    storage: Storage,
    len: usize,
    /// Budget held for as long as the buffer lives (also inside [`Bytes`]).
    grant: Option<Grant<'static>>,
}

enum Storage {
    Heap(Vec<u8>),
    Map(MmapMut),
}

/// The size class of a map for `len` bytes, when it is kept.
fn class(len: usize) -> Option<usize> {
    (len <= KEPT_MAX)
        .then(|| (len.max(MAPPED_MIN).next_power_of_two() / MAPPED_MIN).trailing_zeros() as usize)
}

/// A map of at least `len` bytes: a kept one when one fits, else a new one (none if the
/// kernel refuses).
fn map(len: usize) -> Option<MmapMut> {
    let Some(c) = class(len) else {
        return MmapMut::map_anon(len).ok();
    };
    let kept = {
        let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = idle.classes[c].pop();
        if let Some((m, _)) = &kept {
            idle.bytes -= m.len();
        }
        kept
    };
    match kept {
        Some((map, _)) => Some(map),
        None => MmapMut::map_anon(MAPPED_MIN << c).ok(),
    }
}

/// Unmaps idle maps unused for [`KEEP`], and the oldest beyond [`MAX_IDLE_BYTES`]. The
/// server calls it once a second, so an idle server gives its memory back; buffers
/// coming back only enforce the cap.
pub fn trim() {
    let now = Instant::now();
    let mut gone = Vec::new();
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    for c in 0..CLASSES {
        let stale = idle.classes[c].iter().take_while(|(_, at)| now.duration_since(*at) >= KEEP).count();
        idle.take(c, stale, &mut gone);
    }
    idle.over_cap(&mut gone);
    drop(idle);
    // Unmapped here, outside the lock.
    drop(gone);
}

/// Bytes of idle maps kept now, for `/metrics`.
pub fn idle_bytes() -> usize {
    IDLE.lock().unwrap_or_else(PoisonError::into_inner).bytes
}

impl Buf {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let storage = match (capacity >= MAPPED_MIN).then(|| map(capacity)).flatten() {
            Some(m) => Storage::Map(m),
            None => Storage::Heap(Vec::with_capacity(capacity)),
        };
        Self { storage, len: 0, grant: None }
    }

    /// Keeps `grant` until the buffer (or the [`Bytes`] made of it) is dropped.
    pub fn hold(&mut self, grant: Grant<'static>) {
        self.grant = Some(grant);
    }

    /// Bytes it can hold without moving.
    pub fn capacity(&self) -> usize {
        match &self.storage {
            Storage::Heap(v) => v.capacity(),
            Storage::Map(m) => m.len(),
        }
    }

    /// Sets the length to `len`. Bytes it adds are zeros on the heap and unspecified in a
    /// map (zeros or stale bytes of this process): the caller writes them before reading.
    pub fn resize(&mut self, len: usize) {
        if len > self.capacity() {
            let mut bigger = Self::with_capacity(len.max(2 * self.capacity()));
            bigger.resize(self.len);
            bigger.copy_from_slice(self);
            bigger.grant = self.grant.take();
            *self = bigger;
        }
        if let Storage::Heap(v) = &mut self.storage {
            v.resize(len, 0);
        }
        self.len = len;
    }

    /// Appends `bytes`.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let at = self.len;
        self.resize(at + bytes.len());
        self[at..].copy_from_slice(bytes);
    }

    /// Shortens it to `len` bytes (no effect if it is shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.resize(len);
        }
    }

    /// Its bytes as [`Bytes`] without a copy; a map goes back to the pool, and a grant to
    /// the budget, once every clone is dropped.
    pub fn into_bytes(mut self) -> Bytes {
        // A heap buffer holding no grant becomes `Bytes` without another allocation.
        if let (Storage::Heap(v), None) = (&mut self.storage, &self.grant) {
            let mut v = std::mem::take(v);
            v.truncate(self.len);
            return Bytes::from(v);
        }
        Bytes::from_owner(self)
    }
}

impl Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.storage {
            Storage::Heap(v) => &v[..self.len],
            Storage::Map(m) => &m[..self.len],
        }
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.storage {
            Storage::Heap(v) => &mut v[..self.len],
            Storage::Map(m) => &mut m[..self.len],
        }
    }
}

impl AsRef<[u8]> for Buf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Storage::Map(m) = std::mem::replace(&mut self.storage, Storage::Heap(Vec::new()))
            && let Some(c) = class(m.len())
            && m.len() == MAPPED_MIN << c
        {
            // Only the cap is enforced here; maps idle too long go in the server's
            // once-a-second trim.
            let mut gone = Vec::new();
            let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
            idle.bytes += m.len();
            idle.classes[c].push((m, Instant::now()));
            idle.over_cap(&mut gone);
            drop(idle);
            drop(gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;

    #[test]
    fn a_grant_lives_as_long_as_the_buffer_or_its_bytes() {
        static BUDGET: Budget = Budget::new(1 << 20);
        let member = BUDGET.join();
        for len in [16, MAPPED_MIN] {
            let mut b = Buf::with_capacity(len);
            b.resize(len);
            b.hold(member.take(len, 1));
            assert_eq!(BUDGET.held(), len);
            // Grown into new storage, it keeps its grant.
            b.resize(2 * len + 1);
            assert_eq!(BUDGET.held(), len);
            let bytes = b.into_bytes();
            let clone = bytes.slice(1..3);
            drop(bytes);
            assert_eq!(BUDGET.held(), len, "{len}");
            drop(clone);
            assert_eq!(BUDGET.held(), 0);
        }
    }

    #[test]
    fn buffers_grow_keep_their_bytes_and_go_back_to_the_pool() {
        for start in [16, MAPPED_MIN, KEPT_MAX + 1] {
            let mut b = Buf::with_capacity(start);
            b.resize(start);
            b.iter_mut().enumerate().for_each(|(i, x)| *x = (i % 251) as u8);
            b.resize(start + KEPT_MAX);
            assert!(b.capacity() >= start + KEPT_MAX);
            assert!(b[..start].iter().enumerate().all(|(i, &x)| x == (i % 251) as u8), "{start}");
            b.truncate(3);
            assert_eq!(&b[..], &[0, 1, 2]);
            let bytes = b.into_bytes();
            assert_eq!(&bytes[..], &[0, 1, 2]);
        }
        // A pooled map comes back after use (other tests may take it meanwhile, so only
        // the reuse of a map's memory as a fresh buffer is checked, not which one).
        for (len, capacity) in
            [(MAPPED_MIN, MAPPED_MIN), (MAPPED_MIN + 1, 2 * MAPPED_MIN), ((4 << 20) + 64, 8 << 20)]
        {
            let mut b = Buf::with_capacity(len);
            b.extend_from_slice(&vec![7u8; len]);
            assert_eq!(b.capacity(), capacity);
            drop(b);
            assert_eq!(Buf::with_capacity(len).capacity(), capacity);
        }
        // Heap buffers below the threshold read back as zeros when grown.
        let mut small = Buf::with_capacity(8);
        small.resize(8);
        assert_eq!(&small[..], &[0; 8]);
    }
}
