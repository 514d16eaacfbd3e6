//! The PKCS#11 token: found by label in a module loaded once per process ([`super::module`]),
//! logged in to once, with a pool of sessions serving worker threads. Root keys are AES-256
//! token objects that are sensitive and never extractable, allowed only to wrap and unwrap
//! (or, on tokens without key wrapping, only to encrypt and decrypt keys, with a MAC
//! companion object); bucket keys are wrapped and unwrapped by one of the methods of
//! [`super::wrapping`], chosen from the token's mechanisms when it is opened (or set in the
//! configuration) and recorded with each root key version. Every operation is counted.
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
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::config::HsmConfig;
use super::error::KeysError;
use super::module::{self, Generation, Module, Reinit};
use super::slots;
use super::wrapping::{self, CBC_IV_LEN, GCM_NONCE_LEN, GCM_TAG_LEN, Use, WrapMethod};
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
    /// How new root key versions wrap ([`wrapping::choose`], when the token was opened).
    method: WrapMethod,
}

/// This process's hold on the token in one module generation.
struct Connection {
    /// The module generation the fields below belong to.
    generation: u64,
    /// The token's slot once logged in this generation; `None` until then.
    slot: Option<Slot>,
    /// Idle sessions.
    pool: Vec<Session>,
    /// The session the login was made in, kept open and never used: the login belongs to
    /// the application until its last session closes, so pooled sessions that failed
    /// part-way can be closed without logging everything out.
    anchor: Option<Session>,
    /// Root key object handles by `CKA_ID` (valid for every session of this generation).
    handles: Vec<(Vec<u8>, ObjectHandle)>,
    /// The last PIN the token refused: not offered again until the PIN source changes.
    refused_pin: Option<SecretString>,
}

impl Connection {
    /// Moves to `generation`: the module was re-initialised, every session and handle died
    /// with it.
    fn renew(&mut self, generation: u64) {
        for dead in self.pool.drain(..).chain(self.anchor.take()) {
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
    /// Set when an operation failed part-way: the session may still hold an active
    /// operation, so it is closed rather than returned to the pool.
    spoiled: std::cell::Cell<bool>,
    _generation: RwLockReadGuard<'a, Generation>,
}

impl Pooled<'_> {
    /// Closes the session when it is dropped instead of pooling it.
    fn spoil(&self) {
        self.spoiled.set(true);
    }
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
            if self.spoiled.get() {
                drop(s); // C_CloseSession, which ends whatever operation it still held
            } else {
                lock(&self.hsm.conn).pool.push(s);
            }
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
        let mut hsm = Self {
            module: module::load(&config.module)?,
            config: config.clone(),
            conn: Mutex::new(Connection {
                generation: 0,
                slot: None,
                pool: Vec::new(),
                handles: Vec::new(),
                anchor: None,
                refused_pin: None,
            }),
            counters: HsmCounters::default(),
            method: WrapMethod::default(),
        };
        drop(hsm.session()?);
        hsm.method = hsm.choose_method()?;
        Ok(hsm)
    }

    /// The method the token can do: the configured one, or the first of
    /// [`WrapMethod::PREFERENCE`] its mechanisms allow.
    fn choose_method(&self) -> Result<WrapMethod, KeysError> {
        let _generation = self.module.enter();
        let slot =
            lock(&self.conn).slot.ok_or_else(|| KeysError::TokenNotFound(self.config.token.clone()))?;
        let ctx = self.module.ctx();
        let offered = ctx.get_mechanism_list(slot).map_err(hsm_err("C_GetMechanismList"))?;
        let keygen = self.config.keygen.is_some();
        let can = |t: cryptoki::mechanism::MechanismType, u: Use| {
            // A key generation command makes the keys the token cannot.
            (u == Use::Generate && keygen)
                || offered.contains(&t)
                    && ctx.get_mechanism_info(slot, t).is_ok_and(|i| match u {
                        Use::Wrap => i.wrap() && i.unwrap(),
                        Use::Encrypt => i.encrypt() && i.decrypt(),
                        Use::Sign => i.sign() && i.verify(),
                        Use::Generate => i.generate(),
                    })
        };
        wrapping::choose(self.config.wrap, can).map_err(|e| match e {
            KeysError::Config(why) => KeysError::Config(format!("token {:?}: {why}", self.config.token)),
            other => other,
        })
    }

