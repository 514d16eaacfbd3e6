//! [`Kv`] on PostgreSQL (docs/SCALE-OUT.md §9): a namespace's records are one table in a
//! schema of its own, the key (`bytea`, which sorts in byte order) its primary key, so a
//! range read is one index scan.
//!
//! - **Revisions are transaction ids.** A transaction takes an advisory lock per key it
//!   writes, and a shared one per key it only compares (in one order, so two never wait
//!   on each other in a cycle; writers into one bucket share the lock of its record), checks its
//!   compares, and only then writes; its first write gives it its PostgreSQL transaction id
//!   (`pg_current_xact_id()`), which becomes the revision of every key it sets. Anyone else
//!   touching those keys waits for the locks, so a key's revisions grow in the order its
//!   changes commit, and compares hold exactly as etcd's do. The whole transaction is one
//!   call of a server-side function ([`SCHEMA`]): one round trip, one commit.
//! - **Watches read a change log, not NOTIFY.** Puts are found by the revision index of the
//!   table itself, deletes in a log of deleted keys kept for [`PgConfig::retention`]. A
//!   poll delivers the changes below the snapshot's `xmin` (every transaction below it has
//!   ended, so nothing below can still appear) and moves its cursor there. The cursor is a
//!   number, so a poll after a lost connection, or against the standby Patroni promoted,
//!   continues where the last one ended. An event carries its key's state when it is read
//!   (a key changed twice between polls shows its latest value once), and a change already
//!   seen by the range read a watch starts from may come again: followers keep the newest
//!   revision per key. A watch that fell behind the delete log's retention ends with
//!   [`KvError::Compacted`].
//! - **Connections** come from a pool (`deadpool-postgres`) over `tokio-postgres`; the URL
//!   may list several hosts, and only a read-write one is used (`target_session_attrs`), so
//!   after a failover new connections find the new primary. TLS with a CA file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::config::{SslMode, TargetSessionAttrs};
use tokio_postgres::error::SqlState;

use super::kv::{Compare, Entry, Event, Kv, KvError, Op, Page, Txn, Watch, prefix_end};
use super::requests;

/// How a PostgreSQL service is reached.
#[derive(Clone)]
pub struct PgConfig {
    /// A libpq connection URL (`postgresql://user:password@host1:5432,host2:5432/db`); the
    /// password, if any, stays out of logs and errors.
    pub url: String,
    /// The password, when it is kept out of the URL (`store.postgres.password_file`).
    pub password: Option<zeroize::Zeroizing<String>>,
    /// The schema this instance's tables live in (letters, digits, `_`).
    pub schema: String,
    /// PEM file the servers' certificates chain to: connections then require TLS.
    pub ca_file: Option<PathBuf>,
    /// Most connections held open.
    pub pool_size: usize,
    /// Longest wait for one request, connection included.
    pub request_timeout: Duration,
    /// Longest wait for a new connection.
    pub connect_timeout: Duration,
    /// Pause between a watch's polls.
    pub poll: Duration,
    /// How long deleted keys stay in the change log: a watch away longer must read again.
    pub retention: Duration,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("hosts", &hosts(&self.url))
            .field("schema", &self.schema)
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// Defaults for `url`: schema `cipherstore`, 16 connections, 5 s per request, 3 s to
    /// connect, polls every 50 ms, deletes kept 15 minutes.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            schema: "cipherstore".into(),
            ca_file: None,
            pool_size: 16,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            poll: Duration::from_millis(50),
            retention: Duration::from_secs(15 * 60),
        }
    }
}

/// The hosts a URL names, without user or password (for messages).
pub fn hosts(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(c) => {
            let ports = c.get_ports();
            c.get_hosts()
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let host = match h {
                        tokio_postgres::config::Host::Tcp(h) => h.clone(),
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                    };
                    let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                    format!("{host}:{port}")
                })
                .collect::<Vec<_>>()
                .join(",")
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// The schema's layout version this build writes and reads.
const LAYOUT: i32 = 1;

