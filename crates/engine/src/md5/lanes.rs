//! Gathers the MD5 work of concurrent uploads into sixteen lanes: one AVX-512 register
//! ([`super::x16`]) where the CPU has it, else two groups of eight in AVX2 registers
//! ([`super::x8`]).
//!
//! Each upload is a [`Stream`]: it queues its body in chunks of [`CHUNK`] bytes and goes
//! on reading. Chunks are hashed in rounds, one chunk of each of up to sixteen streams at
//! a time (a stream's chunks in order: each continues from the previous one's state), up
//! to one round per core at once. A round is run by the thread whose chunk makes every
//! active stream have one waiting (up to sixteen), and by a thread that needs its result.
//! A stream over [`BACKLOG`] chunks queued hashes a round once three quarters of the
//! active streams have a chunk waiting; before that it waits for them, at most [`GATHER`],
//! then hashes rounds with the lanes it has until half its backlog is gone. So concurrent uploads fill the lanes,
//! and a lone upload's chunks are hashed as they come by aws-lc's single-stream assembly
//! (a lone stream gains nothing from the lanes). No thread of its own: it costs nothing
//! when idle and needs no shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::x16::LANES;
use super::{x8, x16};

/// Bytes per queued chunk (whole 64-byte blocks): lanes run in lockstep over chunks of one
/// size, and at 64 KiB handing a chunk over costs well under 1% of hashing it.
pub const CHUNK: usize = 64 << 10;

/// Chunks a stream may have queued before it waits (and hashes a round itself).
const BACKLOG: usize = 4;

/// Longest a stream over its backlog waits for the other active streams to queue a chunk
/// each (unless three quarters of them have). Threads are scheduled in slices of a few
/// milliseconds, so uploads deliver their bodies in bursts: without the wait, the stream
/// that ran ahead hashes rounds with one or two lanes filled (1.9 on average in a
/// 16-upload PUT).
const GATHER: Duration = Duration::from_millis(6);

/// How long a stream may queue nothing and still count as active: an upload whose client
/// has gone quiet does not hold the others back.
const QUIET: Duration = Duration::from_millis(50);

static ROUNDS: AtomicU64 = AtomicU64::new(0);
static CHUNKS: AtomicU64 = AtomicU64::new(0);

/// Rounds hashed so far and the chunks they held (chunks / rounds: how full the lanes
/// run), for `/metrics`.
pub fn rounds() -> (u64, u64) {
    (ROUNDS.load(Ordering::Relaxed), CHUNKS.load(Ordering::Relaxed))
}

/// What the lanes hold of one stream.
struct Open {
    state: [u32; 4],
    queued: VecDeque<Vec<u8>>,
    /// A round is hashing this stream's oldest chunk now.
    busy: bool,
    /// When it last queued a chunk.
    pushed: Instant,
}

#[derive(Default)]
struct Shared {
    open: HashMap<u64, Open>,
    next: u64,
    /// Rounds being hashed now.
    rounds: usize,
    /// Chunk buffers handed back for reuse.
    spare: Vec<Vec<u8>>,
}

#[derive(Default)]
struct Lanes {
    shared: Mutex<Shared>,
    changed: Condvar,
}

fn lanes() -> &'static Lanes {
    static LANES_SHARED: OnceLock<Lanes> = OnceLock::new();
    LANES_SHARED.get_or_init(Lanes::default)
}

/// How many rounds may be hashed at once.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One upload's MD5 while its whole chunks go through the lanes. Dropping it without
/// [`Stream::finish`] discards its queued chunks.
pub(super) struct Stream {
    id: u64,
}

impl Stream {
    /// Opens a stream whose chaining value is `state` so far.
    pub(super) fn open(state: [u32; 4]) -> Self {
        let mut s = lock(&lanes().shared);
        let id = s.next;
        s.next += 1;
        s.open.insert(id, Open { state, queued: VecDeque::new(), busy: false, pushed: Instant::now() });
        Self { id }
    }

