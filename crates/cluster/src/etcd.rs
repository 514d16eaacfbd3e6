//! [`Kv`] on etcd (v3 API, the `etcd-client` crate): every key lives under the instance's
//! namespace prefix, ranges are linearizable reads, transactions map onto etcd's
//! compare-then-ops transactions, watches onto etcd watches. A request the client could not
//! send (the member it chose is down) is tried again on another, up to [`ATTEMPTS`] times;
//! reads are also retried after other transport failures. Requests that cannot reach a
//! quorum within the request timeout fail as [`KvError::Unavailable`].

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, Identity, TlsOptions, TxnOp, WatchOptions,
};
use tokio::sync::mpsc;
use tonic::Code;

use super::kv::{Compare, Entry, Event, Kv, KvError, Op, Page, Txn, Watch, prefix_end};
use super::requests;

/// How an etcd cluster is reached.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs of the members (`http://127.0.0.1:2379`, …).
    pub endpoints: Vec<String>,
    /// Prefix of every key this instance uses (`/cipherstore/<instance>/`).
    pub namespace: Vec<u8>,
    /// Longest wait for one request (an etcd without quorum answers nothing).
    pub request_timeout: Duration,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// TLS to the members (`https://` endpoints): a CA, and a client certificate if the
    /// members ask for one.
    pub tls: Option<EtcdTls>,
}

/// PEM files of etcd over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA the members' certificates chain to.
    pub ca_file: std::path::PathBuf,
    /// This gateway's client certificate and key (etcd's `--client-cert-auth`).
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl EtcdTls {
    fn options(&self) -> Result<TlsOptions, KvError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| KvError::Refused(format!("cannot read {}: {e}", p.display())))
        };
        let mut options = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&self.ca_file)?));
        if let Some((cert, key)) = &self.client {
            let key = zeroize::Zeroizing::new(read(key)?);
            options = options.identity(Identity::from_pem(read(cert)?, key.as_slice()));
        }
        Ok(options)
    }
}

impl EtcdConfig {
    /// Defaults for `endpoints`: namespace `/cipherstore/default/`, 5 s per request, 3 s to connect.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            namespace: b"/cipherstore/default/".to_vec(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            tls: None,
        }
    }
}

/// Tries per request (members are picked in turn, so a dead one is passed over).
pub const ATTEMPTS: usize = 4;

/// Pause before each retry: a leader election after a member returns takes a moment, and
/// retries sent at once would all meet it. About 0.7 s in all.
const BACKOFF: [Duration; ATTEMPTS - 1] =
    [Duration::from_millis(50), Duration::from_millis(200), Duration::from_millis(450)];

/// Why a request failed, and whether trying again is safe.
struct Failure {
    error: KvError,
    /// The request never left the client (no connection): a retry cannot apply it twice.
    unsent: bool,
}

/// An etcd cluster as a [`Kv`].
pub struct EtcdKv {
    client: Client,
    namespace: Vec<u8>,
}

fn error(e: etcd_client::Error) -> KvError {
    failure(e).error
}

fn failure(e: etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    let unsent = match &e {
        E::TransportError(_) => true,
        // No connection, or a member without a leader, which refuses before proposing.
        E::GRpcStatus(s) => {
            s.code() == Code::Unavailable
                && (s.message().contains("connect") || s.message().contains("etcdserver: no leader"))
        }
        _ => false,
    };
    let error = match &e {
        E::TransportError(_) | E::IoError(_) => KvError::Unavailable(e.to_string()),
        E::GRpcStatus(s) => match s.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                KvError::Unavailable(s.message().to_owned())
            }
            // "etcdserver: mvcc: database space exceeded": the quota is reached.
            Code::ResourceExhausted => KvError::Full(s.message().to_owned()),
            _ => KvError::Refused(s.message().to_owned()),
        },
        _ => KvError::Refused(e.to_string()),
    };
    Failure { error, unsent }
}

/// Runs `request` until it succeeds, fails for good, or [`ATTEMPTS`] are spent, pausing
/// ([`BACKOFF`]) between tries; `idempotent` requests are retried after any unavailability,
/// others only when they were not sent.
async fn retrying<T, F, Fut>(idempotent: bool, mut request: F) -> Result<T, KvError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match request().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let f = failure(e);
                let retry = matches!(f.error, KvError::Unavailable(_)) && (f.unsent || idempotent);
                if !retry || attempt >= ATTEMPTS {
                    return Err(f.error);
                }
                tokio::time::sleep(BACKOFF[attempt - 1]).await;
            }
        }
    }
}

