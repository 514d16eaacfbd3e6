//! Key policies, as Key Protect keeps them: per key and for the whole instance, a rotation
//! policy (rotate every 1 to 12 months; generated keys only, the material of imported keys
//! comes from their owner) and dual authorization for deletion (a key is deleted only after
//! a second identity authorized it: `setKeyForDeletion`, valid 7 days). A key's own policy
//! wins over the instance's. The rotation runner ([`KeyManager::due_rotations`]) and the
//! deletion check ([`KeyManager::delete_restorable`]) read them here.

use serde::{Deserialize, Serialize};

use super::error::KeysError;
use super::id::KeyRef;
use super::manager::KeyManager;
use super::state::{KeyRecord, KeyState, Origin, State};
use base::clock::now_unix;

/// How long a deletion authorization stays valid (Key Protect: 7 days).
pub const AUTHORIZATION_SECS: u64 = 7 * 86_400;

/// A rotation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Whether keys rotate by it.
    pub enabled: bool,
    /// Every how many months (1 to 12).
    pub interval_month: u32,
}

/// One policy's setting with who set it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    /// The setting.
    pub value: T,
    /// Who set it.
    pub by: String,
    /// When it was first set, Unix seconds.
    pub created: u64,
    /// When it last changed, Unix seconds.
    pub updated: u64,
}

/// The policies of a key, or of the instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    /// Rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Stamped<Rotation>>,
    /// Dual authorization for deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dual_auth_delete: Option<Stamped<bool>>,
}

impl Policies {
    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        self.rotation.is_none() && self.dual_auth_delete.is_none()
    }
}

/// A pending authorization to delete a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionAuthorization {
    /// The identity that authorized it.
    pub by: String,
    /// When, Unix seconds.
    pub at: u64,
}

/// A policy change asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyChange {
    /// Set the rotation policy.
    Rotation(Rotation),
    /// Turn dual authorization for deletion on or off.
    DualAuthDelete(bool),
}

fn who() -> String {
    super::audit::initiator().unwrap_or_else(|| "local".into())
}

fn apply(p: &mut Policies, change: PolicyChange) -> Result<(), KeysError> {
    let now = now_unix();
    let by = who();
    match change {
        PolicyChange::Rotation(r) => {
            if !(1..=12).contains(&r.interval_month) {
                return Err(KeysError::Refused("a rotation interval is 1 to 12 months".into()));
            }
            let created = p.rotation.as_ref().map_or(now, |s| s.created);
            p.rotation = Some(Stamped { value: r, by, created, updated: now });
        }
        PolicyChange::DualAuthDelete(on) => {
            let created = p.dual_auth_delete.as_ref().map_or(now, |s| s.created);
            p.dual_auth_delete = Some(Stamped { value: on, by, created, updated: now });
        }
    }
    Ok(())
}

impl State {
    /// Whether deleting `rec` needs a second identity's authorization.
    pub fn dual_auth(&self, rec: &KeyRecord) -> bool {
        rec.policies
            .dual_auth_delete
            .as_ref()
            .or(self.instance_policies.dual_auth_delete.as_ref())
            .is_some_and(|s| s.value)
    }

    /// The rotation policy in force for `rec`, if it rotates by one.
    pub fn rotation(&self, rec: &KeyRecord) -> Option<Rotation> {
        rec.policies
            .rotation
            .as_ref()
            .or(self.instance_policies.rotation.as_ref())
            .map(|s| s.value)
            .filter(|r| r.enabled)
    }
}

impl KeyManager {
    /// Sets a policy of root key `key`. Audited.
    pub fn set_key_policy(&self, key: &KeyRef, change: PolicyChange) -> Result<Policies, KeysError> {
        let (policies, rec) = self.change(|state| {
            let r = state.find_mut(key)?;
            if r.state == KeyState::Destroyed {
                return Err(KeysError::KeyDestroyed(r.id.crn(&self.instance)));
            }
            if matches!(change, PolicyChange::Rotation(x) if x.enabled) && r.origin == Origin::Imported {
                return Err(KeysError::Refused(
                    "an imported key cannot rotate by policy: its new material comes from its owner".into(),
                ));
            }
            apply(&mut r.policies, change)?;
            r.updated = now_unix();
            Ok((r.policies.clone(), r.clone()))
        })?;
        let what = match change {
            PolicyChange::Rotation(r) => {
                format!("rotation enabled={} interval_month={}", r.enabled, r.interval_month)
            }
            PolicyChange::DualAuthDelete(on) => format!("dualAuthDelete enabled={on}"),
        };
        self.record(self.event("key.policy.set", &rec, "success", Some(what), vec![]))?;
        Ok(policies)
    }

