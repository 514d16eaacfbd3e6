//! Persistent key state (`state.json` in the keys directory): root key records with their
//! versions, states and key check values, and the bucket keys each root key wraps. Written
//! atomically; changes from several processes are serialised by an exclusive lock on
//! `state.lock`, under which the state is re-read before it is changed.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::KeysError;
use super::id::KeyId;

/// Lifecycle state of a root key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Wraps and unwraps.
    Active,
    /// Refuses wrap and unwrap until enabled.
    Suspended,
    /// Its token objects are destroyed (crypto-shredded).
    Destroyed,
}

/// Where the key material came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Generated inside the HSM.
    Generated,
    /// Imported from customer material.
    Imported,
}

/// One version of a root key (one token object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersion {
    /// 1, 2, …
    pub version: u32,
    /// Unix seconds.
    pub created: u64,
    /// Key check value of imported material.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kcv: Option<String>,
}

/// A root key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Stable id.
    pub id: KeyId,
    /// Human name (unique).
    pub name: String,
    /// Generated or imported.
    pub origin: Origin,
    /// Lifecycle state.
    pub state: KeyState,
    /// Versions, oldest first; the last is current.
    pub versions: Vec<KeyVersion>,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the last change.
    pub updated: u64,
    /// When it was destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed_at: Option<u64>,
}

impl KeyRecord {
    /// The current version.
    pub fn current(&self) -> u32 {
        self.versions.last().map_or(1, |v| v.version)
    }
}

/// A bucket key, wrapped by one version of a root key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketBinding {
    /// Bucket name.
    pub bucket: String,
    /// Root key.
    pub key: KeyId,
    /// Root key version that wrapped it.
    pub version: u32,
    /// RFC 5649 wrapped bucket key, hex.
    pub wrapped: String,
    /// Unix seconds.
    pub created: u64,
}

/// Everything in `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Root keys.
    pub keys: Vec<KeyRecord>,
    /// Bucket keys.
    pub buckets: Vec<BucketBinding>,
}

impl State {
    /// Finds a key by id, CRN or name.
    pub fn find(&self, key: &str) -> Result<&KeyRecord, KeysError> {
        let id = KeyId::parse(key);
        self.keys
            .iter()
            .find(|k| Some(&k.id) == id.as_ref() || k.name == key)
            .ok_or_else(|| KeysError::KeyNotFound(key.to_owned()))
    }

    /// Mutable [`State::find`].
    pub fn find_mut(&mut self, key: &str) -> Result<&mut KeyRecord, KeysError> {
        let id = self.find(key)?.id.clone();
        self.keys.iter_mut().find(|k| k.id == id).ok_or_else(|| KeysError::KeyNotFound(key.to_owned()))
    }

    /// Buckets whose keys `id` wraps.
    pub fn buckets_of(&self, id: &KeyId) -> Vec<String> {
        self.buckets.iter().filter(|b| &b.key == id).map(|b| b.bucket.clone()).collect()
    }
}

/// The state file and its lock.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    lock: PathBuf,
}

/// Holds the exclusive state lock until dropped.
pub struct StateLock(#[allow(dead_code)] File);

impl StateFile {
    /// `state.json` and `state.lock` in `dir` (created 0700 if missing).
    pub fn open(dir: &Path) -> Result<Self, KeysError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(KeysError::io(format!("cannot create the keys directory {}", dir.display())))?;
        Ok(Self { path: dir.join("state.json"), lock: dir.join("state.lock") })
    }

    /// Takes the exclusive lock (blocking).
    pub fn lock(&self) -> Result<StateLock, KeysError> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.lock)
            .map_err(KeysError::io("cannot open the key state lock"))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| KeysError::io("cannot lock the key state")(e.into()))?;
        Ok(StateLock(f))
    }

    /// Reads the state (empty if the file does not exist yet).
    pub fn load(&self) -> Result<State, KeysError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KeysError::State {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(KeysError::io(format!("cannot read {}", self.path.display()))(e)),
        }
    }

    /// Replaces the state atomically; call with the lock held.
    pub fn save(&self, state: &State, _lock: &StateLock) -> Result<(), KeysError> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| KeysError::State { path: self.path.display().to_string(), reason: e.to_string() })?;
        crate::durable::write_atomic(&self.path, &bytes)
            .map_err(KeysError::io(format!("cannot write {}", self.path.display())))
    }

    /// Modification time, to notice changes made by other processes.
    pub fn modified(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(&self.path).and_then(|m| m.modified()).ok()
    }
}
