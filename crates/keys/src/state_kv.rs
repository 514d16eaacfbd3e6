//! Key state in the metadata service every gateway shares (docs/SCALE-OUT.md §6): the
//! whole state under `k/state`, changed only by a holder of the lock `k/lock`.
//!
//! The lock is a key created if absent, naming its holder and the time it lapses (a holder
//! killed mid-change stalls other lifecycle changes for at most [`LOCK_LEASE`], never
//! object traffic). A change reads the state, applies it and commits it in one transaction
//! that also checks the lock is still this holder's and the state still the one read, so a
//! holder whose lock lapsed and was taken over saves nothing. A watch on `k/state` keeps a
//! copy current, so gateways notice another's change (a key disabled or deleted) within a
//! round trip and drop the bucket keys it affects, without waiting for the cache TTL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::KeysError;
use super::state::{State, StateStore};
use cluster::bridge::Bridge;
use cluster::kv::{Compare, Event, Kv, KvError, Op, Txn, prefix_end};

/// Where the state is.
const STATE: &[u8] = b"k/state";
/// The lock every writer takes.
const LOCK: &[u8] = b"k/lock";
/// How long a lock holds without being released: far longer than any lifecycle change.
pub const LOCK_LEASE: Duration = Duration::from_secs(60);
/// How long a change waits for the lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// Pause between tries to take the lock, and before a broken watch is resumed.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const WATCH_PAUSE: Duration = Duration::from_secs(1);

/// The lock's value.
#[derive(Debug, Serialize, Deserialize)]
struct LockValue {
    /// Who holds it (host and process), for the message others get.
    owner: String,
    /// Unix milliseconds after which another writer may take it over.
    until_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unavailable(e: KvError) -> KeysError {
    KeysError::Unavailable(e.to_string())
}

/// The committed state (empty if none was ever written) and the revision it was read at.
async fn read(kv: &dyn Kv) -> Result<(State, i64), KeysError> {
    let page = kv.range(STATE, &prefix_end(STATE), 1).await.map_err(unavailable)?;
    let state = match page.entries.iter().find(|e| e.key == STATE) {
        Some(e) => parse(&e.value)?,
        None => State::default(),
    };
    Ok((state, page.revision))
}

fn parse(bytes: &[u8]) -> Result<State, KeysError> {
    serde_json::from_slice(bytes).map_err(|e| KeysError::State {
        path: "k/state in the metadata service".into(),
        reason: e.to_string(),
    })
}

/// What the watch keeps current.
struct Seen {
    state: Mutex<(State, i64)>,
    generation: AtomicU64,
}

impl Seen {
    /// Takes `state` read at `revision` if that is newer than the copy held; the
    /// generation moves if the state differs, whoever read it first.
    fn offer(&self, state: State, revision: i64) {
        let mut held = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if revision > held.1 {
            if state != held.0 {
                self.generation.fetch_add(1, Ordering::Release);
            }
            *held = (state, revision);
        }
    }
}

/// The key state in a [`Kv`], shared by every gateway.
pub struct KvState {
    kv: Arc<dyn Kv>,
    bridge: Bridge,
    seen: Arc<Seen>,
    owner: String,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for KvState {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// The lock, held until released or dropped.
struct Held<'a> {
    store: &'a KvState,
    revision: i64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let release = Txn {
            compares: vec![Compare::Revision(LOCK.to_vec(), self.revision)],
            ops: vec![Op::Delete(LOCK.to_vec())],
        };
        let kv = self.store.kv.clone();
        // A release that fails leaves the lock to lapse after its lease.
        if let Err(e) = self.store.bridge.wait(async move { kv.txn(release).await }) {
            tracing::warn!(error = %e, "cannot release the key state lock; it lapses by itself");
        }
    }
}

impl KvState {
    /// Reads the state and starts following its changes; call inside the runtime the
    /// metadata client runs on.
    pub async fn open(kv: Arc<dyn Kv>) -> Result<Self, KeysError> {
        let bridge = Bridge::current()
            .ok_or_else(|| KeysError::Unavailable("the shared key state needs a tokio runtime".into()))?;
        let (state, revision) = read(kv.as_ref()).await?;
        let seen = Arc::new(Seen { state: Mutex::new((state, revision)), generation: AtomicU64::new(0) });
        let watcher = tokio::spawn(follow(kv.clone(), Arc::downgrade(&seen), revision));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let owner = format!("{}:{}", host.trim(), std::process::id());
        Ok(Self { kv, bridge, seen, owner, watcher })
    }

    fn wait<T: Send>(&self, f: impl std::future::Future<Output = T> + Send) -> T {
        self.bridge.wait(f)
    }

