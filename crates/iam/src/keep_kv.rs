//! Identities in the metadata service every gateway shares (docs/SCALE-OUT.md §1): a
//! record per user under `i/u/<name>` and per credential under `i/c/<access key id>`,
//! a record per key service API key under `i/a/<id>`, the token key under `i/t`,
//! and a guard `i/rev` that every change rewrites. A change reads everything, applies
//! itself and commits only the records that differ, in one transaction that holds only if
//! the guard is still the one read (optimistic: a writer that lost the race reads again).
//! Gateways watch the guard, so a change made anywhere is seen within a round trip.

use std::sync::Arc;

use super::apikey::ApiKey;
use super::directory::{Credential, Directory, StoredSecret, User};
use super::error::IamError;
use super::keep::{Change, Keep, Stamp};
use cluster::kv::{Compare, Event, Kv, KvError, Op, Txn, prefix_end};
use cluster::retries::{COMMIT_TRIES, Retries};

const GUARD: &[u8] = b"i/rev";
const USERS: &[u8] = b"i/u/";
const CREDENTIALS: &[u8] = b"i/c/";
const APIKEYS: &[u8] = b"i/a/";
const TOKEN_KEY: &[u8] = b"i/t";
/// How many records a range read asks for at a time.
const PAGE: usize = 1000;

fn unavailable(e: KvError) -> IamError {
    IamError::Unavailable(e.to_string())
}

fn stored(reason: impl Into<String>) -> IamError {
    IamError::Stored { place: "i/ in the metadata service".into(), reason: reason.into() }
}

/// The identities in a [`Kv`].
pub struct KvKeep {
    kv: Arc<dyn Kv>,
}

impl KvKeep {
    /// Identities in `kv`.
    pub fn new(kv: Arc<dyn Kv>) -> Self {
        Self { kv }
    }

    /// Every entry under `prefix`, page by page.
    async fn all(&self, prefix: &[u8]) -> Result<Vec<cluster::kv::Entry>, IamError> {
        let end = prefix_end(prefix);
        let mut start = prefix.to_vec();
        let mut out = Vec::new();
        loop {
            let page = self.kv.range(&start, &end, PAGE).await.map_err(unavailable)?;
            if let Some(last) = page.entries.last() {
                start = last.key.clone();
                start.push(0);
            }
            out.extend(page.entries);
            if !page.more {
                return Ok(out);
            }
        }
    }

    /// The directory, the guard's revision (0: never written) and the store's revision it
    /// was seen at, consistent: read again if a change landed while the pages were read.
    async fn read(&self) -> Result<(Directory, i64, i64), IamError> {
        // Paced like a commit: under a burst of changes, a read tried again at once is
        // overtaken again (8 writers at once ran out of immediate tries in CI).
        let mut tries = Retries::default();
        while tries.next().await {
            let (before, seen_at) = self.guard().await?;
            let mut directory = Directory::default();
            for e in self.all(USERS).await? {
                let user: User = serde_json::from_slice(&e.value).map_err(|err| stored(err.to_string()))?;
                directory.users.insert(user.name.clone(), user);
            }
            for e in self.all(CREDENTIALS).await? {
                let c: Credential =
                    serde_json::from_slice(&e.value).map_err(|err| stored(err.to_string()))?;
                directory.credentials.insert(c.access_key_id.clone(), c);
            }
            for e in self.all(APIKEYS).await? {
                let k: ApiKey = serde_json::from_slice(&e.value).map_err(|err| stored(err.to_string()))?;
                directory.apikeys.insert(k.id.clone(), k);
            }
            let token = self.kv.range(TOKEN_KEY, &prefix_end(TOKEN_KEY), 1).await.map_err(unavailable)?;
            if let Some(e) = token.entries.iter().find(|e| e.key == TOKEN_KEY) {
                let kept: StoredSecret =
                    serde_json::from_slice(&e.value).map_err(|err| stored(err.to_string()))?;
                directory.token_key = Some(kept);
            }
            if self.guard().await?.0 == before {
                return Ok((directory, before, seen_at));
            }
        }
        Err(IamError::Unavailable("the identities kept changing while being read; retry".into()))
    }

