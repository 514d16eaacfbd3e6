//! What dispersal has seen of its targets: whether each answered its last request (a
//! target going down is logged once, and coming back once), and counts for `/metrics` —
//! slices a write could not place, damaged slices read around, reads that had to rebuild,
//! and what the last scrub found and restored — and how fast each target has been reading
//! lately, which orders the slices a read asks for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// One stripe read in this many reads slow targets too ([`Health::probe`]).
pub const PROBE_EVERY: u64 = 32;

/// Per-target state and counters.
#[derive(Debug)]
pub struct Health {
    up: Vec<AtomicBool>,
    failures: Vec<AtomicU64>,
    bad: Vec<AtomicU64>,
    degraded: AtomicU64,
    rebuilt: Vec<AtomicU64>,
    below_width: AtomicU64,
    at_threshold: AtomicU64,
    lost: AtomicU64,
    scrubs: AtomicU64,
    /// Per target: moving average of a shard read's time, in µs (0: none seen yet).
    read_us: Vec<AtomicU64>,
    /// Stripes read, for [`Health::probe`].
    stripes: AtomicU64,
}

/// A snapshot for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Per target: whether its last request succeeded.
    pub up: Vec<bool>,
    /// Per target: requests that failed (writes that left its slice missing, reads that
    /// found it unreadable).
    pub failures: Vec<u64>,
    /// Per target: shards whose check failed.
    pub bad: Vec<u64>,
    /// Stripes read by rebuilding from parity.
    pub degraded_reads: u64,
    /// Per target: slices re-created by scrubs.
    pub rebuilt: Vec<u64>,
    /// At the last scrub: pieces below full width, at the threshold, and lost.
    pub below_width: u64,
    /// See `below_width`.
    pub at_threshold: u64,
    /// See `below_width`.
    pub lost: u64,
    /// Scrubs finished since start-up.
    pub scrubs: u64,
    /// Per target: moving average of a shard read's time in µs (0: none seen yet).
    pub read_us: Vec<u64>,
}

impl Health {
    /// All `n` targets presumed up.
    pub fn new(n: usize) -> Self {
        Self {
            up: (0..n).map(|_| AtomicBool::new(true)).collect(),
            failures: (0..n).map(|_| AtomicU64::new(0)).collect(),
            bad: (0..n).map(|_| AtomicU64::new(0)).collect(),
            degraded: AtomicU64::new(0),
            rebuilt: (0..n).map(|_| AtomicU64::new(0)).collect(),
            below_width: AtomicU64::new(0),
            at_threshold: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            scrubs: AtomicU64::new(0),
            read_us: (0..n).map(|_| AtomicU64::new(0)).collect(),
            stripes: AtomicU64::new(0),
        }
    }

    /// Whether this stripe's read should try slow targets as usual, to measure them again:
    /// one stripe in [`PROBE_EVERY`].
    pub fn probe(&self) -> bool {
        self.stripes.fetch_add(1, Ordering::Relaxed).is_multiple_of(PROBE_EVERY)
    }

    /// A shard read from target `i` took `took`: folded into its moving average (each new
    /// read weighs an eighth, so a target that slows down shows it within a few stripes).
    pub fn read_took(&self, i: usize, took: Duration) {
        let Some(avg) = self.read_us.get(i) else { return };
        let now = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = avg.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if old == 0 { now } else { old.saturating_mul(7).saturating_add(now) / 8 })
        });
    }

    /// Each target's moving average shard read time in µs (0: none seen yet).
    pub fn read_latencies(&self) -> Vec<u64> {
        self.read_us.iter().map(|a| a.load(Ordering::Relaxed)).collect()
    }

    /// Target `i` failed a request.
    pub fn failed(&self, i: usize, error: &std::io::Error) {
        if let Some(c) = self.failures.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if self.up.get(i).is_some_and(|u| u.swap(false, Ordering::Relaxed)) {
            tracing::warn!(target_index = i, %error, "a dispersal target is failing; its slices are read around and written as missing");
        }
    }

    /// Whether target `i` answered its last request.
    pub fn is_up(&self, i: usize) -> bool {
        self.up.get(i).is_some_and(|u| u.load(Ordering::Relaxed))
    }

    /// Target `i` answered a request.
    pub fn ok(&self, i: usize) {
        if self.up.get(i).is_some_and(|u| !u.swap(true, Ordering::Relaxed)) {
            tracing::info!(target_index = i, "a dispersal target is answering again");
        }
    }

    /// A shard of target `i` failed its check.
    pub fn bad_slice(&self, i: usize) {
        if let Some(c) = self.bad.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A stripe was rebuilt to be read.
    pub fn degraded_read(&self) {
        self.degraded.fetch_add(1, Ordering::Relaxed);
    }

    /// A scrub finished with `report`.
    pub fn scrubbed(&self, report: &super::rebuild::RebuildReport) {
        for (c, n) in self.rebuilt.iter().zip(&report.rebuilt) {
            c.fetch_add(*n, Ordering::Relaxed);
        }
        self.below_width.store(report.below_width, Ordering::Relaxed);
        self.at_threshold.store(report.at_threshold, Ordering::Relaxed);
        self.lost.store(report.lost.len() as u64, Ordering::Relaxed);
        self.scrubs.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn report(&self) -> HealthReport {
        HealthReport {
            up: self.up.iter().map(|u| u.load(Ordering::Relaxed)).collect(),
            failures: self.failures.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            bad: self.bad.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            degraded_reads: self.degraded.load(Ordering::Relaxed),
            rebuilt: self.rebuilt.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            below_width: self.below_width.load(Ordering::Relaxed),
            at_threshold: self.at_threshold.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            scrubs: self.scrubs.load(Ordering::Relaxed),
            read_us: self.read_latencies(),
        }
    }
}
