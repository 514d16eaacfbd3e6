//! Gathers the MD5 work of concurrent uploads into the sixteen lanes of [`super::x16`].
//!
//! Every upload hashes its body in chunks of [`CHUNK`] bytes. A thread with a chunk to
//! hash queues it; if no other thread is hashing, it takes up to sixteen queued chunks
//! (its own and those queued by others meanwhile) and hashes them together, then hands
//! each its result. Otherwise it waits, and either finds its chunk hashed or takes its
//! turn; while a whole batch more is queued, further threads hash beside the first, up
//! to one per core. A batch waits for a chunk from every stream being hashed (each
//! [`Member`]), up to sixteen, but never longer than [`GATHER`] past its oldest chunk, so
//! a stream whose body stalls does not hold the others up. No thread of its own: the uploads' threads do the work, one at a time, so it
//! costs nothing when idle and needs no shutdown. A chunk alone in the queue (one upload
//! running) is hashed by aws-lc's single-stream assembly instead: a lone stream gains
//! nothing from the lanes.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::x16::{self, LANES};

/// Bytes per queued chunk (whole 64-byte blocks): the lanes run in lockstep over chunks
/// of one size, and at 64 KiB the hand-over costs well under 1% of the hashing.
pub const CHUNK: usize = 64 << 10;

/// How long queued chunks wait for the other streams' before they are hashed anyway:
/// about half of what one 64 KiB chunk takes to hash alone (85 µs here). A stream
/// whose body arrives faster than the others' is slowed by at most that per chunk.
const GATHER: Duration = Duration::from_micros(50);

/// One chunk to hash.
struct Job {
    ticket: u64,
    state: [u32; 4],
    data: Vec<u8>,
    queued: Instant,
}

#[derive(Default)]
struct Queue {
    /// Streams hashing through the lanes now (live [`Member`]s).
    streams: usize,
    waiting: Vec<Job>,
    done: Vec<Job>,
    /// Threads hashing a batch now.
    hashing: usize,
    next: u64,
}

#[derive(Default)]
struct Lanes {
    queue: Mutex<Queue>,
    turn: Condvar,
}

static SHARED: std::sync::OnceLock<Lanes> = std::sync::OnceLock::new();

fn lanes() -> &'static Lanes {
    SHARED.get_or_init(Lanes::default)
}

/// How many threads may hash batches at once.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// A stream's share of the lanes: while it lives, batches wait (briefly) for its chunks.
pub struct Member(());

impl Member {
    /// Joins the streams hashed together.
    pub fn join() -> Self {
        lock(&lanes().queue).streams += 1;
        Self(())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let lanes = lanes();
        let mut q = lock(&lanes.queue);
        q.streams = q.streams.saturating_sub(1);
        drop(q);
        // Batches waiting for this stream's chunk need not wait any more.
        lanes.turn.notify_all();
    }
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Hashes `data` (whole 64-byte blocks) into `state`, together with the chunks other
/// threads are hashing at the same time; the caller is a [`Member`]. Returns `data`, for
/// reuse.
pub fn hash(state: &mut [u32; 4], data: Vec<u8>, _member: &Member) -> Vec<u8> {
    if !x16::available() {
        super::scalar_blocks(state, &data);
        return data;
    }
    let lanes = lanes();
    let cores = cores();
    let mut q = lock(&lanes.queue);
    let ticket = q.next;
    q.next += 1;
    q.waiting.push(Job { ticket, state: *state, data, queued: Instant::now() });
    loop {
        if let Some(at) = q.done.iter().position(|j| j.ticket == ticket) {
            let job = q.done.swap_remove(at);
            *state = job.state;
            return job.data;
        }
        let queued = q.waiting.len();
        let oldest = q.waiting.first().map(|j| j.queued);
        let full = queued >= q.streams.clamp(1, LANES);
        let due = oldest.is_some_and(|t| t.elapsed() >= GATHER);
        if queued > 0 && (full || due) && (q.hashing == 0 || (queued >= LANES && q.hashing < cores)) {
            q.hashing += 1;
            let take = q.waiting.len().min(LANES);
            let mut batch: Vec<Job> = q.waiting.drain(..take).collect();
            drop(q);
            run(&mut batch);
            q = lock(&lanes.queue);
            q.done.append(&mut batch);
            q.hashing -= 1;
            lanes.turn.notify_all();
            continue;
        }
        q = match oldest {
            // Wake when the batch is due, unless a chunk or a result comes first.
            Some(t) if !due => {
                let left = GATHER.saturating_sub(t.elapsed());
                lanes.turn.wait_timeout(q, left).unwrap_or_else(PoisonError::into_inner).0
            }
            _ => lanes.turn.wait(q).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// Hashes a batch: in the lanes when there are several chunks of one size, else one by one.
fn run(batch: &mut [Job]) {
    if batch.len() > 1 {
        let mut states: Vec<[u32; 4]> = batch.iter().map(|j| j.state).collect();
        let data: Vec<&[u8]> = batch.iter().map(|j| j.data.as_slice()).collect();
        if x16::compress(&mut states, &data) {
            for (job, state) in batch.iter_mut().zip(states) {
                job.state = state;
            }
            return;
        }
    }
    for job in batch.iter_mut() {
        super::scalar_blocks(&mut job.state, &job.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_chunks_come_back_to_their_owners() {
        const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
        let threads: Vec<_> = (0..24u8)
            .map(|t| {
                std::thread::spawn(move || {
                    let member = Member::join();
                    let mut state = INIT;
                    let mut want = INIT;
                    let mut buf = Vec::new();
                    for round in 0..6u8 {
                        buf.clear();
                        buf.extend((0..CHUNK).map(|i| (i as u8) ^ t ^ round.wrapping_mul(17)));
                        super::super::scalar_blocks(&mut want, &buf);
                        buf = hash(&mut state, std::mem::take(&mut buf), &member);
                    }
                    assert_eq!(state, want, "thread {t}");
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
