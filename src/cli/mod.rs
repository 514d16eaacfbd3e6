//! Command-line interface: argument definitions and dispatch to one module per command.

mod bench;
mod crypt;
mod gateway;
mod iam;
mod keyfile;
mod keys;
mod keys_remote;
mod meta;
mod progress;
mod rebuild;
mod sweep;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use engine::cpu::CpuReport;
use engine::{Backend, CipherId, CustomerKey, HashId};

/// Encrypting object storage: every stored byte goes through AONT-RS or chunked AES-256-GCM.
///
/// Files are processed in memory-mapped windows across all cores; `-` reads stdin or
/// writes stdout. Set CIPHERSTORE_BACKEND=portable to force the pure-Rust primitives.
#[derive(Parser, Debug)]
#[command(name = "cipherstore", version, about, long_about = None, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// Worker threads (default: one per CPU).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  cipherstore encrypt photo.raw -o photo.cso               # AONT-RS, no key needed
  openssl rand 32 > my.key && chmod 600 my.key
  cipherstore encrypt db.dump -o db.cso --mode sse-c --key-file my.key
  cipherstore decrypt db.cso -o db.dump --key-file my.key
  cipherstore decrypt db.cso -o part.bin --key-file my.key --range 1048576-2097151
  tar c dir | cipherstore encrypt - -o dir.tar.cso         # from stdin
  cipherstore inspect db.cso                               # header only, no key needed
  cipherstore cpu                                          # what this CPU accelerates";

const SERVE_HELP: &str = "\
Objects are encrypted as they arrive: AONT-RS by default, SSE-C when the client sends
x-amz-server-side-encryption-customer-* headers (HTTPS only), SSE-KP in buckets bound to an
HSM root key (IBM ibm-sse-kp-* headers at CreateBucket, or PutBucketEncryption aws:kms).

Environment (overrides --config, overridden by flags):
  CIPHERSTORE_LISTEN, CIPHERSTORE_HTTP_LISTEN, CIPHERSTORE_DATA_DIR, CIPHERSTORE_USERS,
  CIPHERSTORE_TLS_CERT, CIPHERSTORE_TLS_KEY, CIPHERSTORE_LOG (e.g. info, debug),
  CIPHERSTORE_KEYS_DIR, CIPHERSTORE_KEY_CACHE_TTL (seconds), CIPHERSTORE_INSTANCE,
  HSM: CIPHERSTORE_PKCS11_MODULE, CIPHERSTORE_HSM_TOKEN or CIPHERSTORE_HSM_URI,
       CIPHERSTORE_HSM_PIN_FILE or CIPHERSTORE_HSM_PIN (never a flag)

