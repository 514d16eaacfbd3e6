//! The lifecycle worker of `cipherstore serve`: every interval it applies the rules of
//! every bucket that has some (`object::lifecycle`), paced to at most
//! `lifecycle.actions_per_sec` store changes a second so requests keep the store. In a
//! cluster one gateway at a time works, the holder of the `lifecycle` lease
//! (`cluster::lease`); the others wait to take over if it stops renewing. Every action
//! goes to the audit trail (`DATA/lifecycle-audit.jsonl`, one JSON line each) and is
//! counted for `/metrics`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::config::LifecycleSettings;
use cluster::kv::Kv;
use cluster::lease::Lease;
use object::Objects;
use object::lifecycle_pass::{Action, Counts, Event, Pacer};

/// The first pass starts this soon after start-up at most.
const FIRST_PASS: Duration = Duration::from_secs(10);

/// The worker's counters, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct LifecycleStats {
    passes: AtomicU64,
    failed_passes: AtomicU64,
    scanned: AtomicU64,
    actions: [AtomicU64; Action::ALL.len()],
    holder: AtomicU64,
    running: AtomicU64,
    last_pass_ms: AtomicU64,
    last_pass_end: AtomicU64,
}

impl LifecycleStats {
    fn add(&self, counts: &Counts) {
        self.scanned.fetch_add(counts.scanned, Ordering::Relaxed);
    }

    /// The Prometheus text of the counters.
    pub(crate) fn render(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let series = [
            (
                "cipherstore_lifecycle_passes_total",
                "counter",
                "Lifecycle passes finished.",
                load(&self.passes).to_string(),
            ),
            (
                "cipherstore_lifecycle_failed_passes_total",
                "counter",
                "Lifecycle passes that stopped on an error (tried again next interval).",
                load(&self.failed_passes).to_string(),
            ),
            (
                "cipherstore_lifecycle_scanned_total",
                "counter",
                "Versions and uploads the lifecycle worker looked at.",
                load(&self.scanned).to_string(),
            ),
            (
                "cipherstore_lifecycle_worker_holder",
                "gauge",
                "Whether this gateway runs the lifecycle worker (holds the lease, or has no cluster).",
                load(&self.holder).to_string(),
            ),
            (
                "cipherstore_lifecycle_running",
                "gauge",
                "Whether a lifecycle pass is under way.",
                load(&self.running).to_string(),
            ),
            (
                "cipherstore_lifecycle_last_pass_seconds",
                "gauge",
                "How long the last lifecycle pass took.",
                format!("{:.3}", load(&self.last_pass_ms) as f64 / 1e3),
            ),
            (
                "cipherstore_lifecycle_last_pass_end_seconds",
                "gauge",
                "When the last lifecycle pass ended (Unix seconds; 0: none yet).",
                load(&self.last_pass_end).to_string(),
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        let name = "cipherstore_lifecycle_actions_total";
        let _ =
            writeln!(out, "# HELP {name} What the lifecycle worker did, by action.\n# TYPE {name} counter");
        for (a, n) in Action::ALL.iter().zip(&self.actions) {
            let _ = writeln!(out, "{name}{{action=\"{}\"}} {}", a.name(), load(n));
        }
    }
}

/// The audit trail of lifecycle actions: JSON lines appended to a file.
struct Audit {
    path: PathBuf,
}

impl Audit {
    fn write(&self, e: &Event) {
        let line = serde_json::json!({
            "time": base::clock::rfc3339(base::clock::now_unix()),
            "action": format!("lifecycle.{}", e.action.name()),
            "bucket": e.bucket,
            "key": e.key,
            "id": e.id,
            "rule": e.rule,
        });
        if let Err(err) = base::durable::append_line(&self.path, &line.to_string()) {
            tracing::warn!(path = %self.path.display(), error = %err, "cannot append to the lifecycle audit trail");
        }
    }
}

/// Paces one pass: a store change at most every `gap`; stops it at shutdown or when the
/// lease is lost.
struct Paced<'a> {
    gap: Duration,
    next: Mutex<Instant>,
    lease: Option<&'a Mutex<Lease>>,
    stop: tokio::sync::watch::Receiver<bool>,
    stats: &'a LifecycleStats,
    audit: &'a Audit,
}

#[async_trait::async_trait]
impl Pacer for Paced<'_> {
    async fn next(&self) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        if let Some(lease) = self.lease {
            let mut l = lease.lock().await;
            if l.due() {
                match l.hold().await {
                    Ok(true) => {}
                    Ok(false) => return false,
                    Err(e) => tracing::warn!(error = %e, "cannot renew the lifecycle lease"),
                }
            }
            if !l.held() {
                tracing::warn!("the lifecycle lease could not be renewed in time; stopping this pass");
                return false;
            }
        }
        let mut next = self.next.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep(*next - now).await;
        }
        *next = Instant::now().max(*next) + self.gap;
        true
    }

    fn done(&self, event: &Event) {
        self.stats.actions[event.action as usize].fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            action = event.action.name(),
            bucket = %event.bucket,
            key = %event.key,
            id = event.id.as_deref().unwrap_or(""),
            rule = %event.rule,
            "lifecycle"
        );
        self.audit.write(event);
    }
}

