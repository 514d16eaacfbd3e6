//! The PKCS#11 token: found by label in a module loaded once per process ([`super::module`]),
//! logged in to once, with a pool of sessions serving worker threads. Root keys are AES-256
//! token objects that are sensitive, never extractable and allowed only to wrap and unwrap;
//! bucket keys are wrapped and unwrapped with `CKM_AES_KEY_WRAP_PAD` (RFC 5649) through
//! `C_WrapKey` / `C_UnwrapKey`. Every operation is counted.
//!
//! Recovery: when a wrap or unwrap fails the way a lost token fails (a PKCS#11 error, or a
//! root key the token no longer shows), the module is re-initialised (at most once a
//! second, backing off while that does not help), the dead sessions are forgotten and the
//! next call logs in again, reading the PIN file afresh, then the operation is tried once
//! more. A PIN the token refused is not tried again (that would lock a real HSM's
//! token): the PIN file must change first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLockReadGuard};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::config::HsmConfig;
use super::error::KeysError;
use super::module::{self, Generation, Module, Reinit};
use engine::SecretKey;
use engine::key::KEY_LEN;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn hsm_err(op: &'static str) -> impl FnOnce(CkError) -> KeysError {
    move |e| KeysError::Hsm { op, reason: e.to_string() }
}

/// Counts of HSM operations (each is one or a few PKCS#11 calls) since start.
#[derive(Debug, Default)]
pub struct HsmCounters {
    /// Keys wrapped.
    pub wraps: AtomicU64,
    /// Keys unwrapped.
    pub unwraps: AtomicU64,
    /// Root keys generated, imported or destroyed.
    pub admin: AtomicU64,
    /// Operations the token refused or failed.
    pub failures: AtomicU64,
    /// Module re-initialisations after failures.
    pub recoveries: AtomicU64,
}

impl HsmCounters {
    /// Wraps plus unwraps: the calls on the data path.
    pub fn data_path_calls(&self) -> u64 {
        self.wraps.load(Ordering::Relaxed) + self.unwraps.load(Ordering::Relaxed)
    }
}

/// What makes a root key version's token object: its `CKA_ID` and `CKA_LABEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `CKA_ID`.
    pub id: Vec<u8>,
    /// `CKA_LABEL`.
    pub label: String,
}

/// A logged-in token with a pool of sessions.
pub struct Hsm {
    module: Arc<Module>,
    config: HsmConfig,
    conn: Mutex<Connection>,
    counters: HsmCounters,
}

/// This process's hold on the token in one module generation.
struct Connection {
    /// The module generation the fields below belong to.
    generation: u64,
    /// The token's slot once logged in this generation; `None` until then.
    slot: Option<Slot>,
    /// Idle sessions.
    pool: Vec<Session>,
    /// Root key object handles by `CKA_ID` (valid for every session of this generation).
    handles: Vec<(Vec<u8>, ObjectHandle)>,
    /// The last PIN the token refused: not offered again until the PIN source changes.
    refused_pin: Option<SecretString>,
}

impl Connection {
    /// Moves to `generation`: the module was re-initialised, every session and handle died
    /// with it.
    fn renew(&mut self, generation: u64) {
        for dead in self.pool.drain(..) {
            // Closing a dead session's handle could close a live session that reuses the
            // number; the Session value holds nothing else worth freeing.
            std::mem::forget(dead);
        }
        self.handles.clear();
        self.slot = None;
        self.generation = generation;
    }
}

/// A session borrowed from the pool, returned on drop; holds the module generation so no
/// re-initialisation happens while it is in use.
struct Pooled<'a> {
    hsm: &'a Hsm,
    session: Option<Session>,
    _generation: RwLockReadGuard<'a, Generation>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        // Present from creation until drop.
        self.session.as_ref().unwrap_or_else(|| unreachable!("pooled session taken twice"))
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            lock(&self.hsm.conn).pool.push(s);
        }
    }
}

/// Whether an error may be the token's fault rather than the request's: worth a
/// re-initialisation and one more try.
fn may_recover(e: &KeysError) -> bool {
    matches!(e, KeysError::Hsm { .. } | KeysError::KeyNotInHsm(_) | KeysError::TokenNotFound(_))
}

