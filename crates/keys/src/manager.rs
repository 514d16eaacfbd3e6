//! The key manager: the Key Protect lifecycle (create, import, list, show, rotate,
//! disable, enable, delete, restore), the instance default root key (SSE-S3, and aws:kms
//! without a key id), and the envelope hierarchy (root key → one bucket key per bucket and
//! root key pair),
//! tying the HSM, the persistent state ([`StateStore`]: a file, or etcd shared by gateways),
//! the bucket key cache and the audit trail together.
//! This is the library API the CLI (`cipherstore keys …`) and the S3 service call.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::audit::{AuditEvent, AuditLog};
use super::cache::BucketKeyCache;
use super::error::KeysError;
use super::hsm::Hsm;
use super::id::{KeyId, KeyRef, key_check_value};
use super::state::{BucketBinding, KeyRecord, KeyState, KeyVersion, Origin, State, StateStore};
use super::state_file::FileState;
use super::wrapping::{self, WrapMethod};
use base::clock::{now_unix, rfc3339};
use engine::SecretKey;

/// Default bucket key cache lifetime.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a deleted imported key can be restored.
pub const RESTORE_WINDOW_SECS: u64 = 30 * 86_400;
/// The bucket key state change event name, after Activity Tracker's.
pub const BUCKET_KEY_EVENT: &str = "cipherstore.bucket-key-state.update";
/// Name of the instance default root key: created in the HSM on first use by SSE-S3 (and
/// aws:kms without a key id); a key of this name created or imported beforehand is used
/// instead.
pub const DEFAULT_KEY_NAME: &str = "cipherstore-default";

/// Options of a [`KeyManager`].
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Directory of `audit.jsonl`, and of `state.json` and `state.lock` when the state is
    /// kept in files.
    pub dir: PathBuf,
    /// Instance name in CRNs.
    pub instance: String,
    /// Bucket key cache lifetime.
    pub cache_ttl: Duration,
}

impl ManagerOptions {
    /// Defaults for a keys directory.
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned(), instance: "local".into(), cache_ttl: DEFAULT_CACHE_TTL }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct KeyMetrics {
    /// Bucket keys wrapped in the HSM.
    pub hsm_wraps: u64,
    /// Bucket keys unwrapped in the HSM.
    pub hsm_unwraps: u64,
    /// Root keys generated, imported or destroyed.
    pub hsm_admin: u64,
    /// HSM operations that failed.
    pub hsm_failures: u64,
    /// PKCS#11 module re-initialisations after HSM failures.
    pub hsm_recoveries: u64,
    /// Bucket key cache hits.
    pub cache_hits: u64,
    /// Bucket key cache misses.
    pub cache_misses: u64,
    /// How new root key versions wrap bucket keys on this token.
    pub wrap_method: WrapMethod,
    /// Whether a remote key service answers (the HSM counters are then the service's own,
    /// not reported here).
    pub remote: bool,
    /// Calls to a remote key service (a gateway without an HSM of its own).
    pub service_calls: u64,
    /// Of those, the ones that failed or found the service unavailable.
    pub service_failures: u64,
}

/// A root key as shown to users.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyView {
    /// CRN.
    pub crn: String,
    /// Bare id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `active`, `suspended` or `destroyed`.
    pub state: KeyState,
    /// `generated` or `imported`.
    pub origin: Origin,
    /// Current version.
    pub version: u32,
    /// How the current version wraps bucket keys.
    pub wrap_method: WrapMethod,
    /// All versions.
    pub versions: Vec<KeyVersion>,
    /// Creation time.
    pub created: String,
    /// Destruction time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed_at: Option<String>,
    /// Buckets it protects.
    pub buckets: Vec<String>,
    /// Those of them with S3 Object Lock: while any is listed, the key can be neither
    /// deleted nor disabled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<String>,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Other names it answers to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Last change, RFC 3339.
    pub updated: String,
    /// Deleted with its material kept in the HSM: restores without material until purged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restorable: bool,
    /// Who created it, when a key service caller did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Destruction time, Unix seconds.
    #[serde(skip)]
    pub destroyed_unix: Option<u64>,
    /// Its own policies.
    #[serde(skip_serializing_if = "super::policy::Policies::is_empty")]
    pub policies: super::policy::Policies,
    /// Whether deleting it needs two identities (its policy, else the instance's).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dual_auth_delete: bool,
    /// The rotation policy in force (its own, else the instance's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<super::policy::Rotation>,
    /// A pending authorization to delete it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_authorized: Option<super::policy::DeletionAuthorization>,
    /// The key ring it is in.
    pub key_ring: String,
}

