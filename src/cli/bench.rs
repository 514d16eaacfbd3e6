//! `cipherstore bench`: the engine's in-memory throughput on this machine, each figure
//! beside a baseline measured in the same run (raw aws-lc-rs AES-256-GCM, the paper's
//! AES-256-CTR + SHA-256 AONT, memcpy), so users can check their own hardware. The
//! criterion suite in benches/ measures more baselines with statistics.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use engine::primitives::Gcm;
use engine::{Backend, CipherId, CustomerKey, HashId, Opener, SealSpec, Sealer, Sealing, SecretKey};
use pipeline::units::InMemory;

/// Options of `cipherstore bench`.
#[derive(clap::Args, Debug)]
pub(super) struct BenchArgs {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Buffer size in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    size: usize,
    /// Seconds to spend on each measurement.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    seconds: f64,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    gb_per_s: f64,
    baseline: Option<&'static str>,
    ratio: Option<f64>,
}

/// Best throughput of repeated runs of `f` over `bytes` for about `secs` seconds.
fn measure(bytes: usize, secs: f64, mut f: impl FnMut()) -> f64 {
    measure_with_setup(bytes, secs, &mut (), |_| {}, |_| f())
}

/// Like [`measure`], running the untimed `setup` before each timed `f` (decoding works in
/// place, so each run needs fresh ciphertext).
fn measure_with_setup<S>(
    bytes: usize,
    secs: f64,
    state: &mut S,
    mut setup: impl FnMut(&mut S),
    mut f: impl FnMut(&mut S),
) -> f64 {
    setup(state);
    f(state);
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut best = f64::MAX;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        setup(state);
        let t = Instant::now();
        f(state);
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    bytes as f64 / best / 1e9
}

fn sealed(spec: &SealSpec, plain: &[u8]) -> anyhow::Result<(Sealer, InMemory)> {
    let sealer = Sealer::new(spec, Some(plain.len() as u64))?;
    let mut object = InMemory::new(&sealer.layout(plain.len() as u64)?, plain);
    object.seal(&sealer, true)?;
    Ok((sealer, object))
}

/// Seal and open throughput of `spec` over `plain`, one thread.
fn seal_open(
    spec: &SealSpec,
    key: Option<&CustomerKey>,
    plain: &[u8],
    secs: f64,
) -> anyhow::Result<(f64, f64)> {
    let (sealer, mut object) = sealed(spec, plain)?;
    let pristine = object.clone();
    let seal = measure(plain.len(), secs, || {
        let _ = black_box(object.seal(&sealer, false));
    });
    let opener = Opener::new(sealer.header_bytes(), key, spec.backend)?;
    let open = measure_with_setup(
        plain.len(),
        secs,
        &mut object,
        |o| o.restore_from(&pristine),
        |o| {
            let _ = black_box(o.open(&opener, false));
        },
    );
    Ok((seal, open))
}

/// Runs the measurements and prints the table.
pub(super) fn run(args: &BenchArgs, backend: Backend) -> anyhow::Result<()> {
    anyhow::ensure!(args.size > 0, "--size must be at least 1 MiB");
    let n = args.size << 20;
    let secs = args.seconds;
    let plain: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31)).collect();
    let mut rows: Vec<Row> = Vec::new();
    let mut push = |name, v: f64, base: Option<(&'static str, f64)>| {
        rows.push(Row { name, gb_per_s: v, baseline: base.map(|b| b.0), ratio: base.map(|b| v / b.1) });
        v
    };

    let mut dst = vec![0u8; n];
    let memcpy = push("memcpy", measure(n, secs, || dst.copy_from_slice(black_box(&plain))), None);

    let key = SecretKey::random();
    let raw = Gcm::new(Backend::Accelerated, &key)?;
    let mut buf = plain.clone();
    let raw_gcm = push(
        "aws-lc-rs AES-256-GCM seal (one call)",
        measure(n, secs, || {
            let _ = black_box(raw.seal(&[1; 12], b"", &mut buf));
        }),
        Some(("memcpy", memcpy)),
    );
    let portable = Gcm::new(Backend::Portable, &key)?;
    push(
        "RustCrypto aes-gcm 0.11 seal (portable)",
        measure(n, secs, || {
            let _ = black_box(portable.seal(&[1; 12], b"", &mut buf));
        }),
        Some(("aws-lc-rs GCM", raw_gcm)),
    );

    let customer = CustomerKey::new(key.clone());
    let sse_c = SealSpec::new(Sealing::SseC(customer.clone()), backend);
    let (seal, open) = seal_open(&sse_c, Some(&customer), &plain, secs)?;
    push("STREAM seal (256 KiB chunks)", seal, Some(("aws-lc-rs GCM", raw_gcm)));
    push("STREAM open (256 KiB chunks)", open, Some(("aws-lc-rs GCM", raw_gcm)));

    let paper = SealSpec {
        aont_cipher: CipherId::Aes256Ctr,
        aont_hash: HashId::Sha256,
        ..SealSpec::new(Sealing::Aont, backend)
    };
    let (paper_enc, paper_dec) = seal_open(&paper, None, &plain, secs)?;
    push("paper AONT encode (AES-256-CTR + SHA-256)", paper_enc, None);
    push("paper AONT decode (AES-256-CTR + SHA-256)", paper_dec, None);
    let ours = SealSpec::new(Sealing::Aont, backend);
    let (enc, dec) = seal_open(&ours, None, &plain, secs)?;
    push("AONT-RS encode (default)", enc, Some(("paper AONT encode", paper_enc)));
    push("AONT-RS decode (default)", dec, Some(("paper AONT decode", paper_dec)));

    let (sealer, mut object) = sealed(&ours, &plain)?;
    let threads = rayon::current_num_threads();
    let par = measure(n, secs, || {
        let _ = black_box(object.seal(&sealer, true));
    });
    push("AONT-RS encode, all threads", par, Some(("AONT-RS encode, 1 thread", enc)));

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).context("cannot format the results")?);
    } else {
        println!(
            "cipherstore engine throughput: {} MiB in memory, backend {}, {threads} threads\n",
            args.size,
            backend.name()
        );
        println!("{:<44} {:>8}   ratio to baseline (same run)", "operation", "GB/s");
        for r in &rows {
            let ratio = match (r.baseline, r.ratio) {
                (Some(b), Some(x)) => format!("{x:.2}x {b}"),
                _ => String::new(),
            };
            println!("{:<44} {:>8.2}   {ratio}", r.name, r.gb_per_s);
        }
    }
    Ok(())
}
