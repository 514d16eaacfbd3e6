//! What the key service's callers ask of root keys beyond the lifecycle: wrapping their
//! data encryption keys ([`super::dek`]: wrap, unwrap with a rewrapped ciphertext after a
//! rotation, rewrap), aliases, purging a deleted key's record, and registrations (the
//! buckets each key protects, with their retention state).

use serde::Serialize;
use zeroize::Zeroizing;

use super::dek::{self, DekError};
use super::error::KeysError;
use super::id::{KeyId, KeyRef};
use super::manager::{KeyManager, KeyView};
use super::state::{KeyRecord, KeyState, State};
use base::clock::{now_unix, rfc3339};
use engine::SecretKey;

/// A DEK wrapped under a root key.
#[derive(Debug)]
pub struct WrappedDek {
    /// The root key's id.
    pub key_id: String,
    /// The ciphertext (base64), for the caller to keep.
    pub ciphertext: String,
    /// The root key version that wrapped it.
    pub version: u32,
    /// The DEK, when the service generated it (the caller sent none).
    pub generated: Option<Zeroizing<Vec<u8>>>,
}

/// A DEK unwrapped.
#[derive(Debug)]
pub struct UnwrappedDek {
    /// The root key's id.
    pub key_id: String,
    /// The DEK.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The root key version that had wrapped it.
    pub version: u32,
    /// The same DEK wrapped by the current version, when an older one had wrapped it.
    pub rewrapped: Option<WrappedDek>,
}

/// A bucket protected by a root key, as Key Protect lists registrations.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Registration {
    /// The root key's id.
    pub key_id: String,
    /// The root key's CRN.
    pub key_crn: String,
    /// The bucket.
    pub bucket: String,
    /// The root key version wrapping the bucket's key.
    pub version: u32,
    /// When the bucket key was made, RFC 3339.
    pub created: String,
    /// The bucket is under Object Lock: the key can be neither deleted nor disabled.
    pub prevent_key_deletion: bool,
}

/// What a remote gateway asks of a bucket key ([`KeyManager::hand_out_bucket_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKeyMode {
    /// The existing one, to read.
    Read,
    /// The existing one, or made now, to write (`retain`: the bucket has Object Lock).
    Write {
        /// The bucket has Object Lock.
        retain: bool,
    },
    /// Made now for a new bucket ([`KeysError::BucketExists`] if it has one).
    Create,
}

/// Key Protect's rules for aliases: 2 to 90 characters of letters, digits, `-` and `_`.
fn check_alias(alias: &str) -> Result<(), KeysError> {
    let ok = (2..=90).contains(&alias.len())
        && alias.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && KeyId::parse(alias).is_none();
    if ok {
        Ok(())
    } else {
        Err(KeysError::Refused("an alias is 2 to 90 letters, digits, '-' or '_', and not a key id".into()))
    }
}

/// The most aliases one key has.
pub const MAX_ALIASES: usize = 5;

fn refused(e: DekError) -> KeysError {
    KeysError::Refused(e.to_string())
}

impl KeyManager {
    /// The record of an active root key, refusals audited as `action`.
    fn active(&self, key: &KeyRef, action: &str) -> Result<(State, KeyRecord), KeysError> {
        let state = self.state.cached()?;
        let rec = state.find(key)?.clone();
        if rec.state != KeyState::Active {
            // Confirm against the committed state before refusing.
            let fresh = self.snapshot()?;
            let rec = fresh.find(key)?.clone();
            self.require_active(&rec, action)?;
            return Ok((fresh, rec));
        }
        Ok((state, rec))
    }

    fn seal_dek(&self, rec: &KeyRecord, dek: &[u8], aad: &[String]) -> Result<WrappedDek, KeysError> {
        dek::check(dek, aad).map_err(refused)?;
        let version = rec.current();
        let method = rec.method_of(version);
        let kek = SecretKey::random();
        let context = dek::kek_context(rec.id.as_str(), version);
        let wrapped = self.hsm.wrap(&rec.id.object(version).id, method, &kek, &context)?;
        let ciphertext =
            dek::seal(&kek, rec.id.as_str(), version, method, &wrapped, dek, aad).map_err(refused)?;
        Ok(WrappedDek { key_id: rec.id.to_string(), ciphertext, version, generated: None })
    }

    /// Records a DEK action's outcome (`version`: the key version it concerned).
    fn audit_dek<T>(
        &self,
        action: &str,
        rec: &KeyRecord,
        version: impl Fn(&T) -> u32,
        r: Result<T, KeysError>,
    ) -> Result<T, KeysError> {
        let (outcome, reason, v) = match &r {
            Ok(t) => ("success", None, version(t)),
            Err(e @ (KeysError::UnwrapFailed(_) | KeysError::Refused(_))) => {
                ("failure", Some(e.to_string()), rec.current())
            }
            Err(_) => return r,
        };
        let mut event = self.event(action, rec, outcome, reason, vec![]);
        event.key_version = v;
        self.record(event)?;
        r
    }