/// The longest key description.
pub const MAX_DESCRIPTION: usize = 240;

/// A root key to create.
#[derive(Clone, Copy)]
pub struct NewRootKey<'a> {
    /// A unique name.
    pub name: &'a str,
    /// What it is for.
    pub description: Option<&'a str>,
    /// Material to import; none: generated inside the HSM.
    pub material: Option<&'a SecretKey>,
    /// The key ring to put it in (`None`: `default`); it must exist.
    pub ring: Option<&'a str>,
}

/// The lifecycle and hierarchy over one HSM token and one key state.
pub struct KeyManager {
    pub(crate) hsm: Hsm,
    pub(crate) state: Box<dyn StateStore>,
    audit: AuditLog,
    pub(crate) instance: String,
    pub(crate) cache: BucketKeyCache,
    /// The state store's generation the cache was last reconciled with.
    reconciled: AtomicU64,
}

impl KeyManager {
    /// Opens the keys directory (state in `state.json`) over a logged-in token.
    pub fn open(hsm: Hsm, options: &ManagerOptions) -> Result<Self, KeysError> {
        let state = FileState::open(&options.dir)?;
        Self::with_state(hsm, options, Box::new(state))
    }

    /// A manager over a logged-in token and the given state store (the audit log stays in
    /// `options.dir`).
    pub fn with_state(
        hsm: Hsm,
        options: &ManagerOptions,
        state: Box<dyn StateStore>,
    ) -> Result<Self, KeysError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&options.dir)
            .map_err(KeysError::io(format!("cannot create the keys directory {}", options.dir.display())))?;
        Ok(Self {
            hsm,
            audit: AuditLog::new(options.dir.join("audit.jsonl")),
            reconciled: AtomicU64::new(state.generation()),
            state,
            instance: options.instance.clone(),
            cache: BucketKeyCache::new(options.cache_ttl),
        })
    }

    /// Where the key state is, for messages.
    pub fn state_location(&self) -> String {
        self.state.describe()
    }

    /// The HSM underneath.
    pub fn hsm(&self) -> &Hsm {
        &self.hsm
    }

    /// The audit log.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// Counters for metrics.
    pub fn metrics(&self) -> KeyMetrics {
        let c = self.hsm.counters();
        KeyMetrics {
            hsm_wraps: c.wraps.load(Ordering::Relaxed),
            hsm_unwraps: c.unwraps.load(Ordering::Relaxed),
            wrap_method: self.hsm.method(),
            hsm_admin: c.admin.load(Ordering::Relaxed),
            hsm_failures: c.failures.load(Ordering::Relaxed),
            hsm_recoveries: c.recoveries.load(Ordering::Relaxed),
            cache_hits: self.cache.hits(),
            cache_misses: self.cache.misses(),
            remote: false,
            service_calls: 0,
            service_failures: 0,
        }
    }

    pub(crate) fn crn(&self, id: &KeyId) -> String {
        id.crn(&self.instance)
    }

    /// The state as committed now.
    pub(crate) fn snapshot(&self) -> Result<State, KeysError> {
        self.state.fresh()
    }

    /// Runs `change` on the committed state under the writers' lock and saves the result.
    pub(crate) fn change<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, KeysError>,
    ) -> Result<T, KeysError> {
        let mut change = Some(change);
        let mut out = None;
        self.state.change(&mut |state| {
            let f = change.take().ok_or_else(|| KeysError::Refused("a key state change ran twice".into()))?;
            out = Some(f(state)?);
            Ok(())
        })?;
        out.ok_or_else(|| KeysError::Refused("a key state change did not run".into()))
    }

    /// Drops cached bucket keys that a change made elsewhere (noticed by the state store)
    /// no longer allows: their root key not active any more, or their bucket unbound.
    fn reconcile(&self) {
        let generation = self.state.generation();
        if self.reconciled.swap(generation, Ordering::AcqRel) == generation {
            return;
        }
        match self.state.cached() {
            Ok(state) => {
                let dropped = self.cache.retain(|bucket, root| {
                    state.buckets.iter().any(|b| b.bucket == bucket && &b.key == root)
                        && state.keys.iter().any(|k| &k.id == root && k.state == KeyState::Active)
                });
                if dropped > 0 {
                    tracing::info!(dropped, "bucket keys dropped after a key state change made elsewhere");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the key state; dropping every cached bucket key");
                self.cache.retain(|_, _| false);
            }
        }
    }

    pub(crate) fn event(
        &self,
        action: &str,
        rec: &KeyRecord,
        outcome: &str,
        reason: Option<String>,
        buckets: Vec<String>,
    ) -> AuditEvent {
        AuditEvent {
            time: rfc3339(now_unix()),
            action: action.to_owned(),
            key: self.crn(&rec.id),
            key_version: rec.current(),
            outcome: outcome.to_owned(),
            reason,
            event: (!buckets.is_empty()).then_some(BUCKET_KEY_EVENT),
            buckets,
            initiator: super::audit::initiator(),
        }
    }

    pub(crate) fn record(&self, event: AuditEvent) -> Result<(), KeysError> {
        self.audit.append(&event)
    }

    pub(crate) fn view(&self, state: &State, rec: &KeyRecord) -> KeyView {
        KeyView {
            crn: self.crn(&rec.id),
            id: rec.id.to_string(),
            name: rec.name.clone(),
            state: rec.state,
            origin: rec.origin,
            version: rec.current(),
            wrap_method: rec.method_of(rec.current()),
            versions: rec.versions.clone(),
            created: rfc3339(rec.created),
            destroyed_at: rec.destroyed_at.map(rfc3339),
            buckets: state.buckets_of(&rec.id),
            retained: state.retained_of(&rec.id),
            description: rec.description.clone(),
            aliases: rec.aliases.clone(),
            updated: rfc3339(rec.updated),
            restorable: rec.restorable,
            created_by: rec.created_by.clone(),
            destroyed_unix: rec.destroyed_at,
            policies: rec.policies.clone(),
            dual_auth_delete: state.dual_auth(rec),
            rotation: state.rotation(rec),
            deletion_authorized: rec.deletion_authorized.clone(),
            key_ring: rec.key_ring.clone().unwrap_or_else(|| super::rings::DEFAULT_RING.to_owned()),
        }
    }

    fn check_name(state: &State, name: &str) -> Result<(), KeysError> {
        if name.is_empty() || name.len() > 240 || name.chars().any(char::is_control) {
            return Err(KeysError::Refused("a key name is 1 to 240 printable characters".into()));
        }
        if KeyId::parse(name).is_some() {
            return Err(KeysError::Refused("a key name must not look like a key id".into()));
        }
        if state.name_taken(name) {
            return Err(KeysError::Refused(format!("a key named {name:?} already exists")));
        }
        Ok(())
    }

    fn new_record(&self, id: KeyId, name: &str, origin: Origin, kcv: Option<String>) -> KeyRecord {
        let now = now_unix();
        let method = self.hsm.method();
        KeyRecord {
            id,
            name: name.to_owned(),
            origin,
            state: KeyState::Active,
            versions: vec![KeyVersion { version: 1, created: now, kcv, method }],
            created: now,
            updated: now,
            destroyed_at: None,
            restorable: false,
            key_ring: None,
            policies: Default::default(),
            deletion_authorized: None,
            created_by: super::audit::initiator(),
            description: None,
            aliases: Vec::new(),
        }
    }

    /// Creates a root key inside the HSM.
    pub fn create(&self, name: &str) -> Result<KeyView, KeysError> {
        self.create_key(&NewRootKey { name, description: None, material: None, ring: None })
    }

    /// Imports customer key material as a root key; its key check value is recorded.
    pub fn import(&self, name: &str, material: &SecretKey) -> Result<KeyView, KeysError> {
        self.create_key(&NewRootKey { name, description: None, material: Some(material), ring: None })
    }

    /// Creates a root key: generated inside the HSM, or imported from `material` (its key
    /// check value recorded).
    pub fn create_key(&self, new: &NewRootKey<'_>) -> Result<KeyView, KeysError> {
        if let Some(d) = new.description
            && (d.len() > MAX_DESCRIPTION || d.chars().any(char::is_control))
        {
            return Err(KeysError::Refused(format!(
                "a key description is at most {MAX_DESCRIPTION} printable characters"
            )));
        }
        let kcv = new.material.map(key_check_value);
        let origin = if new.material.is_some() { Origin::Imported } else { Origin::Generated };
        let (view, rec) = self.change(|state| {
            Self::check_name(state, new.name)?;
            if let Some(ring) = new.ring.filter(|r| !state.has_ring(r)) {
                return Err(KeysError::RingNotFound(ring.to_owned()));
            }
            let mut rec = self.new_record(KeyId::random(), new.name, origin, kcv.clone());
            rec.description = new.description.map(str::to_owned);
            rec.key_ring = new.ring.filter(|r| *r != super::rings::DEFAULT_RING).map(str::to_owned);
            match new.material {
                Some(m) => self.hsm.import_root(&rec.id.object(1), rec.method_of(1), m)?,
                None => self.hsm.generate_root(&rec.id.object(1), rec.method_of(1))?,
            }
            state.keys.push(rec.clone());
            Ok((self.view(state, &rec), rec))
        })?;
        let action = if new.material.is_some() { "key.import" } else { "key.create" };
        self.record(self.event(action, &rec, "success", None, vec![]))?;
        Ok(view)
    }

    /// Every root key.
    pub fn list(&self) -> Result<Vec<KeyView>, KeysError> {
        let state = self.snapshot()?;
        Ok(state.keys.iter().map(|k| self.view(&state, k)).collect())
    }

    /// One root key by id, CRN or name.
    pub fn show(&self, key: &KeyRef) -> Result<KeyView, KeysError> {
        let state = self.snapshot()?;
        let rec = state.find(key)?;
        Ok(self.view(&state, rec))
    }

    pub(crate) fn require_active(&self, rec: &KeyRecord, action: &str) -> Result<(), KeysError> {
        let refusal = match rec.state {
            KeyState::Active => return Ok(()),
            KeyState::Suspended => KeysError::KeySuspended(self.crn(&rec.id)),
            KeyState::Destroyed => KeysError::KeyDestroyed(self.crn(&rec.id)),
        };
        let reason = format!("key is {:?}", rec.state).to_lowercase();
        self.record(self.event(action, rec, "refused", Some(reason), vec![]))?;
        Err(refusal)
    }

    /// Rotates a root key: a new version in the HSM (new `material` for imported keys),
    /// then every bucket key it protects is rewrapped under it. No data is rewritten; old
    /// versions stay in the HSM, so bucket keys not yet rewrapped still unwrap.
    pub fn rotate(&self, key: &KeyRef, material: Option<&SecretKey>) -> Result<KeyView, KeysError> {
        let state = self.snapshot()?;
        self.require_active(state.find(key)?, "key.rotate")?;
        // The new version is made under the state lock, so concurrent rotations (from
        // several processes) cannot create the same version twice.
        let rec = self.change(|state| {
            let r = state.find_mut(key)?;
            if r.state != KeyState::Active {
                return Err(KeysError::Refused(format!("key {} is no longer active", r.name)));
            }
            let next = r.current() + 1;
            let method = self.hsm.method();
            let kcv = match (r.origin, material) {
                (Origin::Generated, None) => {
                    self.hsm.generate_root(&r.id.object(next), method)?;
                    None
                }
                (Origin::Imported, Some(m)) => {
                    self.hsm.import_root(&r.id.object(next), method, m)?;
                    Some(key_check_value(m))
                }
                (Origin::Generated, Some(_)) => {
                    return Err(KeysError::Refused(
                        "a generated key rotates inside the HSM: give no material".into(),
                    ));
                }
                (Origin::Imported, None) => {
                    return Err(KeysError::Refused("rotating an imported key needs new key material".into()));
                }
            };
            r.versions.push(KeyVersion { version: next, created: now_unix(), kcv, method });
            r.updated = now_unix();
            Ok(r.clone())
        })?;
        let (rewrapped, failed) = self.rewrap(&rec)?;
        let reason =
            (!failed.is_empty()).then(|| format!("bucket keys not yet rewrapped: {}", failed.join(", ")));
        let outcome = if failed.is_empty() { "success" } else { "partial" };
        self.record(self.event("key.rotate", &rec, outcome, reason, rewrapped))?;
        let state = self.snapshot()?;
        Ok(self.view(&state, state.find(key)?))
    }

    /// Rewraps every bucket key of `rec` still under an older version. Returns the buckets
    /// rewrapped and those that failed (they keep their old, still valid, wrapping).
    fn rewrap(&self, rec: &KeyRecord) -> Result<(Vec<String>, Vec<String>), KeysError> {
        let current = rec.current();
        let state = self.snapshot()?;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for b in state.buckets.iter().filter(|b| b.key == rec.id && b.version != current) {
            let method = rec.method_of(current);
            let result = hex_decode(&b.wrapped).and_then(|w| self.unwrap_binding(rec, b, &w)).and_then(|k| {
                let context = wrapping::bucket_context(&b.bucket, &rec.id.to_string(), current);
                self.hsm.wrap(&rec.id.object(current).id, method, &k, &context).map(|w| (k, w))
            });
            match result {
                Ok((bucket_key, wrapped)) => {
                    let name = b.bucket.clone();
                    self.change(|s| {
                        if let Some(x) = s.buckets.iter_mut().find(|x| x.bucket == name && x.key == rec.id) {
                            x.wrapped = base::hex::encode(&wrapped);
                            x.version = current;
                            x.method = method;
                        }
                        Ok(())
                    })?;
                    self.cache.insert(&name, &rec.id, bucket_key);
                    done.push(name);
                }
                Err(_) => failed.push(b.bucket.clone()),
            }
        }
        Ok((done, failed))
    }

    /// Suspends a key: wraps and unwraps are refused, cached bucket keys are wiped now.
    pub fn disable(&self, key: &KeyRef) -> Result<KeyView, KeysError> {
        self.set_state(key, "key.disable", KeyState::Suspended)
    }

    /// Re-enables a suspended key.
    pub fn enable(&self, key: &KeyRef) -> Result<KeyView, KeysError> {
        self.set_state(key, "key.enable", KeyState::Active)
    }

    fn set_state(&self, key: &KeyRef, action: &str, to: KeyState) -> Result<KeyView, KeysError> {
        let changed = self.change(|state| {
            let buckets = state.buckets_of(&state.find(key)?.id);
            if to == KeyState::Suspended {
                self.refuse_retained(state, key)?;
            }
            let r = state.find_mut(key)?;
            match (r.state, to) {
                (KeyState::Destroyed, _) => return Err(KeysError::KeyDestroyed(r.id.crn(&self.instance))),
                (from, to) if from == to => {
                    return Err(KeysError::Refused(
                        format!("key {} is already {:?}", r.name, to).to_lowercase(),
                    ));
                }
                _ => {}
            }
            r.state = to;
            r.updated = now_unix();
            Ok((r.clone(), buckets))
        });
        let (rec, buckets) = self.audit_refusal(action, key, changed)?;
        self.cache.purge_root(&rec.id);
        self.record(self.event(action, &rec, "success", None, buckets))?;
        let state = self.snapshot()?;
        Ok(self.view(&state, &rec))
    }

    /// Deletes a key (crypto-shredding): destroys every version in the HSM. Refused while
    /// it protects buckets unless `force`. Cached bucket keys under it are wiped now; other
    /// processes lose theirs within the cache TTL.
    pub fn delete(&self, key: &KeyRef, force: bool) -> Result<KeyView, KeysError> {
        self.delete_key(key, force, false)
    }

    /// Deletes a key as Key Protect does: every use is refused at once, as after
    /// [`KeyManager::delete`], but its material stays in the HSM so that
    /// [`KeyManager::restore`] needs none within the restore window;
    /// [`KeyManager::purge`] destroys it.
    pub fn delete_restorable(&self, key: &KeyRef, force: bool) -> Result<KeyView, KeysError> {
        self.delete_key(key, force, true)
    }

    fn delete_key(&self, key: &KeyRef, force: bool, restorable: bool) -> Result<KeyView, KeysError> {
        let deleted = self.change(|state| {
            let r = state.find(key)?.clone();
            let buckets = state.buckets_of(&r.id);
            if r.state == KeyState::Destroyed {
                return Err(KeysError::KeyDestroyed(self.crn(&r.id)));
            }
            self.refuse_retained(state, key)?;
            if !buckets.is_empty() && !force {
                return Err(KeysError::KeyInUse { id: self.crn(&r.id), buckets });
            }
            self.check_dual_auth(state, &r)?;
            if !restorable {
                self.destroy_versions(&r)?;
            }
            let m = state.find_mut(key)?;
            m.state = KeyState::Destroyed;
            m.destroyed_at = Some(now_unix());
            m.updated = now_unix();
            m.restorable = restorable;
            m.deletion_authorized = None;
            Ok((m.clone(), buckets))
        });
        let (rec, buckets) = self.audit_refusal("key.delete", key, deleted)?;
        self.cache.purge_root(&rec.id);
        let why = restorable.then(|| {
            format!(
                "restorable until {}; purging destroys its material",
                rfc3339(now_unix() + RESTORE_WINDOW_SECS)
            )
        });
        self.record(self.event("key.delete", &rec, "success", why, buckets))?;
        let state = self.snapshot()?;
        Ok(self.view(&state, &rec))
    }

    /// Destroys every version of a key in the HSM (and their MAC companions).
    pub(crate) fn destroy_versions(&self, r: &KeyRecord) -> Result<(), KeysError> {
        for v in &r.versions {
            self.hsm.destroy_root(&r.id.object(v.version).id)?;
        }
        Ok(())
    }

    /// Restores a deleted key within 30 days: one deleted through the key service
    /// ([`KeyManager::delete_restorable`]) as it was, needing no material; one whose
    /// material was destroyed, if it was imported, by re-importing the same `material`,
    /// checked against the recorded key check value.
    pub fn restore(&self, key: &KeyRef, material: Option<&SecretKey>) -> Result<KeyView, KeysError> {
        let state = self.snapshot()?;
        let rec = state.find(key)?.clone();
        let refuse = |why: String| -> Result<KeyView, KeysError> {
            self.record(self.event("key.restore", &rec, "refused", Some(why.clone()), vec![]))?;
            Err(KeysError::Refused(why))
        };
        if rec.state != KeyState::Destroyed {
            return refuse(format!("key {} is not deleted", rec.name));
        }
        if now_unix().saturating_sub(rec.destroyed_at.unwrap_or(0)) > RESTORE_WINDOW_SECS {
            return refuse("the 30-day restore window has passed".into());
        }
        if !rec.restorable {
            if rec.origin != Origin::Imported {
                return refuse(
                    "its material was destroyed at deletion, and a generated key's material never left the HSM"
                        .into(),
                );
            }
            let Some(material) = material else {
                return refuse(
                    "its material was destroyed at deletion: restore it with the material imported".into(),
                );
            };
            let current = rec.versions.last().cloned();
            let expected = current.as_ref().and_then(|v| v.kcv.clone());
            if expected.as_deref() != Some(key_check_value(material).as_str()) {
                return refuse("the material does not match the key check value recorded at import".into());
            }
            let version = rec.current();
            self.hsm.import_root(&rec.id.object(version), rec.method_of(version), material)?;
        }
        let (rec, buckets) = self.change(|state| {
            let buckets = state.buckets_of(&rec.id);
            let r = state.find_mut(key)?;
            r.state = KeyState::Active;
            r.destroyed_at = None;
            r.restorable = false;
            r.updated = now_unix();
            Ok((r.clone(), buckets))
        })?;
        self.record(self.event("key.restore", &rec, "success", None, buckets))?;
        let state = self.snapshot()?;
        Ok(self.view(&state, &rec))
    }

    /// Creates the bucket key of `bucket` under root key `key`: random, wrapped by the
    /// key's current version, stored, and cached unwrapped. A bucket has one bucket key per
    /// root key protecting objects in it; [`KeysError::BucketExists`] if this pair has one.
    pub fn create_bucket_key(&self, bucket: &str, key: &KeyRef) -> Result<BucketBinding, KeysError> {
        let state = self.snapshot()?;
        let rec = state.find(key)?.clone();
        let bound = |s: &State| s.buckets.iter().any(|b| b.bucket == bucket && b.key == rec.id);
        if bound(&state) {
            return Err(KeysError::BucketExists(bucket.to_owned()));
        }
        self.require_active(&rec, "key.wrap")?;
        let bucket_key = SecretKey::random();
        let version = rec.current();
        let method = rec.method_of(version);
        let context = wrapping::bucket_context(bucket, &rec.id.to_string(), version);
        let wrapped = self.hsm.wrap(&rec.id.object(version).id, method, &bucket_key, &context)?;
        let binding = BucketBinding {
            bucket: bucket.to_owned(),
            key: rec.id.clone(),
            version,
            method,
            wrapped: base::hex::encode(&wrapped),
            created: now_unix(),
        };
        self.change(|s| {
            if bound(s) {
                return Err(KeysError::BucketExists(bucket.to_owned()));
            }
            s.buckets.push(binding.clone());
            Ok(())
        })?;
        self.cache.insert(bucket, &rec.id, bucket_key);
        Ok(binding)
    }

    /// The unwrapped bucket key of `bucket` under root key `root` (id, CRN or name): from
    /// the cache, or unwrapped in the HSM (one call) if the root key is active.
    pub fn bucket_key(&self, bucket: &str, root: &KeyRef) -> Result<SecretKey, KeysError> {
        self.reconcile();
        let id = match root {
            KeyRef::Id(id) => id.clone(),
            KeyRef::Name(_) => self.state.cached()?.find(root)?.id.clone(),
        };
        if let Some(k) = self.cache.get(bucket, &id) {
            return Ok(k);
        }
        let state = self.snapshot()?;
        let binding = state
            .buckets
            .iter()
            .find(|b| b.bucket == bucket && b.key == id)
            .ok_or_else(|| KeysError::BucketNotFound(bucket.into()))?;
        let rec = state.find(&KeyRef::from(&binding.key))?;
        self.require_active(rec, "key.unwrap")?;
        let wrapped = hex_decode(&binding.wrapped)?;
        let key = match self.unwrap_binding(rec, binding, &wrapped) {
            // Deleted by another process since the snapshot, or an HSM fault: the state,
            // read again, tells which.
            Err(KeysError::KeyNotInHsm(name)) => {
                let fresh = self.snapshot()?;
                return Err(match fresh.find(&KeyRef::from(&binding.key)) {
                    Ok(r) if r.state == KeyState::Destroyed => KeysError::KeyDestroyed(self.crn(&r.id)),
                    _ => KeysError::KeyNotInHsm(name),
                });
            }
            other => other?,
        };
        self.cache.insert(bucket, &rec.id, key.clone());
        Ok(key)
    }

    /// The bucket key of `bucket` under `root` for a write: the pair's key, created
    /// (wrapped in one HSM call) on its first use. Gateways racing to create the same
    /// pair's key agree on the one committed first. `retain`: the bucket has Object Lock,
    /// so a pair made now also marks it retained ([`KeyManager::retain_bucket`]; it was
    /// marked when Object Lock was enabled, unless this gateway had no HSM then).
    pub fn bucket_key_for_write(
        &self,
        bucket: &str,
        root: &KeyRef,
        retain: bool,
    ) -> Result<SecretKey, KeysError> {
        match self.bucket_key(bucket, root) {
            Err(KeysError::BucketNotFound(_)) => {}
            other => return other,
        }
        if retain {
            self.retain_bucket(bucket)?;
        }
        match self.create_bucket_key(bucket, root) {
            Ok(_) | Err(KeysError::BucketExists(_)) => self.bucket_key(bucket, root),
            Err(e) => Err(e),
        }
    }

    /// The instance default root key's CRN ([`DEFAULT_KEY_NAME`]), generated in the HSM on
    /// first use. Its state is not checked here: a suspended or deleted default key refuses
    /// the bucket keys it wraps, as any root key does.
    pub fn default_key(&self) -> Result<String, KeysError> {
        let find = |s: &State| s.keys.iter().find(|k| k.name == DEFAULT_KEY_NAME).map(|k| self.crn(&k.id));
        if let Some(crn) = find(&self.state.cached()?) {
            return Ok(crn);
        }
        let created = self.change(|state| {
            if state.keys.iter().any(|k| k.name == DEFAULT_KEY_NAME) {
                return Ok(None);
            }
            let rec = self.new_record(KeyId::random(), DEFAULT_KEY_NAME, Origin::Generated, None);
            self.hsm.generate_root(&rec.id.object(1), rec.method_of(1))?;
            state.keys.push(rec.clone());
            Ok(Some(rec))
        })?;
        if let Some(rec) = &created {
            let why = "instance default key, for SSE-S3 and aws:kms without a key id".to_owned();
            self.record(self.event("key.create", rec, "success", Some(why), vec![]))?;
        }
        find(&self.snapshot()?).ok_or_else(|| KeysError::KeyNotFound(DEFAULT_KEY_NAME.into()))
    }

    /// The root key (CRN) `bucket` was first bound to (the state as last seen answers, or
    /// else the committed one): the only one for a bucket bound at creation.
    pub fn bucket_root(&self, bucket: &str) -> Result<String, KeysError> {
        let root =
            |state: &State| state.buckets.iter().find(|b| b.bucket == bucket).map(|b| self.crn(&b.key));
        if let Some(crn) = root(&self.state.cached()?) {
            return Ok(crn);
        }
        root(&self.snapshot()?).ok_or_else(|| KeysError::BucketNotFound(bucket.into()))
    }

    /// Marks `bucket` as under S3 Object Lock: from now on the root keys bound to it (now
    /// or later) can be neither deleted nor disabled. Audited.
    pub fn retain_bucket(&self, bucket: &str) -> Result<(), KeysError> {
        if self.snapshot()?.retained.iter().any(|b| b == bucket) {
            return Ok(());
        }
        let roots = self.change(|s| {
            if !s.retained.iter().any(|b| b == bucket) {
                s.retained.push(bucket.to_owned());
            }
            Ok(s.buckets.iter().filter(|b| b.bucket == bucket).map(|b| b.key.clone()).collect::<Vec<_>>())
        })?;
        let state = self.snapshot()?;
        for rec in state.keys.iter().filter(|k| roots.contains(&k.id)) {
            let why = "bucket under Object Lock: the key can be neither deleted nor disabled".to_owned();
            self.record(self.event("key.retain", rec, "success", Some(why), vec![bucket.to_owned()]))?;
        }
        Ok(())
    }

    /// Refuses a change that would delete or disable the root key `key` while it is bound
    /// to a bucket under Object Lock.
    pub(crate) fn refuse_retained(&self, state: &State, key: &KeyRef) -> Result<(), KeysError> {
        let r = state.find(key)?;
        let buckets = state.retained_of(&r.id);
        if buckets.is_empty() {
            return Ok(());
        }
        Err(KeysError::Retained { id: self.crn(&r.id), buckets })
    }

    /// Records a refusal by Object Lock in the audit trail, then returns the outcome.
    pub(crate) fn audit_refusal<T>(
        &self,
        action: &str,
        key: &KeyRef,
        outcome: Result<T, KeysError>,
    ) -> Result<T, KeysError> {
        if let Err(e @ KeysError::Retained { buckets, .. }) = &outcome {
            let state = self.snapshot()?;
            if let Ok(rec) = state.find(key) {
                self.record(self.event(action, rec, "failure", Some(e.to_string()), buckets.clone()))?;
            }
        }
        outcome
    }

    /// Forgets every bucket key of a deleted bucket (a state change only if it has any).
    pub fn remove_bucket_key(&self, bucket: &str) -> Result<(), KeysError> {
        let has = |s: &State| s.buckets.iter().any(|b| b.bucket == bucket);
        let retained = |s: &State| s.retained.iter().any(|b| b == bucket);
        let now = self.snapshot()?;
        if has(&now) || retained(&now) {
            self.change(|s| {
                s.buckets.retain(|b| b.bucket != bucket);
                s.retained.retain(|b| b != bucket);
                Ok(())
            })?;
        }
        self.cache.purge_bucket(bucket);
        Ok(())
    }
}

impl KeyManager {
    /// Unwraps a bucket binding's key in the HSM, by the method it was wrapped with.
    pub(crate) fn unwrap_binding(
        &self,
        rec: &KeyRecord,
        b: &BucketBinding,
        wrapped: &[u8],
    ) -> Result<SecretKey, KeysError> {
        let context = wrapping::bucket_context(&b.bucket, &rec.id.to_string(), b.version);
        self.hsm.unwrap(&rec.id.object(b.version).id, b.method, wrapped, &context, &self.crn(&rec.id))
    }
}

fn hex_decode(s: &str) -> Result<Vec<u8>, KeysError> {
    base::hex::decode(s).ok_or_else(|| KeysError::State {
        path: "state.json".into(),
        reason: "a wrapped key is not hex".into(),
    })
}
