//! The object layer's errors: the store's, the pipeline's and the key layer's as they
//! come, records that are damaged or fail their tag (integrity failures), and why a
//! protection cannot be had ([`ProtectionError`], the protection policy's).

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
    Protection(#[from] ProtectionError),
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

/// Why a protection cannot be had. The texts are the ones clients see.
#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    /// SSE-C and a server-side protection were both asked for.
    #[error("choose SSE-C or server-side encryption (aws:kms, AES256), not both")]
    Both,
    /// A KMS key id without `aws:kms`.
    #[error("a KMS key id needs x-amz-server-side-encryption: aws:kms")]
    KeyIdWithoutKms,
    /// A KMS key id with `AES256`.
    #[error("a KMS key id goes with aws:kms, not AES256")]
    KeyIdWithSseS3,
    /// The bucket was created with SSE-KP and accepts its own root key only.
    #[error(
        "this bucket was created with SSE-KP: every object is protected by its root key {root}; {what} cannot be asked for here (send aws:kms with that key, or no encryption header)"
    )]
    SseKpBucket {
        /// The bucket's root key.
        root: String,
        /// What was asked for instead.
        what: String,
    },
    /// The protection needs root keys, and the server has no HSM.
    #[error(
        "{0} needs an HSM for its root keys, and this server has none: start it with CIPHERSTORE_HSM_TOKEN (or CIPHERSTORE_HSM_URI) and a PIN, or [hsm] in the config file"
    )]
    NoHsm(&'static str),
    /// An object protected by a root key is to be read or written, and the server has no
    /// HSM.
    #[error(
        "SSE-KP needs an HSM: start the server with CIPHERSTORE_HSM_TOKEN (or CIPHERSTORE_HSM_URI) and a PIN"
    )]
    NoKeyManager,
    /// `aws:kms` named a key the key manager does not have.
    #[error("Invalid keyId {0}: no such root key")]
    KmsKeyNotFound(String),
    /// `aws:kms:dsse`.
    #[error(
        "dual-layer SSE-KMS (aws:kms:dsse) is not offered; use aws:kms (one layer under an HSM root key), optionally with SSE-C on the client's side"
    )]
    Dsse,
    /// Another `x-amz-server-side-encryption` value.
    #[error("unsupported server-side encryption {0:?}: use AES256 or aws:kms")]
    Unsupported(String),
    /// The key layer refused or failed (suspended, deleted, HSM unavailable…).
    #[error(transparent)]
    Keys(#[from] KeysError),
}
