//! The `cipherstore serve` process around the S3 layer: configuration ([`config`]: file,
//! environment, flags), users (`iam::users`), TLS ([`tls`]), the HTTP front with `/health`,
//! `/metrics` and the plain-HTTP rules ([`front`], [`metrics`]), the aws-chunked framing
//! check on streamed bodies (`s3::chunk_framing`), a cluster gateway's background sweep
//! ([`sweeper`]), the lifecycle worker ([`lifecycle`]), the key service's listener
//! ([`kms`]: IBM Key Protect's API), structured logs, and
//! the listeners with graceful shutdown on Ctrl-C or SIGTERM.

pub(crate) mod admin;
pub(crate) mod config;
pub(crate) mod front;
pub(crate) mod identities;
pub(crate) mod kms;
pub(crate) mod lifecycle;
pub(crate) mod metrics;
pub(crate) mod rotation;
pub(crate) mod scrubber;
pub(crate) mod sweeper;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub(crate) use config::{ServeConfig, StoreSettings};
use front::Front;

use cluster::blobs::Blobs;
use cluster::etcd::EtcdKv;
use cluster::kv::Kv;
use cluster::postgres::PgKv;
use keys::state_kv::KvState;
use keys::{Hsm, KeyManager, KeySource, ManagerOptions, RemoteConfig, RemoteKeys};
use s3::CipherS3;
use s3::lenient_range::LenientRange;
use store::Store;
use store::cluster::ClusterStore;
use store::dispersal::DispersedStore;
use store::dispersal::health::Health;
use store::dispersal::targets::TargetConfig;
use store::fs::FsStore;

/// How long requests in flight may run on at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a connection's read buffer grows to (hyper's default is about 400 KiB). Every
/// open connection keeps its buffer, so 64 clients held ~40 MiB at the default; a
/// body arrives in TLS records of 16 KiB anyway.
const READ_BUFFER_MAX: usize = 64 << 10;

