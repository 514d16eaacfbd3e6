//! Key state in a file: `state.json` in the keys directory, written atomically; changes
//! from several processes are serialised by an exclusive lock on `state.lock`, under
//! which the state is re-read before it is changed. Changes made by another process are
//! noticed by the file's modification time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::error::KeysError;
use super::state::{State, StateStore};

/// The state file and its lock.
#[derive(Debug, Clone)]
struct StateFile {
    path: PathBuf,
    lock: PathBuf,
}

/// Holds the exclusive state lock until dropped.
struct StateLock(#[allow(dead_code)] File);

impl StateFile {
    /// `state.json` and `state.lock` in `dir` (created 0700 if missing).
    fn open(dir: &Path) -> Result<Self, KeysError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(KeysError::io(format!("cannot create the keys directory {}", dir.display())))?;
        Ok(Self { path: dir.join("state.json"), lock: dir.join("state.lock") })
    }

    /// Takes the exclusive lock (blocking).
    fn lock(&self) -> Result<StateLock, KeysError> {
        let f =
            base::durable::open_lock(&self.lock).map_err(KeysError::io("cannot open the key state lock"))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| KeysError::io("cannot lock the key state")(e.into()))?;
        Ok(StateLock(f))
    }

    /// Reads the state (empty if the file does not exist yet).
    fn load(&self) -> Result<State, KeysError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KeysError::State {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(KeysError::io(format!("cannot read {}", self.path.display()))(e)),
        }
    }

    /// Replaces the state atomically; call with the lock held.
    fn save(&self, state: &State, _lock: &StateLock) -> Result<(), KeysError> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| KeysError::State { path: self.path.display().to_string(), reason: e.to_string() })?;
        base::durable::write_atomic(&self.path, &bytes)
            .map_err(KeysError::io(format!("cannot write {}", self.path.display())))
    }

    /// Modification time, to notice changes made by other processes.
    fn modified(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(&self.path).and_then(|m| m.modified()).ok()
    }
}

/// The key state in `state.json`, with the copy last read.
pub struct FileState {
    file: StateFile,
    /// Last state read, and the file time it was read at.
    cached: Mutex<(State, Option<SystemTime>)>,
}

impl FileState {
    /// `state.json` in `dir` (created 0700 if missing).
    pub fn open(dir: &Path) -> Result<Self, KeysError> {
        let file = StateFile::open(dir)?;
        let state = file.load()?;
        let modified = file.modified();
        Ok(Self { file, cached: Mutex::new((state, modified)) })
    }
}

impl StateStore for FileState {
    fn fresh(&self) -> Result<State, KeysError> {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        let modified = self.file.modified();
        if modified != cached.1 {
            *cached = (self.file.load()?, modified);
        }
        Ok(cached.0.clone())
    }

    fn cached(&self) -> Result<State, KeysError> {
        self.fresh()
    }

    fn change(
        &self,
        change: &mut dyn FnMut(&mut State) -> Result<(), KeysError>,
    ) -> Result<State, KeysError> {
        let lock = self.file.lock()?;
        let mut state = self.file.load()?;
        change(&mut state)?;
        self.file.save(&state, &lock)?;
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = (state.clone(), self.file.modified());
        Ok(state)
    }

    fn generation(&self) -> u64 {
        0
    }

    fn describe(&self) -> String {
        self.file.path.display().to_string()
    }
}
