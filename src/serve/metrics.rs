//! Service counters and their Prometheus text exposition (`GET /metrics`): requests by
//! method and status, request latency histogram, bytes in and out, integrity failures,
//! the key layer's HSM calls and bucket-key cache hits, and the lifecycle worker's passes
//! and actions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::sync::Arc;

use super::lifecycle::LifecycleStats;
use keys::KeyMetrics;
use store::dispersal::health::Health;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Counters shared by every connection.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    refused_plain_sse_c: AtomicU64,
    dispersal: Option<Arc<Health>>,
    lifecycle: Option<Arc<LifecycleStats>>,
}

impl Metrics {
    /// Counters that also report the dispersal targets' health, if there are targets.
    pub(crate) fn with_dispersal(dispersal: Option<Arc<Health>>) -> Self {
        Self { dispersal, ..Self::default() }
    }

    /// Counters that also report the lifecycle worker's.
    pub(crate) fn with_lifecycle(self, stats: Arc<LifecycleStats>) -> Self {
        Self { lifecycle: Some(stats), ..self }
    }

    /// Records one finished request.
    pub(crate) fn record(&self, method: &str, status: u16, elapsed: Duration, bytes_in: u64, bytes_out: u64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_owned(), status)).or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// Counts an SSE-C request refused on plain HTTP.
    pub(crate) fn refused_plain_sse_c(&self) {
        self.refused_plain_sse_c.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text format of every counter.
    pub(crate) fn render(&self, keys: Option<KeyMetrics>) -> String {
        let mut out = String::new();
        header(&mut out, "cipherstore_requests_total", "counter", "HTTP requests by method and status.");
        if let Ok(m) = self.requests.lock() {
            for ((method, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "cipherstore_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let h = "cipherstore_request_duration_seconds";
        header(&mut out, h, "histogram", "Time to the response head.");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{h}_bucket{{le=\"{bound}\"}} {}", self.latency[i].load(Ordering::Relaxed));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{h}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{h}_sum {}", self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{h}_count {count}");
        let mut counters = vec![
            (
                "cipherstore_bytes_received_total",
                "Request body bytes announced.",
                self.bytes_in.load(Ordering::Relaxed),
            ),
            (
                "cipherstore_bytes_sent_total",
                "Response body bytes announced.",
                self.bytes_out.load(Ordering::Relaxed),
            ),
            (
                "cipherstore_integrity_failures_total",
                "Stored objects that failed authentication on read.",
                s3::integrity_failures(),
            ),
            (
                "cipherstore_plain_http_sse_c_refused_total",
                "SSE-C requests refused because they came over plain HTTP.",
                self.refused_plain_sse_c.load(Ordering::Relaxed),
            ),
        ];
        counters.extend(cluster::requests::all().map(|k| (k.name, k.help, k.get())));
        let (rounds, chunks) = engine::md5::rounds();
        counters.extend([
            (
                "cipherstore_md5_rounds_total",
                "Rounds of the multi-buffer MD5 (up to 16 uploads' chunks each).",
                rounds,
            ),
            ("cipherstore_md5_round_chunks_total", "64 KiB chunks those rounds hashed.", chunks),
        ]);
        if let Some(k) = keys.filter(|k| k.remote) {
            counters.extend([
                ("cipherstore_key_service_calls_total", "Calls to the remote key service.", k.service_calls),
                (
                    "cipherstore_key_service_failures_total",
                    "Calls to the remote key service that failed or found it unavailable.",
                    k.service_failures,
                ),
                ("cipherstore_key_cache_hits_total", "Bucket keys served from the cache.", k.cache_hits),
                (
                    "cipherstore_key_cache_misses_total",
                    "Bucket keys asked of the key service.",
                    k.cache_misses,
                ),
            ]);
        }
        if let Some(k) = keys.filter(|k| !k.remote) {
            counters.extend([
                ("cipherstore_hsm_wraps_total", "Bucket keys wrapped by the HSM.", k.hsm_wraps),
                ("cipherstore_hsm_unwraps_total", "Bucket keys unwrapped by the HSM.", k.hsm_unwraps),
                ("cipherstore_hsm_admin_total", "Root keys generated, imported or destroyed.", k.hsm_admin),
                ("cipherstore_hsm_failures_total", "HSM operations that failed.", k.hsm_failures),
                (
                    "cipherstore_hsm_recoveries_total",
                    "PKCS#11 module re-initialisations after HSM failures.",
                    k.hsm_recoveries,
                ),
                ("cipherstore_key_cache_hits_total", "Bucket keys served from the cache.", k.cache_hits),
                ("cipherstore_key_cache_misses_total", "Bucket keys that needed the HSM.", k.cache_misses),
            ]);
        }
        for (name, help, value) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }
        let budget = pipeline::budget::global();
        for (name, help, value) in [
            (
                "cipherstore_stream_buffer_bytes",
                "Bytes held by the batches of uploads being sealed and downloads being sent.",
                budget.held(),
            ),
            ("cipherstore_stream_buffer_limit_bytes", "limits.stream_buffers_mib, in bytes.", budget.limit()),
            (
                "cipherstore_batch_buffers_idle_bytes",
                "Batch buffers kept mapped for reuse (unmapped after a second unused).",
                pipeline::pool::idle_bytes(),
            ),
        ] {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(k) = keys.filter(|k| !k.remote) {
            let name = "cipherstore_hsm_wrap_method";
            header(
                &mut out,
                name,
                "gauge",
                "How new root key versions wrap bucket keys on the token (1 for the method used).",
            );
            for m in keys::WrapMethod::PREFERENCE {
                let _ = writeln!(out, "{name}{{method=\"{m}\"}} {}", u8::from(m == k.wrap_method));
            }
        }
        if let Some(h) = &self.dispersal {
            render_dispersal(&mut out, &h.report());
        }
        if let Some(l) = &self.lifecycle {
            l.render(&mut out);
        }
        out
    }
}

/// The dispersal targets' gauges and counters, one series per target.
fn render_dispersal(out: &mut String, r: &store::dispersal::health::HealthReport) {
    let per_target: [(&str, &str, &str, Vec<u64>); 4] = [
        (
            "cipherstore_dispersal_target_up",
            "gauge",
            "Whether the dispersal target answered its last request (1) or failed it (0).",
            r.up.iter().map(|&u| u64::from(u)).collect(),
        ),
        (
            "cipherstore_dispersal_target_failures_total",
            "counter",
            "Requests to the target that failed: slices a write left missing, reads that found it unreadable.",
            r.failures.clone(),
        ),
        (
            "cipherstore_dispersal_bad_shards_total",
            "counter",
            "Shards of the target whose check failed on read (read around, rebuilt by `cipherstore rebuild`).",
            r.bad.clone(),
        ),
        (
            "cipherstore_dispersal_rebuilt_slices_total",
            "counter",
            "Slices of the target re-created by background scrubs.",
            r.rebuilt.clone(),
        ),
    ];
    for (name, kind, help, values) in per_target {
        header(out, name, kind, help);
        for (i, v) in values.iter().enumerate() {
            let _ = writeln!(out, "{name}{{target=\"{i}\"}} {v}");
        }
    }
    let name = "cipherstore_dispersal_target_read_seconds";
    header(
        out,
        name,
        "gauge",
        "Moving average time of one shard read from the target (0: none yet); reads prefer fast targets.",
    );
    for (i, us) in r.read_us.iter().enumerate() {
        let _ = writeln!(out, "{name}{{target=\"{i}\"}} {:.6}", *us as f64 / 1e6);
    }
    for (name, kind, help, value) in [
        (
            "cipherstore_dispersal_degraded_stripes_total",
            "counter",
            "Stripes read by rebuilding them from parity slices.",
            r.degraded_reads,
        ),
        ("cipherstore_dispersal_scrubs_total", "counter", "Background scrubs finished.", r.scrubs),
        (
            "cipherstore_dispersal_pieces_below_width",
            "gauge",
            "At the last scrub: objects and parts that had fewer slices than the width (before it rebuilt them).",
            r.below_width,
        ),
        (
            "cipherstore_dispersal_pieces_at_threshold",
            "gauge",
            "At the last scrub: objects and parts with exactly threshold slices left (one more loss loses them).",
            r.at_threshold,
        ),
        (
            "cipherstore_dispersal_pieces_lost",
            "gauge",
            "At the last scrub: objects and parts with fewer slices than the threshold (unreadable).",
            r.lost,
        ),
    ] {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_counts_requests() {
        let m = Metrics::default();
        m.record("PUT", 200, Duration::from_millis(3), 100, 0);
        m.record("GET", 404, Duration::from_secs(2), 0, 50);
        let text = m.render(None);
        assert!(text.contains("cipherstore_requests_total{method=\"PUT\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("cipherstore_request_duration_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("cipherstore_request_duration_seconds_bucket{le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("cipherstore_bytes_received_total 100"), "{text}");
        assert!(text.contains("cipherstore_bytes_sent_total 50"), "{text}");
        assert!(!text.contains("hsm"), "no key metrics without a key manager");
        assert!(!text.contains("dispersal"), "no dispersal metrics without targets");
    }

    #[test]
    fn exposition_reports_dispersal_targets() {
        let health = Arc::new(Health::new(3));
        health.failed(1, &std::io::Error::other("gone"));
        health.bad_slice(2);
        health.degraded_read();
        health.read_took(0, Duration::from_micros(1500));
        let text = Metrics::with_dispersal(Some(health)).render(None);
        for line in [
            "cipherstore_dispersal_target_up{target=\"0\"} 1",
            "cipherstore_dispersal_target_up{target=\"1\"} 0",
            "cipherstore_dispersal_target_failures_total{target=\"1\"} 1",
            "cipherstore_dispersal_bad_shards_total{target=\"2\"} 1",
            "cipherstore_dispersal_degraded_stripes_total 1",
            "cipherstore_dispersal_target_read_seconds{target=\"0\"} 0.001500",
            "cipherstore_dispersal_target_read_seconds{target=\"1\"} 0.000000",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
