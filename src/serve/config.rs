//! What `cipherstore serve` runs with, from three layers, each overriding the one
//! before: built-in defaults, a TOML file (`--config`), `CIPHERSTORE_*` environment
//! variables, then command-line flags. Secrets (the HSM PIN) never come from the file or
//! flags: only from a PIN file or `CIPHERSTORE_HSM_PIN`.
//!
//! ```toml
//! listen = "0.0.0.0:9000"          # HTTPS
//! http_listen = "127.0.0.1:9080"   # optional plain HTTP (SSE-C refused there)
//! data_dir = "/var/lib/cipherstore"
//! users = "/etc/cipherstore/users"
//! admin_token_file = "/etc/cipherstore/admin.token"  # turns the admin HTTP API on
//! kms_listen = "0.0.0.0:9443"      # the key service (Key Protect v2 API), HTTPS
//! log = "info"                     # tracing filter; log_format = "text" or "json"
//!
//! [tls]
//! cert = "/etc/cipherstore/cert.pem"
//! key = "/etc/cipherstore/key.pem"
//!
//! [hsm]
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token = "cipherstore"            # or uri = "pkcs11:token=…"
//! pin_file = "/etc/cipherstore/hsm.pin"
//! wrap = "auto"                    # or aes-key-wrap-pad, aes-key-wrap, aes-gcm, aes-cbc-hmac-sha256
//! # keygen_command = ["hsm/tpm2", "add-key", "/var/lib/tpm", "{label}", "{id}", "{kind}"]
//!
//! [keys]
//! dir = "/var/lib/cipherstore/keys"
//! cache_ttl_secs = 60
//! instance = "prod-eu"
//!
//! [keys.service]                   # a remote key service instead of [hsm] (docs/KEYS.md)
//! url = "https://kms.internal:9443"
//! apikey_file = "/etc/cipherstore/kms.apikey"
//! ca = "/etc/cipherstore/kms-ca.pem"
//!
//! [limits]
//! max_object_size = 5368709120     # bytes, single PUT and each part
//! header_timeout_secs = 30         # TLS handshake, then each request's headers
//! body_idle_timeout_secs = 60      # longest silence inside a request body
//! stream_buffers_mib = 64          # memory all uploads' and downloads' batches may hold at once (4 to 4096)
//!
//! [store]
//! kind = "cluster"                 # "fs" (default): DATA/store; "cluster": docs/SCALE-OUT.md
//! sweep_interval_secs = 3600       # cluster: sweep orphan blobs this often (0: never)
//! sweep_grace_secs = 3600          # cluster: leave blobs younger than this (at least 600)
//! inline_max_bytes = 8192          # cluster: smaller objects live in their etcd record
//! [store.backend]                  # blobs, on any S3-compatible service
//! endpoint = "http://127.0.0.1:7480"
//! bucket = "cipherstore-blobs"
//! region = "us-east-1"
//! credentials_file = "/etc/cipherstore/backend"   # one line: ACCESS_KEY SECRET_KEY
//! ca_file = "/etc/cipherstore/backend-ca.pem"     # optional
//! sign_payload = false             # true: the backend checks each body's SHA-256
//! timeout_secs = 60                # longest wait for one request
//! [store.etcd]                     # records
//! endpoints = ["http://127.0.0.1:2379", "http://127.0.0.1:22379", "http://127.0.0.1:32379"]
//! namespace = "/cipherstore/prod/"
//! ca_file = "/etc/cipherstore/etcd-ca.pem"       # with https:// endpoints
//! cert_file = "/etc/cipherstore/etcd-client.pem"  # if etcd asks for client certificates
//! key_file = "/etc/cipherstore/etcd-client.key"
//! [store.dispersal]                # bytes as k-of-n slices, records in the store above
//! width = 5                        # n: one slice per target; must equal the targets listed
//! threshold = 3                    # k: any k slices rebuild an object; k - 1 reveal nothing
//! write_threshold = 4              # w: a write succeeds once w slices are durable (k <= w <= n)
//! targets = ["/srv/d0/cs", "/srv/d1/cs", "/srv/d2/cs", "/srv/d3/cs", "/srv/d4/cs"]
//! # A target may also be a bucket on an S3 service, written like [store.backend] above:
//! # { endpoint = "https://s3-b.example.com", bucket = "slices", credentials_file = "/etc/cs/b",
//! #   ca_file = "/etc/cs/b-ca.pem", timeout_secs = 30 }   (timeout_secs: per request)
//! scrub_interval_secs = 86400      # check and rebuild every slice this often (0: never)
//! scrub_rate_mib = 32              # a scrub reads at most this many MiB/s
//!
//! [lifecycle]                      # the worker that applies buckets' lifecycle rules
//! interval_secs = 3600             # a pass this often (at least every day_seconds / 2)
//! actions_per_sec = 200            # store changes a pass makes per second at most
//! day_seconds = 86400              # TESTS ONLY: a lifecycle day of N seconds (also
//!                                  # CIPHERSTORE_LIFECYCLE_DAY_SECONDS); never shorten it in production
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use keys::config::HsmSettings;
use store::dispersal::targets::TargetConfig;

