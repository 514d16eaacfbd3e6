//! HSM throughput: wrap and unwrap operations per second by each wrapping method the token
//! can do (one thread; two threads sharing the session pool for the token's own choice),
//! and the number of HSM calls made while encrypting 10,000 objects in one bucket. By
//! default against SoftHSM2: the bench creates its own token (hsm/create-token) and re-runs
//! itself with SOFTHSM2_CONF pointing at it. With `CIPHERSTORE_BENCH_HSM_FROM_ENV=1`, against
//! the token the environment names (CIPHERSTORE_PKCS11_MODULE, CIPHERSTORE_HSM_TOKEN, …: what
//! `hsm/opencryptoki up` or `hsm/tpm2 up` print; scripts/bench-hsm does this per module).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, Throughput};

use engine::{Backend, CustomerKey, SealSpec, Sealer, Sealing, SecretKey};
use keys::{Hsm, HsmConfig, KeyId, KeyManager, KeyRef, ManagerOptions, WrapMethod};
use pipeline::units::InMemory;

const CHILD: &str = "CIPHERSTORE_BENCH_TOKEN_DIR";
const FROM_ENV: &str = "CIPHERSTORE_BENCH_HSM_FROM_ENV";
const LABEL: &str = "cipherstore-bench";

/// The token to measure and a directory for the key state.
fn token() -> (HsmConfig, PathBuf, Option<tempfile::TempDir>) {
    if std::env::var_os(FROM_ENV).is_some() {
        let state = tempfile::tempdir().expect("temporary directory");
        return (
            HsmConfig::from_env().expect("HSM from the environment"),
            state.path().to_owned(),
            Some(state),
        );
    }
    let Some(dir) = std::env::var_os(CHILD) else {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/create-token");
        let made = Command::new(script).arg(tmp.path()).arg(LABEL).output().expect("hsm/create-token");
        assert!(made.status.success(), "hsm/create-token: {}", String::from_utf8_lossy(&made.stderr));
        let status = Command::new(std::env::current_exe().expect("own path"))
            .args(std::env::args_os().skip(1))
            .env(CHILD, tmp.path())
            .env("SOFTHSM2_CONF", tmp.path().join("softhsm2.conf"))
            .status()
            .expect("re-run the bench");
        std::process::exit(status.code().unwrap_or(1));
    };
    let dir = PathBuf::from(dir);
    let pin = std::fs::read_to_string(dir.join("user.pin")).expect("pin").trim().to_owned();
    (HsmConfig::new(Path::new("/usr/lib/softhsm/libsofthsm2.so"), LABEL, &pin), dir, None)
}

fn main() {
    let (config, dir, _state) = token();
    let open = |config: &HsmConfig| {
        KeyManager::open(Hsm::open(config).expect("open token"), &ManagerOptions::new(&dir.join("keys")))
            .expect("keys")
    };
    let m = open(&config);
    let chosen = m.hsm().method();
    println!("token {:?} of {}: wraps by {chosen}", config.token, config.module.display());
    let root = m.create("bench-root").expect("root key");
    let id = KeyId::parse(&root.id).expect("id").object(1).id;

    calls_for_ten_thousand_objects(&m, &root.crn, &open(&config));

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let key = SecretKey::from_bytes([5; 32]);
    let ctx: &[u8] = b"bench context";
    let wrapped = m.hsm().wrap(&id, chosen, &key, ctx).expect("wrap");
    let mut g = c.benchmark_group("hsm");
    g.throughput(Throughput::Elements(1));
    for method in WrapMethod::PREFERENCE {
        // Only the methods the token can do: opening it with the method forced says.
        let Ok(hsm) = Hsm::open(&config.clone().with_wrap(method)) else {
            println!("hsm/{method}: not offered by this token");
            continue;
        };
        let obj = KeyId::random().object(1);
        hsm.generate_root(&obj, method).expect("root key for the method");
        let w = hsm.wrap(&obj.id, method, &key, ctx).expect("wrap");
        g.bench_function(format!("wrap/{method}"), |b| {
            b.iter(|| hsm.wrap(black_box(&obj.id), method, &key, ctx).expect("wrap"))
        });
        g.bench_function(format!("unwrap/{method}"), |b| {
            b.iter(|| hsm.unwrap(black_box(&obj.id), method, &w, ctx, "bench").expect("unwrap"))
        });
        hsm.destroy_root(&obj.id).expect("clean up");
    }
    // Two threads sharing the session pool, each doing half of the iterations.
    g.bench_function(format!("unwrap-2-threads/{chosen}"), |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for half in [iters / 2, iters - iters / 2] {
                    let (m, id, wrapped) = (&m, &id, &wrapped);
                    s.spawn(move || {
                        for _ in 0..half {
                            m.hsm().unwrap(id, chosen, wrapped, ctx, "bench").expect("unwrap");
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.finish();
    c.final_summary();
}

/// Encrypts 10,000 small SSE-KP objects in one bucket with a cold bucket key cache and
/// prints how many HSM calls the first object and the rest made.
fn calls_for_ten_thousand_objects(setup: &KeyManager, crn: &str, m: &KeyManager) {
    setup.create_bucket_key("bench-bucket", &KeyRef::parse(crn)).expect("bucket key");
    let plain = vec![1u8; 4096];
    let mut first = 0;
    for i in 0..10_000 {
        let key = CustomerKey {
            key: m.bucket_key("bench-bucket", &KeyRef::parse(crn)).expect("bucket key"),
            context: b"bench-bucket".to_vec(),
        };
        let spec = SealSpec::new(Sealing::SseKp { key, crn: crn.to_owned() }, Backend::Accelerated);
        let sealer = Sealer::new(&spec, Some(plain.len() as u64)).expect("sealer");
        let mut o = InMemory::new(&sealer.layout(plain.len() as u64).expect("layout"), &plain);
        o.seal(&sealer, false).expect("seal");
        if i == 0 {
            first = m.metrics().hsm_unwraps + m.metrics().hsm_wraps;
        }
    }
    let total = m.metrics().hsm_unwraps + m.metrics().hsm_wraps;
    println!(
        "HSM calls while encrypting 10,000 objects in one bucket (cold cache): first object {first}, \
         the other 9,999 {} (cache hits {})",
        total - first,
        m.metrics().cache_hits
    );
}
