//! A remote key service as a gateway's key custody ([`RemoteKeys`], `[keys.service]`): the
//! gateway holds no PKCS#11 module and no PIN, only an API key. It gets a bearer token at
//! the service's `/identity/token` (again before it expires, and once more after a 401),
//! and asks the service's bucket key routes (docs/KEYS.md) for what [`KeySource`] needs:
//! the service's own `KeyManager` answers, so registrations, Object Lock retention and the
//! key states stay in one place. Bucket keys it receives are cached for the TTL (a key
//! disabled or deleted at the service stops working here within it), so a bucket costs one
//! call per TTL, and the service one HSM call per bucket and its own TTL.
//!
//! HTTPS only (the CA given), keep-alive connections reused, calls made on the runtime the
//! client was made in (`cluster::Bridge`), since the key layer is synchronous.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use zeroize::Zeroizing;

use super::cache::BucketKeyCache;
use super::error::KeysError;
use super::id::{KeyId, KeyRef};
use super::manager::KeyMetrics;
use super::source::KeySource;
use cluster::bridge::Bridge;
use engine::SecretKey;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A token is renewed when it has less than this left.
const RENEW_BEFORE: u64 = 300;
/// Connections kept for reuse.
const IDLE_CONNECTIONS: usize = 16;

/// Where the key service is and how to reach it.
#[derive(Clone)]
pub struct RemoteConfig {
    /// `https://HOST:PORT` of the key service.
    pub url: String,
    /// The API key (from `cipherstore iam apikey create … --role writer` on the service).
    pub apikey: Zeroizing<String>,
    /// The instance the service serves (`Bluemix-Instance`).
    pub instance: String,
    /// PEM file of the CA (or certificate) the service's certificate chains to.
    pub ca: PathBuf,
    /// How long a bucket key is cached here.
    pub cache_ttl: Duration,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &self.url)
            .field("apikey", &"<redacted>")
            .field("instance", &self.instance)
            .field("ca", &self.ca)
            .finish()
    }
}

type Conn = SendRequest<Full<Bytes>>;

/// The key service, as a gateway's [`KeySource`].
pub struct RemoteKeys {
    url: String,
    host: String,
    port: u16,
    tls: TlsConnector,
    apikey: Zeroizing<String>,
    instance: String,
    bridge: Bridge,
    idle: Mutex<Vec<Conn>>,
    token: Mutex<Option<(Zeroizing<String>, u64)>>,
    cache: BucketKeyCache,
    /// Root key CRNs by how requests named them, with when they were asked.
    crns: Mutex<HashMap<String, (String, Instant)>>,
    ttl: Duration,
    calls: AtomicU64,
    failures: AtomicU64,
}

fn config_error(what: impl Into<String>) -> KeysError {
    KeysError::Config(what.into())
}

/// An answer of the service: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["resources"][0]["reasons"][0]["code"].as_str().unwrap_or("")
    }

    fn message(&self) -> String {
        let m = self.body["resources"][0]["reasons"][0]["message"].as_str();
        m.or_else(|| self.body["errorMessage"].as_str()).unwrap_or("no message").chars().take(300).collect()
    }
}