    /// How new root key versions wrap bucket keys on this token.
    pub fn method(&self) -> WrapMethod {
        self.method
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
        Ok(Pooled {
            hsm: self,
            session: Some(session),
            spoiled: std::cell::Cell::new(false),
            _generation: generation,
        })
    }

    /// Finds the token, opens a session and logs in: the first session of a generation.
    /// The caller holds the module generation.
    fn log_in(&self) -> Result<Session, KeysError> {
        let ctx = self.module.ctx();
        let token = &self.config.token;
        let slot = slots::find_token(ctx, &self.config.module, token.trim())?;
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
        let working = ctx.open_rw_session(slot).map_err(hsm_err("C_OpenSession"))?;
        let mut conn = lock(&self.conn);
        conn.refused_pin = None;
        conn.slot = Some(slot);
        if let Some(old) = conn.anchor.replace(session) {
            std::mem::forget(old); // of an earlier generation: see Connection::renew
        }
        Ok(working)
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

    /// A root key version's AES object: used only to wrap and unwrap, or, for the methods
    /// that go through `C_Encrypt`, only to encrypt and decrypt.
    fn root_template(obj: &ObjectRef, method: WrapMethod) -> Vec<Attribute> {
        let encrypts = method.encrypts();
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(!encrypts),
            Attribute::Unwrap(!encrypts),
            Attribute::Encrypt(encrypts),
            Attribute::Decrypt(encrypts),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Id(obj.id.clone()),
            Attribute::Label(obj.label.as_bytes().to_vec()),
        ]
    }

