//! Real etcd clusters on loopback for the tests: `members` processes of Debian's
//! `etcd-server` (installed by scripts/test), each with its own data directory and free
//! ports, stopped by PID when dropped. A member can be stopped and started again.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster::etcd::{EtcdConfig, EtcdKv, EtcdTls};
use cluster::kv::Kv;

use super::ports::free_port;

pub(crate) struct Etcd {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    cluster: String,
    /// Serving clients over TLS with client certificates required.
    tls: Option<EtcdTls>,
    /// `--quota-backend-bytes`, if not etcd's default.
    quota: Option<u64>,
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    process: Option<Child>,
}

impl Etcd {
    /// Starts a cluster of `members` and waits until it answers.
    pub(crate) async fn start(members: usize) -> Self {
        Self::start_with(members, false).await
    }

    /// Starts a cluster whose members serve clients over TLS only and require a client
    /// certificate; [`Etcd::config`] carries the CA and a client certificate.
    pub(crate) async fn start_tls(members: usize) -> Self {
        Self::start_with(members, true).await
    }

    /// Starts one member whose database may grow to `bytes` only (`--quota-backend-bytes`).
    pub(crate) async fn start_with_quota(bytes: u64) -> Self {
        let mut etcd = Self::prepare(1, false);
        etcd.quota = Some(bytes);
        etcd.spawn(0);
        etcd.wait_ready().await;
        etcd
    }

    /// The files of a test CA, a member certificate for 127.0.0.1 and a client certificate.
    fn make_certs(dir: &std::path::Path) -> EtcdTls {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        for name in ["server", "client"] {
            let key = KeyPair::generate().unwrap();
            let cert =
                CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        EtcdTls {
            ca_file: dir.join("ca.pem"),
            client: Some((dir.join("client.pem"), dir.join("client.key"))),
        }
    }

    async fn start_with(members: usize, tls: bool) -> Self {
        let mut etcd = Self::prepare(members, tls);
        for i in 0..etcd.members.len() {
            etcd.spawn(i);
        }
        etcd.wait_ready().await;
        etcd
    }

    fn prepare(members: usize, tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls = tls.then(|| Self::make_certs(dir.path()));
        let members: Vec<Member> = (0..members)
            .map(|i| Member { name: format!("m{i}"), client: free_port(), peer: free_port(), process: None })
            .collect();
        let cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        Self { dir, members, cluster, tls, quota: None }
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    fn spawn(&mut self, i: usize) {
        let data = self.data_dir(i);
        let log =
            std::fs::File::create(self.dir.path().join(format!("{}.log", self.members[i].name))).unwrap();
        let m = &self.members[i];
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let mut etcd = Command::new("etcd");
        if let Some(bytes) = self.quota {
            etcd.arg("--quota-backend-bytes").arg(bytes.to_string());
        }
        if self.tls.is_some() {
            let d = self.dir.path();
            etcd.arg("--cert-file").arg(d.join("server.pem")).arg("--key-file").arg(d.join("server.key"));
            etcd.arg("--trusted-ca-file").arg(d.join("ca.pem")).arg("--client-cert-auth");
        }
        let child = etcd
            .args(["--name", &m.name, "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.cluster, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "cipherstore-test", "--log-level", "warn"])
            // As docs/CONFIGURATION.md asks of the cluster store's etcd: completing a
            // multipart upload is one transaction over all its parts.
            .args(["--max-txn-ops", "25000", "--max-request-bytes", "4194304"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd ({e}): install etcd-server (scripts/test does)"));
        self.members[i].process = Some(child);
    }

    /// Every member's client URL.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members.iter().map(|m| format!("{scheme}://127.0.0.1:{}", m.client)).collect()
    }

    /// A client configuration for the whole cluster under `namespace`.
    pub(crate) fn config(&self, namespace: &str) -> EtcdConfig {
        let mut c = EtcdConfig::new(self.endpoints());
        c.namespace = namespace.as_bytes().to_vec();
        c.request_timeout = Duration::from_secs(2);
        c.connect_timeout = Duration::from_secs(2);
        c.tls = self.tls.clone();
        c
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(kv) = EtcdKv::connect(&self.config("/ready/")).await
                && kv.range(b"", &[0], 1).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become ready; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops member `i` (SIGKILL).
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    /// Starts member `i` again on its data and waits until the cluster answers.
    pub(crate) async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready().await;
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