    /// Wraps `dek` (or a fresh 256-bit DEK, returned, when `None`) under the current
    /// version of root key `key`, bound to `aad`. One HSM call. Audited.
    pub fn wrap_dek(
        &self,
        key: &KeyRef,
        dek: Option<&[u8]>,
        aad: &[String],
    ) -> Result<WrappedDek, KeysError> {
        let (_, rec) = self.active(key, "key.wrap")?;
        let wrapped = match dek {
            Some(d) => self.seal_dek(&rec, d, aad),
            None => {
                let fresh = SecretKey::random();
                self.seal_dek(&rec, fresh.expose(), aad).map(|mut w| {
                    w.generated = Some(Zeroizing::new(fresh.expose().to_vec()));
                    w
                })
            }
        };
        self.audit_dek("key.wrap", &rec, |w: &WrappedDek| w.version, wrapped)
    }

    fn open_dek(
        &self,
        rec: &KeyRecord,
        ciphertext: &str,
        aad: &[String],
    ) -> Result<(Zeroizing<Vec<u8>>, u32), KeysError> {
        dek::check_aad(aad).map_err(refused)?;
        let bytes = dek::decode(ciphertext).map_err(refused)?;
        let parsed = dek::parse(&bytes).map_err(refused)?;
        let failed = || KeysError::UnwrapFailed(self.crn(&rec.id));
        if !rec.versions.iter().any(|v| v.version == parsed.version && v.method == parsed.method) {
            return Err(failed());
        }
        let context = dek::kek_context(rec.id.as_str(), parsed.version);
        let kek = self.hsm.unwrap(
            &rec.id.object(parsed.version).id,
            parsed.method,
            parsed.wrapped_kek,
            &context,
            &self.crn(&rec.id),
        )?;
        let plain = parsed.open(&kek, rec.id.as_str(), aad).ok_or_else(failed)?;
        Ok((plain, parsed.version))
    }

    /// Unwraps a ciphertext made by [`KeyManager::wrap_dek`] with the same `aad`. When an
    /// older version of the key had wrapped it, the DEK also comes back wrapped by the
    /// current version (one more HSM call), for the caller to keep instead. Audited.
    pub fn unwrap_dek(
        &self,
        key: &KeyRef,
        ciphertext: &str,
        aad: &[String],
    ) -> Result<UnwrappedDek, KeysError> {
        let (_, rec) = self.active(key, "key.unwrap")?;
        let unwrapped = self.open_dek(&rec, ciphertext, aad).and_then(|(plaintext, version)| {
            let rewrapped =
                if version == rec.current() { None } else { Some(self.seal_dek(&rec, &plaintext, aad)?) };
            Ok(UnwrappedDek { key_id: rec.id.to_string(), plaintext, version, rewrapped })
        });
        self.audit_dek("key.unwrap", &rec, |u: &UnwrappedDek| u.version, unwrapped)
    }

    /// Rewraps a ciphertext under the key's current version (the DEK never leaves the
    /// service). Returns the new ciphertext and the version that had wrapped it. Audited.
    pub fn rewrap_dek(
        &self,
        key: &KeyRef,
        ciphertext: &str,
        aad: &[String],
    ) -> Result<(WrappedDek, u32), KeysError> {
        let (_, rec) = self.active(key, "key.rewrap")?;
        let rewrapped = self
            .open_dek(&rec, ciphertext, aad)
            .and_then(|(plaintext, version)| Ok((self.seal_dek(&rec, &plaintext, aad)?, version)));
        self.audit_dek("key.rewrap", &rec, |(w, _): &(WrappedDek, u32)| w.version, rewrapped)
    }

    /// A bucket key for a gateway that has no HSM of its own (the key service's bucket key
    /// routes): the same calls a local gateway makes, then audited as handed out to the
    /// calling identity. Returns the key and its root key's CRN.
    pub fn hand_out_bucket_key(
        &self,
        bucket: &str,
        root: &KeyRef,
        mode: BucketKeyMode,
    ) -> Result<(SecretKey, String), KeysError> {
        let key = match mode {
            BucketKeyMode::Read => self.bucket_key(bucket, root)?,
            BucketKeyMode::Write { retain } => self.bucket_key_for_write(bucket, root, retain)?,
            BucketKeyMode::Create => {
                self.create_bucket_key(bucket, root)?;
                self.bucket_key(bucket, root)?
            }
        };
        let rec = self.state.cached()?.find(root)?.clone();
        let mut event = self.event("bucket-key.hand-out", &rec, "success", None, vec![bucket.to_owned()]);
        event.event = None;
        self.record(event)?;
        Ok((key, self.crn(&rec.id)))
    }