/// Largest object in one PUT, and largest part (S3's limit).
pub(crate) const DEFAULT_MAX_OBJECT: u64 = 5 << 30;

/// The configuration file, every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    users: Option<PathBuf>,
    admin_token_file: Option<PathBuf>,
    kms_listen: Option<SocketAddr>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    hsm: HsmSettings,
    #[serde(default)]
    keys: KeysSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    lifecycle: LifecycleSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleSection {
    interval_secs: Option<u64>,
    actions_per_sec: Option<u32>,
    day_seconds: Option<u64>,
}

/// Default time between lifecycle passes: an hour.
pub(crate) const DEFAULT_LIFECYCLE_SECS: u64 = 3600;
/// Default most store changes a lifecycle pass makes per second.
pub(crate) const DEFAULT_LIFECYCLE_RATE: u32 = 200;

/// How the lifecycle worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LifecycleSettings {
    /// Between passes.
    pub interval: std::time::Duration,
    /// Store changes per second at most.
    pub actions_per_sec: u32,
    /// How long a lifecycle day lasts (shortened only for tests).
    pub day: object::Day,
}

impl LifecycleSettings {
    /// How long the cluster's lifecycle lease outlives a holder that stopped renewing it:
    /// three intervals, from 5 s to a minute (the same on every gateway of one
    /// configuration).
    pub(crate) fn lease_ttl(&self) -> std::time::Duration {
        (self.interval * 3).clamp(std::time::Duration::from_secs(5), std::time::Duration::from_secs(60))
    }
}