impl RemoteKeys {
    /// Connects (call inside the tokio runtime the gateway runs on) and gets a first
    /// token, so a wrong URL, CA, instance or API key stops start-up with a clear error.
    pub fn connect(config: RemoteConfig) -> Result<Self, KeysError> {
        let rest = config
            .url
            .strip_prefix("https://")
            .ok_or_else(|| {
                config_error(format!("the key service URL {:?} must be https://HOST:PORT", config.url))
            })?
            .trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| config_error(format!("the key service URL {:?} must name a port", config.url)))?;
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&config.ca).map_err(|e| {
            config_error(format!("cannot read the key service CA {}: {e}", config.ca.display()))
        })?;
        for cert in certs {
            let cert =
                cert.map_err(|e| config_error(format!("the key service CA {}: {e}", config.ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| config_error(format!("the key service CA {}: {e}", config.ca.display())))?;
        }
        let mut tls = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let bridge = Bridge::current()
            .ok_or_else(|| config_error("the key service client must be made inside the server's runtime"))?;
        let me = Self {
            url: config.url.trim_end_matches('/').to_owned(),
            host,
            port,
            tls: TlsConnector::from(std::sync::Arc::new(tls)),
            apikey: config.apikey,
            instance: config.instance,
            bridge,
            idle: Mutex::new(Vec::new()),
            token: Mutex::new(None),
            cache: BucketKeyCache::new(config.cache_ttl),
            crns: Mutex::new(HashMap::new()),
            ttl: config.cache_ttl,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        };
        me.bridge.wait(me.fresh_token())?;
        Ok(me)
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> KeysError {
        KeysError::Unavailable(format!("the key service at {}: {why}", self.url))
    }

    async fn connection(&self) -> Result<Conn, KeysError> {
        let reused = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        if let Some(c) = reused.filter(|c| !c.is_closed()) {
            return Ok(c);
        }
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.unavailable(format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let name = match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(self.host.clone()).map_err(|e| self.unavailable(e))?,
        };
        let tls = self.tls.connect(name, tcp).await.map_err(|e| self.unavailable(format!("TLS: {e}")))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.unavailable(e))?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// One request and its answer (connection errors as [`KeysError::Unavailable`]).
    async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Bytes,
        form: bool,
    ) -> Result<Answer, KeysError> {
        let mut conn = self.connection().await?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{}:{}", self.host, self.port))
            .header("bluemix-instance", &self.instance)
            .header("accept", "application/json");
        req = req.header(
            "content-type",
            if form { "application/x-www-form-urlencoded" } else { "application/json" },
        );
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let req = req.body(Full::new(body)).map_err(|e| self.unavailable(e))?;
        let call = async {
            conn.ready().await.map_err(|e| self.unavailable(e))?;
            let resp = conn.send_request(req).await.map_err(|e| self.unavailable(e))?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.map_err(|e| self.unavailable(e))?.to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            Ok::<_, KeysError>(Answer { status, body })
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| self.unavailable("no answer in 30 s"))??;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(conn);
        }
        Ok(answer)
    }

    /// A new token from the API key.
    async fn fresh_token(&self) -> Result<Zeroizing<String>, KeysError> {
        let form = Zeroizing::new(format!(
            "grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey={}",
            self.apikey.as_str()
        ));
        let a =
            self.send("POST", "/identity/token", None, Bytes::from(form.as_bytes().to_vec()), true).await?;
        if a.status != 200 {
            return Err(config_error(format!(
                "the key service at {} refused this gateway's API key ({}): {}",
                self.url,
                a.status,
                a.message()
            )));
        }
        let token = Zeroizing::new(a.body["access_token"].as_str().unwrap_or("").to_owned());
        let expires = a.body["expiration"].as_u64().unwrap_or(0);
        if token.is_empty() {
            return Err(self.unavailable("the token answer has no access_token"));
        }
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some((token.clone(), expires));
        Ok(token)
    }

    async fn bearer(&self) -> Result<Zeroizing<String>, KeysError> {
        let now = base::clock::now_unix();
        let held = self.token.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match held {
            Some((t, exp)) if exp > now + RENEW_BEFORE => Ok(t),
            _ => self.fresh_token().await,
        }
    }

    /// Calls the service with a token (renewed once after a 401); refusals become the
    /// `KeysError`s a local manager would return (`subject`: the key or bucket asked about).
    fn call(&self, method: &str, path: &str, body: Option<Value>, subject: &str) -> Result<Value, KeysError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let bytes = Bytes::from(body.map(|b| b.to_string()).unwrap_or_default());
        let answer = self.bridge.wait(async {
            let token = self.bearer().await?;
            let a = self
                .send(method, path, Some(&format!("Bearer {}", token.as_str())), bytes.clone(), false)
                .await?;
            if a.status != 401 {
                return Ok(a);
            }
            let token = self.fresh_token().await?;
            self.send(method, path, Some(&format!("Bearer {}", token.as_str())), bytes, false).await
        });
        let a = match answer {
            Ok(a) => a,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        if (200..300).contains(&a.status) {
            return Ok(a.body);
        }
        if a.status >= 500 {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        Err(match (a.status, a.code()) {
            (404, "KEY_NOT_FOUND_ERR") => KeysError::KeyNotFound(subject.to_owned()),
            (404, "BUCKET_KEY_NOT_FOUND_ERR") => KeysError::BucketNotFound(subject.to_owned()),
            (409, "BUCKET_KEY_EXISTS_ERR") => KeysError::BucketExists(subject.to_owned()),
            (409, "KEY_ACTION_INVALID_STATE_ERR") => KeysError::KeySuspended(subject.to_owned()),
            (410, _) => KeysError::KeyDestroyed(subject.to_owned()),
            (409, "PREV_KEY_DEL_ERR") => KeysError::Retained { id: subject.to_owned(), buckets: vec![] },
            (422, _) => KeysError::UnwrapFailed(subject.to_owned()),
            (401 | 403, _) => config_error(format!(
                "the key service at {} refused this gateway ({}): {}",
                self.url,
                a.status,
                a.message()
            )),
            (s, _) if s >= 500 => self.unavailable(a.message()),
            _ => KeysError::Refused(a.message()),
        })
    }

    /// Any call of the service's API (`path` with its query), its JSON answer (`Null` for
    /// none); refusals as [`KeysError`] naming `subject` (for `cipherstore keys --service`).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        subject: &str,
    ) -> Result<Value, KeysError> {
        self.call(method, path, body, subject)
    }

    /// `text` as one path segment (percent-encoded but for unreserved characters).
    pub fn segment(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    fn path_of(bucket: &str) -> String {
        format!("/api/v2/bucket_keys/{}", Self::segment(bucket))
    }

    fn key_of(answer: &Value) -> Result<(SecretKey, String), KeysError> {
        let bad =
            || KeysError::Unavailable("the key service answered a bucket key that is not 32 bytes".into());
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(answer["bucketKey"].as_str().unwrap_or(""))
                .map_err(|_| bad())?,
        );
        let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| bad())?;
        Ok((SecretKey::from_bytes(arr), answer["keyCrn"].as_str().unwrap_or("").to_owned()))
    }

    fn cached(&self, bucket: &str, root: &KeyRef) -> Option<SecretKey> {
        match root {
            KeyRef::Id(id) => self.cache.get(bucket, id),
            KeyRef::Name(_) => None,
        }
    }

    /// Asks the service's bucket key route (`body`: which key, which mode) and caches
    /// what it answers.
    fn fetch(&self, bucket: &str, body: Value) -> Result<SecretKey, KeysError> {
        let (key, crn) = Self::key_of(&self.call("POST", &Self::path_of(bucket), Some(body), bucket)?)?;
        if let Some(id) = KeyId::parse(&crn) {
            self.cache.insert(bucket, &id, key.clone());
        }
        Ok(key)
    }
}

