//! The identities a running server answers from ([`Identities`]): a [`Snapshot`] swapped
//! whole whenever the [`Keep`] reports a change, so a change made by `cipherstore iam` or
//! on another gateway is in force here within about a second, with no restart. Requests
//! read the snapshot without waiting on the keep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use zeroize::Zeroizing;

use super::directory::{Directory, StoredSecret};
use super::error::IamError;
use super::keep::{Change, Keep};
use super::seal::Seal;
use super::snapshot::Snapshot;
use super::token::TOKEN_KEY_NAME;

/// Pause before following again after the keep failed.
const RETRY: Duration = Duration::from_secs(1);

/// The identities in force, kept current.
pub struct Identities {
    keep: Arc<dyn Keep>,
    seal: Option<Seal>,
    current: RwLock<Arc<Snapshot>>,
    reloads: AtomicU64,
}

impl Identities {
    /// Loads the identities from `keep`, opening sealed secrets with `seal`. Returns them
    /// and the credentials that could not be opened (left out, each refused).
    pub async fn open(
        keep: Arc<dyn Keep>,
        seal: Option<Seal>,
    ) -> Result<(Arc<Self>, Vec<IamError>), IamError> {
        let (directory, _) = keep.load().await?;
        let (snapshot, errors) = Snapshot::build(&directory, seal.as_ref());
        let me = Self { keep, seal, current: RwLock::new(Arc::new(snapshot)), reloads: AtomicU64::new(0) };
        Ok((Arc::new(me), errors))
    }

    /// The identities in force now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The seal new secrets are sealed with, if an HSM is configured.
    pub fn seal(&self) -> Option<&Seal> {
        self.seal.as_ref()
    }

    /// Where the identities are kept.
    pub fn describe(&self) -> String {
        self.keep.describe()
    }

    /// How many times a change was taken in since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Commits `change` and puts the result in force here at once.
    pub async fn change(&self, change: Change<'_>) -> Result<Directory, IamError> {
        let directory = self.keep.change(change).await?;
        self.install(&directory);
        Ok(directory)
    }

    /// Makes the token signing key if the directory has none (the first key service to
    /// start), sealed like secrets. Fails if the one kept does not open here.
    pub async fn ensure_token_key(&self) -> Result<(), IamError> {
        if self.snapshot().has_token_key() {
            return Ok(());
        }
        let seal = self.seal.as_ref();
        self.change(&mut |d: &mut Directory| {
            if d.token_key.is_none() {
                let mut raw = Zeroizing::new([0u8; 32]);
                engine::primitives::fill_random(raw.as_mut());
                let hex = Zeroizing::new(base::hex::encode(raw.as_ref()));
                d.token_key = Some(match seal {
                    Some(s) => s.seal(TOKEN_KEY_NAME, &hex)?,
                    None => StoredSecret::Plain(hex.to_string()),
                });
            }
            Ok(())
        })
        .await?;
        if self.snapshot().has_token_key() {
            Ok(())
        } else {
            Err(IamError::Seal {
                action: "open",
                access_key: TOKEN_KEY_NAME.into(),
                reason: "the token key kept in the identity store does not open here: is this host's HSM the one the others use?".into(),
            })
        }
    }

    fn install(&self, directory: &Directory) {
        let (snapshot, errors) = Snapshot::build(directory, self.seal.as_ref());
        for e in &errors {
            tracing::warn!(error = %e, "a credential is refused: its secret does not open");
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// Follows the keep until these identities are dropped: each change made anywhere is
    /// loaded and put in force. Call inside a tokio runtime.
    pub fn follow(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let keep = self.keep.clone();
        tokio::spawn(async move {
            loop {
                let step = async {
                    let (directory, stamp) = keep.load().await?;
                    let Some(me) = weak.upgrade() else { return Ok(false) };
                    me.install(&directory);
                    drop(me);
                    keep.wait_change(&stamp).await?;
                    Ok::<bool, IamError>(true)
                };
                match step.await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot follow identity changes; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                }
                if weak.strong_count() == 0 {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{NewCredential, NewUser, StoredSecret};
    use crate::keep_file::FileKeep;

    #[tokio::test]
    async fn a_change_made_elsewhere_is_in_force_within_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let keep: Arc<dyn Keep> = Arc::new(FileKeep::open(dir.path()).unwrap());
        let (live, errors) = Identities::open(keep, None).await.unwrap();
        assert!(errors.is_empty());
        live.follow();
        assert_eq!(live.snapshot().secret("AK1", 1), Err(crate::Refusal::Unknown));
        // Another process (the CLI) adds a user and a key through its own keep.
        let other = FileKeep::open(dir.path()).unwrap();
        let mut add = |d: &mut Directory| {
            d.create_user(NewUser { name: "alice".into(), ..NewUser::default() }, 1)?;
            let c = NewCredential {
                user: "alice".into(),
                access_key_id: "AK1".into(),
                secret: StoredSecret::Plain("secret-one".into()),
                expires: None,
            };
            d.add_credential(c, 1).map(|_| ())
        };
        other.change(&mut add).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while live.snapshot().secret("AK1", 1).is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the change was not seen within 5 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut disable = |d: &mut Directory| d.set_enabled("AK1", false);
        other.change(&mut disable).await.unwrap();
        while live.snapshot().secret("AK1", 1).is_ok() {
            assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(5), "disable not seen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(live.snapshot().secret("AK1", 1), Err(crate::Refusal::Disabled));
        assert!(live.reloads() >= 2);
    }
}
