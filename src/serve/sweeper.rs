//! The background sweep of a cluster gateway (docs/SCALE-OUT.md §5): every interval
//! (started at a random point of the first one, so gateways do not sweep together) it
//! deletes the blobs no record names that are older than the grace period, checking at most
//! [`CHECKS_PER_SEC`] blobs a second so object traffic keeps the metadata service.

use std::time::Duration;

use super::config::SweepSettings;
use store::cluster::ClusterStore;

/// Blobs a background sweep checks per second at most.
pub(crate) const CHECKS_PER_SEC: u64 = 500;

/// Starts the background sweep if `settings` asks for one.
pub(crate) fn spawn(store: ClusterStore, settings: SweepSettings) -> Option<tokio::task::JoinHandle<()>> {
    let interval = settings.interval?;
    Some(tokio::spawn(run(store, interval, settings.grace)))
}

async fn run(store: ClusterStore, interval: Duration, grace: Duration) {
    let pause = Duration::from_micros(1_000_000 / CHECKS_PER_SEC);
    let mut b = [0u8; 8];
    engine::primitives::fill_random(&mut b);
    let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut wait = Duration::from_millis(u64::from_le_bytes(b) % millis);
    loop {
        tokio::time::sleep(wait).await;
        wait = interval;
        match store.sweep_paced(grace, pause, false).await {
            Ok(r) if r.removed > 0 => {
                tracing::info!(
                    checked = r.checked,
                    removed = r.removed,
                    bytes = r.removed_bytes,
                    "swept orphan blobs"
                );
            }
            Ok(r) => tracing::debug!(checked = r.checked, "sweep found no orphan blobs"),
            Err(e) => tracing::warn!(error = %e, "the background sweep failed; trying again next interval"),
        }
    }
}
