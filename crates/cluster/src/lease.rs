//! A lease on the metadata service: at most one process of a cluster holds it at a time,
//! for work that one gateway should do for all (the lifecycle worker).
//!
//! It needs nothing but [`Kv`]'s compare-then-ops transactions, so it works on any
//! metadata service, and no clock shared between machines. The holder writes its name
//! under the lease's key and rewrites it (a new revision) each time it renews. Another
//! process takes the lease over only after it has seen the same revision for a whole
//! time-to-live on its own monotonic clock, i.e. after the holder stopped renewing. A
//! holder counts the lease as its own only while its last renewal is younger than half a
//! time-to-live, so it stops before anyone may take over, even when the metadata service
//! is unreachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::kv::{Compare, Kv, KvError, Op, Txn};

/// What this process last saw of the lease.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// Nothing yet.
    Nothing,
    /// Held by this process since it renewed it at revision `revision`, at `renewed`.
    Mine { revision: i64, renewed: Instant },
    /// Held by another, unchanged at `revision` since `since`.
    Theirs { revision: i64, since: Instant },
}

/// One process's side of a named lease.
pub struct Lease {
    kv: Arc<dyn Kv>,
    key: Vec<u8>,
    owner: Vec<u8>,
    ttl: Duration,
    seen: Seen,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("owner", &String::from_utf8_lossy(&self.owner))
            .field("ttl", &self.ttl)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// The lease `name` (kept under `w/<name>`), sought by `owner` (a name unique to this
    /// process), lapsing `ttl` after its holder stops renewing it.
    pub fn new(kv: Arc<dyn Kv>, name: &str, owner: &str, ttl: Duration) -> Self {
        Self {
            kv,
            key: [b"w/", name.as_bytes()].concat(),
            owner: owner.as_bytes().to_vec(),
            ttl,
            seen: Seen::Nothing,
        }
    }

    /// How long the lease outlives its holder's last renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the lease if it is free or lapsed, renews it if it is this process's: true
    /// when this process holds it now.
    pub async fn hold(&mut self) -> Result<bool, KvError> {
        let entry = self.kv.get(&self.key).await?;
        let now = Instant::now();
        let compare = match &entry {
            None => Compare::Absent(self.key.clone()),
            Some(e) if e.value == self.owner => Compare::Revision(self.key.clone(), e.mod_revision),
            Some(e) => match self.seen {
                Seen::Theirs { revision, since } if revision == e.mod_revision => {
                    if now.duration_since(since) < self.ttl {
                        return Ok(false);
                    }
                    tracing::warn!(
                        holder = %String::from_utf8_lossy(&e.value),
                        lease = %String::from_utf8_lossy(&self.key),
                        "taking over a lease its holder stopped renewing"
                    );
                    Compare::Revision(self.key.clone(), e.mod_revision)
                }
                _ => {
                    self.seen = Seen::Theirs { revision: e.mod_revision, since: now };
                    return Ok(false);
                }
            },
        };
        let txn = Txn { compares: vec![compare], ops: vec![Op::Put(self.key.clone(), self.owner.clone())] };
        match self.kv.txn(txn).await? {
            Some(revision) => {
                self.seen = Seen::Mine { revision, renewed: now };
                Ok(true)
            }
            None => {
                self.seen = Seen::Nothing;
                Ok(false)
            }
        }
    }

    /// Whether this process may act as the holder now: it renewed the lease less than
    /// half a time-to-live ago.
    pub fn held(&self) -> bool {
        matches!(self.seen, Seen::Mine { renewed, .. } if renewed.elapsed() < self.ttl / 2)
    }

    /// Whether the last renewal is older than a quarter of the time-to-live (time to
    /// renew again).
    pub fn due(&self) -> bool {
        !matches!(self.seen, Seen::Mine { renewed, .. } if renewed.elapsed() < self.ttl / 4)
    }

    /// Gives the lease up, if this process holds it, so another may take it at once.
    pub async fn release(&mut self) -> Result<(), KvError> {
        if let Seen::Mine { revision, .. } = self.seen {
            let txn = Txn {
                compares: vec![Compare::Revision(self.key.clone(), revision)],
                ops: vec![Op::Delete(self.key.clone())],
            };
            self.kv.txn(txn).await?;
        }
        self.seen = Seen::Nothing;
        Ok(())
    }
}
