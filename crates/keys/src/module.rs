//! PKCS#11 modules loaded by this process. Each module is loaded and `C_Initialize`d once
//! and shared by every token opened through it. To recover from a token that went away
//! and came back, a module can be re-initialised (`C_Finalize` + `C_Initialize`): SoftHSM2,
//! for one, keeps a token it lost unusable until then, and a network HSM's sessions die with
//! the connection. Every PKCS#11 call runs while holding the module's [`Generation`] for
//! reading, so a re-initialisation waits until no call is in flight; the generation number
//! tells sessions opened before it (dead, to be forgotten) from those opened after.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};

use super::error::KeysError;

/// Re-initialisations of one module are at least this far apart, so a token that stays
/// away costs one `C_Finalize`/`C_Initialize` a second, not one per request. While they
/// keep not helping (no operation succeeds in between) the interval doubles, up to
/// [`MAX_REINIT_INTERVAL`]: a key missing for good, or an HSM down for long, is not
/// hammered.
pub const MIN_REINIT_INTERVAL: Duration = Duration::from_secs(1);

/// The longest interval between re-initialisations: how long recovery may lag behind an
/// HSM that comes back after a long outage.
pub const MAX_REINIT_INTERVAL: Duration = Duration::from_secs(16);

/// The modules loaded so far, by path. `C_Initialize` may run only once per process and
/// module until `C_Finalize`, so every token of a module shares one context.
static MODULES: Mutex<Vec<Arc<Module>>> = Mutex::new(Vec::new());

/// A loaded, initialised PKCS#11 module.
pub struct Module {
    path: PathBuf,
    ctx: Pkcs11,
    generation: RwLock<Generation>,
    /// Re-initialisations since an operation last succeeded.
    futile: AtomicU32,
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
        futile: AtomicU32::new(0),
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

    /// Records that an operation succeeded: the module works, re-initialisations may again
    /// come as often as [`MIN_REINIT_INTERVAL`].
    pub fn succeeded(&self) {
        if self.futile.load(Ordering::Relaxed) != 0 {
            self.futile.store(0, Ordering::Relaxed);
        }
    }

    /// The interval due before the next re-initialisation ([`backoff`]).
    pub fn reinit_interval(&self) -> Duration {
        backoff(self.futile.load(Ordering::Relaxed))
    }

    /// Re-initialises the module unless somebody did since generation `seen` or the last
    /// time is more recent than [`Module::reinit_interval`]. Waits for calls in flight; the
    /// caller must not hold [`Module::enter`].
    pub fn reinitialize(&self, seen: u64) -> Result<Reinit, KeysError> {
        let mut generation = self.generation.write().unwrap_or_else(PoisonError::into_inner);
        if generation.number != seen {
            return Ok(Reinit::AlreadyDone);
        }
        let interval = self.reinit_interval();
        if generation.last.is_some_and(|t| t.elapsed() < interval) {
            return Ok(Reinit::TooSoon);
        }
        // Counted as futile until an operation succeeds ([`Module::succeeded`]).
        self.futile.fetch_add(1, Ordering::Relaxed);
        generation.last = Some(Instant::now());
        let (finalized, initialized) = self.restart(&mut generation);
        tracing::warn!(
            module = %self.path.display(),
            finalize = ?finalized,
            "re-initialising the PKCS#11 module to recover from an HSM failure"
        );
        initialized?;
        Ok(Reinit::Done)
    }

    /// Re-initialises the module now, whatever the interval, so that it reads the token
    /// again: tpm2-pkcs11 loads a token's objects only in `C_Initialize`, so a key another
    /// program just made there is seen only after this. Waits for calls in flight; the
    /// caller must not hold [`Module::enter`]. Not counted as a recovery.
    pub fn refresh(&self) -> Result<(), KeysError> {
        let mut generation = self.generation.write().unwrap_or_else(PoisonError::into_inner);
        self.restart(&mut generation).1
    }

    /// `C_Finalize` then `C_Initialize`, in a new generation (the caller holds it for
    /// writing). A failing `C_Finalize` (the module already lost its state) does not stop
    /// the `C_Initialize` that follows; its error is returned beside the outcome.
    fn restart(&self, generation: &mut Generation) -> (Option<String>, Result<(), KeysError>) {
        generation.number += 1;
        let finalized = self.ctx.clone().finalize().err().map(|e| e.to_string());
        let initialized = initialize(&self.ctx)
            .map_err(|e| KeysError::Module { path: self.path.display().to_string(), reason: e.to_string() });
        (finalized, initialized)
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

/// The interval before the next re-initialisation after `futile` ones that did not help:
/// [`MIN_REINIT_INTERVAL`] doubled for each, capped at [`MAX_REINIT_INTERVAL`].
pub fn backoff(futile: u32) -> Duration {
    MIN_REINIT_INTERVAL.saturating_mul(1 << futile.min(16)).min(MAX_REINIT_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reinitialisations_back_off_while_futile() {
        let secs: Vec<u64> = (0..7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 16, 16]);
        assert_eq!(backoff(u32::MAX), MAX_REINIT_INTERVAL);
    }
}