/// Tables and the transaction function, created when missing (under an advisory lock, so
/// gateways starting together do not race). `{s}` is the quoted schema name.
const SCHEMA: &str = r#"
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.kv (key bytea PRIMARY KEY, value bytea NOT NULL, rev bigint NOT NULL);
ALTER TABLE {s}.kv ALTER COLUMN value SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS kv_rev ON {s}.kv (rev);
CREATE TABLE IF NOT EXISTS {s}.deleted (rev bigint NOT NULL, key bytea NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS deleted_rev ON {s}.deleted (rev);
CREATE TABLE IF NOT EXISTS {s}.meta (one boolean PRIMARY KEY DEFAULT true CHECK (one), layout int NOT NULL, compacted bigint NOT NULL);
INSERT INTO {s}.meta (layout, compacted) VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION {s}.txn(
    locks bigint[], exclusive boolean[], c_kind smallint[], c_key bytea[], c_rev bigint[],
    o_kind smallint[], o_key bytea[], o_value bytea[], o_end bytea[]) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    i int;
    found_rev bigint;
    this_rev bigint;
BEGIN
    FOR i IN 1 .. coalesce(array_length(locks, 1), 0) LOOP
        IF exclusive[i] THEN
            PERFORM pg_advisory_xact_lock(locks[i]);
        ELSE
            PERFORM pg_advisory_xact_lock_shared(locks[i]);
        END IF;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(c_kind, 1), 0) LOOP
        SELECT k.rev INTO found_rev FROM {s}.kv k WHERE k.key = c_key[i];
        IF NOT FOUND THEN found_rev := NULL; END IF;
        IF (c_kind[i] = 0 AND coalesce(found_rev, 0) <> c_rev[i])
           OR (c_kind[i] = 1 AND found_rev IS NOT NULL)
           OR (c_kind[i] = 2 AND found_rev IS NULL) THEN
            RETURN NULL;
        END IF;
    END LOOP;
    this_rev := pg_current_xact_id()::text::bigint;
    FOR i IN 1 .. coalesce(array_length(o_kind, 1), 0) LOOP
        IF o_kind[i] = 0 THEN
            INSERT INTO {s}.kv AS k (key, value, rev) VALUES (o_key[i], o_value[i], this_rev)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, rev = excluded.rev;
        ELSIF o_kind[i] = 1 THEN
            WITH d AS (DELETE FROM {s}.kv k WHERE k.key = o_key[i] RETURNING k.key)
                INSERT INTO {s}.deleted (rev, key) SELECT this_rev, d.key FROM d;
        ELSE
            WITH d AS (DELETE FROM {s}.kv k WHERE k.key >= o_key[i] AND (o_end[i] IS NULL OR k.key < o_end[i]) RETURNING k.key)
                INSERT INTO {s}.deleted (rev, key) SELECT this_rev, d.key FROM d;
        END IF;
    END LOOP;
    RETURN this_rev;
END
$fn$;
"#;

/// The statements, with the schema filled in.
struct Sql {
    range: String,
    range_open: String,
    txn: String,
    now: String,
    poll: String,
    prune: String,
}

