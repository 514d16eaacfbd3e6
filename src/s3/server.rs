//! The HTTPS listener: users (access keys) from a file, SigV4 through `s3s`, one task per
//! connection, graceful shutdown on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{CipherS3, tls};
use crate::engine::Backend;
use crate::keys::{Hsm, HsmConfig, KeyManager, ManagerOptions};
use crate::store::fs::FsStore;

/// What `cipherstore serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory (store, TLS files, users).
    pub data_dir: PathBuf,
    /// Users file (`ACCESS_KEY SECRET_KEY` per line); default `DATA/users`.
    pub users: Option<PathBuf>,
    /// TLS files; default a self-signed pair in `DATA/tls`.
    pub tls: Option<tls::TlsFiles>,
    /// Primitive backend.
    pub backend: Backend,
}

/// Users as (access key, secret key).
pub fn load_users(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read users file {}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(ak), Some(sk), None) if sk.len() >= 8 => users.push((ak.to_owned(), sk.to_owned())),
            _ => anyhow::bail!(
                "{} line {}: expected `ACCESS_KEY SECRET_KEY` (secret of 8+ characters)",
                path.display(),
                n + 1
            ),
        }
    }
    anyhow::ensure!(!users.is_empty(), "{} lists no users", path.display());
    Ok(users)
}

/// A users file with one random development user, created if missing (mode 0600).
pub fn ensure_users(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut rnd = [0u8; 30];
    crate::engine::primitives::fill_random(&mut rnd);
    let hexs: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let line = format!(
        "# access-key secret-key, one user per line\ndev{} {}\n",
        &hexs[..12].to_uppercase(),
        &hexs[12..]
    );
    crate::durable::write_atomic(path, line.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The key manager when an HSM is configured (CIPHERSTORE_HSM_TOKEN or _URI); keys state
/// in CIPHERSTORE_KEYS_DIR or `DATA/keys`. A configured HSM that cannot be opened stops
/// start-up with its one-line error.
fn open_keys(data_dir: &Path) -> anyhow::Result<Option<Arc<KeyManager>>> {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    if !set(crate::keys::config::ENV_TOKEN) && !set(crate::keys::config::ENV_URI) {
        println!("  SSE-KP: off (no HSM configured: set CIPHERSTORE_HSM_TOKEN and a PIN to enable it)");
        return Ok(None);
    }
    let dir = std::env::var("CIPHERSTORE_KEYS_DIR")
        .ok()
        .filter(|v| !v.is_empty())
        .map_or_else(|| data_dir.join("keys"), PathBuf::from);
    let mut options = ManagerOptions::new(&dir);
    if let Ok(i) = std::env::var("CIPHERSTORE_INSTANCE")
        && !i.is_empty()
    {
        options.instance = i;
    }
    if let Ok(ttl) = std::env::var("CIPHERSTORE_KEY_CACHE_TTL") {
        let secs: u64 =
            ttl.parse().with_context(|| format!("CIPHERSTORE_KEY_CACHE_TTL={ttl:?} is not seconds"))?;
        options.cache_ttl = std::time::Duration::from_secs(secs);
    }
    let hsm = Hsm::open(&HsmConfig::from_env()?)?;
    println!("  SSE-KP: on (HSM token {:?}, keys in {})", hsm.token(), dir.display());
    Ok(Some(Arc::new(KeyManager::open(hsm, &options)?)))
}

/// Runs the service until Ctrl-C or SIGTERM.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (store, cleaned) = FsStore::open(&config.data_dir.join("store")).context("cannot open the store")?;
    if cleaned > 0 {
        eprintln!("cipherstore: removed {cleaned} unfinished write(s) left by an earlier run");
    }
    let users_path = config.users.clone().unwrap_or_else(|| config.data_dir.join("users"));
    if config.users.is_none() {
        ensure_users(&users_path)?;
    }
    let users = load_users(&users_path)?;
    let mut auth = SimpleAuth::new();
    for (ak, sk) in &users {
        auth.register(ak.clone(), sk.clone().into());
    }
    let tls_files = match &config.tls {
        Some(t) => t.clone(),
        None => tls::self_signed(&config.data_dir)?,
    };
    let acceptor = TlsAcceptor::from(tls::server_config(&tls_files)?);
    let keys = open_keys(&config.data_dir)?;
    let mut builder = S3ServiceBuilder::new(CipherS3::new(Arc::new(store), config.backend, keys));
    builder.set_auth(auth);
    let service = builder.build();
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr().context("cannot read the listening address")?;
    println!("cipherstore S3 endpoint: https://{local}");
    println!("  data directory: {}", config.data_dir.display());
    println!("  users file:     {}", users_path.display());
    println!("  CA certificate: {}", tls_files.cert.display());
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("cipherstore: accept failed: {e}");
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let acceptor = acceptor.clone();
        let service = service.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(30), acceptor.accept(tcp)).await
            else {
                return;
            };
            let conn = http.serve_connection(TokioIo::new(tls), service).into_owned();
            let _ = watcher.watch(conn).await;
        });
    }
    eprintln!("cipherstore: shutting down, finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
    }
    Ok(())
}
