//! The key layer's error type. Texts name keys by id and never include key material or
//! PINs.

/// Errors from the HSM, the key registry and the lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("cannot load the PKCS#11 module {path}: {reason}")]
    Module {
        /// Configured module path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// No initialised token carries the configured label.
    #[error("no initialised token labelled {0:?} in the PKCS#11 module (see hsm/README.md)")]
    TokenNotFound(String),
    /// The token refused the PIN.
    #[error("the HSM refused the PIN for token {0:?}")]
    BadPin(String),
    /// The token is locked after too many bad PINs.
    #[error("the HSM token {0:?} is locked (too many wrong PINs)")]
    PinLocked(String),
    /// The configuration is incomplete or contradictory.
    #[error("HSM configuration: {0}")]
    Config(String),
    /// A PKCS#11 call failed.
    #[error("HSM call {op} failed: {reason}")]
    Hsm {
        /// The PKCS#11 function.
        op: &'static str,
        /// The token's return value.
        reason: String,
    },
    /// A wrapped key did not unwrap: wrong root key or tampered blob.
    #[error("the wrapped key did not unwrap under root key {0} (wrong key or tampered data)")]
    UnwrapFailed(String),
    /// No key with this id or name.
    #[error("no root key {0}")]
    KeyNotFound(String),
    /// The key is suspended: wrap and unwrap are refused.
    #[error("root key {0} is suspended (disabled): enable it to use it")]
    KeySuspended(String),
    /// The token does not hold a root key the state says is usable: the HSM is not the
    /// one the state was made with, or lost its objects. Not crypto-shredding: nothing is
    /// recorded as deleted, and the key works again once the token holds it.
    #[error(
        "the HSM does not hold root key {0}, which is active here: is the token unavailable or replaced?"
    )]
    KeyNotInHsm(String),
    /// The key was destroyed (crypto-shredded).
    #[error("root key {0} was deleted: data under it can no longer be read or written")]
    KeyDestroyed(String),
    /// The key protects buckets under S3 Object Lock: it can be neither deleted nor
    /// disabled, `--force` or not.
    #[error(
        "root key {id} protects bucket(s) with Object Lock enabled: {}; it cannot be deleted or disabled while they exist (rotation still works)",
        buckets.join(", ")
    )]
    Retained {
        /// Key id.
        id: String,
        /// The buckets under Object Lock bound to it.
        buckets: Vec<String>,
    },
    /// The key still protects buckets.
    #[error("root key {id} still protects bucket(s) {}: pass --force to delete it anyway", buckets.join(", "))]
    KeyInUse {
        /// Key id.
        id: String,
        /// Buckets bound to it.
        buckets: Vec<String>,
    },
    /// No key ring of that id.
    #[error("no key ring {0:?}")]
    RingNotFound(String),
    /// Dual authorization for deletion is not met.
    #[error("{0}")]
    NotAuthorized(String),
    /// The operation does not apply to the key in its current state.
    #[error("{0}")]
    Refused(String),
    /// No bucket key for this bucket (under the root key asked for).
    #[error("bucket {0:?} has no bucket key")]
    BucketNotFound(String),
    /// The bucket already has a key under this root key.
    #[error("bucket {0:?} already has a bucket key under this root key")]
    BucketExists(String),
    /// Reading or writing key state or the audit log failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The shared key state cannot be reached (the metadata service has no quorum or
    /// does not answer): retry later.
    #[error("the key state is unavailable: {0}")]
    Unavailable(String),
    /// The key state file is damaged.
    #[error("key state {path} is damaged: {reason}")]
    State {
        /// File.
        path: String,
        /// Parser message.
        reason: String,
    },
}

impl KeysError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