    /// Takes the lock, waiting up to [`LOCK_WAIT`] for its holder.
    fn lock(&self) -> Result<Held<'_>, KeysError> {
        let deadline = Instant::now() + LOCK_WAIT;
        let kv = self.kv.clone();
        let owner = self.owner.clone();
        let revision = self.wait(async move {
            loop {
                let lease = u64::try_from(LOCK_LEASE.as_millis()).unwrap_or(u64::MAX);
                let value = serde_json::to_vec(&LockValue { owner: owner.clone(), until_ms: now_ms() + lease })
                    .map_err(|e| KeysError::Refused(format!("cannot encode the key state lock: {e}")))?;
                let take = Txn { compares: vec![Compare::Absent(LOCK.to_vec())], ops: vec![Op::Put(LOCK.to_vec(), value.clone())] };
                if let Some(revision) = kv.txn(take).await.map_err(unavailable)? {
                    return Ok(revision);
                }
                let held = kv.get(LOCK).await.map_err(unavailable)?;
                let holder = held.as_ref().and_then(|e| serde_json::from_slice::<LockValue>(&e.value).ok());
                if let Some(entry) = &held
                    && holder.as_ref().is_none_or(|h| h.until_ms < now_ms())
                {
                    // Lapsed (or unreadable): its holder died mid-change. Take it over.
                    let over = Txn {
                        compares: vec![Compare::Revision(LOCK.to_vec(), entry.mod_revision)],
                        ops: vec![Op::Put(LOCK.to_vec(), value)],
                    };
                    if let Some(revision) = kv.txn(over).await.map_err(unavailable)? {
                        tracing::warn!(holder = holder.map(|h| h.owner), "took over a lapsed key state lock");
                        return Ok(revision);
                    }
                }
                if Instant::now() >= deadline {
                    let who = holder.map_or_else(|| "another writer".to_owned(), |h| h.owner);
                    return Err(KeysError::Refused(format!(
                        "the key state is being changed by {who}; try again (a lock left by a killed process lapses after {} s)",
                        LOCK_LEASE.as_secs()
                    )));
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        })?;
        Ok(Held { store: self, revision })
    }
}

impl StateStore for KvState {
    fn fresh(&self) -> Result<State, KeysError> {
        let kv = self.kv.clone();
        let (state, revision) = self.wait(async move { read(kv.as_ref()).await })?;
        self.seen.offer(state.clone(), revision);
        Ok(state)
    }

    fn cached(&self) -> Result<State, KeysError> {
        Ok(self.seen.state.lock().unwrap_or_else(PoisonError::into_inner).0.clone())
    }

    fn change(
        &self,
        change: &mut dyn FnMut(&mut State) -> Result<(), KeysError>,
    ) -> Result<State, KeysError> {
        let held = self.lock()?;
        let kv = self.kv.clone();
        let entry = self.wait(async move { kv.get(STATE).await }).map_err(unavailable)?;
        let (mut state, unchanged) = match &entry {
            Some(e) => (parse(&e.value)?, Compare::Revision(STATE.to_vec(), e.mod_revision)),
            None => (State::default(), Compare::Absent(STATE.to_vec())),
        };
        change(&mut state)?;
        let bytes = serde_json::to_vec(&state)
            .map_err(|e| KeysError::State { path: "k/state".into(), reason: e.to_string() })?;
        let commit = Txn {
            compares: vec![Compare::Revision(LOCK.to_vec(), held.revision), unchanged],
            ops: vec![Op::Put(STATE.to_vec(), bytes)],
        };
        let kv = self.kv.clone();
        match self.wait(async move { kv.txn(commit).await }).map_err(unavailable)? {
            Some(revision) => {
                self.seen.offer(state.clone(), revision);
                drop(held);
                Ok(state)
            }
            None => Err(KeysError::Refused(format!(
                "the key state lock lapsed during this change (over {} s) and another writer took it: nothing was saved",
                LOCK_LEASE.as_secs()
            ))),
        }
    }

    fn generation(&self) -> u64 {
        self.seen.generation.load(Ordering::Acquire)
    }

    fn describe(&self) -> String {
        "the metadata service (k/state)".into()
    }
}

/// Follows changes to `k/state` after `revision` until the store is dropped; a broken
/// watch is resumed where it stopped, or from a fresh read if it fell behind.
async fn follow(kv: Arc<dyn Kv>, seen: Weak<Seen>, mut revision: i64) {
    loop {
        match kv.watch(STATE, revision).await {
            Ok(mut watch) => {
                while let Some(event) = watch.next().await {
                    let Some(seen) = seen.upgrade() else { return };
                    match event {
                        Ok(Event::Put(e)) if e.key == STATE => {
                            revision = e.mod_revision;
                            match parse(&e.value) {
                                Ok(state) => seen.offer(state, e.mod_revision),
                                Err(err) => {
                                    tracing::error!(error = %err, "ignoring a key state that does not parse")
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(KvError::Compacted(_)) => {
                            if let Ok((state, at)) = read(kv.as_ref()).await {
                                seen.offer(state, at);
                                revision = at;
                            }
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the key state watch broke; resuming");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot watch the key state yet"),
        }
        if seen.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(WATCH_PAUSE).await;
    }
}
