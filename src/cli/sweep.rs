//! `cipherstore sweep`: removes the blobs of a cluster store that no record names (what
//! gateways killed between writing bytes and committing left; docs/SCALE-OUT.md §5), once,
//! with a summary. Gateways also sweep in the background; this is for operators who want
//! it now or see what it would do.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::serve::{self, StoreSettings};
use cluster::blobs::Blobs;
use store::cluster::ClusterStore;

const SWEEP_EXAMPLES: &str = "\
Examples:
  cipherstore sweep --config gateway.toml --dry-run      # what would go
  cipherstore sweep --config gateway.toml                # blobs over an hour old
  cipherstore sweep --config gateway.toml --grace 600    # over ten minutes old";

/// Arguments of `cipherstore sweep`.
#[derive(clap::Args, Debug)]
#[command(after_help = SWEEP_EXAMPLES)]
pub(super) struct SweepArgs {
    /// The gateways' configuration file (`[store] kind = "cluster"`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Leave blobs younger than this many seconds: they may belong to writes in flight.
    /// Below 600 only when no gateway is writing.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    grace: u64,
    /// Count what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs one sweep and prints what it found.
pub(super) fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let config = super::gateway::settings(&args.config)?;
    let StoreSettings::Cluster { backend, .. } = &config.store else {
        anyhow::bail!(
            "{} does not name a cluster store: the fs store cleans up unfinished writes itself at start",
            args.config.display()
        );
    };
    if args.grace < 600 {
        eprintln!(
            "cipherstore: warning: a grace of {} s may remove the bytes of uploads still in flight",
            args.grace
        );
    }
    let runtime = super::gateway::runtime()?;
    let report = runtime.block_on(async {
        let kv = serve::connect_kv(&config)
            .await?
            .context("the cluster store needs its metadata service")?
            .records;
        let store = ClusterStore::new(kv, Blobs::new(backend)?)?;
        eprintln!("sweeping blobs older than {} s …", args.grace);
        anyhow::Ok(store.sweep_paced(Duration::from_secs(args.grace), Duration::ZERO, args.dry_run).await?)
    })?;
    let verb = if args.dry_run { "would remove" } else { "removed" };
    println!(
        "checked {} blobs; {verb} {} that no record names ({} bytes): {} retired by overwrites and deletes, {} orphans",
        report.checked, report.removed, report.removed_bytes, report.retired, report.orphans
    );
    Ok(())
}
