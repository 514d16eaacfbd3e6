//! S3 load generator for `scripts/bench-s3`: the same lean client for every server, so
//! that the figures compare servers, not clients. Speaks HTTP/1.1 over TLS with SigV4
//! (`UNSIGNED-PAYLOAD`, as SDKs send over HTTPS), one connection per concurrent worker,
//! on one client thread. Object bytes are generated from the key (a block of at most
//! 64 MiB, repeated), so every GET is checked byte for byte without keeping files and
//! memory stays bounded for any object size. Prints one JSON line per run.
//!
//!   s3_load --endpoint https://127.0.0.1:9000 --ca cert.pem --access-key A --secret-key S \
//!           --bucket b put --prefix big --count 1 --size 1073741824
//!
//! Operations: `mkbucket`, `put`, `get`, `head` (`--count` objects `<prefix>/NNNNNN` of
//! `--size` bytes, `--concurrency` at a time). `--sse-c-key-base64` adds SSE-C headers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, anyhow, bail, ensure};
use aws_lc_rs::digest;
use base64::Engine;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Empty, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use md5::Digest;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tools::sigv4::{Signer, amz_date};

#[derive(Parser)]
#[command(about = "S3 load generator for scripts/bench-s3 (HTTPS, SigV4, verified GETs)")]
struct Args {
    /// `https://IP:PORT` of the server.
    #[arg(long)]
    endpoint: String,
    /// PEM certificate the server's certificate must chain to.
    #[arg(long)]
    ca: std::path::PathBuf,
    #[arg(long)]
    access_key: String,
    #[arg(long)]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long)]
    bucket: String,
    /// SSE-C key (32 bytes, base64) sent with every object request.
    #[arg(long)]
    sse_c_key_base64: Option<String>,
    /// Key prefix of the objects.
    #[arg(long, default_value = "obj")]
    prefix: String,
    /// Number of objects.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Bytes per object.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Requests in flight (one connection each).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    op: Op,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Op {
    Mkbucket,
    Put,
    Get,
    Head,
}

/// The largest block an object's bytes repeat.
const BLOCK: usize = 64 << 20;

/// An object's bytes: `block` repeated up to `size`.
struct Object {
    block: Bytes,
    size: usize,
}

impl Object {
    /// Deterministic bytes for `key`.
    fn new(key: &str, size: usize) -> Self {
        Self { block: Bytes::from(block_bytes(key, size.min(BLOCK))), size }
    }

    /// The body frames of a PUT (slices of the block, no copies).
    fn frames(&self) -> impl Iterator<Item = Bytes> + Send + 'static {
        let (block, size) = (self.block.clone(), self.size);
        (0..size.div_ceil(block.len().max(1)))
            .map(move |i| block.slice(..(size - i * block.len()).min(block.len())))
    }

    /// Whether `data` is what the object holds at `offset`.
    fn matches(&self, offset: usize, data: &[u8]) -> bool {
        if offset + data.len() > self.size {
            return false;
        }
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let start = at % self.block.len();
            let n = rest.len().min(self.block.len() - start);
            if self.block[start..start + n] != rest[..n] {
                return false;
            }
            rest = &rest[n..];
            at += n;
        }
        true
    }
}