/// Starts structured logging to stderr. `s3s` is capped at `warn`: its debug output
/// prints request headers, which carry SSE-C keys.
pub(crate) fn init_logging(filter: &str, format: config::LogFormat) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{filter},s3s=warn"))
        .with_context(|| format!("invalid log filter {filter:?}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let result = match format {
        config::LogFormat::Text => builder.try_init(),
        config::LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

/// The key manager when an HSM is configured (`None` otherwise); a configured HSM that
/// cannot be opened is an error. With a metadata service (`kv`, the cluster store's), the
/// key state is the one every gateway shares; otherwise `state.json` in the keys
/// directory. `cipherstore keys --config` opens the same one.
pub(crate) async fn open_keys(
    config: &ServeConfig,
    kv: Option<Arc<dyn Kv>>,
) -> anyhow::Result<Option<KeyManager>> {
    if !config.hsm.is_configured() {
        return Ok(None);
    }
    let dir = config.keys_dir.clone().unwrap_or_else(|| config.data_dir.join("keys"));
    let mut options = ManagerOptions::new(&dir);
    if let Some(i) = &config.instance {
        options.instance = i.clone();
    }
    if let Some(ttl) = config.key_cache_ttl {
        options.cache_ttl = ttl;
    }
    let hsm = Hsm::open(&config.hsm.resolve()?)?;
    let manager = match kv {
        Some(kv) => {
            let state = KvState::open(kv).await.context("cannot read the shared key state")?;
            KeyManager::with_state(hsm, &options, Box::new(state))?
        }
        None => KeyManager::open(hsm, &options)?,
    };
    Ok(Some(manager))
}

/// Key custody as the configuration has it: the local key manager when an HSM is
/// configured, and what the layers above use (that manager, or a remote key service,
/// `[keys.service]`); neither without either. Both at once is an error. Call inside the
/// runtime: the remote client runs on it.
pub(crate) async fn open_key_source(
    config: &ServeConfig,
    kv: Option<Arc<dyn Kv>>,
) -> anyhow::Result<(Option<Arc<KeyManager>>, Option<Arc<dyn KeySource>>)> {
    let Some(service) = &config.key_service else {
        let local = open_keys(config, kv).await?.map(Arc::new);
        let source = local.clone().map(|m| m as Arc<dyn KeySource>);
        return Ok((local, source));
    };
    anyhow::ensure!(
        !config.hsm.is_configured(),
        "both an HSM ([hsm], CIPHERSTORE_HSM_TOKEN) and a remote key service ([keys.service]) are configured: \
         a gateway uses one of them"
    );
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(&service.apikey_file).with_context(|| {
        format!("cannot read the key service API key file {}", service.apikey_file.display())
    })?);
    let remote = RemoteConfig {
        url: service.url.clone(),
        apikey: zeroize::Zeroizing::new(text.trim().to_owned()),
        instance: config.instance.clone().unwrap_or_else(|| ManagerOptions::new(&config.data_dir).instance),
        ca: service.ca.clone(),
        cache_ttl: config.key_cache_ttl.unwrap_or(keys::manager::DEFAULT_CACHE_TTL),
    };
    let keys = RemoteKeys::connect(remote).context("cannot use the remote key service")?;
    Ok((None, Some(Arc::new(keys))))
}

/// A cluster's metadata services (docs/SCALE-OUT.md §1, §9).
#[derive(Clone)]
pub(crate) struct Meta {
    /// etcd: the key lifecycle state, identities, leases.
    pub control: Arc<dyn Kv>,
    /// The store's records: PostgreSQL if `[store.postgres]` is set, else etcd as well.
    pub records: Arc<dyn Kv>,
}

/// The cluster store's metadata services, if the configuration names them.
pub(crate) async fn connect_kv(config: &ServeConfig) -> anyhow::Result<Option<Meta>> {
    match &config.store {
        StoreSettings::Fs => Ok(None),
        StoreSettings::Cluster { etcd, postgres, .. } => {
            let control: Arc<dyn Kv> = Arc::new(
                EtcdKv::connect(etcd)
                    .await
                    .with_context(|| format!("cannot reach etcd at {}", etcd.endpoints.join(", ")))?,
            );
            let records = match postgres {
                None => control.clone(),
                Some(pg) => Arc::new(PgKv::connect(pg).await.with_context(|| {
                    format!(
                        "cannot use PostgreSQL at {} (schema {})",
                        cluster::postgres::hosts(&pg.url),
                        pg.schema
                    )
                })?),
            };
            Ok(Some(Meta { control, records }))
        }
    }
}

/// Accepts connections on `listener` until `stop` fires; `tls` absent means plain HTTP.
/// Each connection is served by `front(client address)`. A client gets `timeout` for the
/// TLS handshake, and again for each request's headers (an idle keep-alive connection is
/// closed after it).
async fn accept_loop<S>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    front: impl Fn(SocketAddr) -> S + Send + 'static,
    graceful: Arc<GracefulShutdown>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    timeout: Duration,
) where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = s3s::HttpResponse,
            Error = s3s::HttpError,
            Future = futures_util::future::BoxFuture<'static, Result<s3s::HttpResponse, s3s::HttpError>>,
        > + Send
        + 'static,
{
    let mut http = ConnBuilder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new()).header_read_timeout(timeout).max_buf_size(READ_BUFFER_MAX);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        // Without it, a response body written after its head waits for the client's
        // delayed ACK (40 ms per small GET measured here).
        let _ = tcp.set_nodelay(true);
        let front = front(peer);
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match &tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) = tokio::time::timeout(timeout, acceptor.accept(tcp)).await else {
                        tracing::debug!(%peer, "TLS handshake failed or timed out");
                        return;
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), front).into_owned();
                    let _ = watcher.watch(conn).await;
                }
                None => {
                    let conn = http.serve_connection(TokioIo::new(tcp), front).into_owned();
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("cannot read the listening address")?;
    Ok((listener, local))
}

/// Opens the store the configuration names (a cluster store over `kv`), dispersed over
/// targets if configured; returns it, a line saying what it is and the dispersal targets'
/// health, and starts a cluster store's background sweep.
pub(crate) fn open_store(config: &ServeConfig, kv: Option<Arc<dyn Kv>>) -> anyhow::Result<OpenedStore> {
    let (store, line) = open_record_store(config, kv)?;
    let Some(d) = &config.dispersal else { return Ok((store, line, None)) };
    for (i, t) in d.targets.iter().enumerate() {
        if let TargetConfig::Dir(dir) = t
            && !dir.is_dir()
        {
            tracing::warn!(target_index = i, path = %dir.display(), "a dispersal target directory is missing; its slices will be written as missing until it is back");
        }
    }
    let dispersed = Arc::new(DispersedStore::new(store, d)?);
    let health = dispersed.health();
    if let Some(every) = d.scrub_interval {
        scrubber::spawn(dispersed.clone(), every, d.scrub_rate)?;
    }
    let line = format!(
        "dispersed: {} of {} slices rebuild an object (writes need {}), over {}; records: {line}",
        d.threshold,
        d.targets.len(),
        d.write_threshold,
        d.targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );
    Ok((dispersed, line, Some(health)))
}

