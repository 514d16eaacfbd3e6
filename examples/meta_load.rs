//! Metadata load for `scripts/bench-meta` (docs/SCALE-OUT.md §8-9): drives the cluster
//! store's own commit path (`ClusterStore::put` → `commit`, not S3) against its records on
//! etcd or PostgreSQL, and measures what a namespace of millions of objects costs there.
//!
//! - `load --from I --to J --writers W`: commits objects `k/I` … `k/J-1` (keys in a fixed
//!   width, so byte order is numeric order) from W concurrent writers; each object is
//!   `--size` stored bytes (kept in its entry when at most `--inline-max`) with a
//!   `--record`-byte record. Prints commits/s.
//! - `probe --objects N`: HEADs of random existing keys from 16 concurrent readers (p50,
//!   p99), and a List page of 1,000 keys at the start and at the middle of the bucket
//!   (median of 21). Prints one JSON line.
//!
//! For example:
//!
//!   meta_load --pg-url postgresql://… --pg-password-file F --backend-endpoint … \
//!     --backend-bucket B --backend-credentials F load --from 0 --to 1000000 --writers 64

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::{Parser, Subcommand};
use cluster::blobs::{BlobConfig, Blobs};
use cluster::etcd::{EtcdConfig, EtcdKv};
use cluster::kv::Kv;
use cluster::postgres::{PgConfig, PgKv};
use store::cluster::ClusterStore;
use store::{BucketStore, ObjectStore};

#[derive(Parser)]
#[command(about = "Metadata load through the cluster store's commit path, for scripts/bench-meta")]
struct Args {
    /// etcd client URLs, comma-separated (records in etcd).
    #[arg(long, conflicts_with = "pg_url")]
    etcd: Option<String>,
    /// etcd namespace.
    #[arg(long, default_value = "/cipherstore/bench/")]
    namespace: String,
    /// PostgreSQL URL (records in PostgreSQL).
    #[arg(long)]
    pg_url: Option<String>,
    /// File holding the PostgreSQL password.
    #[arg(long)]
    pg_password_file: Option<PathBuf>,
    /// PostgreSQL schema.
    #[arg(long, default_value = "bench")]
    schema: String,
    /// Connections to PostgreSQL.
    #[arg(long, default_value_t = 64)]
    pool: usize,
    /// The blob service (objects larger than --inline-max go there).
    #[arg(long)]
    backend_endpoint: String,
    /// Its bucket.
    #[arg(long)]
    backend_bucket: String,
    /// File with "ACCESS_KEY SECRET_KEY".
    #[arg(long)]
    backend_credentials: PathBuf,
    /// The bucket the objects go in.
    #[arg(long, default_value = "meta-bench")]
    bucket: String,
    /// Stored bytes per object.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Record bytes per object (an object layer record with sealed headers is ~400).
    #[arg(long, default_value_t = 400)]
    record: usize,
    /// Objects of at most this many stored bytes are kept in their entries.
    #[arg(long, default_value_t = store::cluster::DEFAULT_INLINE_MAX)]
    inline_max: usize,
    #[command(subcommand)]
    phase: Phase,
}

#[derive(Subcommand)]
enum Phase {
    /// Commit objects k/FROM … k/TO-1.
    Load {
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
        #[arg(long, default_value_t = 16)]
        writers: usize,
    },
    /// HEAD latencies and List pages over objects k/0 … k/N-1.
    Probe {
        #[arg(long)]
        objects: u64,
        #[arg(long, default_value_t = 20_000)]
        heads: u64,
    },
}

fn key(i: u64) -> String {
    format!("k/{i:010}")
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    engine::primitives::fill_random(&mut v);
    v
}

