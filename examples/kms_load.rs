//! Key service load generator for `scripts/bench-kms`: exchanges an API key for a bearer
//! token at `/identity/token`, then sends one operation on one root key as fast as
//! `--concurrency` keep-alive HTTPS connections allow for `--seconds`, on one client
//! thread: `metadata` (no HSM call: the API's own cost), `wrap` (a 32-byte DEK) or
//! `unwrap` (of a ciphertext wrapped first; every plaintext checked). Prints one JSON line.
//!
//!   kms_load --endpoint https://127.0.0.1:9443 --ca cert.pem --apikey-file key \
//!            --instance local --key KEY_ID --op unwrap --concurrency 8 --seconds 5

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    /// `GET /api/v2/keys/{id}/metadata`.
    Metadata,
    /// `POST …/actions/wrap` of a 32-byte DEK.
    Wrap,
    /// `POST …/actions/unwrap` of a ciphertext, the plaintext checked.
    Unwrap,
}

#[derive(Parser)]
#[command(about = "Key service load generator for scripts/bench-kms (HTTPS, bearer token)")]
struct Args {
    /// `https://IP:PORT` of the key service.
    #[arg(long)]
    endpoint: String,
    /// PEM certificate the server's certificate must chain to.
    #[arg(long)]
    ca: std::path::PathBuf,
    /// File holding the API key.
    #[arg(long)]
    apikey_file: std::path::PathBuf,
    /// The instance (Bluemix-Instance).
    #[arg(long, default_value = "local")]
    instance: String,
    /// The root key's id.
    #[arg(long)]
    key: String,
    #[arg(long, value_enum)]
    op: Op,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

type Conn = SendRequest<Full<Bytes>>;

struct Client {
    args: Args,
    tls: TlsConnector,
    addr: SocketAddr,
    authority: String,
}

const DEK: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

impl Client {
    async fn connect(&self) -> anyhow::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = self.tls.connect(name, tcp).await.context("TLS handshake")?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn send(
        &self,
        conn: &mut Conn,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<serde_json::Value> {
        let mut req = hyper::Request::builder().method(method).uri(path).header("host", &self.authority);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        conn.ready().await?;
        let resp = conn.send_request(req.body(Full::new(body))?).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes)? })
    }

    async fn token(&self, conn: &mut Conn) -> anyhow::Result<String> {
        let key = std::fs::read_to_string(&self.args.apikey_file).context("--apikey-file")?;
        let form =
            format!("grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey={}", key.trim());
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let v = self.send(conn, "POST", "/identity/token", &headers, Bytes::from(form)).await?;
        v["access_token"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no access_token in {v}"))
    }

    async fn once(&self, conn: &mut Conn, auth: &str, ciphertext: &str) -> anyhow::Result<()> {
        let key = &self.args.key;
        let headers = [("authorization", auth), ("bluemix-instance", self.args.instance.as_str())];
        match self.args.op {
            Op::Metadata => {
                self.send(conn, "GET", &format!("/api/v2/keys/{key}/metadata"), &headers, Bytes::new())
                    .await?;
            }
            Op::Wrap => {
                let body =
                    serde_json::json!({"plaintext": base64::engine::general_purpose::STANDARD.encode(DEK)});
                let path = format!("/api/v2/keys/{key}/actions/wrap");
                let v = self.send(conn, "POST", &path, &headers, Bytes::from(body.to_string())).await?;
                ensure!(v["ciphertext"].is_string(), "wrap answered {v}");
            }
            Op::Unwrap => {
                let body = serde_json::json!({"ciphertext": ciphertext});
                let path = format!("/api/v2/keys/{key}/actions/unwrap");
                let v = self.send(conn, "POST", &path, &headers, Bytes::from(body.to_string())).await?;
                let plain = base64::engine::general_purpose::STANDARD
                    .decode(v["plaintext"].as_str().unwrap_or(""))?;
                ensure!(plain == DEK, "unwrap returned another DEK");
            }
        }
        Ok(())
    }

    async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let mut first = self.connect().await?;
        let auth = Arc::new(format!("Bearer {}", self.token(&mut first).await?));
        let headers = [("authorization", auth.as_str()), ("bluemix-instance", self.args.instance.as_str())];
        let body = serde_json::json!({"plaintext": base64::engine::general_purpose::STANDARD.encode(DEK)});
        let path = format!("/api/v2/keys/{}/actions/wrap", self.args.key);
        let wrapped = self.send(&mut first, "POST", &path, &headers, Bytes::from(body.to_string())).await?;
        let ciphertext: Arc<str> =
            wrapped["ciphertext"].as_str().ok_or_else(|| anyhow!("no ciphertext"))?.into();
        let mut conns = vec![first];
        while conns.len() < self.args.concurrency.max(1) {
            conns.push(self.connect().await?);
        }
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut conn in conns {
            let (me, auth, ct, done, stop) =
                (self.clone(), auth.clone(), ciphertext.clone(), done.clone(), stop.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    me.once(&mut conn, &auth, &ct).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), anyhow::Error>(())
            });
        }
        tokio::time::sleep(Duration::from_secs(self.args.seconds)).await;
        stop.store(true, Ordering::Relaxed);
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let seconds = start.elapsed().as_secs_f64();
        let ops = done.load(Ordering::Relaxed);
        let op = self.args.op.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
        println!(
            "{{\"op\":\"{op}\",\"concurrency\":{},\"ops\":{ops},\"seconds\":{seconds:.3},\"ops_per_sec\":{:.1}}}",
            self.args.concurrency,
            ops as f64 / seconds
        );
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let authority = args
        .endpoint
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("the endpoint must be https://IP:PORT"))?
        .to_owned();
    let addr: SocketAddr = authority.parse().context("the endpoint must be https://IP:PORT")?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca)? {
        roots.add(cert?)?;
    }
    let mut config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = Arc::new(Client { args, tls: TlsConnector::from(Arc::new(config)), addr, authority });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(client.run())
}