/// A store, what it is, and its dispersal targets' health.
pub(crate) type OpenedStore = (Arc<dyn Store>, String, Option<Arc<Health>>);

fn open_record_store(
    config: &ServeConfig,
    kv: Option<Arc<dyn Kv>>,
) -> anyhow::Result<(Arc<dyn Store>, String)> {
    match &config.store {
        StoreSettings::Fs => {
            let dir = config.data_dir.join("store");
            let (store, cleaned) = FsStore::open(&dir).context("cannot open the store")?;
            if cleaned > 0 {
                tracing::info!(cleaned, "removed unfinished writes left by an earlier run");
            }
            Ok((Arc::new(store), format!("filesystem, {}", dir.display())))
        }
        StoreSettings::Cluster { backend, etcd, postgres, sweep, inline_max } => {
            let kv = kv.context("the cluster store needs its metadata service")?;
            let blobs = Blobs::new(backend)?;
            let store = ClusterStore::new(kv, blobs)?.with_inline_max(*inline_max)?;
            sweeper::spawn(store.clone(), *sweep);
            let records = match postgres {
                Some(pg) => format!(
                    "records in PostgreSQL {} schema {}, key state in etcd {}",
                    cluster::postgres::hosts(&pg.url),
                    pg.schema,
                    etcd.endpoints.join(",")
                ),
                None => format!(
                    "records in etcd {} under {}",
                    etcd.endpoints.join(","),
                    String::from_utf8_lossy(&etcd.namespace)
                ),
            };
            let line = format!("cluster: blobs in {} bucket {}, {records}", backend.endpoint, backend.bucket);
            Ok((Arc::new(store), line))
        }
    }
}