impl EtcdKv {
    /// Connects to the cluster.
    pub async fn connect(config: &EtcdConfig) -> Result<Self, KvError> {
        let options = ConnectOptions::new()
            .with_timeout(config.request_timeout)
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let options = match &config.tls {
            Some(tls) => options.with_tls(tls.options()?),
            None => options,
        };
        let client = Client::connect(&config.endpoints, Some(options)).await.map_err(error)?;
        Ok(Self { client, namespace: config.namespace.clone() })
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        [self.namespace.as_slice(), key].concat()
    }

    /// The end of a range in the namespace (`[0]`, "to the end", stays inside it).
    fn end(&self, end: &[u8]) -> Vec<u8> {
        if end == [0] { prefix_end(&self.namespace) } else { self.key(end) }
    }

    fn entry(&self, kv: &etcd_client::KeyValue) -> Entry {
        Entry {
            key: kv.key().strip_prefix(self.namespace.as_slice()).unwrap_or(kv.key()).to_vec(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        }
    }
}

/// The largest answer taken from etcd: a page of 1,000 object entries carries the stored
/// bytes of those kept inline (up to 16 KiB each), far beyond gRPC's default 4 MiB.
const MAX_RESPONSE: usize = 256 << 20;

#[async_trait::async_trait]
impl Kv for EtcdKv {
    async fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Page, KvError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let options = GetOptions::new().with_range(self.end(end)).with_limit(limit);
        let key = self.key(start);
        requests::KV_RANGE.add(1);
        let response = retrying(true, || {
            let (key, options) = (key.clone(), options.clone());
            let mut kv = self.client.kv_client().max_decoding_message_size(MAX_RESPONSE);
            async move { kv.get(key, Some(options)).await }
        })
        .await?;
        Ok(Page {
            entries: response.kvs().iter().map(|kv| self.entry(kv)).collect(),
            more: response.more(),
            revision: response.header().map_or(0, |h| h.revision()),
        })
    }

    async fn txn(&self, txn: Txn) -> Result<Option<i64>, KvError> {
        let compares: Vec<EtcdCompare> = txn
            .compares
            .iter()
            .map(|c| match c {
                Compare::Revision(k, r) => EtcdCompare::mod_revision(self.key(k), CompareOp::Equal, *r),
                Compare::Absent(k) => EtcdCompare::create_revision(self.key(k), CompareOp::Equal, 0),
                Compare::Present(k) => EtcdCompare::create_revision(self.key(k), CompareOp::Greater, 0),
            })
            .collect();
        let ops: Vec<TxnOp> = txn
            .ops
            .iter()
            .map(|o| match o {
                Op::Put(k, v) => TxnOp::put(self.key(k), v.clone(), None),
                Op::Delete(k) => TxnOp::delete(self.key(k), None),
                Op::DeleteRange(s, e) => {
                    TxnOp::delete(self.key(s), Some(DeleteOptions::new().with_range(self.end(e))))
                }
            })
            .collect();
        let request = etcd_client::Txn::new().when(compares).and_then(ops);
        requests::KV_TXN.add(1);
        let response = retrying(false, || {
            let request = request.clone();
            let mut kv = self.client.kv_client();
            async move { kv.txn(request).await }
        })
        .await?;
        Ok(response.succeeded().then(|| response.header().map_or(0, |h| h.revision())))
    }

    async fn watch(&self, prefix: &[u8], after: i64) -> Result<Watch, KvError> {
        let mut options = WatchOptions::new().with_range(prefix_end(&self.key(prefix)));
        if after > 0 {
            options = options.with_start_revision(after + 1);
        }
        let mut stream = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE)
            .watch(self.key(prefix), Some(options))
            .await
            .map_err(error)?;
        let (tx, rx) = mpsc::channel(256);
        let namespace = self.namespace.clone();
        let task = tokio::spawn(async move {
            let strip = |k: &[u8]| k.strip_prefix(namespace.as_slice()).unwrap_or(k).to_vec();
            loop {
                let item = match stream.message().await {
                    Ok(Some(response)) if response.compact_revision() > 0 => {
                        Err(KvError::Compacted(response.compact_revision()))
                    }
                    Ok(Some(response)) if response.canceled() => {
                        Err(KvError::Unavailable("the watch was cancelled".into()))
                    }
                    Ok(Some(response)) => {
                        for event in response.events() {
                            let Some(kv) = event.kv() else { continue };
                            let event = match event.event_type() {
                                EventType::Put => Event::Put(Entry {
                                    key: strip(kv.key()),
                                    value: kv.value().to_vec(),
                                    mod_revision: kv.mod_revision(),
                                }),
                                EventType::Delete => Event::Delete(strip(kv.key()), kv.mod_revision()),
                            };
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    Ok(None) => Err(KvError::Unavailable("the watch stream ended".into())),
                    Err(e) => Err(error(e)),
                };
                let _ = tx.send(item).await;
                return;
            }
        });
        Ok(Watch { rx, task })
    }
}
