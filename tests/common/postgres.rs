//! A real PostgreSQL server on loopback for the tests: Debian's `postgresql-15` (installed by
//! scripts/test through `need_postgres`), one data directory made by `initdb` in a
//! temporary directory, a free port, stopped by PID when dropped (SIGINT: fast shutdown,
//! then SIGKILL). As root it runs as the `postgres` user (the server refuses root). With
//! TLS, only TLS connections are accepted (`hostssl` in pg_hba.conf).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster::kv::Kv;
use cluster::postgres::{PgConfig, PgKv};

use super::ports::free_port;

pub(crate) struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    process: Option<Child>,
    ca: Option<PathBuf>,
}

/// The newest PostgreSQL server binaries installed (`/usr/lib/postgresql/N/bin`).
pub(crate) fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
                .filter(|(_, p): &(u32, PathBuf)| p.join("postgres").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, p)| p).expect("no PostgreSQL server: install postgresql-15 (scripts/test does)")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program` as the server's user (`setpriv` execs it: the child's PID is the server's).
fn command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "postgres", "--regid", "postgres", "--init-groups", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// Starts a server and waits until it answers.
    pub(crate) async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Starts a server that accepts TLS connections only; [`Postgres::config`] names its CA.
    pub(crate) async fn start_tls() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            let status =
                Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success());
        }
        let status = command(&bin_dir().join("initdb"))
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-instructions", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let ca = tls.then(|| Self::make_certs(dir.path(), &data));
        let mut pg = Self { dir, port: free_port(), process: None, ca };
        pg.spawn();
        pg.wait_ready().await;
        pg
    }

    /// A CA and a server certificate for 127.0.0.1 (the key readable by its owner only);
    /// pg_hba.conf then admits TLS connections only.
    fn make_certs(dir: &Path, data: &Path) -> PathBuf {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        use std::os::unix::fs::PermissionsExt;
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert =
            CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
        std::fs::write(data.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(data.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
            .unwrap();
        if is_root() {
            for f in ["server.crt", "server.key", "pg_hba.conf"] {
                let status =
                    Command::new("chown").arg("postgres:postgres").arg(data.join(f)).status().unwrap();
                assert!(status.success());
            }
        }
        dir.join("ca.pem")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("postgres.log")).unwrap();
        let mut c = command(&bin_dir().join("postgres"));
        c.arg("-D").arg(self.dir.path().join("data")).arg("-k").arg(self.dir.path());
        c.args([
            "-p",
            &self.port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
        ]);
        if self.ca.is_some() {
            c.args(["-c", "ssl=on"]);
        }
        let child = c.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        self.process = Some(child);
    }

    /// Runs `sql` as the superuser through psql (over the server's socket).
    pub(crate) fn psql(&self, sql: &str) {
        let status = command(&bin_dir().join("psql"))
            .arg("-h")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"])
            .args(["-qc", sql])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "psql: {sql}");
    }

    /// The server's URL.
    pub(crate) fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A client configuration for tables in `schema`.
    pub(crate) fn config(&self, schema: &str) -> PgConfig {
        let mut c = PgConfig::new(self.url());
        c.schema = schema.to_owned();
        c.request_timeout = Duration::from_secs(2);
        c.connect_timeout = Duration::from_secs(2);
        c.ca_file = self.ca.clone();
        c
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(kv) = PgKv::connect(&self.config("ready")).await
                && kv.range(b"", &[0], 1).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not become ready; log in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the server at once (SIGKILL: no shutdown checkpoint, as a crash).
    pub(crate) fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        // The postmaster's children end when they notice it is gone; a new postmaster waits
        // for the old shared memory to be released.
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Starts the server again on its data and waits until it answers.
    pub(crate) async fn restart(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            // SIGINT is PostgreSQL's fast shutdown; a server that ignores it is killed.
            let _ = Command::new("kill").args(["-INT", &p.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = p.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}