/// Runs the service until Ctrl-C or SIGTERM.
pub(crate) async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let meta = connect_kv(&config).await?;
    let (store, store_line, dispersal) = open_store(&config, meta.as_ref().map(|m| m.records.clone()))?;
    let kv = meta.map(|m| m.control);
    let users_path: PathBuf = config.users.clone().unwrap_or_else(|| config.data_dir.join("users"));
    if config.users.is_none() {
        iam::users::ensure(&users_path)?;
    }
    let (local_keys, keys) = open_key_source(&config, kv.clone()).await?;
    let seal = identities::seal(keys.as_deref(), config.backend)?;
    let (ids, ids_line) =
        identities::open(identities::keep(&config, kv.clone())?, seal, Some(&users_path)).await?;
    ids.follow();
    let auth = s3::auth::Auth::new(ids.clone());
    let admin = match &config.admin_token_file {
        Some(file) => Some(Arc::new(admin::AdminApi::open(
            ids.clone(),
            file,
            &config.data_dir.join("iam-audit.jsonl"),
        )?)),
        None => None,
    };
    let tls_files = match &config.tls {
        Some(t) => t.clone(),
        None => tls::self_signed(&config.data_dir)?,
    };
    let acceptor = TlsAcceptor::from(tls::server_config(&tls_files)?);
    let (https, https_addr) = bind(config.listen).await?;
    let plain = match config.http_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    println!("cipherstore S3 endpoint: https://{https_addr}");
    if let Some((_, a)) = &plain {
        println!("  plain HTTP:     http://{a} (SSE-C refused there)");
    }
    println!("  data directory: {}", config.data_dir.display());
    println!("  store:          {store_line}");
    println!("  users file:     {}", users_path.display());
    println!("  identities:     {ids_line} (cipherstore iam --help)");
    println!("  CA certificate: {}", tls_files.cert.display());
    println!("  health, metrics: GET /health, GET /metrics (unsigned)");
    match &config.admin_token_file {
        Some(f) => {
            println!("  admin API:      https://{https_addr}/_admin/v1/ (bearer token in {})", f.display())
        }
        None => println!("  admin API:      off (--admin-token-file FILE turns it on)"),
    }
    let lifecycle_line = if config.lifecycle.day.is_shortened() {
        format!(
            "a day lasts {} s (CIPHERSTORE_LIFECYCLE_DAY_SECONDS, for tests only), a pass every {} s",
            config.lifecycle.day.seconds(),
            config.lifecycle.interval.as_secs()
        )
    } else {
        format!("a pass every {} s", config.lifecycle.interval.as_secs())
    };
    println!(
        "  lifecycle:      {lifecycle_line}{}",
        if kv.is_some() { ", by one gateway at a time" } else { "" }
    );
    let kms_listener = match config.kms_listen {
        None => {
            println!("  key service:    off (--kms-listen ADDR serves IBM Key Protect's API)");
            None
        }
        Some(addr) => {
            let manager = local_keys.clone().context(
                "the key service (--kms-listen) needs an HSM: set CIPHERSTORE_HSM_TOKEN and a PIN, or [hsm] in --config",
            )?;
            ids.ensure_token_key().await.context("cannot prepare the key service's token key")?;
            let options = ::kms::ServiceOptions {
                instance: config
                    .instance
                    .clone()
                    .unwrap_or_else(|| ManagerOptions::new(&config.data_dir).instance),
                purge_wait: config.kms_purge_wait,
            };
            let (listener, local) = bind(addr).await?;
            println!(
                "  key service:    https://{local} (Key Protect v2 API; token URL https://{local}/identity/token; \
                 Bluemix-Instance {}; API keys: cipherstore iam apikey create)",
                options.instance
            );
            if config.kms_purge_wait != ::kms::PURGE_WAIT {
                println!(
                    "                  keys purge {} s after deletion (CIPHERSTORE_KMS_PURGE_WAIT_SECONDS, for tests only)",
                    config.kms_purge_wait.as_secs()
                );
            }
            Some((listener, Arc::new(::kms::KeyService::new(manager, ids.clone(), options))))
        }
    };
    match &keys {
        Some(k) => println!("  SSE-KP:         on ({})", k.describe()),
        None => println!(
            "  SSE-KP:         off (no HSM: set CIPHERSTORE_HSM_TOKEN and a PIN, or [hsm] in --config; \
             or a remote key service, [keys.service])"
        ),
    }
    let rotation_keys = local_keys.clone();
    let rotation_kv = kv.clone();
    if config.kms_month != rotation::MONTH {
        println!(
            "  key rotation:   by policy, a month lasting {} s (CIPHERSTORE_KMS_MONTH_SECONDS, for tests only)",
            config.kms_month.as_secs()
        );
    }
    let objects = object::Objects::new(store);
    let worker = lifecycle::Worker::new(objects.clone(), config.lifecycle, kv, &config.data_dir);
    let mut s3 = CipherS3::new(objects, config.backend, keys.clone());
    s3.set_identities(ids);
    s3.set_lifecycle_day(config.lifecycle.day);
    s3.set_max_object_size(config.max_object_size);
    s3.set_body_idle_timeout(config.body_idle_timeout);
    pipeline::budget::global().set_limit(config.stream_buffers);
    // Batch buffers left unused go back to the kernel even when no request comes.
    tokio::spawn(async {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            pipeline::pool::trim();
        }
    });
    // Requests whose Range AWS ignores are served again, once authenticated, by an inner
    // service without the header (s3s::route; s3::lenient_range).
    let inner = S3ServiceBuilder::new(s3.clone()).build();
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_auth(auth);
    builder.set_access(s3::access::AnonymousToHandlers);
    builder.set_route(LenientRange::new(inner));
    let service = builder.build();
    let metrics = Arc::new(metrics::Metrics::with_dispersal(dispersal).with_lifecycle(worker.stats()));
    let front = Front { s3: service, metrics, keys, admin, plain: false, peer: None };
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let lifecycle_worker = tokio::spawn(worker.run(stop_rx.clone()));
    let rotator =
        rotation_keys.map(|k| tokio::spawn(rotation::run(k, rotation_kv, config.kms_month, stop_rx.clone())));
    let with_peer = |front: Front| move |peer| Front { peer: Some(peer), ..front.clone() };
    let mut loops = vec![tokio::spawn(accept_loop(
        https,
        Some(acceptor.clone()),
        with_peer(front.clone()),
        graceful.clone(),
        stop_rx.clone(),
        config.header_timeout,
    ))];
    if let Some((listener, _)) = plain {
        let front = Front { plain: true, ..front };
        let timeout = config.header_timeout;
        loops.push(tokio::spawn(accept_loop(
            listener,
            None,
            with_peer(front),
            graceful.clone(),
            stop_rx.clone(),
            timeout,
        )));
    }
    if let Some((listener, service)) = kms_listener {
        let front = kms::KmsFront { service };
        let timeout = config.header_timeout;
        loops.push(tokio::spawn(accept_loop(
            listener,
            Some(acceptor),
            move |_| front.clone(),
            graceful.clone(),
            stop_rx,
            timeout,
        )));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down, finishing requests in flight");
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    let _ = lifecycle_worker.await;
    if let Some(r) = rotator {
        let _ = r.await;
    }
    let graceful = Arc::try_unwrap(graceful).map_err(|_| anyhow::anyhow!("listeners still running"))?;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("requests still running after 30 s; stopping"),
    }
    Ok(())
}
