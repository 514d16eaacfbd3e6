//! `cipherstore rebuild`: checks every dispersed object's slices and re-creates the
//! missing or damaged ones from any `k` good ones (a target replaced by an empty directory
//! is refilled), sweeps slice files no record names, and prints a summary. `serve` scrubs
//! in the background too (`[store.dispersal] scrub_interval_secs`); this is for operators
//! who replaced a disk or want to know now.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::serve;
use store::dispersal::DispersedStore;
use store::dispersal::rebuild::{RebuildOptions, RebuildReport};

const REBUILD_EXAMPLES: &str = "\
Examples:
  cipherstore rebuild --config cipherstore.toml --dry-run   # what is missing, change nothing
  cipherstore rebuild --config cipherstore.toml --quick     # missing or short slices only
  cipherstore rebuild --config cipherstore.toml             # read and check every slice too
  cipherstore rebuild --config cipherstore.toml --rate-mib 50 --grace 600

A slice is good when its file is there, has the right length and (without --quick) its
bytes match the digest its object's record holds. Pieces with fewer good slices than the
threshold cannot be rebuilt: they are listed, and the command exits with status 2.";

/// Arguments of `cipherstore rebuild`.
#[derive(clap::Args, Debug)]
#[command(after_help = REBUILD_EXAMPLES)]
pub(super) struct RebuildArgs {
    /// The server's configuration file (with `[store.dispersal]`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The server's data directory, if not in the file (the fs store's records).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Check presence and length only; do not read slices through.
    #[arg(long)]
    quick: bool,
    /// Find and count, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Read at most this many MiB per second (0: no limit).
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    rate_mib: u64,
    /// Remove slice files no record names once older than this many seconds (they may
    /// belong to writes in flight below it).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    grace: u64,
}

/// Runs one rebuild and prints what it found and did (`quiet`: no progress bar); exits 2
/// if objects are lost.
pub(super) fn run(args: &RebuildArgs, quiet: bool) -> anyhow::Result<()> {
    let flags = serve::config::Flags {
        config: Some(args.config.clone()),
        data_dir: args.data_dir.clone(),
        ..serve::config::Flags::default()
    };
    let config = serve::config::ServeConfig::resolve(flags, engine::Backend::default())?;
    let dispersal = config.dispersal.clone().with_context(|| {
        format!("{} has no [store.dispersal] section: nothing is dispersed", args.config.display())
    })?;
    let runtime = super::gateway::runtime()?;
    let inner = runtime.block_on(async {
        let kv = serve::connect_kv(&config).await?.map(|m| m.records);
        let without = serve::config::ServeConfig { dispersal: None, ..config.clone() };
        anyhow::Ok(serve::open_store(&without, kv)?.0)
    })?;
    // S3 targets' clients run on the runtime.
    let _entered = runtime.enter();
    let store = DispersedStore::new(inner, &dispersal)?;
    let options = RebuildOptions {
        verify: !args.quick,
        dry_run: args.dry_run,
        rate: (args.rate_mib > 0).then_some(args.rate_mib << 20),
        sweep_grace: Some(Duration::from_secs(args.grace)),
    };
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("rebuild [{bar:30}] {pos}/{len} pieces, eta {eta}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    eprintln!(
        "checking the slices of every dispersed object on {} targets ({}) …",
        dispersal.targets.len(),
        if args.quick { "presence and length" } else { "every byte" }
    );
    let report = runtime.block_on(store.rebuild(&options, &|done, total| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    }))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    print_report(&report, args.dry_run);
    if !report.lost.is_empty() {
        std::process::exit(2);
    }
    anyhow::ensure!(report.errors.is_empty(), "{} pieces could not be rebuilt (above)", report.errors.len());
    Ok(())
}

fn print_report(r: &RebuildReport, dry_run: bool) {
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    println!(
        "checked {} pieces ({} MiB read): {} below full width, {} at the threshold (one more loss would lose them), {} lost",
        r.pieces,
        r.bytes_read >> 20,
        r.below_width,
        r.at_threshold,
        r.lost.len()
    );
    println!("  missing per target:  {}", list(&r.missing));
    println!("  damaged per target:  {}", list(&r.damaged));
    let verb = if dry_run { "would rebuild" } else { "rebuilt" };
    if dry_run {
        let would: Vec<u64> = r.missing.iter().zip(&r.damaged).map(|(a, b)| a + b).collect();
        println!("  {verb} per target: {}", list(&would));
    } else {
        println!("  {verb} per target:  {}", list(&r.rebuilt));
    }
    let swept = if dry_run { "would remove" } else { "removed" };
    println!("  {swept} {} slice files no record names", r.orphans);
    for lost in &r.lost {
        println!("  LOST: {lost}");
    }
    for e in &r.errors {
        println!("  error: {e}");
    }
    if r.below_width == 0 && r.orphans == 0 {
        println!("nothing to do: every piece has all its slices");
    }
}