    /// The guard's revision (0: never written) and the store's revision when it was read.
    async fn guard(&self) -> Result<(i64, i64), IamError> {
        let page = self.kv.range(GUARD, &prefix_end(GUARD), 1).await.map_err(unavailable)?;
        let guard = page.entries.iter().find(|e| e.key == GUARD).map_or(0, |e| e.mod_revision);
        Ok((guard, page.revision))
    }
}

/// The puts and deletes that turn `old` into `new`.
fn diff(old: &Directory, new: &Directory) -> Result<Vec<Op>, IamError> {
    let mut ops = Vec::new();
    for (name, u) in &new.users {
        if old.users.get(name) != Some(u) {
            ops.push(Op::Put([USERS, name.as_bytes()].concat(), encode(u)?));
        }
    }
    for name in old.users.keys().filter(|n| !new.users.contains_key(*n)) {
        ops.push(Op::Delete([USERS, name.as_bytes()].concat()));
    }
    for (ak, c) in &new.credentials {
        if old.credentials.get(ak) != Some(c) {
            ops.push(Op::Put([CREDENTIALS, ak.as_bytes()].concat(), encode(c)?));
        }
    }
    for ak in old.credentials.keys().filter(|k| !new.credentials.contains_key(*k)) {
        ops.push(Op::Delete([CREDENTIALS, ak.as_bytes()].concat()));
    }
    for (id, k) in &new.apikeys {
        if old.apikeys.get(id) != Some(k) {
            ops.push(Op::Put([APIKEYS, id.as_bytes()].concat(), encode(k)?));
        }
    }
    for id in old.apikeys.keys().filter(|k| !new.apikeys.contains_key(*k)) {
        ops.push(Op::Delete([APIKEYS, id.as_bytes()].concat()));
    }
    if old.token_key != new.token_key {
        ops.push(match &new.token_key {
            Some(t) => Op::Put(TOKEN_KEY.to_vec(), encode(t)?),
            None => Op::Delete(TOKEN_KEY.to_vec()),
        });
    }
    Ok(ops)
}

/// A record as kept.
fn encode<T: serde::Serialize>(record: &T) -> Result<Vec<u8>, IamError> {
    serde_json::to_vec(record).map_err(|e| stored(e.to_string()))
}

#[async_trait::async_trait]
impl Keep for KvKeep {
    async fn load(&self) -> Result<(Directory, Stamp), IamError> {
        // Stamped with the store's revision, so a watch from it misses no later change, even
        // before the guard was ever written.
        let (directory, _, seen_at) = self.read().await?;
        Ok((directory, Stamp(seen_at.to_string())))
    }

    async fn change(&self, change: Change<'_>) -> Result<Directory, IamError> {
        let mut tries = Retries::default();
        while tries.next().await {
            let (old, revision, _) = self.read().await?;
            let mut new = old.clone();
            change(&mut new)?;
            let mut ops = diff(&old, &new)?;
            if ops.is_empty() {
                return Ok(new);
            }
            ops.push(Op::Put(GUARD.to_vec(), base::clock::now_unix_ms().to_string().into_bytes()));
            let guard = if revision == 0 {
                Compare::Absent(GUARD.to_vec())
            } else {
                Compare::Revision(GUARD.to_vec(), revision)
            };
            if self.kv.txn(Txn { compares: vec![guard], ops }).await.map_err(unavailable)?.is_some() {
                return Ok(new);
            }
            // Another writer committed first: read its change and apply ours on top (after
            // the pause `tries` makes).
        }
        Err(IamError::Unavailable(format!("{COMMIT_TRIES} concurrent identity changes in a row; retry")))
    }

    async fn wait_change(&self, seen: &Stamp) -> Result<(), IamError> {
        let after: i64 = seen.0.parse().unwrap_or(0);
        let mut watch = self.kv.watch(GUARD, after).await.map_err(unavailable)?;
        loop {
            match watch.next().await {
                Some(Ok(Event::Put(e))) if e.key == GUARD => return Ok(()),
                Some(Ok(Event::Delete(k, _))) if k == GUARD => return Ok(()),
                Some(Ok(_)) => continue,
                // Compacted past what was seen: something changed; read it all again.
                Some(Err(KvError::Compacted(_))) => return Ok(()),
                Some(Err(e)) => return Err(unavailable(e)),
                None => return Err(IamError::Unavailable("the identity watch ended".into())),
            }
        }
    }

    fn describe(&self) -> String {
        "the metadata service (i/)".into()
    }
}