impl KeySource for RemoteKeys {
    fn crn_of(&self, key: &KeyRef) -> Result<String, KeysError> {
        let named = key.to_string();
        if let Some((crn, at)) = self.crns.lock().unwrap_or_else(PoisonError::into_inner).get(&named)
            && at.elapsed() < self.ttl
        {
            return Ok(crn.clone());
        }
        let path = format!("/api/v2/keys/{}/metadata", Self::segment(&key.to_string()));
        let v = self.call("GET", &path, None, &key.to_string())?;
        let crn = v["resources"][0]["crn"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.unavailable("no crn in the key's metadata"))?;
        let mut crns = self.crns.lock().unwrap_or_else(PoisonError::into_inner);
        if crns.len() > 10_000 {
            crns.clear();
        }
        crns.insert(named, (crn.clone(), Instant::now()));
        Ok(crn)
    }

    fn default_key(&self) -> Result<String, KeysError> {
        let v = self.call("GET", "/api/v2/default_key", None, "the instance default key")?;
        v["keyCrn"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.unavailable("no keyCrn in the default key answer"))
    }

    fn bucket_key(&self, bucket: &str, root: &KeyRef) -> Result<SecretKey, KeysError> {
        match self.cached(bucket, root) {
            Some(k) => Ok(k),
            None => self.fetch(bucket, json!({"key": root.to_string(), "mode": "read"})),
        }
    }

    fn bucket_key_for_write(
        &self,
        bucket: &str,
        root: &KeyRef,
        retain: bool,
    ) -> Result<SecretKey, KeysError> {
        match self.cached(bucket, root) {
            Some(k) => Ok(k),
            None => self.fetch(bucket, json!({"key": root.to_string(), "mode": "write", "retain": retain})),
        }
    }

    fn create_bucket_key(&self, bucket: &str, root: &KeyRef) -> Result<(), KeysError> {
        self.fetch(bucket, json!({"key": root.to_string(), "mode": "create"})).map(|_| ())
    }

    fn bucket_root(&self, bucket: &str) -> Result<String, KeysError> {
        let v = self.call("GET", &format!("{}/root", Self::path_of(bucket)), None, bucket)?;
        v["keyCrn"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.unavailable("no keyCrn in the bucket root answer"))
    }

    fn retain_bucket(&self, bucket: &str) -> Result<(), KeysError> {
        self.call("PUT", &format!("{}/retention", Self::path_of(bucket)), None, bucket).map(|_| ())
    }

    fn remove_bucket_key(&self, bucket: &str) -> Result<(), KeysError> {
        self.cache.purge_bucket(bucket);
        self.call("DELETE", &Self::path_of(bucket), None, bucket).map(|_| ())
    }

    fn create_root(&self, name: &str) -> Result<String, KeysError> {
        let body = json!({"resources": [{"type": "application/vnd.ibm.kms.key+json", "name": name, "extractable": false}]});
        let v = self.call("POST", "/api/v2/keys", Some(body), name)?;
        v["resources"][0]["crn"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.unavailable("no crn in the created key"))
    }

    fn metrics(&self) -> KeyMetrics {
        KeyMetrics {
            cache_hits: self.cache.hits(),
            cache_misses: self.cache.misses(),
            remote: true,
            service_calls: self.calls.load(Ordering::Relaxed),
            service_failures: self.failures.load(Ordering::Relaxed),
            ..KeyMetrics::default()
        }
    }

    fn describe(&self) -> String {
        format!("the key service at {} (instance {:?}); no HSM on this gateway", self.url, self.instance)
    }
}