impl LifecycleSection {
    fn resolve(self, day_env: Option<u64>) -> anyhow::Result<LifecycleSettings> {
        let day = day_env.or(self.day_seconds).unwrap_or(object::lifecycle::REAL_DAY);
        anyhow::ensure!(
            (2..=object::lifecycle::REAL_DAY).contains(&day),
            "lifecycle.day_seconds (CIPHERSTORE_LIFECYCLE_DAY_SECONDS) must be 2 to 86400"
        );
        let mut interval = self.interval_secs.unwrap_or(DEFAULT_LIFECYCLE_SECS);
        anyhow::ensure!((1..=86_400).contains(&interval), "lifecycle.interval_secs must be 1 to 86400");
        interval = interval.min((day / 2).max(1));
        let actions_per_sec = self.actions_per_sec.unwrap_or(DEFAULT_LIFECYCLE_RATE);
        anyhow::ensure!(
            (1..=100_000).contains(&actions_per_sec),
            "lifecycle.actions_per_sec must be 1 to 100000"
        );
        Ok(LifecycleSettings {
            interval: std::time::Duration::from_secs(interval),
            actions_per_sec,
            day: object::Day::of(day),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    kind: Option<StoreKind>,
    sweep_interval_secs: Option<u64>,
    sweep_grace_secs: Option<u64>,
    inline_max_bytes: Option<usize>,
    backend: Option<BackendSection>,
    etcd: Option<EtcdSection>,
    postgres: Option<PostgresSection>,
    dispersal: Option<DispersalSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DispersalSection {
    width: usize,
    threshold: usize,
    write_threshold: Option<usize>,
    targets: Vec<TargetSection>,
    scrub_interval_secs: Option<u64>,
    scrub_rate_mib: Option<u64>,
}

/// One dispersal target: a directory, or a bucket on an S3 service.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TargetSection {
    Dir(PathBuf),
    S3(BackendSection),
}

/// Retries of a dispersal S3 target's request: few and quick, as a slow target is read
/// around and a failed slice write is recorded missing, where the cluster store's single
/// backend must be waited for.
const TARGET_RETRIES: usize = 1;
/// Default longest wait for one request of a dispersal S3 target.
const DEFAULT_TARGET_TIMEOUT_SECS: u64 = 30;

impl DispersalSection {
    fn resolve(self) -> anyhow::Result<store::dispersal::DispersalConfig> {
        let (n, k) = (self.width, self.threshold);
        anyhow::ensure!(
            self.targets.len() == n,
            "store.dispersal.width is {n} but {} targets are listed: one target per slice",
            self.targets.len()
        );
        anyhow::ensure!(
            1 <= k && k < n && n <= store::dispersal::code::MAX_WIDTH,
            "store.dispersal needs 1 <= threshold < width <= {}; got threshold {k}, width {n}",
            store::dispersal::code::MAX_WIDTH
        );
        let w = self.write_threshold.unwrap_or_else(|| default_write_threshold(k, n));
        anyhow::ensure!(
            k <= w && w <= n,
            "store.dispersal.write_threshold must be between threshold ({k}) and width ({n}); got {w}"
        );
        let mut seen = std::collections::HashSet::new();
        let mut targets = Vec::with_capacity(n);
        for t in self.targets {
            let target = match t {
                TargetSection::Dir(p) => {
                    anyhow::ensure!(
                        p.is_absolute(),
                        "store.dispersal.targets must be absolute paths: {}",
                        p.display()
                    );
                    TargetConfig::Dir(p)
                }
                TargetSection::S3(b) => {
                    let secs = b.timeout_secs.unwrap_or(DEFAULT_TARGET_TIMEOUT_SECS);
                    anyhow::ensure!(secs >= 1, "store.dispersal.targets: timeout_secs must be at least 1");
                    let mut c = b.resolve()?;
                    c.max_retries = TARGET_RETRIES;
                    c.retry_timeout = std::time::Duration::from_secs(2);
                    c.request_timeout = std::time::Duration::from_secs(secs);
                    TargetConfig::S3(Box::new(c))
                }
            };
            anyhow::ensure!(seen.insert(target.to_string()), "store.dispersal.targets lists {target} twice");
            targets.push(target);
        }
        let scrub_interval = match self.scrub_interval_secs.unwrap_or(DEFAULT_SCRUB_SECS) {
            0 => None,
            secs => Some(std::time::Duration::from_secs(secs)),
        };
        let rate = self.scrub_rate_mib.unwrap_or(DEFAULT_SCRUB_MIB);
        anyhow::ensure!(rate >= 1, "store.dispersal.scrub_rate_mib must be at least 1");
        Ok(store::dispersal::DispersalConfig {
            threshold: k,
            write_threshold: w,
            targets,
            scrub_interval,
            scrub_rate: rate << 20,
        })
    }
}

/// Default time between background scrubs of dispersed slices: a day.
pub(crate) const DEFAULT_SCRUB_SECS: u64 = 86_400;
/// Default read rate of a background scrub, MiB/s.
pub(crate) const DEFAULT_SCRUB_MIB: u64 = 32;

/// The write threshold when none is given: half-way from `k` to `n`, rounded up, so a
/// write survives `n - w` targets down while each object keeps `w - k` slices of margin.
pub(crate) fn default_write_threshold(k: usize, n: usize) -> usize {
    k + (n - k).div_ceil(2)
}

/// Which store `serve` keeps objects in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StoreKind {
    /// The embedded filesystem store under the data directory.
    #[default]
    Fs,
    /// Blobs on an S3-compatible cluster, records in etcd.
    Cluster,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendSection {
    endpoint: String,
    bucket: String,
    region: Option<String>,
    credentials_file: PathBuf,
    ca_file: Option<PathBuf>,
    sign_payload: Option<bool>,
    timeout_secs: Option<u64>,
}

impl BackendSection {
    fn resolve(self) -> anyhow::Result<cluster::blobs::BlobConfig> {
        let (ak, sk) = cluster::blobs::BlobConfig::read_credentials(&self.credentials_file)?;
        let mut c = cluster::blobs::BlobConfig::new(&self.endpoint, &self.bucket, &ak, &sk);
        if let Some(r) = self.region {
            c.region = r;
        }
        c.ca_file = self.ca_file;
        c.sign_payload = self.sign_payload.unwrap_or(false);
        if let Some(secs) = self.timeout_secs {
            anyhow::ensure!(secs >= 1, "timeout_secs must be at least 1");
            c.request_timeout = std::time::Duration::from_secs(secs);
        }
        Ok(c)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EtcdSection {
    endpoints: Vec<String>,
    namespace: Option<String>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

/// `[store.postgres]`: the records on PostgreSQL instead of etcd (docs/SCALE-OUT.md §9).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresSection {
    url: String,
    schema: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    pool_size: Option<usize>,
}

impl PostgresSection {
    fn resolve(self) -> anyhow::Result<cluster::postgres::PgConfig> {
        anyhow::ensure!(
            self.url.starts_with("postgresql://") || self.url.starts_with("postgres://"),
            "store.postgres.url must be a postgresql:// URL (hosts {})",
            cluster::postgres::hosts(&self.url)
        );
        let mut c = cluster::postgres::PgConfig::new(self.url);
        if let Some(schema) = self.schema {
            c.schema = schema;
        }
        if let Some(file) = self.password_file {
            let text =
                zeroize::Zeroizing::new(std::fs::read_to_string(&file).with_context(|| {
                    format!("cannot read store.postgres.password_file {}", file.display())
                })?);
            c.password = Some(zeroize::Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned()));
        }
        c.ca_file = self.ca_file;
        if let Some(n) = self.pool_size {
            anyhow::ensure!((1..=1000).contains(&n), "store.postgres.pool_size must be 1 to 1000");
            c.pool_size = n;
        }
        Ok(c)
    }
}

/// Where `serve` keeps objects, resolved.
#[derive(Debug, Clone)]
pub(crate) enum StoreSettings {
    /// `DATA/store`.
    Fs,
    /// The cluster store.
    Cluster {
        /// The blob service.
        backend: Box<cluster::blobs::BlobConfig>,
        /// The etcd cluster: key state, identities, leases, and the records unless
        /// `postgres` is set.
        etcd: Box<cluster::etcd::EtcdConfig>,
        /// PostgreSQL for the records (object, bucket, upload and part entries).
        postgres: Option<Box<cluster::postgres::PgConfig>>,
        /// The background sweep.
        sweep: SweepSettings,
        /// Objects of at most this many stored bytes are kept in their records.
        inline_max: usize,
    },
}

/// When a gateway sweeps blobs no record names (docs/SCALE-OUT.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SweepSettings {
    /// Between sweeps; `None`: never in the background (`cipherstore sweep` only).
    pub interval: Option<std::time::Duration>,
    /// Blobs younger than this are left alone: they may belong to writes in flight.
    pub grace: std::time::Duration,
}

/// Default time between background sweeps, and default grace: an hour each.
pub(crate) const DEFAULT_SWEEP_SECS: u64 = 3600;

impl StoreSection {
    fn resolve(self) -> anyhow::Result<StoreSettings> {
        match self.kind.unwrap_or_default() {
            StoreKind::Fs => {
                anyhow::ensure!(
                    self.backend.is_none()
                        && self.etcd.is_none()
                        && self.postgres.is_none()
                        && self.inline_max_bytes.is_none()
                        && self.sweep_interval_secs.is_none()
                        && self.sweep_grace_secs.is_none(),
                    "[store.backend], [store.etcd], [store.postgres] and the store.sweep_* settings need store.kind = \"cluster\""
                );
                Ok(StoreSettings::Fs)
            }
            StoreKind::Cluster => {
                let (Some(b), Some(e)) = (self.backend, self.etcd) else {
                    anyhow::bail!("store.kind = \"cluster\" needs [store.backend] and [store.etcd]");
                };
                anyhow::ensure!(!e.endpoints.is_empty(), "store.etcd.endpoints lists no member");
                let backend = b.resolve()?;
                let https = e.endpoints.iter().any(|u| u.starts_with("https://"));
                anyhow::ensure!(
                    e.endpoints.iter().all(|u| u.starts_with("https://") == https),
                    "store.etcd.endpoints mixes http:// and https://"
                );
                let client = match (e.cert_file, e.key_file) {
                    (Some(c), Some(k)) => Some((c, k)),
                    (None, None) => None,
                    _ => anyhow::bail!("store.etcd.cert_file and key_file go together"),
                };
                let tls = match (https, e.ca_file) {
                    (true, Some(ca_file)) => Some(cluster::etcd::EtcdTls { ca_file, client }),
                    (true, None) => anyhow::bail!("https:// etcd endpoints need store.etcd.ca_file"),
                    (false, None) if client.is_none() => None,
                    (false, _) => {
                        anyhow::bail!("store.etcd.ca_file, cert_file and key_file need https:// endpoints")
                    }
                };
                let mut etcd = cluster::etcd::EtcdConfig::new(e.endpoints);
                etcd.tls = tls;
                if let Some(ns) = e.namespace {
                    anyhow::ensure!(ns.ends_with('/'), "store.etcd.namespace must end with '/'");
                    etcd.namespace = ns.into_bytes();
                }
                let grace = self.sweep_grace_secs.unwrap_or(DEFAULT_SWEEP_SECS);
                anyhow::ensure!(
                    grace >= 600,
                    "store.sweep_grace_secs must be at least 600: younger blobs may belong to writes in flight"
                );
                let interval = match self.sweep_interval_secs.unwrap_or(DEFAULT_SWEEP_SECS) {
                    0 => None,
                    secs => Some(std::time::Duration::from_secs(secs)),
                };
                let sweep = SweepSettings { interval, grace: std::time::Duration::from_secs(grace) };
                let inline_max = self.inline_max_bytes.unwrap_or(store::cluster::DEFAULT_INLINE_MAX);
                anyhow::ensure!(
                    inline_max <= store::cluster::MAX_INLINE,
                    "store.inline_max_bytes must be at most {}: etcd requests stay small",
                    store::cluster::MAX_INLINE
                );
                let postgres = self.postgres.map(PostgresSection::resolve).transpose()?.map(Box::new);
                Ok(StoreSettings::Cluster {
                    backend: Box::new(backend),
                    etcd: Box::new(etcd),
                    postgres,
                    sweep,
                    inline_max,
                })
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysSection {
    dir: Option<PathBuf>,
    cache_ttl_secs: Option<u64>,
    instance: Option<String>,
    service: Option<KeyServiceSection>,
}

/// `[keys.service]`: a remote key service instead of a local HSM.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyServiceSection {
    url: Option<String>,
    apikey_file: Option<PathBuf>,
    ca: Option<PathBuf>,
}

/// A remote key service a gateway uses instead of a local HSM (`[keys.service]`).
#[derive(Debug, Clone)]
pub(crate) struct KeyService {
    /// `https://HOST:PORT`.
    pub url: String,
    /// File holding the API key.
    pub apikey_file: PathBuf,
    /// PEM file the service's certificate chains to.
    pub ca: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_object_size: Option<u64>,
    header_timeout_secs: Option<u64>,
    body_idle_timeout_secs: Option<u64>,
    stream_buffers_mib: Option<u64>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Command-line flags of `serve` (each overrides the environment and the file).
#[derive(Debug, Default, Clone)]
pub(crate) struct Flags {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--http-listen`.
    pub http_listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--users`.
    pub users: Option<PathBuf>,
    /// `--admin-token-file`.
    pub admin_token_file: Option<PathBuf>,
    /// `--kms-listen`.
    pub kms_listen: Option<SocketAddr>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
}

/// Everything `serve` runs with, resolved.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    /// HTTPS address.
    pub listen: SocketAddr,
    /// Optional plain-HTTP address.
    pub http_listen: Option<SocketAddr>,
    /// Data directory (store, TLS files, users, keys state).
    pub data_dir: PathBuf,
    /// Users file; default `DATA/users`, created with one random user.
    pub users: Option<PathBuf>,
    /// The admin HTTP API's bearer token, in a file; the API is off without one.
    pub admin_token_file: Option<PathBuf>,
    /// The key service's HTTPS address; off without one.
    pub kms_listen: Option<SocketAddr>,
    /// How long after deletion the key service lets a key be purged (4 hours;
    /// `CIPHERSTORE_KMS_PURGE_WAIT_SECONDS` shortens it, for tests only).
    pub kms_purge_wait: std::time::Duration,
    /// A month, as rotation policies count them (30 days; `CIPHERSTORE_KMS_MONTH_SECONDS`
    /// shortens it, for tests only).
    pub kms_month: std::time::Duration,
    /// TLS certificate and key; default a self-signed pair in `DATA/tls`.
    pub tls: Option<super::tls::TlsFiles>,
    /// Where the HSM is; SSE-KP is off if no token is configured.
    pub hsm: HsmSettings,
    /// Keys state directory; default `DATA/keys`.
    pub keys_dir: Option<PathBuf>,
    /// Bucket key cache lifetime.
    pub key_cache_ttl: Option<std::time::Duration>,
    /// Instance name in CRNs.
    pub instance: Option<String>,
    /// A remote key service instead of a local HSM.
    pub key_service: Option<KeyService>,
    /// Largest single PUT and part.
    pub max_object_size: u64,
    /// Longest TLS handshake, and longest wait for a request's headers (a connection
    /// that sends nothing is closed after it).
    pub header_timeout: std::time::Duration,
    /// Longest silence inside a request body (RequestTimeout after it).
    pub body_idle_timeout: std::time::Duration,
    /// Bytes the batches of all uploads being sealed may hold at once (back-pressure
    /// beyond it; `pipeline::budget`).
    pub stream_buffers: usize,
    /// Tracing filter (`info`, `cipherstore=debug`, …).
    pub log: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Primitive backend.
    pub backend: engine::Backend,
    /// Where objects are kept.
    pub store: StoreSettings,
    /// Bytes dispersed over targets, records kept in `store` (`[store.dispersal]`).
    pub dispersal: Option<store::dispersal::DispersalConfig>,
    /// The lifecycle worker (`[lifecycle]`).
    pub lifecycle: LifecycleSettings,
}

impl FileConfig {
    /// Reads and checks a TOML file; unknown keys are errors, so typos do not pass silently.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses TOML text.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_parsed<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    env(name).map(|v| v.parse::<T>().map_err(|e| anyhow::anyhow!("{name}={v:?}: {e}"))).transpose()
}

impl ServeConfig {
    /// Resolves defaults < file < environment < flags.
    pub(crate) fn resolve(flags: Flags, backend: engine::Backend) -> anyhow::Result<Self> {
        let mut file = match &flags.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let listen = flags
            .listen
            .or(env_parsed("CIPHERSTORE_LISTEN")?)
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000)));
        let http_listen = flags.http_listen.or(env_parsed("CIPHERSTORE_HTTP_LISTEN")?).or(file.http_listen);
        let data_dir = flags
            .data_dir
            .or(env("CIPHERSTORE_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let users = flags.users.or(env("CIPHERSTORE_USERS").map(PathBuf::from)).or(file.users);
        let admin_token_file = flags
            .admin_token_file
            .or(env("CIPHERSTORE_ADMIN_TOKEN_FILE").map(PathBuf::from))
            .or(file.admin_token_file);
        let kms_listen = flags.kms_listen.or(env_parsed("CIPHERSTORE_KMS_LISTEN")?).or(file.kms_listen);
        let kms_purge_wait = env_parsed::<u64>("CIPHERSTORE_KMS_PURGE_WAIT_SECONDS")?
            .map_or(kms::PURGE_WAIT, std::time::Duration::from_secs);
        let kms_month = env_parsed::<u64>("CIPHERSTORE_KMS_MONTH_SECONDS")?
            .filter(|s| *s > 0)
            .map_or(super::rotation::MONTH, std::time::Duration::from_secs);
        let cert = flags.tls_cert.or(env("CIPHERSTORE_TLS_CERT").map(PathBuf::from)).or(file.tls.cert);
        let key = flags.tls_key.or(env("CIPHERSTORE_TLS_KEY").map(PathBuf::from)).or(file.tls.key);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(super::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("a TLS certificate needs its key and the key its certificate"),
        };
        let ttl: Option<u64> = env_parsed("CIPHERSTORE_KEY_CACHE_TTL")?.or(file.keys.cache_ttl_secs);
        let service = file.keys.service.take().unwrap_or_default();
        let key_service = match (
            env("CIPHERSTORE_KEY_SERVICE_URL").or(service.url),
            env("CIPHERSTORE_KEY_SERVICE_APIKEY_FILE").map(PathBuf::from).or(service.apikey_file),
            env("CIPHERSTORE_KEY_SERVICE_CA").map(PathBuf::from).or(service.ca),
        ) {
            (None, None, None) => None,
            (Some(url), Some(apikey_file), Some(ca)) => Some(KeyService { url, apikey_file, ca }),
            _ => anyhow::bail!(
                "a remote key service needs all of keys.service.url, apikey_file and ca \
                 (CIPHERSTORE_KEY_SERVICE_URL, _APIKEY_FILE, _CA)"
            ),
        };
        let max_object_size = file.limits.max_object_size.unwrap_or(DEFAULT_MAX_OBJECT);
        anyhow::ensure!(
            (1..=DEFAULT_MAX_OBJECT).contains(&max_object_size),
            "limits.max_object_size must be 1 to {DEFAULT_MAX_OBJECT} bytes"
        );
        let secs = |v: Option<u64>, default: u64, name: &str| -> anyhow::Result<std::time::Duration> {
            let v = v.unwrap_or(default);
            anyhow::ensure!((1..=3600).contains(&v), "limits.{name} must be 1 to 3600 seconds");
            Ok(std::time::Duration::from_secs(v))
        };
        let header_timeout = secs(file.limits.header_timeout_secs, 30, "header_timeout_secs")?;
        let body_idle_timeout = secs(file.limits.body_idle_timeout_secs, 60, "body_idle_timeout_secs")?;
        let default_mib = (pipeline::budget::DEFAULT_BYTES >> 20) as u64;
        let stream_mib = file.limits.stream_buffers_mib.unwrap_or(default_mib);
        anyhow::ensure!(
            (4..=4096).contains(&stream_mib),
            "limits.stream_buffers_mib must be 4 to 4096 (MiB; one upload's batch is up to 4 MiB)"
        );
        Ok(Self {
            listen,
            http_listen,
            data_dir,
            users,
            admin_token_file,
            kms_listen,
            kms_purge_wait,
            kms_month,
            tls,
            hsm: HsmSettings::from_env().or(file.hsm),
            keys_dir: env("CIPHERSTORE_KEYS_DIR").map(PathBuf::from).or(file.keys.dir),
            key_cache_ttl: ttl.map(std::time::Duration::from_secs),
            instance: env("CIPHERSTORE_INSTANCE").or(file.keys.instance),
            key_service,
            max_object_size,
            header_timeout,
            body_idle_timeout,
            stream_buffers: (stream_mib as usize) << 20,
            log: env("CIPHERSTORE_LOG").or(file.log).unwrap_or_else(|| "info".to_owned()),
            log_format: file.log_format.unwrap_or_default(),
            backend,
            dispersal: file.store.dispersal.take().map(DispersalSection::resolve).transpose()?,
            lifecycle: file.lifecycle.resolve(env_parsed("CIPHERSTORE_LIFECYCLE_DAY_SECONDS")?)?,
            store: file.store.resolve()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_strictly() {
        let f = FileConfig::parse(
            "listen = \"0.0.0.0:9443\"\nlog_format = \"json\"\n[hsm]\ntoken = \"t\"\npin_file = \"/p\"\n[limits]\nmax_object_size = 1024\n",
        )
        .unwrap();
        assert_eq!(f.listen, Some(SocketAddr::from(([0, 0, 0, 0], 9443))));
        assert_eq!(f.hsm.token.as_deref(), Some("t"));
        assert_eq!(f.log_format, Some(LogFormat::Json));
        assert_eq!(f.limits.max_object_size, Some(1024));
        let typo = FileConfig::parse("lisen = \"0.0.0.0:1\"").unwrap_err().to_string();
        assert!(typo.contains("lisen"), "{typo}");
        assert!(FileConfig::parse("[hsm]\npin = \"1234\"").is_err(), "a PIN in the file is refused");
        let hsm = FileConfig::parse(
            "[hsm]\ntoken = \"t\"\nwrap = \"aes-gcm\"\nkeygen_command = [\"/opt/make-key\", \"{id}\", \"{kind}\"]\n",
        )
        .unwrap()
        .hsm;
        assert_eq!(hsm.wrap.as_deref(), Some("aes-gcm"));
        assert_eq!(hsm.keygen_command.as_deref().map(<[String]>::len), Some(3));
    }

    #[test]
    fn dispersal_settings_are_checked() {
        let base = "[store.dispersal]\nwidth = 5\nthreshold = 3\ntargets = [\"/t/0\", \"/t/1\", \"/t/2\", \"/t/3\", \"/t/4\"]\n";
        let d = FileConfig::parse(base).unwrap().store.dispersal.unwrap().resolve().unwrap();
        assert_eq!((d.threshold, d.write_threshold, d.targets.len()), (3, 4, 5));
        assert_eq!(default_write_threshold(10, 16), 13);
        let refused = |text: &str, says: &str| {
            let e =
                FileConfig::parse(text).unwrap().store.dispersal.unwrap().resolve().unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        };
        refused(&base.replace("width = 5", "width = 6"), "6 but 5 targets");
        refused(&base.replace("threshold = 3", "threshold = 5"), "threshold < width");
        refused(&base.replace("threshold = 3", "threshold = 0"), "threshold < width");
        refused(
            &base.replace("threshold = 3", "threshold = 3\nwrite_threshold = 2"),
            "between threshold (3) and width (5)",
        );
        refused(&base.replace("threshold = 3", "threshold = 3\nwrite_threshold = 6"), "between threshold");
        refused(&base.replace("/t/4", "/t/3"), "twice");
        refused(&base.replace("/t/4", "t/4"), "absolute");
        assert!(FileConfig::parse(&base.replace("width", "widht")).is_err());
    }

    #[test]
    fn dispersal_targets_may_be_s3_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("slices");
        std::fs::write(&creds, "AK SECRET-KEY\n").unwrap();
        let s3 = |bucket: &str, extra: &str| {
            format!(
                "{{ endpoint = \"https://127.0.0.1:9000\", bucket = \"{bucket}\", credentials_file = {creds:?}{extra} }}"
            )
        };
        let text = |t1: &str, t3: &str| {
            format!(
                "[store.dispersal]\nwidth = 5\nthreshold = 3\ntargets = [\"/t/0\", {t1}, \"/t/2\", {t3}, \"/t/4\"]\n"
            )
        };
        let d = FileConfig::parse(&text(&s3("a", ", timeout_secs = 5"), &s3("b", "")))
            .unwrap()
            .store
            .dispersal
            .unwrap()
            .resolve()
            .unwrap();
        let TargetConfig::S3(a) = &d.targets[1] else {
            panic!("target 1 is an S3 bucket: {:?}", d.targets[1])
        };
        assert_eq!((a.bucket.as_str(), a.request_timeout.as_secs(), a.max_retries), ("a", 5, TARGET_RETRIES));
        let TargetConfig::S3(b) = &d.targets[3] else { panic!("target 3 is an S3 bucket") };
        assert_eq!(b.request_timeout.as_secs(), DEFAULT_TARGET_TIMEOUT_SECS);
        assert!(matches!(&d.targets[0], TargetConfig::Dir(p) if p == Path::new("/t/0")));
        assert_eq!(d.targets[3].to_string(), "https://127.0.0.1:9000 bucket b");
        assert!(!format!("{d:?}").contains("SECRET-KEY"), "no secret in the configuration's debug text");
        let refused = |text: &str, says: &str| {
            let e =
                FileConfig::parse(text).unwrap().store.dispersal.unwrap().resolve().unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        };
        refused(&text(&s3("a", ""), &s3("a", "")), "twice");
        refused(&text(&s3("a", ", timeout_secs = 0"), &s3("b", "")), "at least 1");
        let missing =
            text(&s3("a", ""), &s3("b", "")).replace(&format!("{creds:?}"), "\"/nonexistent/creds\"");
        refused(&missing, "cannot read the backend credentials file");
        assert!(
            FileConfig::parse(&text(&s3("a", ", colour = 1"), &s3("b", ""))).is_err(),
            "unknown keys refused"
        );
    }

    #[test]
    fn cluster_store_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("backend");
        std::fs::write(&creds, "AK SK\n").unwrap();
        let text = format!(
            "[store]\nkind = \"cluster\"\n[store.backend]\nendpoint = \"http://127.0.0.1:7480\"\nbucket = \"b\"\ncredentials_file = {creds:?}\n[store.etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nnamespace = \"/cs/\"\n"
        );
        match FileConfig::parse(&text).unwrap().store.resolve().unwrap() {
            StoreSettings::Cluster { backend, etcd, postgres, sweep, inline_max } => {
                assert!(postgres.is_none(), "records in etcd unless [store.postgres]");
                assert_eq!(inline_max, store::cluster::DEFAULT_INLINE_MAX);
                assert_eq!((backend.access_key.as_str(), backend.secret_key.as_str()), ("AK", "SK"));
                assert!(!backend.sign_payload, "bodies unsigned unless asked");
                assert_eq!(etcd.namespace, b"/cs/");
                let hour = Some(std::time::Duration::from_secs(DEFAULT_SWEEP_SECS));
                assert_eq!((sweep.interval, sweep.grace.as_secs()), (hour, DEFAULT_SWEEP_SECS));
                assert!(!format!("{backend:?}").contains("SK\""), "the secret stays out of Debug");
            }
            StoreSettings::Fs => panic!("cluster settings read as fs"),
        }
        let no_etcd = FileConfig::parse("[store]\nkind = \"cluster\"").unwrap().store.resolve();
        assert!(no_etcd.unwrap_err().to_string().contains("[store.etcd]"));
        std::fs::write(&creds, "only-one-field\n").unwrap();
        assert!(FileConfig::parse(&text).unwrap().store.resolve().is_err());
        assert!(FileConfig::parse("[store]\nkind = \"s3\"").is_err());
        std::fs::write(&creds, "AK SK\n").unwrap();
        let never = text.replace("[store]\n", "[store]\nsweep_interval_secs = 0\nsweep_grace_secs = 7200\n");
        match FileConfig::parse(&never).unwrap().store.resolve() {
            Ok(StoreSettings::Cluster { sweep, .. }) => {
                assert_eq!((sweep.interval, sweep.grace.as_secs()), (None, 7200));
            }
            other => panic!("sweep settings not read: {other:?}"),
        }
        let off = text.replace("[store]\n", "[store]\ninline_max_bytes = 0\n");
        match FileConfig::parse(&off).unwrap().store.resolve() {
            Ok(StoreSettings::Cluster { inline_max, .. }) => assert_eq!(inline_max, 0),
            other => panic!("inline_max_bytes not read: {other:?}"),
        }
        let huge = text.replace("[store]\n", "[store]\ninline_max_bytes = 10000000\n");
        let refused = FileConfig::parse(&huge).unwrap().store.resolve().unwrap_err().to_string();
        assert!(refused.contains("inline_max_bytes"), "{refused}");
        // [store.postgres]: the records there; the password from its file, never shown.
        let password = dir.path().join("pgpass");
        std::fs::write(&password, "pg-SECRET\n").unwrap();
        let pg = format!(
            "{text}[store.postgres]\nurl = \"postgresql://cs@127.0.0.1:5432,127.0.0.1:5433/cs\"\nschema = \"gw\"\npassword_file = {password:?}\npool_size = 8\n"
        );
        match FileConfig::parse(&pg).unwrap().store.resolve() {
            Ok(StoreSettings::Cluster { postgres: Some(p), .. }) => {
                assert_eq!((p.schema.as_str(), p.pool_size), ("gw", 8));
                assert_eq!(p.password.as_deref().map(String::as_str), Some("pg-SECRET"));
                assert!(!format!("{p:?}").contains("SECRET"), "{p:?}");
                assert!(format!("{p:?}").contains("127.0.0.1:5432,127.0.0.1:5433"), "{p:?}");
            }
            other => panic!("[store.postgres] not read: {other:?}"),
        }
        for (bad, says) in [
            ("url = \"mysql://h/db\"", "postgresql://"),
            ("url = \"postgresql://h/db\"\npool_size = 0", "pool_size"),
            ("url = \"postgresql://h/db\"\npassword_file = \"/nonexistent/pw\"", "password_file"),
        ] {
            let e = FileConfig::parse(&format!("{text}[store.postgres]\n{bad}\n"))
                .unwrap()
                .store
                .resolve()
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
        let fs_pg =
            FileConfig::parse("[store.postgres]\nurl = \"postgresql://h/db\"\n").unwrap().store.resolve();
        assert!(fs_pg.unwrap_err().to_string().contains("[store.postgres]"));
        let signed = text.replace("bucket = \"b\"\n", "bucket = \"b\"\nsign_payload = true\n");
        match FileConfig::parse(&signed).unwrap().store.resolve() {
            Ok(StoreSettings::Cluster { backend, .. }) => assert!(backend.sign_payload),
            other => panic!("sign_payload not read: {other:?}"),
        }
        let hasty = text.replace("[store]\n", "[store]\nsweep_grace_secs = 5\n");
        let refused = FileConfig::parse(&hasty).unwrap().store.resolve().unwrap_err().to_string();
        assert!(refused.contains("at least 600"), "{refused}");
        let fs = FileConfig::parse("[store]\nsweep_interval_secs = 60").unwrap().store.resolve();
        assert!(fs.is_err(), "sweeping needs the cluster store");
        let https = text.replace("http://127.0.0.1:2379", "https://127.0.0.1:2379");
        let needs_ca = FileConfig::parse(&https).unwrap().store.resolve().unwrap_err().to_string();
        assert!(needs_ca.contains("ca_file"), "{needs_ca}");
        let with_tls = https.replace(
            "namespace = \"/cs/\"",
            "namespace = \"/cs/\"\nca_file = \"/ca.pem\"\ncert_file = \"/c.pem\"\nkey_file = \"/c.key\"",
        );
        match FileConfig::parse(&with_tls).unwrap().store.resolve() {
            Ok(StoreSettings::Cluster { etcd, .. }) => {
                let tls = etcd.tls.expect("TLS settings read");
                assert_eq!(tls.ca_file, PathBuf::from("/ca.pem"));
                assert_eq!(tls.client, Some((PathBuf::from("/c.pem"), PathBuf::from("/c.key"))));
            }
            other => panic!("TLS settings not read: {other:?}"),
        }
        let half = with_tls.replace("key_file = \"/c.key\"", "");
        assert!(FileConfig::parse(&half).unwrap().store.resolve().is_err(), "a certificate needs its key");
        let plain_ca = text.replace("namespace = \"/cs/\"", "namespace = \"/cs/\"\nca_file = \"/ca.pem\"");
        assert!(FileConfig::parse(&plain_ca).unwrap().store.resolve().is_err(), "a CA needs https://");
    }
}