    /// The policies of root key `key` (its own, not the instance's).
    pub fn key_policies(&self, key: &KeyRef) -> Result<Policies, KeysError> {
        Ok(self.snapshot()?.find(key)?.policies.clone())
    }

    /// Sets a policy of the instance (keys without their own follow it).
    pub fn set_instance_policy(&self, change: PolicyChange) -> Result<Policies, KeysError> {
        let policies = self.change(|state| {
            apply(&mut state.instance_policies, change)?;
            Ok(state.instance_policies.clone())
        })?;
        tracing::info!(?change, by = %who(), "instance key policy set");
        Ok(policies)
    }

    /// The instance's policies.
    pub fn instance_policies(&self) -> Result<Policies, KeysError> {
        Ok(self.snapshot()?.instance_policies)
    }

    /// Authorizes the deletion of root key `key` as the calling identity (the first of the
    /// two a dual-authorization key needs). Audited.
    pub fn authorize_deletion(&self, key: &KeyRef) -> Result<(), KeysError> {
        let by = who();
        let rec = self.change(|state| {
            let dual = state.dual_auth(state.find(key)?);
            let r = state.find_mut(key)?;
            if r.state == KeyState::Destroyed {
                return Err(KeysError::KeyDestroyed(r.id.crn(&self.instance)));
            }
            if !dual {
                return Err(KeysError::Refused(format!(
                    "key {} has no dual authorization policy: delete it directly",
                    r.name
                )));
            }
            r.deletion_authorized = Some(DeletionAuthorization { by: by.clone(), at: now_unix() });
            Ok(r.clone())
        })?;
        self.record(self.event("key.delete.authorize", &rec, "success", None, vec![]))
    }

    /// Withdraws a pending authorization to delete `key`. Audited.
    pub fn withdraw_deletion(&self, key: &KeyRef) -> Result<(), KeysError> {
        let rec = self.change(|state| {
            let r = state.find_mut(key)?;
            if r.deletion_authorized.take().is_none() {
                return Err(KeysError::Refused(format!(
                    "key {} has no pending deletion authorization",
                    r.name
                )));
            }
            Ok(r.clone())
        })?;
        self.record(self.event("key.delete.unauthorize", &rec, "success", None, vec![]))
    }

    /// Refuses deleting `rec` as the calling identity while its dual authorization is not
    /// met: authorized by another identity within [`AUTHORIZATION_SECS`].
    pub(crate) fn check_dual_auth(&self, state: &State, rec: &KeyRecord) -> Result<(), KeysError> {
        if !state.dual_auth(rec) {
            return Ok(());
        }
        let by = who();
        match &rec.deletion_authorized {
            Some(a) if a.by != by && now_unix().saturating_sub(a.at) <= AUTHORIZATION_SECS => Ok(()),
            Some(a) if a.by == by => Err(KeysError::NotAuthorized(format!(
                "key {} needs a second identity to delete it: {by} authorized its deletion itself",
                rec.name
            ))),
            Some(_) => Err(KeysError::NotAuthorized(format!(
                "the authorization to delete key {} expired after 7 days: authorize it again",
                rec.name
            ))),
            None => Err(KeysError::NotAuthorized(format!(
                "key {} has a dual authorization policy: another identity must first authorize its deletion (setKeyForDeletion)",
                rec.name
            ))),
        }
    }

    /// The keys a rotation policy says are due at `now`: active, generated, and whose
    /// current version is at least the policy's interval old (`month` seconds a month).
    pub fn due_rotations(&self, now: u64, month: u64) -> Result<Vec<String>, KeysError> {
        let state = self.snapshot()?;
        Ok(state
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Active && k.origin == Origin::Generated)
            .filter_map(|k| {
                let r = state.rotation(k)?;
                let since = k.versions.last().map_or(k.created, |v| v.created);
                (now.saturating_sub(since) >= u64::from(r.interval_month) * month).then(|| k.id.to_string())
            })
            .collect())
    }
}
