//! `cipherstore keys …`: the root key lifecycle from the command line. The HSM is found
//! from the environment (module, token or pkcs11: URI, PIN file or variable), never from
//! arguments; key material for import, rotate and restore comes from files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use super::keyfile::read_key;
use engine::CustomerKey;
use keys::{Hsm, HsmConfig, KeyManager, KeyRef, KeyView, ManagerOptions};

const KEYS_EXAMPLES: &str = "\
Examples:
  eval \"$(hsm/create-token ./data/hsm dev)\"      # a SoftHSM2 token in its own directory
  cipherstore keys create prod-root
  cipherstore keys bind-bucket photos prod-root
  cipherstore encrypt x.bin -o x.cso --mode sse-kp --bucket photos
  cipherstore keys rotate prod-root                # bucket keys rewrapped, data untouched
  cipherstore keys delete prod-root --force        # crypto-shredding
  cipherstore keys audit
  cipherstore keys --config gateway.toml disable prod-root   # every gateway of a cluster
  cipherstore keys --service https://kms:9443 --apikey-file kp.key --ca ca.pem list  # a key service's API";

/// Where key state lives and how to name this instance.
#[derive(clap::Args, Debug)]
#[command(after_help = KEYS_EXAMPLES)]
pub(super) struct KeysArgs {
    /// The gateways' configuration file (`serve --config`): use the key state, HSM and
    /// instance they use — with `[store] kind = "cluster"`, the state shared in etcd.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Directory for key state and the audit log [env: CIPHERSTORE_KEYS_DIR; default: ./data/keys].
    #[arg(long, value_name = "DIR", global = true)]
    keys_dir: Option<PathBuf>,
    /// Instance name used in key CRNs [env: CIPHERSTORE_INSTANCE; default: local].
    #[arg(long, value_name = "NAME", global = true)]
    instance: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// Work against a key service's API (`serve --kms-listen`) instead of a local HSM
    /// [env: CIPHERSTORE_KEY_SERVICE_URL]; needs --apikey-file and --ca.
    #[arg(long, value_name = "URL", global = true)]
    service: Option<String>,
    /// With --service: the file holding an API key (`cipherstore iam apikey create` on the
    /// service) [env: CIPHERSTORE_KEY_SERVICE_APIKEY_FILE].
    #[arg(long, value_name = "FILE", global = true)]
    apikey_file: Option<PathBuf>,
    /// With --service: the PEM file the service's certificate chains to
    /// [env: CIPHERSTORE_KEY_SERVICE_CA].
    #[arg(long, value_name = "FILE", global = true)]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand, Debug)]
pub(super) enum KeysCommand {
    /// Create a root key inside the HSM (AES-256, non-extractable, used only to wrap bucket keys, by the method the token offers: see `keys show`).
    Create {
        /// A unique name.
        name: String,
    },
    /// Import your own 256-bit key material as a root key (its key check value is kept).
    Import {
        /// A unique name.
        name: String,
        /// File with the material: 32 raw bytes, 64 hex digits or base64.
        #[arg(long, value_name = "FILE")]
        material_file: PathBuf,
    },
    /// List root keys.
    List,
    /// Show one root key (by CRN, id or name).
    Show {
        /// CRN, id or name.
        #[arg(value_parser = key_ref)]
        key: KeyRef,
    },
    /// Rotate: new key version; bucket keys are rewrapped, no data is rewritten.
    Rotate {
        /// CRN, id or name.
        #[arg(value_parser = key_ref)]
        key: KeyRef,
        /// New material (imported keys only).
        #[arg(long, value_name = "FILE")]
        material_file: Option<PathBuf>,
    },
    /// Suspend a key: wrap and unwrap are refused until it is enabled. Refused, and
    /// audited, for keys bound to a bucket with S3 Object Lock.
    Disable {
        /// CRN, id or name.
        #[arg(value_parser = key_ref)]
        key: KeyRef,
    },
    /// Re-enable a suspended key.
    Enable {
        /// CRN, id or name.
        #[arg(value_parser = key_ref)]
        key: KeyRef,
    },
    /// Delete a key (crypto-shredding): everything under it becomes unreadable. Refused,
    /// and audited, for keys bound to a bucket with S3 Object Lock.
    Delete {
        /// CRN, id or name.
        #[arg(value_parser = key_ref)]
        key: KeyRef,
        /// Delete even if buckets still use it (never a key of a bucket with S3 Object
        /// Lock: those can be neither deleted nor disabled while the bucket exists).
        #[arg(long)]
        force: bool,
    },
    /// Restore a deleted key within 30 days: one deleted through the key service (its
    /// material kept until purged) as it was; an imported key deleted here by importing
    /// the same material.
    Restore {
        /// CRN, id or name.
        #[arg(value_parser = key_ref)]
        key: KeyRef,
        /// The original material (imported keys whose material was destroyed).
        #[arg(long, value_name = "FILE")]
        material_file: Option<PathBuf>,
    },
    /// Print the instance id: what key service clients send as `Bluemix-Instance`, and
    /// the `<instance>` in key CRNs.
    Instance,
    /// Print the audit trail.
    Audit,
    /// Give a bucket a bucket key wrapped by a root key (the S3 service does this on
    /// CreateBucket).
    BindBucket {
        /// Bucket name.
        bucket: String,
        /// CRN, id or name of the root key.
        #[arg(value_parser = key_ref)]
        key: KeyRef,
    },
    /// Check that a bucket's key unwraps, and show its root key and the HSM counters.
    CheckBucket {
        /// Bucket name.
        bucket: String,
    },
}

/// Opens the key manager: keys directory and instance from the arguments or the
/// environment, the HSM from the environment.
pub(super) fn open_manager(keys_dir: Option<&Path>, instance: Option<&str>) -> anyhow::Result<KeyManager> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let dir = keys_dir
        .map(Path::to_path_buf)
        .or_else(|| env("CIPHERSTORE_KEYS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| "data/keys".into());
    let mut options = ManagerOptions::new(&dir);
    if let Some(i) = instance.map(str::to_owned).or_else(|| env("CIPHERSTORE_INSTANCE")) {
        options.instance = i;
    }
    if let Some(ttl) = env("CIPHERSTORE_KEY_CACHE_TTL") {
        let secs: u64 = ttl
            .parse()
            .with_context(|| format!("CIPHERSTORE_KEY_CACHE_TTL={ttl:?} is not a number of seconds"))?;
        options.cache_ttl = std::time::Duration::from_secs(secs);
    }
    let config = HsmConfig::from_env()?;
    let hsm = Hsm::open(&config)?;
    Ok(KeyManager::open(hsm, &options)?)
}

/// A root key as named on the command line: an id or CRN, else a name.
fn key_ref(text: &str) -> Result<KeyRef, std::convert::Infallible> {
    Ok(KeyRef::parse(text))
}

/// The bucket key of `bucket` under the root key it was first bound to, bound to the
/// bucket's name, and that root key's CRN (SSE-KP).
pub(super) fn bucket_key(keys_dir: Option<&Path>, bucket: &str) -> anyhow::Result<(CustomerKey, String)> {
    let m = open_manager(keys_dir, None)?;
    let root = m.bucket_root(bucket).with_context(|| format!("bucket {bucket}"))?;
    let key = m.bucket_key(bucket, &KeyRef::parse(&root)).with_context(|| format!("bucket {bucket}"))?;
    Ok((CustomerKey { key, context: bucket.as_bytes().to_vec() }, root))
}

/// A key manager, and the runtime its metadata client runs on when the state is shared.
struct Opened {
    manager: KeyManager,
    _runtime: Option<tokio::runtime::Runtime>,
}

fn manager(args: &KeysArgs) -> anyhow::Result<Opened> {
    let Some(file) = &args.config else {
        let manager = open_manager(args.keys_dir.as_deref(), args.instance.as_deref())?;
        return Ok(Opened { manager, _runtime: None });
    };
    use crate::serve;
    let mut config = super::gateway::settings(file)?;
    if let Some(dir) = &args.keys_dir {
        config.keys_dir = Some(dir.clone());
    }
    if let Some(i) = &args.instance {
        config.instance = Some(i.clone());
    }
    anyhow::ensure!(
        config.hsm.is_configured(),
        "no HSM: set CIPHERSTORE_HSM_TOKEN (or CIPHERSTORE_HSM_URI) and a PIN, or [hsm] in {}",
        file.display()
    );
    let runtime = super::gateway::runtime()?;
    let manager = runtime.block_on(async {
        let kv = serve::connect_kv(&config).await?.map(|m| m.control);
        serve::open_keys(&config, kv).await
    })?;
    let manager = manager.context("no HSM configured")?;
    Ok(Opened { manager, _runtime: Some(runtime) })
}

fn print_view(v: &KeyView, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    println!("{}", v.crn);
    println!("  name      {}", v.name);
    println!("  state     {:?}", v.state);
    println!("  origin    {:?}", v.origin);
    println!("  version   {} of {}", v.version, v.versions.len());
    println!("  wrapping  {} (how this version wraps bucket keys in the HSM)", v.wrap_method);
    println!("  created   {}", v.created);
    if let Some(d) = &v.destroyed_at {
        println!("  deleted   {d}");
    }
    if let Some(kcv) = v.versions.last().and_then(|x| x.kcv.as_ref()) {
        println!("  kcv       {kcv}");
    }
    println!("  buckets   {}", if v.buckets.is_empty() { "-".to_owned() } else { v.buckets.join(", ") });
    if !v.retained.is_empty() {
        println!("  retained  {} (Object Lock: no delete, no disable)", v.retained.join(", "));
    }
    if !v.aliases.is_empty() {
        println!("  aliases   {}", v.aliases.join(", "));
    }
    if let Some(d) = &v.description {
        println!("  about     {d}");
    }
    if v.restorable {
        println!("  restore   possible without material until purged (its material is still in the HSM)");
    }
    Ok(())
}

/// The instance id: `--instance`, `CIPHERSTORE_INSTANCE`, the configuration's, or `local`.
fn instance(args: &KeysArgs) -> anyhow::Result<String> {
    let from_config = match &args.config {
        Some(file) => super::gateway::settings(file)?.instance,
        None => None,
    };
    let env = std::env::var("CIPHERSTORE_INSTANCE").ok().filter(|v| !v.is_empty());
    Ok(args
        .instance
        .clone()
        .or(env)
        .or(from_config)
        .unwrap_or_else(|| ManagerOptions::new(Path::new(".")).instance))
}

/// The key service to work against: the flags, else the environment, else the
/// configuration's `[keys.service]`; `None` to work on the local HSM.
fn service(args: &KeysArgs) -> anyhow::Result<Option<super::keys_remote::Service>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let from_config = match &args.config {
        Some(file) => super::gateway::settings(file)?.key_service,
        None => None,
    };
    let url = args.service.clone().or_else(|| env("CIPHERSTORE_KEY_SERVICE_URL"));
    let (url, apikey_file, ca) = match (url, from_config) {
        (Some(url), _) => (
            url,
            args.apikey_file
                .clone()
                .or_else(|| env("CIPHERSTORE_KEY_SERVICE_APIKEY_FILE").map(PathBuf::from)),
            args.ca.clone().or_else(|| env("CIPHERSTORE_KEY_SERVICE_CA").map(PathBuf::from)),
        ),
        (None, Some(s)) => (s.url, Some(s.apikey_file), Some(s.ca)),
        (None, None) => return Ok(None),
    };
    let apikey_file =
        apikey_file.context("--service needs --apikey-file FILE (an API key of the service)")?;
    let ca = ca.context("--service needs --ca FILE (what the service's certificate chains to)")?;
    Ok(Some(super::keys_remote::Service { url, apikey_file, ca, instance: instance(args)? }))
}

/// Runs a `keys` subcommand.
pub(super) fn run(args: &KeysArgs) -> anyhow::Result<()> {
    if !matches!(args.command, KeysCommand::Instance)
        && let Some(s) = service(args)?
    {
        return super::keys_remote::run(&s, &args.command, args.json);
    }
    if let KeysCommand::Instance = args.command {
        let i = instance(args)?;
        if args.json {
            println!("{}", serde_json::json!({"instance": i}));
        } else {
            println!("{i}");
        }
        return Ok(());
    }
    let opened = manager(args)?;
    // The audit trail names who ran the command (`cli:login@host`).
    let by = format!("cli:{}", super::iam::initiator());
    keys::audit::as_initiator(&by, || command(args, &opened.manager))
}

fn command(args: &KeysArgs, m: &KeyManager) -> anyhow::Result<()> {
    let json = args.json;
    match &args.command {
        KeysCommand::Create { name } => print_view(&m.create(name)?, json),
        KeysCommand::Import { name, material_file } => {
            print_view(&m.import(name, &read_key(material_file)?)?, json)
        }
        KeysCommand::List => {
            let keys = m.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                for k in &keys {
                    println!(
                        "{:<10} v{:<3} {:<24} {}",
                        format!("{:?}", k.state).to_lowercase(),
                        k.version,
                        k.name,
                        k.crn
                    );
                }
            }
            Ok(())
        }
        KeysCommand::Show { key } => print_view(&m.show(key)?, json),
        KeysCommand::Rotate { key, material_file } => {
            let material = material_file.as_deref().map(read_key).transpose()?;
            print_view(&m.rotate(key, material.as_ref())?, json)
        }
        KeysCommand::Disable { key } => print_view(&m.disable(key)?, json),
        KeysCommand::Enable { key } => print_view(&m.enable(key)?, json),
        KeysCommand::Delete { key, force } => print_view(&m.delete(key, *force)?, json),
        KeysCommand::Restore { key, material_file } => {
            let material = material_file.as_deref().map(read_key).transpose()?;
            print_view(&m.restore(key, material.as_ref())?, json)
        }
        // Answered before the HSM is opened.
        KeysCommand::Instance => Ok(()),
        KeysCommand::Audit => {
            for e in m.audit_log().read_all()? {
                println!("{}", serde_json::to_string(&e)?);
            }
            Ok(())
        }
        KeysCommand::BindBucket { bucket, key } => {
            let b = m.create_bucket_key(bucket, key)?;
            println!("bucket {} bound to {} (root version {})", b.bucket, m.show(key)?.crn, b.version);
            Ok(())
        }
        KeysCommand::CheckBucket { bucket } => {
            let root = m.bucket_root(bucket).with_context(|| format!("bucket {bucket}"))?;
            m.bucket_key(bucket, &KeyRef::parse(&root)).with_context(|| format!("bucket {bucket}"))?;
            let metrics = m.metrics();
            if json {
                println!("{}", serde_json::json!({"bucket": bucket, "root": root, "metrics": metrics}));
            } else {
                println!("bucket {bucket}: key unwraps under {root}");
                println!(
                    "hsm unwraps {}, cache hits {}, misses {}",
                    metrics.hsm_unwraps, metrics.cache_hits, metrics.cache_misses
                );
            }
            Ok(())
        }
    }
}