async fn open(args: &Args) -> anyhow::Result<ClusterStore> {
    let kv: Arc<dyn Kv> = match (&args.etcd, &args.pg_url) {
        (Some(endpoints), None) => {
            let mut c = EtcdConfig::new(endpoints.split(',').map(str::to_owned).collect());
            c.namespace = args.namespace.clone().into_bytes();
            c.request_timeout = Duration::from_secs(30);
            Arc::new(EtcdKv::connect(&c).await?)
        }
        (None, Some(url)) => {
            let mut c = PgConfig::new(url.clone());
            c.schema = args.schema.clone();
            c.pool_size = args.pool;
            c.request_timeout = Duration::from_secs(30);
            if let Some(f) = &args.pg_password_file {
                let text =
                    std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
                c.password = Some(zeroize::Zeroizing::new(text.trim().to_owned()));
            }
            Arc::new(PgKv::connect(&c).await?)
        }
        _ => anyhow::bail!("name --etcd or --pg-url"),
    };
    let (ak, sk) = BlobConfig::read_credentials(&args.backend_credentials)?;
    let blobs = Blobs::new(&BlobConfig::new(&args.backend_endpoint, &args.backend_bucket, &ak, &sk))?;
    Ok(ClusterStore::new(kv, blobs)?.with_inline_max(args.inline_max)?)
}

async fn load(store: ClusterStore, args: &Args, from: u64, to: u64, writers: usize) -> anyhow::Result<()> {
    if store.bucket(&args.bucket).await.is_err() {
        store.create_bucket(&args.bucket, b"{\"bench\":true}").await?;
    }
    let next = Arc::new(AtomicU64::new(from));
    let started = Instant::now();
    let (bytes, record) = (Arc::new(random(args.size)), Arc::new(random(args.record)));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (store, next, bytes, record, bucket) =
            (store.clone(), next.clone(), bytes.clone(), record.clone(), args.bucket.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return anyhow::Ok(());
                }
                let mut w = store.put(&bucket, &key(i)).await?;
                w.write_all(&bytes)?;
                w.commit(&record).await?;
                if i % 100_000 == 0 && i > from {
                    eprintln!("  … {i} committed");
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"phase\":\"load\",\"from\":{from},\"to\":{to},\"writers\":{writers},\"seconds\":{secs:.2},\"commits_per_s\":{:.0}}}",
        (to - from) as f64 / secs
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn probe(store: ClusterStore, args: &Args, objects: u64, heads: u64) -> anyhow::Result<()> {
    ensure!(objects > 1000, "probe needs more than 1,000 objects");
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(heads as usize)));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, bucket, latencies) = (store.clone(), args.bucket.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..heads / 16 {
                let mut b = [0u8; 8];
                engine::primitives::fill_random(&mut b);
                let i = u64::from_le_bytes(b) % objects;
                let t = Instant::now();
                store.head(&bucket, &key(i)).await?;
                latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(t.elapsed());
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut l = latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    l.sort();
    let page = |after: Option<String>| {
        let store = store.clone();
        let bucket = args.bucket.clone();
        async move {
            let mut times = Vec::new();
            for _ in 0..21 {
                let t = Instant::now();
                let names = store.list(&bucket, store::Page::new("", after.as_deref(), 1000)).await?;
                times.push(t.elapsed());
                ensure!(names.len() == 1000, "a page of {} names", names.len());
            }
            times.sort();
            anyhow::Ok(times[10].as_secs_f64() * 1000.0)
        }
    };
    let start = page(None).await?;
    let middle = page(Some(key(objects / 2))).await?;
    println!(
        "{{\"phase\":\"probe\",\"objects\":{objects},\"head_p50_ms\":{:.3},\"head_p99_ms\":{:.3},\"list_start_ms\":{start:.2},\"list_middle_ms\":{middle:.2}}}",
        percentile(&l, 0.5),
        percentile(&l, 0.99)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = open(&args).await?;
        match args.phase {
            Phase::Load { from, to, writers } => load(store, &args, from, to, writers).await,
            Phase::Probe { objects, heads } => probe(store, &args, objects, heads).await,
        }
    })
}
