//! PKCS#11 modules loaded by this process. Each module is loaded and `C_Initialize`d once
//! and shared by every token opened through it. To recover from a token that went away
//! and came back, a module can be re-initialised (`C_Finalize` + `C_Initialize`): SoftHSM2,
//! for one, keeps a token it lost unusable until then, and a network HSM's sessions die with
//! the connection. Every PKCS#11 call runs while holding the module's [`Generation`] for
//! reading, so a re-initialisation waits until no call is in flight; the generation number
//! tells sessions opened before it (dead, to be forgotten) from those opened after.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};

use super::error::KeysError;

/// Re-initialisations of one module are at least this far apart, so a token that stays
/// away costs one `C_Finalize`/`C_Initialize` a second, not one per request.
pub const MIN_REINIT_INTERVAL: Duration = Duration::from_secs(1);

/// The modules loaded so far, by path. `C_Initialize` may run only once per process and
/// module until `C_Finalize`, so every token of a module shares one context.
static MODULES: Mutex<Vec<Arc<Module>>> = Mutex::new(Vec::new());

/// A loaded, initialised PKCS#11 module.
pub struct Module {
    path: PathBuf,
    ctx: Pkcs11,
    generation: RwLock<Generation>,
}

/// How many times the module was re-initialised, and when last.
#[derive(Debug)]
pub struct Generation {
    /// Bumped by every re-initialisation: sessions and object handles of an older
    /// generation are gone.
    pub number: u64,
    last: Option<Instant>,
}

/// Loads (or finds already loaded) the module at `path` and initialises it.
pub fn load(path: &Path) -> Result<Arc<Module>, KeysError> {
    let mut modules = MODULES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = modules.iter().find(|m| m.path == path) {
        return Ok(m.clone());
    }
    let fail = |reason: String| KeysError::Module { path: path.display().to_string(), reason };
    if !path.exists() {
        return Err(fail("no such file (install softhsm2, or set CIPHERSTORE_PKCS11_MODULE)".into()));
    }
    let ctx = Pkcs11::new(path).map_err(|e| fail(e.to_string()))?;
    initialize(&ctx).map_err(|e| fail(e.to_string()))?;
    let module = Arc::new(Module {
        path: path.to_owned(),
        ctx,
        generation: RwLock::new(Generation { number: 0, last: None }),
    });
    modules.push(module.clone());
    Ok(module)
}

fn initialize(ctx: &Pkcs11) -> Result<(), CkError> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Module {
    /// The PKCS#11 context. Call it only while holding [`Module::enter`].
    pub fn ctx(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// Held for the length of every PKCS#11 call sequence: keeps a re-initialisation out.
    pub fn enter(&self) -> RwLockReadGuard<'_, Generation> {
        self.generation.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-initialises the module unless somebody did since generation `seen` or the last
    /// time is less than [`MIN_REINIT_INTERVAL`] ago. Waits for calls in flight; the caller
    /// must not hold [`Module::enter`].
    pub fn reinitialize(&self, seen: u64) -> Result<Reinit, KeysError> {
        let mut generation = self.generation.write().unwrap_or_else(PoisonError::into_inner);
        if generation.number != seen {
            return Ok(Reinit::AlreadyDone);
        }
        if generation.last.is_some_and(|t| t.elapsed() < MIN_REINIT_INTERVAL) {
            return Ok(Reinit::TooSoon);
        }
        generation.number += 1;
        generation.last = Some(Instant::now());
        // A failing C_Finalize (the module already lost its state) does not stop the
        // C_Initialize that follows.
        let finalized = self.ctx.clone().finalize();
        tracing::warn!(
            module = %self.path.display(),
            finalize = ?finalized.err().map(|e| e.to_string()),
            "re-initialising the PKCS#11 module to recover from an HSM failure"
        );
        initialize(&self.ctx).map_err(|e| KeysError::Module {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Reinit::Done)
    }
}

/// What [`Module::reinitialize`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reinit {
    /// Re-initialised the module now.
    Done,
    /// Another caller re-initialised it since the generation the caller saw.
    AlreadyDone,
    /// The last re-initialisation is too recent; nothing done.
    TooSoon,
}
