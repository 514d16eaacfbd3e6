//! The key state: root key records with their versions, states and key check values, and
//! the bucket keys each root key wraps; and [`StateStore`], where it is kept — a file in
//! the keys directory ([`super::state_file`]) or a metadata service shared by every
//! gateway ([`super::state_kv`]).

use serde::{Deserialize, Serialize};

use super::error::KeysError;
use super::id::{KeyId, KeyRef};
use super::wrapping::WrapMethod;

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
    /// How this version wraps bucket keys (versions made before methods were recorded:
    /// `aes-key-wrap-pad`).
    #[serde(default)]
    pub method: WrapMethod,
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
    /// Deleted through the key service: its material is still in the HSM (every use is
    /// refused), so it restores without material until purged; purging destroys it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restorable: bool,
    /// The key ring it is in (`None`: `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ring: Option<String>,
    /// Its own policies (rotation, dual authorization for deletion).
    #[serde(default, skip_serializing_if = "super::policy::Policies::is_empty")]
    pub policies: super::policy::Policies,
    /// A pending authorization to delete it (dual authorization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_authorized: Option<super::policy::DeletionAuthorization>,
    /// Who created it (the key service caller's identity; unset for the CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// What it is for, as its creator described it (never secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Other names it answers to (Key Protect aliases, unique across keys and names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl KeyRecord {
    /// The current version.
    pub fn current(&self) -> u32 {
        self.versions.last().map_or(1, |v| v.version)
    }

    /// Whether `key` names this record (by id, name or alias).
    pub fn is(&self, key: &KeyRef) -> bool {
        key.names(&self.id, &self.name) || matches!(key, KeyRef::Name(n) if self.aliases.contains(n))
    }

    /// How `version` wraps bucket keys.
    pub fn method_of(&self, version: u32) -> WrapMethod {
        self.versions.iter().find(|v| v.version == version).map(|v| v.method).unwrap_or_default()
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
    /// How it was wrapped (bindings made before methods were recorded: RFC 5649).
    #[serde(default)]
    pub method: WrapMethod,
    /// The wrapped bucket key, hex ([`super::wrapping`] for each method's layout).
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
    /// Buckets with S3 Object Lock enabled: the root keys bound to them can be neither
    /// deleted nor disabled (IBM's rule for buckets under retention).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<String>,
    /// The instance's import token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_token: Option<super::import_token::ImportToken>,
    /// Key rings besides `default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_rings: Vec<super::rings::KeyRing>,
    /// The instance's policies, for keys without their own.
    #[serde(default, skip_serializing_if = "super::policy::Policies::is_empty")]
    pub instance_policies: super::policy::Policies,
}

impl State {
    /// Finds a key by id or name.
    pub fn find(&self, key: &KeyRef) -> Result<&KeyRecord, KeysError> {
        self.keys.iter().find(|k| k.is(key)).ok_or_else(|| KeysError::KeyNotFound(key.to_string()))
    }

    /// Mutable [`State::find`].
    pub fn find_mut(&mut self, key: &KeyRef) -> Result<&mut KeyRecord, KeysError> {
        self.keys.iter_mut().find(|k| k.is(key)).ok_or_else(|| KeysError::KeyNotFound(key.to_string()))
    }

    /// Whether a key has `name` as its name or one of its aliases.
    pub fn name_taken(&self, name: &str) -> bool {
        self.keys.iter().any(|k| k.name == name || k.aliases.iter().any(|a| a == name))
    }

    /// Buckets whose keys `id` wraps.
    pub fn buckets_of(&self, id: &KeyId) -> Vec<String> {
        self.buckets.iter().filter(|b| &b.key == id).map(|b| b.bucket.clone()).collect()
    }

    /// The buckets bound to root key `id` that Object Lock retains.
    pub fn retained_of(&self, id: &KeyId) -> Vec<String> {
        let mut out: Vec<String> =
            self.buckets_of(id).into_iter().filter(|b| self.retained.contains(b)).collect();
        out.dedup();
        out
    }
}

/// Where the key state is kept, and how changes to it are serialised across processes
/// and gateways.
pub trait StateStore: Send + Sync {
    /// The state as committed now.
    fn fresh(&self) -> Result<State, KeysError>;
    /// The state as last seen, without a round trip: may lag a change made elsewhere by
    /// the time its notification takes.
    fn cached(&self) -> Result<State, KeysError>;
    /// Runs `change` on the committed state while holding the lock every writer takes,
    /// then commits the result and returns it. Nothing is saved if `change` fails.
    fn change(&self, change: &mut dyn FnMut(&mut State) -> Result<(), KeysError>)
    -> Result<State, KeysError>;
    /// A count that moves whenever a change made elsewhere has been noticed; constant
    /// where changes are not notified (then caches rely on their time-to-live alone).
    fn generation(&self) -> u64;
    /// Where the state is, for messages.
    fn describe(&self) -> String;
}