Examples:
  cipherstore serve                                   # https://127.0.0.1:9000, ./data
  cipherstore serve --config /etc/cipherstore.toml
  cipherstore serve --listen 0.0.0.0:9443 --tls-cert cert.pem --tls-key key.pem
  cipherstore serve --kms-listen 127.0.0.1:9443       # and the key service (Key Protect API)
  curl --cacert data/tls/cert.pem https://127.0.0.1:9000/metrics";

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML configuration file (see docs/CONFIGURATION.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// HTTPS address [default: 127.0.0.1:9000].
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Also serve plain HTTP here (SSE-C requests get 400 on it).
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<std::net::SocketAddr>,
    /// Data directory: store, TLS files, users, keys state [default: data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Users file, `ACCESS_KEY SECRET_KEY` per line (default: DIR/users, created with
    /// one random user on first start).
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Turns on the admin HTTP API (`/_admin/v1/`: users, access keys, roles; see
    /// docs/ACCESS.md), authenticated by the bearer token this file holds (at least 32
    /// characters; e.g. `head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE`).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Also serve the key service here: IBM Key Protect's v2 API over the HSM's root keys,
    /// HTTPS with the same certificate (needs an HSM; clients get tokens at
    /// `POST /identity/token` with an API key from `cipherstore iam apikey create`, and send
    /// `cipherstore keys instance` as Bluemix-Instance; docs/KEYS.md).
    #[arg(long, value_name = "ADDR")]
    kms_listen: Option<std::net::SocketAddr>,
    /// TLS certificate (PEM); default: a self-signed one in DIR/tls.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encrypt a file (or stdin) into a cipherstore object.
    Encrypt(EncryptArgs),
    /// Decrypt a cipherstore object, whole or a byte range.
    Decrypt(DecryptArgs),
    /// Print an object's header (mode, algorithms, sizes) without decrypting it.
    Inspect {
        /// The object.
        input: PathBuf,
    },
    /// Print detected CPU features and the implementation serving each primitive.
    Cpu {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Measure the engine's throughput on this machine against baseline crypto.
    Bench(bench::BenchArgs),
    /// Run the S3 endpoint over HTTPS. Settings come from --config (TOML), then
    /// CIPHERSTORE_* environment variables, then these flags, each overriding the last.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Manage root keys in the HSM: create, import, rotate, disable, enable, delete,
    /// restore, audit. The HSM comes from CIPHERSTORE_PKCS11_MODULE, CIPHERSTORE_HSM_TOKEN
    /// (or CIPHERSTORE_HSM_URI) and CIPHERSTORE_HSM_PIN_FILE (or CIPHERSTORE_HSM_PIN).
    /// The key named `cipherstore-default` protects SSE-S3 objects (and aws:kms without a
    /// key id); the server generates it on first use unless one was created or imported.
    Keys(keys::KeysArgs),
    /// Manage users, their access keys (HMAC credentials) and their roles on buckets,
    /// live: running gateways apply a change within seconds. Works on the identities of the
    /// server with the same --data-dir (or --config, for a cluster).
    Iam(iam::IamArgs),
    /// Remove the blobs of a cluster store that no record names (left by gateways killed
    /// mid-write); gateways also do this in the background.
    Sweep(sweep::SweepArgs),
    /// Check every dispersed object's slices and re-create missing or damaged ones from
    /// any `threshold` good ones ([store.dispersal]); sweep slices no record names.
    Rebuild(rebuild::RebuildArgs),
    /// Move a cluster's records between metadata services (etcd, PostgreSQL) and check
    /// that both sides hold the same records.
    Meta(meta::MetaArgs),
}

/// Protection modes the file CLI writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ModeArg {
    /// AONT-RS package transform: keyless, tamper-evident; confidentiality needs dispersal.
    Aont,
    /// Chunked AES-256-GCM under a data key sealed by your key (--key-file).
    SseC,
    /// Chunked AES-256-GCM under a key derived from a bucket key that an HSM root key
    /// wraps (--bucket; see `cipherstore keys`).
    SseKp,
}

#[derive(clap::Args, Debug)]
struct EncryptArgs {
    /// File to encrypt, or `-` for stdin.
    input: PathBuf,
    /// Where to write the object, or `-` for stdout. Written atomically: it appears only
    /// when complete.
    #[arg(short, long)]
    output: PathBuf,
    /// Protection mode.
    #[arg(long, value_enum, default_value = "aont")]
    mode: ModeArg,
    /// 256-bit key for --mode sse-c: a file holding 32 raw bytes, 64 hex digits or 44
    /// base64 characters. Keep it private (chmod 600).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Unit size: segment (AONT-RS) or chunk (SSE-C) plaintext bytes, 4K to 16M
    /// (suffixes K and M). Range reads decrypt whole units.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    unit_size: Option<u32>,
    /// Bucket whose HSM-wrapped bucket key protects the object (--mode sse-kp).
    #[arg(long, value_name = "NAME")]
    bucket: Option<String>,
    /// Key state directory for --bucket [env: CIPHERSTORE_KEYS_DIR; default: ./data/keys].
    #[arg(long, value_name = "DIR")]
    keys_dir: Option<PathBuf>,
    /// AONT-RS cipher E (default: gcm). `ctr` uses a 16-byte canary as in the paper.
    #[arg(long, value_enum, value_name = "E")]
    aont_cipher: Option<AontCipherArg>,
    /// AONT-RS hash H (default: blake3). `sha256` with `ctr` is the paper's construction.
    #[arg(long, value_enum, value_name = "H")]
    aont_hash: Option<AontHashArg>,
}

/// AONT-RS ciphers.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum AontCipherArg {
    /// AES-256-CTR with a 16-byte canary.
    Ctr,
    /// AES-256-GCM.
    Gcm,
}

/// AONT-RS hashes.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum AontHashArg {
    /// SHA-256.
    Sha256,
    /// BLAKE3.
    Blake3,
}

#[derive(clap::Args, Debug)]
struct DecryptArgs {
    /// Object to decrypt, or `-` for stdin.
    input: PathBuf,
    /// Where to write the plaintext, or `-` for stdout. A file is written atomically.
    #[arg(short, long)]
    output: PathBuf,
    /// The key the object was encrypted with (SSE-C objects).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Bucket of an SSE-KP object: its bucket key is unwrapped by the HSM.
    #[arg(long, value_name = "NAME")]
    bucket: Option<String>,
    /// Key state directory for --bucket [env: CIPHERSTORE_KEYS_DIR; default: ./data/keys].
    #[arg(long, value_name = "DIR")]
    keys_dir: Option<PathBuf>,
    /// Decrypt only bytes START to END inclusive (`START-` for the rest); only the units
    /// holding them are read. Needs a file input.
    #[arg(long, value_name = "START-END", value_parser = parse_range)]
    range: Option<pipeline::ByteRange>,
}