    /// The audit trail's events, of root key `key` (its CRN) or of every key, oldest
    /// first: `offset` skipped, at most `limit`. Returns them and how many there are.
    pub fn events(
        &self,
        key: Option<&KeyRef>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<serde_json::Value>, usize), KeysError> {
        let crn = match key {
            None => None,
            Some(KeyRef::Id(id)) => Some(self.crn(id)),
            Some(k) => Some(self.snapshot()?.find(k).map(|r| self.crn(&r.id))?),
        };
        let all: Vec<serde_json::Value> = self
            .audit_log()
            .read_all()?
            .into_iter()
            .filter(|e| crn.as_deref().is_none_or(|c| e["key"].as_str() == Some(c)))
            .collect();
        let total = all.len();
        Ok((all.into_iter().skip(offset).take(limit).collect(), total))
    }

    /// Gives root key `key` another name it answers to. Audited.
    pub fn add_alias(&self, key: &KeyRef, alias: &str) -> Result<KeyView, KeysError> {
        check_alias(alias)?;
        let (view, rec) = self.change(|state| {
            if state.find(key)?.aliases.iter().any(|a| a == alias) {
                let r = state.find(key)?;
                return Ok((self.view(state, r), r.clone()));
            }
            if state.name_taken(alias) {
                return Err(KeysError::Refused(format!(
                    "the alias {alias:?} is already a key's name or alias"
                )));
            }
            let r = state.find_mut(key)?;
            if r.state == KeyState::Destroyed {
                return Err(KeysError::KeyDestroyed(r.id.crn(&self.instance)));
            }
            if r.aliases.len() >= MAX_ALIASES {
                return Err(KeysError::Refused(format!("a key has at most {MAX_ALIASES} aliases")));
            }
            r.aliases.push(alias.to_owned());
            r.updated = now_unix();
            let r = r.clone();
            Ok((self.view(state, &r), r))
        })?;
        self.record(self.event("key.alias.create", &rec, "success", Some(format!("alias {alias}")), vec![]))?;
        Ok(view)
    }

    /// Removes an alias of root key `key`. Audited.
    pub fn remove_alias(&self, key: &KeyRef, alias: &str) -> Result<KeyView, KeysError> {
        let (view, rec) = self.change(|state| {
            let r = state.find_mut(key)?;
            let before = r.aliases.len();
            r.aliases.retain(|a| a != alias);
            if r.aliases.len() == before {
                return Err(KeysError::Refused(format!("the key has no alias {alias:?}")));
            }
            r.updated = now_unix();
            let r = r.clone();
            Ok((self.view(state, &r), r))
        })?;
        self.record(self.event("key.alias.delete", &rec, "success", Some(format!("alias {alias}")), vec![]))?;
        Ok(view)
    }

    /// Forgets a deleted key for good (its record and its buckets' wrapped keys; its
    /// material, if [`KeyManager::delete_restorable`] kept it), once
    /// `wait` has passed since its deletion (Key Protect: 4 hours). Audited.
    pub fn purge(&self, key: &KeyRef, wait: std::time::Duration) -> Result<KeyView, KeysError> {
        let (view, rec) = self.change(|state| {
            let r = state.find(key)?.clone();
            let Some(at) = r.destroyed_at.filter(|_| r.state == KeyState::Destroyed) else {
                return Err(KeysError::Refused(format!(
                    "key {} is not deleted: delete it before purging",
                    r.name
                )));
            };
            let ready = at.saturating_add(wait.as_secs());
            if now_unix() < ready {
                return Err(KeysError::Refused(format!(
                    "key {} can be purged from {} ({} s after its deletion)",
                    r.name,
                    rfc3339(ready),
                    wait.as_secs()
                )));
            }
            if r.restorable {
                self.destroy_versions(&r)?;
            }
            let view = self.view(state, &r);
            state.keys.retain(|k| k.id != r.id);
            state.buckets.retain(|b| b.key != r.id);
            Ok((view, r))
        })?;
        self.record(self.event("key.purge", &rec, "success", None, vec![]))?;
        Ok(view)
    }

    /// The buckets protected by root key `key`, or by every key.
    pub fn registrations(&self, key: Option<&KeyRef>) -> Result<Vec<Registration>, KeysError> {
        let state = self.snapshot()?;
        let only = key.map(|k| state.find(k).map(|r| r.id.clone())).transpose()?;
        Ok(state
            .buckets
            .iter()
            .filter(|b| only.as_ref().is_none_or(|id| &b.key == id))
            .map(|b| Registration {
                key_id: b.key.to_string(),
                key_crn: self.crn(&b.key),
                bucket: b.bucket.clone(),
                version: b.version,
                created: rfc3339(b.created),
                prevent_key_deletion: state.retained.contains(&b.bucket),
            })
            .collect())
    }
}
