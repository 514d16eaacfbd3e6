//! Where the identities are kept ([`Keep`]): a file in the data directory on one node
//! ([`super::keep_file`]) or the metadata service every gateway shares
//! ([`super::keep_kv`]). Each change is read, applied and committed as one step that no
//! other writer interleaves with; a [`Stamp`] tells whether anything changed since.

use super::directory::Directory;
use super::error::IamError;

/// What a load saw, to ask later whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(pub(crate) String);

/// A change to the directory: applied to the committed directory; nothing is saved if it
/// fails.
pub type Change<'a> = &'a mut (dyn FnMut(&mut Directory) -> Result<(), IamError> + Send);

/// A place the identities are kept.
#[async_trait::async_trait]
pub trait Keep: Send + Sync {
    /// The directory as committed now (empty if nothing was ever kept), and its stamp.
    async fn load(&self) -> Result<(Directory, Stamp), IamError>;
    /// Applies `change` to the committed directory and commits the result, serialised with
    /// every other writer; returns the directory committed.
    async fn change(&self, change: Change<'_>) -> Result<Directory, IamError>;
    /// Returns once the directory may differ from what `seen` stamped (promptly: within
    /// about a second of a change).
    async fn wait_change(&self, seen: &Stamp) -> Result<(), IamError>;
    /// Where the identities are, for messages.
    fn describe(&self) -> String;
}