    /// Queues `chunk` (whole 64-byte blocks) after the stream's earlier ones. Returns an
    /// empty buffer (with room for a chunk, when one was spare) for the next.
    pub(super) fn push(&self, chunk: Vec<u8>) -> Vec<u8> {
        let lanes = lanes();
        let mut s = lock(&lanes.shared);
        if let Some(open) = s.open.get_mut(&self.id) {
            open.queued.push_back(chunk);
            open.pushed = Instant::now();
        }
        // When this stream went over its backlog and began waiting for others.
        let mut gathering: Option<Instant> = None;
        loop {
            let backlog = s.open.get(&self.id).map_or(0, |o| o.queued.len());
            let (ready, active) = ready(&s);
            let full = active.min(LANES);
            let free = s.rounds < cores();
            let over = backlog > BACKLOG;
            // Waited long enough: hash rounds until half the backlog is gone.
            let draining = backlog > BACKLOG / 2 && gathering.is_some_and(|t| t.elapsed() >= GATHER);
            let worth = ready >= full || (over && 4 * ready >= 3 * full) || draining;
            if ready > 0 && free && worth {
                s = round(lanes, s);
            } else if !over && !draining {
                break;
            } else if ready > 0 && free {
                // Over the backlog while other active streams have no chunk waiting: let
                // them catch up (this thread's core is theirs meanwhile) rather than hash
                // a round with empty lanes.
                let since = *gathering.get_or_insert_with(Instant::now);
                let left = GATHER.saturating_sub(since.elapsed());
                s = lanes.changed.wait_timeout(s, left).unwrap_or_else(PoisonError::into_inner).0;
            } else {
                // Over the backlog with nothing this thread may hash: rounds are running.
                s = lanes.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
        }
        s.spare.pop().unwrap_or_default()
    }

    /// The chaining value after every queued chunk, once they are hashed.
    pub(super) fn finish(self) -> [u32; 4] {
        let lanes = lanes();
        let mut s = lock(&lanes.shared);
        loop {
            match s.open.get(&self.id) {
                Some(o) if o.queued.is_empty() && !o.busy => break,
                None => break,
                Some(o) if !o.busy && s.rounds < cores() => s = round(lanes, s),
                Some(_) => s = lanes.changed.wait(s).unwrap_or_else(PoisonError::into_inner),
            }
        }
        let state = s.open.remove(&self.id).map_or([0; 4], |o| o.state);
        drop(s);
        std::mem::forget(self);
        lanes.changed.notify_all();
        state
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let lanes = lanes();
        let mut s = lock(&lanes.shared);
        // A round hashing its chunk writes back into nothing; the rest goes now.
        s.open.remove(&self.id);
        drop(s);
        lanes.changed.notify_all();
    }
}

/// Streams with a chunk waiting and no round on them, and streams active: those, those
/// being hashed, and those that queued a chunk within [`QUIET`].
fn ready(s: &Shared) -> (usize, usize) {
    let now = Instant::now();
    let (mut ready, mut active) = (0, 0);
    for o in s.open.values() {
        let waiting = !o.busy && !o.queued.is_empty();
        ready += usize::from(waiting);
        active += usize::from(waiting || o.busy || now.duration_since(o.pushed) < QUIET);
    }
    (ready, active)
}

/// Hashes one round: the oldest chunk of up to sixteen ready streams. Called with the lock
/// held; hashes without it.
fn round<'a>(lanes: &'a Lanes, mut s: MutexGuard<'a, Shared>) -> MutexGuard<'a, Shared> {
    let mut batch: Vec<(u64, [u32; 4], Vec<u8>)> = Vec::with_capacity(LANES);
    for (id, open) in s.open.iter_mut() {
        if batch.len() == LANES {
            break;
        }
        if !open.busy
            && let Some(chunk) = open.queued.pop_front()
        {
            open.busy = true;
            batch.push((*id, open.state, chunk));
        }
    }
    s.rounds += 1;
    drop(s);
    ROUNDS.fetch_add(1, Ordering::Relaxed);
    CHUNKS.fetch_add(batch.len() as u64, Ordering::Relaxed);
    hash(&mut batch);
    let mut s = lock(&lanes.shared);
    s.rounds -= 1;
    for (id, state, mut chunk) in batch {
        if let Some(open) = s.open.get_mut(&id) {
            open.state = state;
            open.busy = false;
        }
        if s.spare.len() < 4 * LANES {
            chunk.clear();
            s.spare.push(chunk);
        }
    }
    lanes.changed.notify_all();
    s
}

/// Whether this CPU has a multi-buffer kernel (AVX-512F or AVX2): without one, every
/// chunk is hashed by the single-stream code as it comes, and nothing goes through here.
pub(super) fn available() -> bool {
    x16::available() || x8::available()
}

/// Hashes a round: in the lanes when there are several chunks of one size, else one by one.
fn hash(batch: &mut [(u64, [u32; 4], Vec<u8>)]) {
    if batch.len() > 1 {
        let mut states: Vec<[u32; 4]> = batch.iter().map(|b| b.1).collect();
        let data: Vec<&[u8]> = batch.iter().map(|b| b.2.as_slice()).collect();
        if x16::compress(&mut states, &data) || x8::compress(&mut states, &data) {
            for (b, state) in batch.iter_mut().zip(states) {
                b.1 = state;
            }
            return;
        }
    }
    for b in batch.iter_mut() {
        super::scalar_blocks(&mut b.1, &b.2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_streams_get_their_own_chained_states() {
        const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
        let threads: Vec<_> = (0..24u8)
            .map(|t| {
                std::thread::spawn(move || {
                    let stream = Stream::open(INIT);
                    let mut want = INIT;
                    let mut buf = Vec::new();
                    for round in 0..(3 + t % 7) {
                        buf.clear();
                        buf.extend((0..CHUNK).map(|i| (i as u8) ^ t ^ round.wrapping_mul(17)));
                        super::super::scalar_blocks(&mut want, &buf);
                        buf = stream.push(std::mem::take(&mut buf));
                    }
                    assert_eq!(stream.finish(), want, "thread {t}");
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // A stream dropped unfinished leaves nothing behind.
        // (Only this stream is looked at: other tests share the lanes at the same time.)
        let dropped = Stream::open(INIT);
        let id = dropped.id;
        let _ = dropped.push(vec![0; CHUNK]);
        assert!(lock(&lanes().shared).open.contains_key(&id));
        drop(dropped);
        assert!(!lock(&lanes().shared).open.contains_key(&id));
    }
}
