//! The object layer's errors: the store's, the pipeline's and the key layer's as they
//! come, and records that are damaged or fail their tag (integrity failures).

use super::lock::LockRefusal;
use keys::KeysError;
use pipeline::PipelineError;
use store::StoreError;

/// Errors from the object layer.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Moving or decrypting bytes failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A key could not be had (suspended, deleted, HSM unavailable…).
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The protection asked for cannot be given, or its root key cannot be used now.
    #[error(transparent)]
    Protection(#[from] super::protection::ProtectionError),
    /// A stored record is damaged, names another object, or fails its tag.
    #[error("integrity failure: {0}")]
    Integrity(String),
    /// A version id that cannot be one (S3's "Invalid version id specified").
    #[error("invalid version id {0:?}")]
    InvalidVersion(String),
    /// Object Lock keeps the version as it is.
    #[error(transparent)]
    Locked(#[from] LockRefusal),
    /// The version is a delete marker, which has no tags, retention or legal hold (`named`:
    /// the request named it by its id).
    #[error("the version is a delete marker")]
    DeleteMarker {
        /// Whether the request named it.
        named: bool,
    },
    /// A record could not be encoded (a bug, not bad input).
    #[error("cannot encode a record: {0}")]
    Encode(String),
}
