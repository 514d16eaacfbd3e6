//! The PKCS#11 token: the module is loaded and initialised once per process, the user logs
//! in once, and a pool of sessions serves worker threads. Root keys are AES-256 token
//! objects that are sensitive, never extractable and allowed only to wrap and unwrap; bucket
//! keys are wrapped and unwrapped with `CKM_AES_KEY_WRAP_PAD` (RFC 5649) through
//! `C_WrapKey` / `C_UnwrapKey`. Every operation is counted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use secrecy::ExposeSecret;

use super::config::HsmConfig;
use super::error::KeysError;
use crate::engine::SecretKey;
use crate::engine::key::KEY_LEN;

/// Process-wide PKCS#11 contexts, one per module path: `C_Initialize` may run only once per
/// process, and the contexts live as long as the process.
static CONTEXTS: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn context(module: &Path) -> Result<Pkcs11, KeysError> {
    let mut contexts = lock(&CONTEXTS);
    if let Some((_, ctx)) = contexts.iter().find(|(p, _)| p == module) {
        return Ok(ctx.clone());
    }
    let fail = |reason: String| KeysError::Module { path: module.display().to_string(), reason };
    if !module.exists() {
        return Err(fail("no such file (install softhsm2, or set CIPHERSTORE_PKCS11_MODULE)".into()));
    }
    let ctx = Pkcs11::new(module).map_err(|e| fail(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    contexts.push((module.to_owned(), ctx.clone()));
    Ok(ctx)
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
    ctx: Pkcs11,
    slot: Slot,
    token: String,
    pool: Mutex<Vec<Session>>,
    /// Root key object handles by `CKA_ID` (valid for every session of this process).
    handles: Mutex<Vec<(Vec<u8>, ObjectHandle)>>,
    counters: HsmCounters,
}

/// A session borrowed from the pool, returned on drop.
struct Pooled<'a> {
    hsm: &'a Hsm,
    session: Option<Session>,
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
            lock(&self.hsm.pool).push(s);
        }
    }
}

impl Hsm {
    /// Loads the module, finds the token by label and logs in. Errors name the module,
    /// the token or the PIN problem in one line.
    pub fn open(config: &HsmConfig) -> Result<Self, KeysError> {
        let ctx = context(&config.module)?;
        let slots = ctx.get_slots_with_initialized_token().map_err(hsm_err("C_GetSlotList"))?;
        let slot = slots
            .into_iter()
            .find(|s| ctx.get_token_info(*s).map(|t| t.label().trim() == config.token).unwrap_or(false))
            .ok_or_else(|| KeysError::TokenNotFound(config.token.clone()))?;
        let session = ctx.open_rw_session(slot).map_err(hsm_err("C_OpenSession"))?;
        let pin = AuthPin::from(config.pin.expose_secret().to_owned());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                return Err(KeysError::BadPin(config.token.clone()));
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(KeysError::PinLocked(config.token.clone()));
            }
            Err(CkError::Pkcs11(RvError::UserPinNotInitialized, _)) => {
                return Err(KeysError::Config(format!("token {:?} has no user PIN set", config.token)));
            }
            Err(e) => return Err(hsm_err("C_Login")(e)),
        }
        Ok(Self {
            ctx,
            slot,
            token: config.token.clone(),
            pool: Mutex::new(vec![session]),
            handles: Mutex::new(Vec::new()),
            counters: HsmCounters::default(),
        })
    }

    /// The token label.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Operation counters.
    pub fn counters(&self) -> &HsmCounters {
        &self.counters
    }

    fn session(&self) -> Result<Pooled<'_>, KeysError> {
        let pooled = lock(&self.pool).pop();
        let session = match pooled {
            Some(s) => s,
            // The login state belongs to the application, so new sessions are logged in.
            None => self.ctx.open_rw_session(self.slot).map_err(hsm_err("C_OpenSession"))?,
        };
        Ok(Pooled { hsm: self, session: Some(session) })
    }

    fn count<T>(&self, counter: &AtomicU64, r: Result<T, KeysError>) -> Result<T, KeysError> {
        match &r {
            Ok(_) => counter.fetch_add(1, Ordering::Relaxed),
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
        if let Some((_, h)) = lock(&self.handles).iter().find(|(k, _)| k == id) {
            return Ok(Some(*h));
        }
        let template = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Id(id.to_vec())];
        let found = s.find_objects(&template).map_err(hsm_err("C_FindObjects"))?.into_iter().next();
        if let Some(h) = found {
            lock(&self.handles).push((id.to_vec(), h));
        }
        Ok(found)
    }

    /// Forgets a cached handle (the object was destroyed, here or by another process).
    fn forget(&self, id: &[u8]) {
        lock(&self.handles).retain(|(k, _)| k != id);
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
        let r = (|| {
            let s = self.session()?;
            let missing = || KeysError::KeyNotInHsm(root_id.iter().map(|b| format!("{b:02x}")).collect());
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
        })();
        self.count(&self.counters.wraps, r)
    }

    /// Unwraps a key wrapped by [`Hsm::wrap`] under `root_id`. A wrong root key or a
    /// tampered blob is [`KeysError::UnwrapFailed`]; a root key the token does not hold is
    /// [`KeysError::KeyNotInHsm`] (the caller tells deletion from an HSM fault).
    pub fn unwrap(&self, root_id: &[u8], wrapped: &[u8], key_name: &str) -> Result<SecretKey, KeysError> {
        let r = (|| {
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
        })();
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
