//! TLS for the S3 endpoint: a given certificate and key, or a self-signed pair for
//! `localhost` and `127.0.0.1` generated into the data directory on first start (key file
//! 0600). TLS 1.2 and 1.3 only, HTTP/1.1 by ALPN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Certificate and key files.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    /// PEM certificate chain (also the CA file clients trust for a self-signed one).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The files under `dir/tls/`, generating a self-signed pair if they do not exist.
pub(crate) fn self_signed(dir: &Path) -> anyhow::Result<TlsFiles> {
    let tls = dir.join("tls");
    let files = TlsFiles { cert: tls.join("cert.pem"), key: tls.join("key.pem") };
    if files.cert.is_file() && files.key.is_file() {
        return Ok(files);
    }
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&tls)
        .with_context(|| format!("cannot create {}", tls.display()))?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).context("cannot generate a TLS certificate")?;
    base::durable::write_atomic(&files.key, certified.signing_key.serialize_pem().as_bytes())
        .context("cannot write the TLS key")?;
    base::durable::write_atomic(&files.cert, certified.cert.pem().as_bytes())
        .context("cannot write the TLS certificate")?;
    Ok(files)
}

/// A rustls server configuration from PEM files.
pub(crate) fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot parse {}", files.cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", files.cert.display());
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read {}", files.key.display()))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not match")?;
    // HTTP/1.1 only: S3 clients pipeline by opening connections, and uploads over hyper's
    // HTTP/2 ran at a third of HTTP/1.1's speed here (rclone, 64 MiB PUT: 1.5 s against
    // 0.47 s) whatever the flow-control windows; see BENCHMARKS.md.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