fn parse_size(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1u64 << 20),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size like 65536, 64K or 1M"))?;
    u32::try_from(n.saturating_mul(mult)).map_err(|_| "size too large".to_owned())
}

fn parse_range(s: &str) -> Result<pipeline::ByteRange, String> {
    let bad = || format!("{s:?} is not a range like 0-1023 or 4096-");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end = if b.trim().is_empty() { u64::MAX } else { b.trim().parse().map_err(|_| bad())? };
    if end < start {
        return Err(format!("range {s:?} ends before it starts"));
    }
    Ok(pipeline::ByteRange { start, end })
}

/// Runs a parsed command line.
pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    let backend = Backend::from_env()?;
    if let Some(n) = cli.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot start the worker pool")?;
    }
    match cli.command {
        Command::Encrypt(a) => {
            let options = crypt::EncryptOptions {
                mode: a.mode,
                key_file: a.key_file,
                bucket: a.bucket,
                keys_dir: a.keys_dir,
                unit_size: a.unit_size,
                aont_cipher: a.aont_cipher.map(|c| match c {
                    AontCipherArg::Ctr => CipherId::Aes256Ctr,
                    AontCipherArg::Gcm => CipherId::Aes256Gcm,
                }),
                aont_hash: a.aont_hash.map(|h| match h {
                    AontHashArg::Sha256 => HashId::Sha256,
                    AontHashArg::Blake3 => HashId::Blake3,
                }),
            };
            crypt::encrypt(&a.input, &a.output, &options, backend, cli.quiet)
        }
        Command::Decrypt(a) => {
            let key = match (a.key_file.as_deref(), a.bucket.as_deref()) {
                (Some(_), Some(_)) => anyhow::bail!("give --key-file (SSE-C) or --bucket (SSE-KP), not both"),
                (Some(f), None) => Some(CustomerKey::new(keyfile::read_key(f)?)),
                (None, Some(b)) => Some(keys::bucket_key(a.keys_dir.as_deref(), b)?.0),
                (None, None) => None,
            };
            crypt::decrypt(&a.input, &a.output, key, a.range, backend, cli.quiet)
        }
        Command::Inspect { input } => crypt::inspect(&input),
        Command::Cpu { json } => {
            let report = CpuReport::new(backend);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_cpu(&report);
            }
            Ok(())
        }
        Command::Bench(a) => bench::run(&a, backend),
        Command::Serve(a) => {
            use crate::serve::{self, config};
            let flags = config::Flags {
                config: a.config,
                listen: a.listen,
                http_listen: a.http_listen,
                data_dir: a.data_dir,
                users: a.users,
                admin_token_file: a.admin_token_file,
                kms_listen: a.kms_listen,
                tls_cert: a.tls_cert,
                tls_key: a.tls_key,
            };
            let config = config::ServeConfig::resolve(flags, backend)?;
            serve::init_logging(&config.log, config.log_format)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(serve::serve(config))
        }
        Command::Keys(a) => keys::run(&a),
        Command::Iam(a) => iam::run(&a),
        Command::Sweep(a) => sweep::run(&a),
        Command::Rebuild(a) => rebuild::run(&a, cli.quiet),
        Command::Meta(a) => meta::run(&a, cli.quiet),
    }
}

fn print_cpu(r: &CpuReport) {
    let f = &r.features;
    let yn = |b: bool| if b { "yes" } else { "no" };
    println!("CPU features");
    for (name, v) in [
        ("AES-NI", f.aes_ni),
        ("PCLMULQDQ", f.pclmulqdq),
        ("AVX2", f.avx2),
        ("AVX-512F", f.avx512f),
        ("VAES", f.vaes),
        ("VPCLMULQDQ", f.vpclmulqdq),
        ("SHA-NI", f.sha_ni),
    ] {
        println!("  {name:<12} {}", yn(v));
    }
    println!("\nBackend: {} (set CIPHERSTORE_BACKEND=portable|accelerated)", r.backend);
    println!("AONT-RS default: {}", r.aont_default);
    for p in &r.primitives {
        println!("  {:<34} {}", p.primitive, p.implementation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ranges_parse() {
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_range("5-9").map(|r| (r.start, r.end)), Ok((5, 9)));
        assert_eq!(parse_range("5-").map(|r| r.end), Ok(u64::MAX));
        assert!(parse_range("9-5").is_err());
        assert!(parse_range("x").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