impl Hsm {
    /// Loads the module, finds the token by label and logs in. Errors name the module,
    /// the token or the PIN problem in one line.
    pub fn open(config: &HsmConfig) -> Result<Self, KeysError> {
        let hsm = Self {
            module: module::load(&config.module)?,
            config: config.clone(),
            conn: Mutex::new(Connection {
                generation: 0,
                slot: None,
                pool: Vec::new(),
                handles: Vec::new(),
                refused_pin: None,
            }),
            counters: HsmCounters::default(),
        };
        drop(hsm.session()?);
        Ok(hsm)
    }

    /// The token label.
    pub fn token(&self) -> &str {
        &self.config.token
    }

    /// Operation counters.
    pub fn counters(&self) -> &HsmCounters {
        &self.counters
    }

    fn session(&self) -> Result<Pooled<'_>, KeysError> {
        let generation = self.module.enter();
        let (idle, slot) = {
            let mut conn = lock(&self.conn);
            if conn.generation != generation.number {
                conn.renew(generation.number);
            }
            (conn.pool.pop(), conn.slot)
        };
        let session = match (idle, slot) {
            (Some(s), _) => s,
            // The login state belongs to the application, so new sessions are logged in.
            (None, Some(slot)) => {
                self.module.ctx().open_rw_session(slot).map_err(hsm_err("C_OpenSession"))?
            }
            (None, None) => self.log_in()?,
        };
        Ok(Pooled { hsm: self, session: Some(session), _generation: generation })
    }

    /// Finds the token, opens a session and logs in: the first session of a generation.
    /// The caller holds the module generation.
    fn log_in(&self) -> Result<Session, KeysError> {
        let ctx = self.module.ctx();
        let token = &self.config.token;
        let slots = ctx.get_slots_with_initialized_token().map_err(hsm_err("C_GetSlotList"))?;
        let slot = slots
            .into_iter()
            .find(|s| ctx.get_token_info(*s).map(|t| t.label().trim() == token).unwrap_or(false))
            .ok_or_else(|| KeysError::TokenNotFound(token.clone()))?;
        let session = ctx.open_rw_session(slot).map_err(hsm_err("C_OpenSession"))?;
        let pin = self.config.current_pin();
        let refused = lock(&self.conn)
            .refused_pin
            .as_ref()
            .is_some_and(|r| bool::from(r.expose_secret().as_bytes().ct_eq(pin.expose_secret().as_bytes())));
        if refused {
            return Err(KeysError::BadPin(token.clone()));
        }
        match session.login(UserType::User, Some(&AuthPin::from(pin.expose_secret().to_owned()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                lock(&self.conn).refused_pin = Some(pin);
                return Err(KeysError::BadPin(token.clone()));
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(KeysError::PinLocked(token.clone())),
            Err(CkError::Pkcs11(RvError::UserPinNotInitialized, _)) => {
                return Err(KeysError::Config(format!("token {token:?} has no user PIN set")));
            }
            Err(e) => return Err(hsm_err("C_Login")(e)),
        }
        let mut conn = lock(&self.conn);
        conn.refused_pin = None;
        conn.slot = Some(slot);
        Ok(session)
    }

    /// Runs `op`; if it fails the way a lost token fails, re-initialises the module (unless
    /// that happened less than a second ago) and runs it once more.
    fn recovering<T>(&self, op: impl Fn() -> Result<T, KeysError>) -> Result<T, KeysError> {
        let first = op();
        // The generation the failed call ran in (session() brought the connection to it).
        let seen = lock(&self.conn).generation;
        match first {
            Err(e) if may_recover(&e) => match self.module.reinitialize(seen) {
                Ok(Reinit::Done) => {
                    self.counters.recoveries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(token = %self.config.token, error = %e, "HSM failure: reconnected, trying again");
                    op()
                }
                Ok(Reinit::AlreadyDone) => op(),
                Ok(Reinit::TooSoon) => Err(e),
                Err(reinit) => {
                    tracing::error!(error = %reinit, "HSM recovery failed");
                    Err(e)
                }
            },
            other => other,
        }
    }

    fn count<T>(&self, counter: &AtomicU64, r: Result<T, KeysError>) -> Result<T, KeysError> {
        match &r {
            Ok(_) => {
                self.module.succeeded();
                counter.fetch_add(1, Ordering::Relaxed)
            }
            Err(_) => self.counters.failures.fetch_add(1, Ordering::Relaxed),
        };
        r
    }

    /// A bucket key passing through the token: a session object that can be wrapped and
    /// read back, destroyed right after use.
    fn session_key_template() -> Vec<Attribute> {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ]
    }

    fn root_template(obj: &ObjectRef) -> Vec<Attribute> {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Id(obj.id.clone()),
            Attribute::Label(obj.label.as_bytes().to_vec()),
        ]
    }

    /// Generates an AES-256 root key inside the token.
    pub fn generate_root(&self, obj: &ObjectRef) -> Result<(), KeysError> {
        let r = (|| {
            let mut template = Self::root_template(obj);
            template.push(Attribute::ValueLen(32.into()));
            self.session()?
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(hsm_err("C_GenerateKey"))?;
            Ok(())
        })();
        self.count(&self.counters.admin, r)
    }

    /// Imports customer key material as a root key with the same restrictions.
    pub fn import_root(&self, obj: &ObjectRef, material: &SecretKey) -> Result<(), KeysError> {
        let r = (|| {
            let mut template = Self::root_template(obj);
            template.push(Attribute::Value(material.expose().to_vec()));
            let s = self.session()?;
            s.create_object(&template).map_err(hsm_err("C_CreateObject"))?;
            // The Vec handed to cryptoki is dropped inside the template; wipe our copies.
            for a in template.iter_mut() {
                if let Attribute::Value(v) = a {
                    zeroize::Zeroize::zeroize(v);
                }
            }
            Ok(())
        })();
        self.count(&self.counters.admin, r)
    }

    fn find(&self, s: &Session, id: &[u8]) -> Result<Option<ObjectHandle>, KeysError> {
        if let Some((_, h)) = lock(&self.conn).handles.iter().find(|(k, _)| k == id) {
            return Ok(Some(*h));
        }
        let template = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Id(id.to_vec())];
        let found = s.find_objects(&template).map_err(hsm_err("C_FindObjects"))?.into_iter().next();
        if let Some(h) = found {
            lock(&self.conn).handles.push((id.to_vec(), h));
        }
        Ok(found)
    }

    /// Forgets a cached handle (the object was destroyed, here or by another process).
    fn forget(&self, id: &[u8]) {
        lock(&self.conn).handles.retain(|(k, _)| k != id);
    }

    /// Runs `op` with the root key's handle. If it fails and a fresh lookup finds a
    /// different handle (another process destroyed and re-created the object, as restore
    /// does), runs it once more with that one.
    fn with_root<T>(
        &self,
        s: &Session,
        id: &[u8],
        missing: impl Fn() -> KeysError,
        op: impl Fn(ObjectHandle) -> Result<T, KeysError>,
    ) -> Result<T, KeysError> {
        let h = self.find(s, id)?.ok_or_else(&missing)?;
        match op(h) {
            Err(e @ (KeysError::Hsm { .. } | KeysError::UnwrapFailed(_))) => {
                self.forget(id);
                match self.find(s, id)? {
                    Some(fresh) if fresh != h => op(fresh),
                    Some(_) => Err(e),
                    None => Err(missing()),
                }
            }
            other => other,
        }
    }

    /// Whether a root key object with this id exists.
    pub fn root_exists(&self, id: &[u8]) -> Result<bool, KeysError> {
        let s = self.session()?;
        self.forget(id);
        Ok(self.find(&s, id)?.is_some())
    }

    /// Destroys the root key object (crypto-shredding). Returns whether one existed.
    pub fn destroy_root(&self, id: &[u8]) -> Result<bool, KeysError> {
        let r = (|| {
            let s = self.session()?;
            self.forget(id);
            match self.find(&s, id)? {
                Some(h) => {
                    self.forget(id);
                    s.destroy_object(h).map_err(hsm_err("C_DestroyObject"))?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })();
        self.count(&self.counters.admin, r)
    }

    /// Wraps `key` under the root key object `root_id` (RFC 5649).
    pub fn wrap(&self, root_id: &[u8], key: &SecretKey) -> Result<Vec<u8>, KeysError> {
        let r = self.recovering(|| {
            let s = self.session()?;
            let missing = || KeysError::KeyNotInHsm(base::hex::encode(root_id));
            self.with_root(&s, root_id, missing, |root| {
                let mut template = Self::session_key_template();
                template.push(Attribute::Value(key.expose().to_vec()));
                let tmp = s.create_object(&template).map_err(hsm_err("C_CreateObject"));
                if let Some(Attribute::Value(mut v)) = template.pop() {
                    zeroize::Zeroize::zeroize(&mut v);
                }
                let tmp = tmp?;
                let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, root, tmp).map_err(hsm_err("C_WrapKey"));
                let destroyed = s.destroy_object(tmp).map_err(hsm_err("C_DestroyObject"));
                let wrapped = wrapped?;
                destroyed?;
                Ok(wrapped)
            })
        });
        self.count(&self.counters.wraps, r)
    }

    /// Unwraps a key wrapped by [`Hsm::wrap`] under `root_id`. A wrong root key or a
    /// tampered blob is [`KeysError::UnwrapFailed`]; a root key the token does not hold is
    /// [`KeysError::KeyNotInHsm`] (the caller tells deletion from an HSM fault).
    pub fn unwrap(&self, root_id: &[u8], wrapped: &[u8], key_name: &str) -> Result<SecretKey, KeysError> {
        let r = self.recovering(|| {
            let s = self.session()?;
            let missing = || KeysError::KeyNotInHsm(key_name.to_owned());
            self.with_root(&s, root_id, missing, |root| {
                let template = Self::session_key_template();
                let tmp = match s.unwrap_key(&Mechanism::AesKeyWrapPad, root, wrapped, &template) {
                    Ok(h) => h,
                    Err(CkError::Pkcs11(
                        RvError::WrappedKeyInvalid
                        | RvError::WrappedKeyLenRange
                        | RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange
                        | RvError::GeneralError,
                        _,
                    )) => return Err(KeysError::UnwrapFailed(key_name.to_owned())),
                    Err(e) => return Err(hsm_err("C_UnwrapKey")(e)),
                };
                let attrs =
                    s.get_attributes(tmp, &[AttributeType::Value]).map_err(hsm_err("C_GetAttributeValue"));
                let destroyed = s.destroy_object(tmp).map_err(hsm_err("C_DestroyObject"));
                let mut attrs = attrs?;
                destroyed?;
                let mut key = None;
                for a in attrs.iter_mut() {
                    if let Attribute::Value(v) = a {
                        if v.len() == KEY_LEN {
                            let mut k = [0u8; KEY_LEN];
                            k.copy_from_slice(v);
                            key = Some(SecretKey::from_bytes(k));
                            zeroize::Zeroize::zeroize(&mut k);
                        }
                        zeroize::Zeroize::zeroize(v);
                    }
                }
                key.ok_or_else(|| KeysError::UnwrapFailed(key_name.to_owned()))
            })
        });
        self.count(&self.counters.unwraps, r)
    }

    /// Reads attributes of the root key object (for checks and tests); sensitive values are
    /// simply absent from the result.
    pub fn root_attributes(&self, id: &[u8], types: &[AttributeType]) -> Result<Vec<Attribute>, KeysError> {
        let s = self.session()?;
        let h = self
            .find(&s, id)?
            .ok_or_else(|| KeysError::Refused("root key object missing in the HSM".into()))?;
        s.get_attributes(h, types).map_err(hsm_err("C_GetAttributeValue"))
    }

    /// Tries to wrap the root key object itself with another root key: must fail for a
    /// non-extractable key. Returns whether the token allowed it (for checks and tests).
    pub fn root_is_wrappable(&self, id: &[u8], by: &[u8]) -> Result<bool, KeysError> {
        let s = self.session()?;
        let key = self.find(&s, id)?.ok_or_else(|| KeysError::Refused("root key object missing".into()))?;
        let wrapper =
            self.find(&s, by)?.ok_or_else(|| KeysError::Refused("root key object missing".into()))?;
        Ok(s.wrap_key(&Mechanism::AesKeyWrapPad, wrapper, key).is_ok())
    }
}