/// Deterministic bytes for `key` (xorshift64*, seeded by the key's SHA-256).
fn block_bytes(key: &str, size: usize) -> Vec<u8> {
    let seed = digest::digest(&digest::SHA256, key.as_bytes());
    let mut s = u64::from_le_bytes(seed.as_ref()[..8].try_into().unwrap_or([1; 8])) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        out.extend_from_slice(&s.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(size);
    out
}

struct Client {
    args: Args,
    signer: Signer,
    tls: TlsConnector,
    addr: SocketAddr,
    sse_c: Vec<(String, String)>,
}

type Body = BoxBody<Bytes, std::convert::Infallible>;

impl Client {
    async fn connect(&self) -> anyhow::Result<SendRequest<Body>> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = self.tls.connect(name, tcp).await.context("TLS handshake")?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    fn key(&self, i: usize) -> String {
        format!("{}/{i:06}", self.args.prefix)
    }

    /// Sends one request; returns the response status and checks the body against
    /// `expect` (GET) as it streams.
    async fn send(
        &self,
        conn: &mut SendRequest<Body>,
        method: &str,
        path: &str,
        body: Option<&Object>,
        expect: Option<&Object>,
    ) -> anyhow::Result<()> {
        let extra = if path.matches('/').count() > 1 { self.sse_c.as_slice() } else { &[] };
        let mut req = hyper::Request::builder().method(method).uri(path);
        let date = amz_date(base::clock::now_unix());
        for (k, v) in self.signer.headers(method, path, &date, "UNSIGNED-PAYLOAD", extra) {
            req = req.header(k, v);
        }
        let body: Body = match body {
            Some(o) => {
                req = req.header("content-length", o.size);
                let frames = futures_util::stream::iter(
                    o.frames().map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))),
                );
                StreamBody::new(frames).boxed()
            }
            None => Empty::new().boxed(),
        };
        conn.ready().await?;
        let resp = conn.send_request(req.body(body)?).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut got = 0usize;
        let mut error = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                match expect {
                    Some(e) if status.is_success() => {
                        ensure!(e.matches(got, &data), "{method} {path}: bytes differ at offset {got}");
                    }
                    _ => error.extend_from_slice(&data[..data.len().min(4096 - error.len().min(4096))]),
                }
                got += data.len();
            }
        }
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", String::from_utf8_lossy(&error));
        }
        if let Some(e) = expect.filter(|_| method == "GET") {
            ensure!(got == e.size, "{method} {path}: {got} bytes, expected {}", e.size);
        }
        Ok(())
    }

    /// Runs `op` on objects `0..count` with `concurrency` workers.
    async fn run(self: Arc<Self>, op: Op) -> anyhow::Result<usize> {
        let bucket = self.args.bucket.clone();
        if op == Op::Mkbucket {
            let mut conn = self.connect().await?;
            self.send(&mut conn, "PUT", &format!("/{bucket}"), None, None).await?;
            return Ok(1);
        }
        // Bytes are prepared before the clock starts (one buffer per distinct size).
        let objects: Arc<Vec<Object>> =
            Arc::new((0..self.args.count).map(|i| Object::new(&self.key(i), self.args.size)).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let mut conns = Vec::new();
        for _ in 0..self.args.concurrency.max(1) {
            conns.push(self.connect().await?);
        }
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut conn in conns {
            let (me, objects, next, bucket) = (self.clone(), objects.clone(), next.clone(), bucket.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(data) = objects.get(i) else { return Ok::<(), anyhow::Error>(()) };
                    let path = format!("/{bucket}/{}", me.key(i));
                    match op {
                        Op::Put => me.send(&mut conn, "PUT", &path, Some(data), None).await?,
                        Op::Get => me.send(&mut conn, "GET", &path, None, Some(data)).await?,
                        Op::Head => me.send(&mut conn, "HEAD", &path, None, None).await?,
                        Op::Mkbucket => {}
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        let seconds = start.elapsed().as_secs_f64();
        let bytes = self.args.count * self.args.size;
        println!(
            "{{\"op\":\"{}\",\"count\":{},\"bytes\":{bytes},\"seconds\":{seconds:.6}}}",
            op.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default(),
            self.args.count
        );
        Ok(self.args.count)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let authority = args
        .endpoint
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("the endpoint must be https://IP:PORT"))?;
    let addr: SocketAddr = authority.parse().context("the endpoint must be https://IP:PORT")?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca)? {
        roots.add(cert?)?;
    }
    let mut config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let sse_c = match &args.sse_c_key_base64 {
        Some(k) => {
            let raw = base64::engine::general_purpose::STANDARD.decode(k).context("--sse-c-key-base64")?;
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&raw));
            vec![
                ("x-amz-server-side-encryption-customer-algorithm".to_owned(), "AES256".to_owned()),
                ("x-amz-server-side-encryption-customer-key".to_owned(), k.clone()),
                ("x-amz-server-side-encryption-customer-key-md5".to_owned(), md5),
            ]
        }
        None => Vec::new(),
    };
    let signer = Signer {
        access_key: args.access_key.clone(),
        secret_key: args.secret_key.clone(),
        region: args.region.clone(),
        host: authority.to_owned(),
    };
    let op = args.op;
    let client = Arc::new(Client { args, signer, tls: TlsConnector::from(Arc::new(config)), addr, sse_c });
    // One client thread: the client's share of the machine stays the same for every server.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(client.run(op))?;
    Ok(())
}