impl Sql {
    fn new(s: &str) -> Self {
        // The snapshot's xmin: every transaction below it has ended.
        let xmin = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
        let range = |bound: &str| {
            format!(
                "SELECT x.x, k.key, k.value, k.rev FROM (SELECT {xmin} AS x) x LEFT JOIN LATERAL \
                 (SELECT key, value, rev FROM {s}.kv WHERE key >= $1 {bound} ORDER BY key LIMIT $3) k ON true"
            )
        };
        Self {
            range: range("AND key < $2"),
            range_open: range("AND $2::bytea IS NULL"),
            txn: format!(
                "SELECT {s}.txn($1::bigint[], $2::boolean[], $3::smallint[], $4::bytea[], $5::bigint[], $6::smallint[], $7::bytea[], $8::bytea[], $9::bytea[])"
            ),
            now: format!("SELECT {xmin}"),
            poll: format!(
                "SELECT x.x, x.c, e.rev, e.key, e.value FROM \
                 (SELECT {xmin} AS x, (SELECT compacted FROM {s}.meta) AS c) x LEFT JOIN LATERAL \
                 (SELECT rev, key, value FROM {s}.kv WHERE rev > $1 AND rev < x.x AND key >= $2 AND key < $3 \
                  UNION ALL \
                  SELECT rev, key, NULL FROM {s}.deleted WHERE rev > $1 AND rev < x.x AND key >= $2 AND key < $3 \
                  ORDER BY 1, 2) e ON true"
            ),
            prune: format!(
                "WITH p AS (DELETE FROM {s}.deleted WHERE at < now() - make_interval(secs => $1) RETURNING rev) \
                 UPDATE {s}.meta SET compacted = greatest(compacted, (SELECT max(rev) FROM p)) \
                 WHERE EXISTS (SELECT 1 FROM p)"
            ),
        }
    }
}

/// A PostgreSQL service as a [`Kv`].
pub struct PgKv {
    pool: Pool,
    sql: Arc<Sql>,
    config: PgConfig,
    pruner: tokio::task::JoinHandle<()>,
}

impl Drop for PgKv {
    fn drop(&mut self) {
        self.pruner.abort();
    }
}

/// Why a request failed, and whether trying again is safe.
struct Failure {
    error: KvError,
    /// Nothing was applied: no connection, or the server refused before doing anything.
    unsent: bool,
}

fn db_failure(e: &tokio_postgres::Error) -> Failure {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let message = format!("{} ({})", db.message(), code.code());
        // Class 08 (connection), 57P0x (shutting down), 25006 (a standby: the primary
        // moved), 40001/40P01 (serialization, deadlock): nothing was applied.
        let retryable = code.code().starts_with("08")
            || code.code().starts_with("57P0")
            || *code == SqlState::READ_ONLY_SQL_TRANSACTION
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED;
        let error = if code.code().starts_with("53") {
            KvError::Full(message)
        } else if retryable {
            KvError::Unavailable(message)
        } else {
            KvError::Refused(message)
        };
        return Failure { error, unsent: retryable };
    }
    // No answer from the server: the connection broke (perhaps after the request left).
    Failure { error: KvError::Unavailable(format!("connection lost: {e}")), unsent: false }
}

fn pool_failure(e: PoolError) -> Failure {
    match e {
        PoolError::Backend(e) => {
            // The connection was never made: nothing can have been applied.
            Failure { unsent: true, ..db_failure(&e) }
        }
        other => Failure { error: KvError::Unavailable(other.to_string()), unsent: true },
    }
}

/// Tries per request.
const ATTEMPTS: usize = 4;
/// Pause before each retry (about 1.4 s in all: a Patroni switch takes longer, and is
/// answered 503 meanwhile).
const BACKOFF: [Duration; ATTEMPTS - 1] =
    [Duration::from_millis(100), Duration::from_millis(400), Duration::from_millis(900)];

/// The advisory lock of a key: FNV-1a, the same in every build and on every host.
fn lock_id(key: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Whether `schema` is a plain identifier (quoted as such in every statement).
fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit()
        && !schema.starts_with("pg_")
}

