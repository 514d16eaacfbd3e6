//! Identities in one file, `identities.json` in the identity directory (mode 0600, beside
//! it `identities.lock`): every writer takes an exclusive lock on the lock file, reads,
//! applies its change and replaces the file atomically. Readers notice a change by the
//! file's inode, size and modification time, polled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::directory::Directory;
use super::error::IamError;
use super::keep::{Change, Keep, Stamp};

/// How often a follower looks at the file.
const POLL: Duration = Duration::from_millis(500);
/// How long a writer waits for the lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The identities in a directory on this node.
pub struct FileKeep {
    path: PathBuf,
    lock: PathBuf,
}

impl FileKeep {
    /// Identities in `dir` (created 0700 if missing).
    pub fn open(dir: &Path) -> Result<Self, IamError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| IamError::Io { action: "create", path: dir.to_owned(), source })?;
        Ok(Self { path: dir.join("identities.json"), lock: dir.join("identities.lock") })
    }

    fn read(&self) -> Result<Directory, IamError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Directory::parse(&bytes, &self.path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Directory::default()),
            Err(source) => Err(IamError::Io { action: "read", path: self.path.clone(), source }),
        }
    }

    fn stamp(&self) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp(match std::fs::metadata(&self.path) {
            Ok(m) => format!("{}:{}:{}.{}", m.ino(), m.size(), m.mtime(), m.mtime_nsec()),
            Err(_) => "absent".into(),
        })
    }

    /// Takes the writers' lock, waiting for another writer without blocking the runtime.
    async fn locked(&self) -> Result<std::fs::File, IamError> {
        let io = |action, source| IamError::Io { action, path: self.lock.clone(), source };
        let f = base::durable::open_lock(&self.lock).map_err(|e| io("open", e))?;
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(f),
                Err(rustix::io::Errno::WOULDBLOCK) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(IamError::Unavailable(format!(
                        "another process has held {} for {} s",
                        self.lock.display(),
                        LOCK_WAIT.as_secs()
                    )));
                }
                Err(e) => return Err(io("lock", e.into())),
            }
        }
    }
}

#[async_trait::async_trait]
impl Keep for FileKeep {
    async fn load(&self) -> Result<(Directory, Stamp), IamError> {
        // The stamp first: a change landing in between is seen again, never missed.
        let stamp = self.stamp();
        Ok((self.read()?, stamp))
    }

    async fn change(&self, change: Change<'_>) -> Result<Directory, IamError> {
        let _lock = self.locked().await?;
        let mut directory = self.read()?;
        change(&mut directory)?;
        let bytes = serde_json::to_vec_pretty(&directory).map_err(|e| IamError::Stored {
            place: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        base::durable::write_atomic(&self.path, &bytes).map_err(|source| IamError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        })?;
        Ok(directory)
    }

    async fn wait_change(&self, seen: &Stamp) -> Result<(), IamError> {
        while &self.stamp() == seen {
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::NewUser;

    #[tokio::test]
    async fn changes_commit_privately_and_are_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let keep = FileKeep::open(&dir.path().join("iam")).unwrap();
        let (empty, stamp) = keep.load().await.unwrap();
        assert_eq!(empty, Directory::default());
        let mut add = |d: &mut Directory| {
            d.create_user(NewUser { name: "alice".into(), ..NewUser::default() }, 1).map(|_| ())
        };
        keep.change(&mut add).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), keep.wait_change(&stamp)).await.unwrap().unwrap();
        let (d, _) = keep.load().await.unwrap();
        assert!(d.users.contains_key("alice"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("iam/identities.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A failed change saves nothing.
        let mut fail = |d: &mut Directory| {
            d.create_user(NewUser { name: "alice".into(), ..NewUser::default() }, 2).map(|_| ())
        };
        assert!(matches!(keep.change(&mut fail).await, Err(IamError::UserExists(_))));
        assert_eq!(keep.load().await.unwrap().0, d);
        // A damaged file is an error naming it, not an empty directory.
        std::fs::write(dir.path().join("iam/identities.json"), b"{").unwrap();
        let err = keep.load().await.unwrap_err();
        assert!(err.to_string().contains("identities.json"), "{err}");
    }
}
