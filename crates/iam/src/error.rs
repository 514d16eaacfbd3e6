//! Why an identity operation failed ([`IamError`]). No variant carries a secret: access
//! key ids, user names and buckets are named, secret keys never are.

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// A name, id, address or secret is not acceptable; says which and why.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was given (`user name`, `access key id`, …).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A user of that name exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// Another user has that canonical id.
    #[error("canonical id {0:?} belongs to user {1:?}")]
    CanonicalIdTaken(String, String),
    /// No user of that name.
    #[error("no user {0:?}")]
    NoSuchUser(String),
    /// The access key id is in use.
    #[error("access key id {0:?} is already in use")]
    AccessKeyTaken(String),
    /// No credential with that access key id.
    #[error("no access key {0:?}")]
    NoSuchAccessKey(String),
    /// An API key of that name exists.
    #[error("API key {0:?} already exists")]
    ApiKeyExists(String),
    /// No API key of that name or id.
    #[error("no API key {0:?}")]
    NoSuchApiKey(String),
    /// The user has no role on that bucket.
    #[error("user {0:?} has no role on bucket {1:?}")]
    NoSuchGrant(String, String),
    /// The identities cannot be read or changed now (metadata service down, lock held):
    /// retry.
    #[error("the identity store is unavailable: {0}")]
    Unavailable(String),
    /// What is kept cannot be read as identities.
    #[error("cannot read the identities in {place}: {reason}")]
    Stored {
        /// Where they are kept.
        place: String,
        /// What is wrong.
        reason: String,
    },
    /// A file cannot be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read`, `write`, `lock`.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A sealed secret cannot be sealed or opened (no seal key here, or the key that
    /// sealed it is gone).
    #[error("cannot {action} the secret of access key {access_key:?}: {reason}")]
    Seal {
        /// `seal` or `open`.
        action: &'static str,
        /// The credential.
        access_key: String,
        /// Why, without the secret.
        reason: String,
    },
}

impl IamError {
    /// An [`IamError::Invalid`].
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { what, reason: reason.into() }
    }
}