fn tls(ca: &std::path::Path) -> Result<tokio_postgres_rustls::MakeRustlsConnect, KvError> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let refuse =
        |e: &dyn std::fmt::Display| KvError::Refused(format!("the PostgreSQL CA {}: {e}", ca.display()));
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| refuse(&e))? {
        roots.add(cert.map_err(|e| refuse(&e))?).map_err(|e| refuse(&e))?;
    }
    let config =
        tokio_rustls::rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgKv {
    /// Connects, and creates the schema's tables if they are missing.
    pub async fn connect(config: &PgConfig) -> Result<Self, KvError> {
        if !valid_schema(&config.schema) {
            return Err(KvError::Refused(format!(
                "PostgreSQL schema {:?}: 1 to 63 lower-case letters, digits and '_', not starting with a digit or pg_",
                config.schema
            )));
        }
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
            KvError::Refused(format!("the PostgreSQL URL is not a libpq connection string or URL: {e}"))
        })?;
        if let Some(password) = &config.password {
            pg.password(password.as_bytes());
        }
        pg.target_session_attrs(TargetSessionAttrs::ReadWrite)
            .connect_timeout(config.connect_timeout)
            .keepalives_idle(Duration::from_secs(10))
            .application_name("cipherstore");
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match &config.ca_file {
            Some(ca) => {
                pg.ssl_mode(SslMode::Require);
                Manager::from_config(pg, tls(ca)?, manager_config)
            }
            None => {
                if pg.get_ssl_mode() == SslMode::Require {
                    return Err(KvError::Refused(
                        "the PostgreSQL URL asks for TLS (sslmode=require): name the CA its certificate chains to".into(),
                    ));
                }
                pg.ssl_mode(SslMode::Disable);
                Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.request_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| KvError::Refused(format!("cannot set up the PostgreSQL pool: {e}")))?;
        let quoted = format!("\"{}\"", config.schema);
        install(&pool, &quoted).await?;
        let sql = Arc::new(Sql::new(&quoted));
        let pruner = tokio::spawn(prune_loop(pool.clone(), sql.clone(), config.retention));
        Ok(Self { pool, sql, config: config.clone(), pruner })
    }

    /// Runs `request` on a pooled connection until it succeeds, fails for good, or
    /// [`ATTEMPTS`] are spent; `idempotent` requests are retried after any
    /// unavailability, others only when nothing was applied.
    async fn retrying<T, F, Fut>(&self, idempotent: bool, mut request: F) -> Result<T, KvError>
    where
        F: FnMut(deadpool_postgres::Object) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let once = async {
                let client = self.pool.get().await.map_err(pool_failure)?;
                request(client).await.map_err(|e| db_failure(&e))
            };
            let failure = match tokio::time::timeout(self.config.request_timeout, once).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(f)) => f,
                Err(_) => Failure {
                    error: KvError::Unavailable(format!(
                        "no answer from PostgreSQL ({}) within {:?}",
                        hosts(&self.config.url),
                        self.config.request_timeout
                    )),
                    unsent: false,
                },
            };
            let retry = matches!(failure.error, KvError::Unavailable(_)) && (failure.unsent || idempotent);
            if !retry || attempt >= ATTEMPTS {
                return Err(failure.error);
            }
            tokio::time::sleep(BACKOFF[attempt - 1]).await;
        }
    }
}

/// Creates what is missing and checks the layout version.
async fn install(pool: &Pool, quoted: &str) -> Result<(), KvError> {
    let mut client = pool.get().await.map_err(|e| pool_failure(e).error)?;
    let fail = |e: tokio_postgres::Error| db_failure(&e).error;
    let tx = client.transaction().await.map_err(fail)?;
    // One installer at a time per database (CREATE … IF NOT EXISTS races otherwise).
    tx.execute("SELECT pg_advisory_xact_lock(7236291746503117172)", &[]).await.map_err(fail)?;
    let exists = tx
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid \
             WHERE n.nspname = $1 AND c.relname = 'meta'",
            &[&quoted.trim_matches('"')],
        )
        .await
        .map_err(fail)?
        .is_some();
    if exists {
        let layout: i32 =
            tx.query_one(&format!("SELECT layout FROM {quoted}.meta"), &[]).await.map_err(fail)?.get(0);
        if layout > LAYOUT {
            return Err(KvError::Refused(format!(
                "schema {quoted} holds layout {layout}, written by a newer cipherstore (this one reads {LAYOUT})"
            )));
        }
    } else {
        tx.batch_execute(&SCHEMA.replace("{s}", quoted)).await.map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}