    /// The MAC companion of a root key version (`aes-cbc-hmac-sha256`): a generic secret
    /// used only to sign and verify.
    fn mac_template(obj: &ObjectRef) -> Vec<Attribute> {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Id(wrapping::mac_id(&obj.id)),
            Attribute::Label(format!("{} mac", obj.label).into_bytes()),
        ]
    }

    /// Generates an AES-256 root key version inside the token (with its MAC companion when
    /// `method` needs one; neither is left behind if the other fails). Where the token does
    /// not implement `C_GenerateKey` (tpm2-pkcs11), the configured key generation command
    /// makes them instead ([`HsmConfig::keygen`](super::config::HsmConfig::keygen)).
    pub fn generate_root(&self, obj: &ObjectRef, method: WrapMethod) -> Result<(), KeysError> {
        let r = match self.generate_inside(obj, method) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(unsupported)) => match &self.config.keygen {
                Some(command) => self.generate_outside(command, obj, method),
                None => Err(KeysError::Config(format!(
                    "token {:?} cannot generate keys through PKCS#11 (C_GenerateKey: {unsupported}): set [hsm] \
                     keygen_command (or {}) to the command that makes one (hsm/README.md)",
                    self.config.token,
                    super::config::ENV_KEYGEN
                ))),
            },
            Err(e) => Err(e),
        };
        self.count(&self.counters.admin, r)
    }

    /// `C_GenerateKey` for the version's objects; `Ok(Err(rv))` when the token does not
    /// implement it (nothing made).
    fn generate_inside(&self, obj: &ObjectRef, method: WrapMethod) -> Result<Result<(), RvError>, KeysError> {
        let s = self.session()?;
        let mut template = Self::root_template(obj, method);
        template.push(Attribute::ValueLen(32.into()));
        let aes = match s.generate_key(&Mechanism::AesKeyGen, &template) {
            Ok(h) => h,
            Err(CkError::Pkcs11(rv @ (RvError::FunctionNotSupported | RvError::MechanismInvalid), _)) => {
                return Ok(Err(rv));
            }
            Err(e) => return Err(hsm_err("C_GenerateKey")(e)),
        };
        if method.has_mac_key() {
            let mut template = Self::mac_template(obj);
            template.push(Attribute::ValueLen(32.into()));
            if let Err(e) = s.generate_key(&Mechanism::GenericSecretKeyGen, &template) {
                let _ = s.destroy_object(aes);
                return Err(hsm_err("C_GenerateKey")(e));
            }
        }
        Ok(Ok(()))
    }

    /// The key generation command makes the version's objects; the module is then
    /// re-initialised to see them, and each must be sensitive and never extractable, or
    /// everything made is destroyed and refused.
    fn generate_outside(
        &self,
        command: &[String],
        obj: &ObjectRef,
        method: WrapMethod,
    ) -> Result<(), KeysError> {
        let mut made = vec![(obj.id.clone(), obj.label.clone(), KeyKind::Aes256)];
        if method.has_mac_key() {
            made.push((wrapping::mac_id(&obj.id), format!("{} mac", obj.label), KeyKind::HmacSha256));
        }
        let mut result = Ok(());
        for (id, label, kind) in &made {
            result = run_keygen(command, id, label, *kind);
            if result.is_err() {
                break;
            }
        }
        self.module.refresh()?;
        let s = self.session()?;
        if result.is_ok() {
            result = made.iter().try_for_each(|(id, _, _)| self.check_made(&s, id));
        }
        if result.is_err() {
            for (id, _, _) in &made {
                self.forget(id);
                if let Ok(Some(h)) = self.find(&s, id) {
                    self.forget(id);
                    let _ = s.destroy_object(h);
                }
            }
        }
        result
    }

    /// A key the generation command made is there, sensitive and never extractable.
    fn check_made(&self, s: &Session, id: &[u8]) -> Result<(), KeysError> {
        self.forget(id);
        let h = self.find(s, id)?.ok_or_else(|| KeysError::Hsm {
            op: "keygen_command",
            reason: format!(
                "the command succeeded but the token shows no key with CKA_ID {}",
                String::from_utf8_lossy(id)
            ),
        })?;
        let attrs = s
            .get_attributes(h, &[AttributeType::Sensitive, AttributeType::Extractable])
            .map_err(hsm_err("C_GetAttributeValue"))?;
        if attrs.contains(&Attribute::Sensitive(true)) && attrs.contains(&Attribute::Extractable(false)) {
            Ok(())
        } else {
            Err(KeysError::Refused(
                "the key the keygen command made is not sensitive and never extractable: destroyed, not used"
                    .into(),
            ))
        }
    }

    /// Imports customer key material as a root key version with the same restrictions.
    /// Where `method` needs a MAC companion, its key is derived from the material
    /// (HKDF-SHA-256), so restoring the same material restores both.
    pub fn import_root(
        &self,
        obj: &ObjectRef,
        method: WrapMethod,
        material: &SecretKey,
    ) -> Result<(), KeysError> {
        let r = (|| {
            let s = self.session()?;
            let aes = create_secret(&s, Self::root_template(obj, method), material.expose())?;
            if method.has_mac_key() {
                let mut mac_key = zeroize::Zeroizing::new([0u8; KEY_LEN]);
                engine::primitives::hkdf_sha256(material.expose(), &[], &[MAC_KEY_INFO], mac_key.as_mut())
                    .map_err(|e| KeysError::Refused(format!("cannot derive the MAC key: {e}")))?;
                if let Err(e) = create_secret(&s, Self::mac_template(obj), mac_key.as_ref()) {
                    let _ = s.destroy_object(aes);
                    return Err(e);
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

    /// Destroys the root key object and its MAC companion, if any (crypto-shredding).
    /// Returns whether the root key object existed.
    pub fn destroy_root(&self, id: &[u8]) -> Result<bool, KeysError> {
        let r = (|| {
            let s = self.session()?;
            let mac = wrapping::mac_id(id);
            self.forget(&mac);
            if let Some(h) = self.find(&s, &mac)? {
                self.forget(&mac);
                s.destroy_object(h).map_err(hsm_err("C_DestroyObject"))?;
            }
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

    /// Wraps `key` under the root key object `root_id` by `method` (the one its version
    /// was made for), bound to `context` where the method can bind one.
    pub fn wrap(
        &self,
        root_id: &[u8],
        method: WrapMethod,
        key: &SecretKey,
        context: &[u8],
    ) -> Result<Vec<u8>, KeysError> {
        let r = self.recovering(|| {
            let s = self.session()?;
            let missing = || KeysError::KeyNotInHsm(base::hex::encode(root_id));
            let done = self.with_root(&s, root_id, missing, |root| match method {
                WrapMethod::AesKeyWrapPad | WrapMethod::AesKeyWrap => {
                    let tmp = create_secret(&s, Self::session_key_template(), key.expose())?;
                    let wrapped = s.wrap_key(&key_wrap(method), root, tmp).map_err(hsm_err("C_WrapKey"));
                    let destroyed = s.destroy_object(tmp).map_err(hsm_err("C_DestroyObject"));
                    let wrapped = wrapped?;
                    destroyed?;
                    Ok(wrapped)
                }
                WrapMethod::AesGcm => {
                    let mut nonce = [0u8; GCM_NONCE_LEN];
                    engine::primitives::fill_random(&mut nonce);
                    let mut iv = nonce;
                    let params = GcmParams::new(&mut iv, context, ((GCM_TAG_LEN * 8) as u64).into())
                        .map_err(hsm_err("CKM_AES_GCM parameters"))?;
                    let sealed = s
                        .encrypt(&Mechanism::AesGcm(params), root, key.expose())
                        .map_err(hsm_err("C_Encrypt"))?;
                    Ok([nonce.as_slice(), &sealed].concat())
                }
                WrapMethod::AesCbcHmacSha256 => {
                    let mac_key = self.find(&s, &wrapping::mac_id(root_id))?.ok_or_else(missing)?;
                    let mut iv = [0u8; CBC_IV_LEN];
                    engine::primitives::fill_random(&mut iv);
                    let ct = s
                        .encrypt(&Mechanism::AesCbc(iv), root, key.expose())
                        .map_err(hsm_err("C_Encrypt"))?;
                    let mac = s
                        .sign(&Mechanism::Sha256Hmac, mac_key, &wrapping::mac_input(context, &iv, &ct))
                        .map_err(hsm_err("C_Sign"))?;
                    Ok([iv.as_slice(), &ct, &mac].concat())
                }
            });
            if done.is_err() {
                s.spoil();
            }
            done
        });
        self.count(&self.counters.wraps, r)
    }

    /// Unwraps a key wrapped by [`Hsm::wrap`] under `root_id` by `method` with the same
    /// `context`. A wrong root key, context or a tampered blob is
    /// [`KeysError::UnwrapFailed`]; a root key the token does not hold is
    /// [`KeysError::KeyNotInHsm`] (the caller tells deletion from an HSM fault).
    pub fn unwrap(
        &self,
        root_id: &[u8],
        method: WrapMethod,
        wrapped: &[u8],
        context: &[u8],
        key_name: &str,
    ) -> Result<SecretKey, KeysError> {
        let failed = || KeysError::UnwrapFailed(key_name.to_owned());
        let r = self.recovering(|| {
            let s = self.session()?;
            let missing = || KeysError::KeyNotInHsm(key_name.to_owned());
            let done = self.with_root(&s, root_id, missing, |root| match method {
                WrapMethod::AesKeyWrapPad | WrapMethod::AesKeyWrap => {
                    let tmp = s
                        .unwrap_key(&key_wrap(method), root, wrapped, &Self::session_key_template())
                        .map_err(refused_as(failed, "C_UnwrapKey"))?;
                    let attrs = s
                        .get_attributes(tmp, &[AttributeType::Value])
                        .map_err(hsm_err("C_GetAttributeValue"));
                    let destroyed = s.destroy_object(tmp).map_err(hsm_err("C_DestroyObject"));
                    let mut attrs = attrs?;
                    destroyed?;
                    let mut key = None;
                    for a in attrs.iter_mut() {
                        if let Attribute::Value(v) = a {
                            key = secret_of(v);
                        }
                    }
                    key.ok_or_else(failed)
                }
                WrapMethod::AesGcm => {
                    let (nonce, sealed) = wrapping::split_gcm(wrapped).ok_or_else(failed)?;
                    let mut iv = [0u8; GCM_NONCE_LEN];
                    iv.copy_from_slice(nonce);
                    let params = GcmParams::new(&mut iv, context, ((GCM_TAG_LEN * 8) as u64).into())
                        .map_err(hsm_err("CKM_AES_GCM parameters"))?;
                    let mut plain = s
                        .decrypt(&Mechanism::AesGcm(params), root, sealed)
                        .map_err(refused_as(failed, "C_Decrypt"))?;
                    secret_of(&mut plain).ok_or_else(failed)
                }
                WrapMethod::AesCbcHmacSha256 => {
                    let (iv, ct, mac) = wrapping::split_cbc(wrapped).ok_or_else(failed)?;
                    let mac_key = self.find(&s, &wrapping::mac_id(root_id))?.ok_or_else(missing)?;
                    match s.verify(
                        &Mechanism::Sha256Hmac,
                        mac_key,
                        &wrapping::mac_input(context, iv, ct),
                        mac,
                    ) {
                        Ok(()) => {}
                        Err(CkError::Pkcs11(RvError::SignatureInvalid | RvError::SignatureLenRange, _)) => {
                            return Err(failed());
                        }
                        Err(e) => return Err(hsm_err("C_Verify")(e)),
                    }
                    let mut block = [0u8; CBC_IV_LEN];
                    block.copy_from_slice(iv);
                    let mut plain = s
                        .decrypt(&Mechanism::AesCbc(block), root, ct)
                        .map_err(refused_as(failed, "C_Decrypt"))?;
                    secret_of(&mut plain).ok_or_else(failed)
                }
            });
            if done.is_err() {
                s.spoil();
            }
            done
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

    /// Tries to wrap the root key object itself with another root key, by every mechanism
    /// that could: must fail for a non-extractable key. Returns whether the token allowed it (for checks and tests).
    pub fn root_is_wrappable(&self, id: &[u8], by: &[u8]) -> Result<bool, KeysError> {
        let s = self.session()?;
        let key = self.find(&s, id)?.ok_or_else(|| KeysError::Refused("root key object missing".into()))?;
        let wrapper =
            self.find(&s, by)?.ok_or_else(|| KeysError::Refused("root key object missing".into()))?;
        Ok([Mechanism::AesKeyWrapPad, Mechanism::AesKeyWrap, Mechanism::AesCbcPad([0; CBC_IV_LEN])]
            .iter()
            .any(|m| s.wrap_key(m, wrapper, key).is_ok()))
    }
}

/// What a key generation command is asked to make.
#[derive(Debug, Clone, Copy)]
enum KeyKind {
    /// A root key.
    Aes256,
    /// A MAC companion.
    HmacSha256,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            Self::Aes256 => "aes256",
            Self::HmacSha256 => "hmac-sha256",
        }
    }
}

/// Runs the key generation command for one object: `{label}`, `{id}` and `{kind}` replaced,
/// no shell, no input. Its failure names the program, its exit and its last line of errors.
fn run_keygen(command: &[String], id: &[u8], label: &str, kind: KeyKind) -> Result<(), KeysError> {
    let fail = |reason: String| KeysError::Hsm { op: "keygen_command", reason };
    let id_text = std::str::from_utf8(id).map_err(|_| fail("a key id that is not text".into()))?;
    let args: Vec<String> = command
        .iter()
        .map(|a| a.replace("{label}", label).replace("{id}", id_text).replace("{kind}", kind.name()))
        .collect();
    let (program, rest) = args.split_first().ok_or_else(|| fail("no program".into()))?;
    let out = std::process::Command::new(program)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let last: String =
        said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").chars().take(200).collect();
    Err(fail(format!("{program} failed ({}): {last}", out.status)))
}

/// The info HKDF-SHA-256 derives an imported root key's MAC companion with.
const MAC_KEY_INFO: &[u8] = b"cipherstore root key mac v1";

/// The `C_WrapKey` mechanism of a key-wrap method.
fn key_wrap(method: WrapMethod) -> Mechanism<'static> {
    match method {
        WrapMethod::AesKeyWrap => Mechanism::AesKeyWrap,
        _ => Mechanism::AesKeyWrapPad,
    }
}

/// Creates a secret key object from `value`, wiping the copy handed to the template.
fn create_secret(s: &Session, mut template: Vec<Attribute>, value: &[u8]) -> Result<ObjectHandle, KeysError> {
    template.push(Attribute::Value(value.to_vec()));
    let made = s.create_object(&template).map_err(hsm_err("C_CreateObject"));
    for a in template.iter_mut() {
        if let Attribute::Value(v) = a {
            zeroize::Zeroize::zeroize(v);
        }
    }
    made
}

/// A 32-byte key out of `bytes`, which are wiped either way; `None` for any other length.
fn secret_of(bytes: &mut Vec<u8>) -> Option<SecretKey> {
    let key = (bytes.len() == KEY_LEN).then(|| {
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(bytes);
        let key = SecretKey::from_bytes(k);
        zeroize::Zeroize::zeroize(&mut k);
        key
    });
    zeroize::Zeroize::zeroize(bytes);
    key
}

/// Maps what a token answers for data that does not unwrap or decrypt (wrong key, wrong
/// context, tampered) to `failed`, anything else to an HSM error of `op`.
fn refused_as(failed: impl Fn() -> KeysError, op: &'static str) -> impl FnOnce(CkError) -> KeysError {
    move |e| match e {
        CkError::Pkcs11(
            RvError::WrappedKeyInvalid
            | RvError::WrappedKeyLenRange
            | RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::GeneralError,
            _,
        ) => failed(),
        e => hsm_err(op)(e),
    }
}