/// The worker: its settings, where it writes, and the lease it needs in a cluster.
pub(crate) struct Worker {
    objects: Objects,
    settings: LifecycleSettings,
    lease: Option<Mutex<Lease>>,
    stats: Arc<LifecycleStats>,
    audit: Audit,
}

impl Worker {
    /// A worker over `objects`; with a metadata service (`kv`), it works only while it
    /// holds the lease.
    pub(crate) fn new(
        objects: Objects,
        settings: LifecycleSettings,
        kv: Option<Arc<dyn Kv>>,
        data_dir: &std::path::Path,
    ) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let mut nonce = [0u8; 4];
        engine::primitives::fill_random(&mut nonce);
        let owner = format!("{}:{}:{}", host.trim(), std::process::id(), base::hex::encode(&nonce));
        let lease = kv.map(|kv| Mutex::new(Lease::new(kv, "lifecycle", &owner, settings.lease_ttl())));
        Self {
            objects,
            settings,
            lease,
            stats: Arc::new(LifecycleStats::default()),
            audit: Audit { path: data_dir.join("lifecycle-audit.jsonl") },
        }
    }

    /// Its counters.
    pub(crate) fn stats(&self) -> Arc<LifecycleStats> {
        self.stats.clone()
    }

    /// Runs until `stop` turns true; gives the lease up then.
    pub(crate) async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut wait = self.settings.interval.min(FIRST_PASS);
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break,
            }
            wait = self.settings.interval;
            if let Some(lease) = &self.lease {
                match lease.lock().await.hold().await {
                    Ok(true) => {}
                    Ok(false) => {
                        self.stats.holder.store(0, Ordering::Relaxed);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reach the lifecycle lease; trying again next interval");
                        self.stats.holder.store(0, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            self.stats.holder.store(1, Ordering::Relaxed);
            self.pass(stop.clone()).await;
        }
        if let Some(lease) = &self.lease
            && let Err(e) = lease.lock().await.release().await
        {
            tracing::warn!(error = %e, "cannot give the lifecycle lease up; it lapses by itself");
        }
    }

    /// One pass over every bucket with rules.
    async fn pass(&self, stop: tokio::sync::watch::Receiver<bool>) {
        let started = Instant::now();
        self.stats.running.store(1, Ordering::Relaxed);
        let pacer = Paced {
            gap: Duration::from_secs(1) / self.settings.actions_per_sec.max(1),
            next: Mutex::new(Instant::now()),
            lease: self.lease.as_ref(),
            stop,
            stats: &self.stats,
            audit: &self.audit,
        };
        let mut total = Counts::default();
        let mut failed = false;
        match self.objects.list_buckets().await {
            Ok(buckets) => {
                for bucket in buckets {
                    let Some(rules) = &bucket.lifecycle else { continue };
                    let now = base::clock::now_unix();
                    match self.objects.lifecycle_pass(&bucket, rules, now, self.settings.day, &pacer).await {
                        Ok(c) => {
                            self.stats.add(&c);
                            total.scanned += c.scanned;
                            for (t, n) in total.actions.iter_mut().zip(c.actions) {
                                *t += n;
                            }
                        }
                        Err(e) => {
                            failed = true;
                            tracing::warn!(bucket = %bucket.name, error = %e, "a lifecycle pass over the bucket failed; trying again next interval");
                        }
                    }
                }
            }
            Err(e) => {
                failed = true;
                tracing::warn!(error = %e, "cannot list buckets for the lifecycle pass; trying again next interval");
            }
        }
        let took = started.elapsed();
        self.stats.running.store(0, Ordering::Relaxed);
        self.stats.last_pass_ms.store(u64::try_from(took.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.stats.last_pass_end.store(base::clock::now_unix(), Ordering::Relaxed);
        let counter = if failed { &self.stats.failed_passes } else { &self.stats.passes };
        counter.fetch_add(1, Ordering::Relaxed);
        let done: u64 = total.actions.iter().sum();
        if done > 0 {
            tracing::info!(
                scanned = total.scanned,
                actions = done,
                seconds = took.as_secs_f64(),
                "lifecycle pass done"
            );
        }
    }
}