/// Drops deleted keys older than `retention` from the change log, once a minute, and
/// records the newest revision dropped (a watch behind it must read again).
async fn prune_loop(pool: Pool, sql: Arc<Sql>, retention: Duration) {
    let secs = retention.as_secs_f64();
    loop {
        tokio::time::sleep(Duration::from_secs(60).min(retention).max(Duration::from_secs(1))).await;
        let Ok(client) = pool.get().await else { continue };
        if let Err(e) = client.execute(&sql.prune, &[&secs]).await {
            tracing::debug!(error = %db_failure(&e).error, "pruning the metadata change log failed");
        }
    }
}

fn entry(row: &tokio_postgres::Row) -> Result<Option<Entry>, tokio_postgres::Error> {
    let key: Option<Vec<u8>> = row.try_get(1)?;
    let Some(key) = key else { return Ok(None) };
    Ok(Some(Entry { key, value: row.try_get(2)?, mod_revision: row.try_get(3)? }))
}

/// `[0]` ends a range at the end of the key space (as in etcd): no upper bound.
fn upper(end: &[u8]) -> Option<&[u8]> {
    (end != [0]).then_some(end)
}

#[async_trait::async_trait]
impl Kv for PgKv {
    async fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Page, KvError> {
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1).saturating_add(1);
        requests::KV_RANGE.add(1);
        let rows = self
            .retrying(true, |client| {
                let sql = if upper(end).is_some() { &self.sql.range } else { &self.sql.range_open };
                async move {
                    let statement = client.prepare_cached(sql).await?;
                    client.query(&statement, &[&start, &upper(end), &fetch]).await
                }
            })
            .await?;
        let mut revision = 0;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            revision = row.try_get::<_, i64>(0).map_err(|e| db_failure(&e).error)? - 1;
            if let Some(e) = entry(row).map_err(|e| db_failure(&e).error)? {
                entries.push(e);
            }
        }
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(Page { entries, more, revision })
    }

    async fn txn(&self, txn: Txn) -> Result<Option<i64>, KvError> {
        // (lock, exclusive): keys written are locked exclusively, keys only compared shared
        // (writers into one bucket all compare its record, and must not queue on it).
        let mut locks: Vec<(i64, bool)> = Vec::with_capacity(txn.compares.len() + txn.ops.len());
        let (mut c_kind, mut c_key, mut c_rev) = (Vec::new(), Vec::new(), Vec::new());
        for c in &txn.compares {
            let (kind, key, rev) = match c {
                Compare::Revision(k, r) => (0i16, k, *r),
                Compare::Absent(k) => (1, k, 0),
                Compare::Present(k) => (2, k, 0),
            };
            locks.push((lock_id(key), false));
            c_kind.push(kind);
            c_key.push(key.as_slice());
            c_rev.push(rev);
        }
        let (mut o_kind, mut o_key, mut o_value, mut o_end) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for o in &txn.ops {
            let (kind, key, value, end): (i16, &[u8], Option<&[u8]>, Option<&[u8]>) = match o {
                Op::Put(k, v) => {
                    locks.push((lock_id(k), true));
                    (0, k, Some(v), None)
                }
                Op::Delete(k) => {
                    locks.push((lock_id(k), true));
                    (1, k, None, None)
                }
                Op::DeleteRange(s, e) => (2, s, None, upper(e)),
            };
            o_kind.push(kind);
            o_key.push(key);
            o_value.push(value);
            o_end.push(end);
        }
        // One order for every transaction (so none waits on another in a cycle); a lock
        // both shared and exclusive is taken exclusively.
        locks.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        locks.dedup_by_key(|l| l.0);
        let (locks, exclusive): (Vec<i64>, Vec<bool>) = locks.into_iter().unzip();
        requests::KV_TXN.add(1);
        let row = self
            .retrying(false, |client| {
                let (locks, exclusive, c_kind, c_key, c_rev) = (&locks, &exclusive, &c_kind, &c_key, &c_rev);
                let (o_kind, o_key, o_value, o_end) = (&o_kind, &o_key, &o_value, &o_end);
                async move {
                    let statement = client.prepare_cached(&self.sql.txn).await?;
                    client
                        .query_one(
                            &statement,
                            &[locks, exclusive, c_kind, c_key, c_rev, o_kind, o_key, o_value, o_end],
                        )
                        .await
                }
            })
            .await?;
        row.try_get::<_, Option<i64>>(0).map_err(|e| db_failure(&e).error)
    }

    fn watch_delay(&self) -> Duration {
        self.config.poll
    }

    async fn watch(&self, prefix: &[u8], after: i64) -> Result<Watch, KvError> {
        let mut cursor = after;
        if cursor <= 0 {
            let row = self
                .retrying(true, |client| async move {
                    let statement = client.prepare_cached(&self.sql.now).await?;
                    client.query_one(&statement, &[]).await
                })
                .await?;
            cursor = row.try_get::<_, i64>(0).map_err(|e| db_failure(&e).error)? - 1;
        }
        let (tx, rx) = mpsc::channel(256);
        let (pool, sql, every) = (self.pool.clone(), self.sql.clone(), self.config.poll);
        let (start, end) = (prefix.to_vec(), prefix_end(prefix));
        let task = tokio::spawn(async move {
            // Polls that fail in a row before the watch ends (about 2 s at 50 ms).
            let mut failures = 0u32;
            loop {
                let polled = poll_once(&pool, &sql, cursor, &start, &end).await;
                match polled {
                    Ok((next, events)) => {
                        failures = 0;
                        for event in events {
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        cursor = cursor.max(next);
                    }
                    Err(e @ KvError::Compacted(_)) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Err(e) => {
                        failures += 1;
                        if failures * u32::try_from(every.as_millis()).unwrap_or(1000).max(1) >= 2000 {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        Ok(Watch { rx, task })
    }
}

/// One poll: the changes under `[start, end)` after `cursor` and below the snapshot's xmin,
/// in revision order, and the cursor to poll from next.
async fn poll_once(
    pool: &Pool,
    sql: &Sql,
    cursor: i64,
    start: &[u8],
    end: &[u8],
) -> Result<(i64, Vec<Event>), KvError> {
    let client = pool.get().await.map_err(|e| pool_failure(e).error)?;
    let fail = |e: tokio_postgres::Error| db_failure(&e).error;
    let statement = client.prepare_cached(&sql.poll).await.map_err(fail)?;
    let rows = client.query(&statement, &[&cursor, &start, &end]).await.map_err(fail)?;
    let mut next = cursor;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let xmin: i64 = row.try_get(0).map_err(fail)?;
        let compacted: i64 = row.try_get(1).map_err(fail)?;
        if compacted > cursor {
            return Err(KvError::Compacted(compacted));
        }
        next = xmin - 1;
        let Some(rev) = row.try_get::<_, Option<i64>>(2).map_err(fail)? else { continue };
        let key: Vec<u8> = row.try_get(3).map_err(fail)?;
        events.push(match row.try_get::<_, Option<Vec<u8>>>(4).map_err(fail)? {
            Some(value) => Event::Put(Entry { key, value, mod_revision: rev }),
            None => Event::Delete(key, rev),
        });
    }
    Ok((next, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_plain_identifiers() {
        assert!(valid_schema("cipherstore"));
        assert!(valid_schema("gw_2"));
        for bad in ["", "Upper", "1st", "pg_catalog", "a-b", "a\"b", "a;drop", &"x".repeat(64)] {
            assert!(!valid_schema(bad), "{bad:?}");
        }
    }

    #[test]
    fn lock_ids_are_stable_across_builds() {
        // FNV-1a 64 of "" and "a" (published test vectors).
        assert_eq!(lock_id(b"") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(lock_id(b"a") as u64, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn hosts_hide_credentials() {
        let h = hosts("postgresql://user:secret@127.0.0.1:5433,127.0.0.1:5434/db");
        assert_eq!(h, "127.0.0.1:5433,127.0.0.1:5434");
        assert!(!format!("{:?}", PgConfig::new("postgresql://u:secret@h/db")).contains("secret"));
    }
}
