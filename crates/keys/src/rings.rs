//! Key rings, as Key Protect groups keys: every key is in one ring (`default` unless made
//! or moved elsewhere); rings are made and deleted by managers, and a ring that still
//! holds keys that are not deleted cannot be deleted.

use serde::{Deserialize, Serialize};

use super::error::KeysError;
use super::id::KeyRef;
use super::manager::KeyManager;
use super::state::{KeyState, State};
use base::clock::now_unix;

/// The ring every key is in unless put elsewhere.
pub const DEFAULT_RING: &str = "default";

/// A key ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    /// Its id: 2 to 100 letters, digits and `-`.
    pub id: String,
    /// When it was made, Unix seconds.
    pub created: u64,
    /// Who made it.
    pub created_by: String,
}

/// Key Protect's rule for ring ids.
pub fn check_ring_id(id: &str) -> Result<(), KeysError> {
    if (2..=100).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(KeysError::Refused("a key ring id is 2 to 100 letters, digits or '-'".into()))
    }
}

impl State {
    /// Whether ring `id` exists (`default` always does).
    pub fn has_ring(&self, id: &str) -> bool {
        id == DEFAULT_RING || self.key_rings.iter().any(|r| r.id == id)
    }
}

impl KeyManager {
    /// Every ring, `default` first.
    pub fn rings(&self) -> Result<Vec<KeyRing>, KeysError> {
        let state = self.snapshot()?;
        let first = KeyRing { id: DEFAULT_RING.into(), created: 0, created_by: "cipherstore".into() };
        Ok(std::iter::once(first).chain(state.key_rings.iter().cloned()).collect())
    }

    /// Makes ring `id`. Refused if it exists.
    pub fn create_ring(&self, id: &str) -> Result<KeyRing, KeysError> {
        check_ring_id(id)?;
        let by = super::audit::initiator().unwrap_or_else(|| "local".into());
        let ring = self.change(|state| {
            if state.has_ring(id) {
                return Err(KeysError::Refused(format!("key ring {id:?} already exists")));
            }
            let ring = KeyRing { id: id.to_owned(), created: now_unix(), created_by: by.clone() };
            state.key_rings.push(ring.clone());
            Ok(ring)
        })?;
        tracing::info!(ring = id, by = %by, "key ring created");
        Ok(ring)
    }

    /// Deletes ring `id`: refused for `default` and while keys that are not deleted are in
    /// it; with `force`, its deleted keys move to `default`.
    pub fn delete_ring(&self, id: &str, force: bool) -> Result<(), KeysError> {
        if id == DEFAULT_RING {
            return Err(KeysError::Refused("the default key ring cannot be deleted".into()));
        }
        self.change(|state| {
            if !state.key_rings.iter().any(|r| r.id == id) {
                return Err(KeysError::RingNotFound(id.to_owned()));
            }
            let inside: Vec<&str> = state
                .keys
                .iter()
                .filter(|k| k.key_ring.as_deref() == Some(id))
                .map(|k| k.name.as_str())
                .collect();
            let live = state
                .keys
                .iter()
                .any(|k| k.key_ring.as_deref() == Some(id) && k.state != KeyState::Destroyed);
            if live {
                return Err(KeysError::Refused(format!(
                    "key ring {id:?} holds keys that are not deleted ({}): move or delete them first",
                    inside.join(", ")
                )));
            }
            if !inside.is_empty() && !force {
                return Err(KeysError::Refused(format!(
                    "key ring {id:?} holds deleted keys: pass force=true to move them to the default ring"
                )));
            }
            for k in state.keys.iter_mut().filter(|k| k.key_ring.as_deref() == Some(id)) {
                k.key_ring = None;
            }
            state.key_rings.retain(|r| r.id != id);
            Ok(())
        })
    }

    /// Moves root key `key` to ring `to`. Audited.
    pub fn move_key(&self, key: &KeyRef, to: &str) -> Result<(), KeysError> {
        let rec = self.change(|state| {
            if !state.has_ring(to) {
                return Err(KeysError::RingNotFound(to.to_owned()));
            }
            let r = state.find_mut(key)?;
            r.key_ring = (to != DEFAULT_RING).then(|| to.to_owned());
            r.updated = now_unix();
            Ok(r.clone())
        })?;
        self.record(self.event("key.move", &rec, "success", Some(format!("to key ring {to}")), vec![]))
    }
}
