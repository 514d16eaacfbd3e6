//! The background scrub of dispersed slices: every interval a thread of its own (the
//! records read on the server's runtime, the slices on the thread) checks
//! every slice of every dispersed object (at most the configured MiB/s, so object traffic
//! keeps the targets), re-creates missing and damaged ones, sweeps slice files no record
//! names after an hour, logs a summary and hands the counts to `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use store::dispersal::DispersedStore;
use store::dispersal::rebuild::RebuildOptions;

/// Slice files no record names are left this long: they may belong to writes in flight.
pub(crate) const SWEEP_GRACE: Duration = Duration::from_secs(3600);

/// Starts the scrub thread.
pub(crate) fn spawn(store: Arc<DispersedStore>, every: Duration, rate: u64) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("dispersal-scrub".to_owned())
        .spawn(move || run(&runtime, &store, every, rate))
        .map_err(|e| anyhow::anyhow!("cannot start the dispersal scrub thread: {e}"))?;
    Ok(())
}

fn run(runtime: &tokio::runtime::Handle, store: &DispersedStore, every: Duration, rate: u64) {
    let options =
        RebuildOptions { verify: true, dry_run: false, rate: Some(rate), sweep_grace: Some(SWEEP_GRACE) };
    loop {
        std::thread::sleep(every);
        match runtime.block_on(store.rebuild(&options, &|_, _| {})) {
            Ok(r) => {
                store.health().scrubbed(&r);
                let rebuilt: u64 = r.rebuilt.iter().sum();
                if r.below_width > 0 || r.orphans > 0 || !r.lost.is_empty() || !r.errors.is_empty() {
                    tracing::warn!(
                        pieces = r.pieces,
                        below_width = r.below_width,
                        at_threshold = r.at_threshold,
                        lost = r.lost.len(),
                        rebuilt,
                        orphans = r.orphans,
                        errors = r.errors.len(),
                        "dispersal scrub found slices to restore"
                    );
                    for lost in &r.lost {
                        tracing::error!(piece = %lost, "a dispersed object has fewer slices than its threshold: it cannot be read");
                    }
                } else {
                    tracing::info!(
                        pieces = r.pieces,
                        mib_read = r.bytes_read >> 20,
                        "dispersal scrub: every slice present and intact"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "the dispersal scrub failed; trying again next interval"),
        }
    }
}
