//! `cipherstore meta`: the cluster store's records between metadata services
//! (docs/SCALE-OUT.md §9). `copy` moves every record from the service one gateway
//! configuration names to the one another names (etcd to PostgreSQL, or back), then reads
//! both again and compares every key and value; `verify` does the comparison alone. The
//! key state, identities and leases stay in etcd, which both configurations share.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::serve::{self, StoreSettings};
use cluster::copy::{self, Tally};

const META_EXAMPLES: &str = "\
Move the records of a cluster from etcd to PostgreSQL (gateways stopped):
  cipherstore meta copy --from gateway-etcd.toml --to gateway-pg.toml
  # then start the gateways with gateway-pg.toml
Compare two services' records again at any time:
  cipherstore meta verify --from gateway-etcd.toml --to gateway-pg.toml

Both files are gateway configurations ([store] kind = \"cluster\"); their [store.etcd]
sections name the same etcd (it keeps the key state), and the records are wherever
[store.postgres] points, or in etcd without it.";

/// Arguments of `cipherstore meta`.
#[derive(clap::Args, Debug)]
#[command(after_help = META_EXAMPLES)]
pub(super) struct MetaArgs {
    #[command(subcommand)]
    command: MetaCommand,
}

#[derive(clap::Subcommand, Debug)]
enum MetaCommand {
    /// Copy every record from one metadata service to another (which must hold none),
    /// then verify the copy. Stop the gateways first: a write during the copy is missed.
    Copy(Pair),
    /// Compare every record of two metadata services; exit status 1 if they differ.
    Verify(Pair),
}

#[derive(clap::Args, Debug)]
struct Pair {
    /// The configuration whose records are read.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The configuration whose records are written (or compared).
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

/// Where a configuration keeps its records, for messages.
fn describe(config: &serve::config::ServeConfig) -> String {
    match &config.store {
        StoreSettings::Cluster { postgres: Some(pg), .. } => {
            format!("PostgreSQL {} schema {}", cluster::postgres::hosts(&pg.url), pg.schema)
        }
        StoreSettings::Cluster { etcd, .. } => {
            format!("etcd {} under {}", etcd.endpoints.join(","), String::from_utf8_lossy(&etcd.namespace))
        }
        StoreSettings::Fs => "the filesystem".into(),
    }
}

fn progress(verb: &'static str, started: Instant, quiet: bool) -> impl FnMut(Tally) {
    let mut shown = 0u64;
    move |t: Tally| {
        if !quiet && t.keys >= shown + 50_000 {
            shown = t.keys;
            let secs = started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "  {verb} {} records ({} MiB), {:.0} records/s",
                t.keys,
                t.bytes >> 20,
                t.keys as f64 / secs
            );
        }
    }
}

/// Runs `meta copy` or `meta verify`.
pub(super) fn run(args: &MetaArgs, quiet: bool) -> anyhow::Result<()> {
    let (MetaCommand::Copy(pair) | MetaCommand::Verify(pair)) = &args.command;
    let from = super::gateway::settings(&pair.from)?;
    let to = super::gateway::settings(&pair.to)?;
    for (file, c) in [(&pair.from, &from), (&pair.to, &to)] {
        anyhow::ensure!(
            matches!(c.store, StoreSettings::Cluster { .. }),
            "{} does not name a cluster store ([store] kind = \"cluster\")",
            file.display()
        );
    }
    let (source, destination) = (describe(&from), describe(&to));
    anyhow::ensure!(source != destination, "--from and --to name the same records ({source})");
    let runtime = super::gateway::runtime()?;
    runtime.block_on(async {
        let a = serve::connect_kv(&from).await?.context("no metadata service")?.records;
        let b = serve::connect_kv(&to).await?.context("no metadata service")?.records;
        let prefixes = store::cluster::RECORD_PREFIXES;
        if let MetaCommand::Copy(_) = args.command {
            if !quiet {
                eprintln!("copying the records from {source} to {destination} …");
            }
            let started = Instant::now();
            let t = copy::copy(a.as_ref(), b.as_ref(), &prefixes, progress("copied", started, quiet)).await?;
            println!(
                "copied {} records ({} bytes) in {:.1} s",
                t.keys,
                t.bytes,
                started.elapsed().as_secs_f64()
            );
        }
        if !quiet {
            eprintln!("comparing every record of {source} with {destination} …");
        }
        let started = Instant::now();
        let t = copy::verify(a.as_ref(), b.as_ref(), &prefixes, progress("compared", started, quiet))
            .await
            .context("the records differ")?;
        println!("verified: {} records ({} bytes) are the same on both sides", t.keys, t.bytes);
        anyhow::Ok(())
    })
}
