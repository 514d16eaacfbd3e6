//! What the layers above ask of key custody ([`KeySource`]): bucket keys under root keys,
//! and the few root key questions around them. A gateway answers them from a PKCS#11
//! module it opens itself ([`KeyManager`]) or from a remote key service
//! ([`super::remote::RemoteKeys`]), as IBM COS asks Key Protect: then only the key
//! service's hosts hold the module and its PIN.

use super::error::KeysError;
use super::id::KeyRef;
use super::manager::{KeyManager, KeyMetrics};
use engine::SecretKey;

/// Key custody as the object and S3 layers use it.
pub trait KeySource: Send + Sync {
    /// The CRN of the root key `key` names ([`KeysError::KeyNotFound`] if none).
    fn crn_of(&self, key: &KeyRef) -> Result<String, KeysError>;
    /// The instance default root key's CRN, made on first use.
    fn default_key(&self) -> Result<String, KeysError>;
    /// The bucket key of `bucket` under root key `root`, for reading.
    fn bucket_key(&self, bucket: &str, root: &KeyRef) -> Result<SecretKey, KeysError>;
    /// The bucket key of `bucket` under `root`, made on first use (`retain`: the bucket has
    /// Object Lock).
    fn bucket_key_for_write(&self, bucket: &str, root: &KeyRef, retain: bool)
    -> Result<SecretKey, KeysError>;
    /// Makes the bucket key of a new bucket bound to `root` ([`KeysError::BucketExists`] if
    /// it has one).
    fn create_bucket_key(&self, bucket: &str, root: &KeyRef) -> Result<(), KeysError>;
    /// The root key (CRN) `bucket` was first bound to.
    fn bucket_root(&self, bucket: &str) -> Result<String, KeysError>;
    /// Marks `bucket` as under Object Lock: its root keys can be neither deleted nor disabled.
    fn retain_bucket(&self, bucket: &str) -> Result<(), KeysError>;
    /// Forgets every bucket key of a deleted bucket.
    fn remove_bucket_key(&self, bucket: &str) -> Result<(), KeysError>;
    /// Creates a root key generated in the HSM; its CRN.
    fn create_root(&self, name: &str) -> Result<String, KeysError>;
    /// Counters for metrics.
    fn metrics(&self) -> KeyMetrics;
    /// What answers, for start-up lines.
    fn describe(&self) -> String;
}

impl KeySource for KeyManager {
    fn crn_of(&self, key: &KeyRef) -> Result<String, KeysError> {
        self.show(key).map(|v| v.crn)
    }

    fn default_key(&self) -> Result<String, KeysError> {
        KeyManager::default_key(self)
    }

    fn bucket_key(&self, bucket: &str, root: &KeyRef) -> Result<SecretKey, KeysError> {
        KeyManager::bucket_key(self, bucket, root)
    }

    fn bucket_key_for_write(
        &self,
        bucket: &str,
        root: &KeyRef,
        retain: bool,
    ) -> Result<SecretKey, KeysError> {
        KeyManager::bucket_key_for_write(self, bucket, root, retain)
    }

    fn create_bucket_key(&self, bucket: &str, root: &KeyRef) -> Result<(), KeysError> {
        KeyManager::create_bucket_key(self, bucket, root).map(|_| ())
    }

    fn bucket_root(&self, bucket: &str) -> Result<String, KeysError> {
        KeyManager::bucket_root(self, bucket)
    }

    fn retain_bucket(&self, bucket: &str) -> Result<(), KeysError> {
        KeyManager::retain_bucket(self, bucket)
    }

    fn remove_bucket_key(&self, bucket: &str) -> Result<(), KeysError> {
        KeyManager::remove_bucket_key(self, bucket)
    }

    fn create_root(&self, name: &str) -> Result<String, KeysError> {
        self.create(name).map(|v| v.crn)
    }

    fn metrics(&self) -> KeyMetrics {
        KeyManager::metrics(self)
    }

    fn describe(&self) -> String {
        format!(
            "HSM token {:?}, new root keys wrap by {}, key state in {}",
            self.hsm().token(),
            self.hsm().method(),
            self.state_location()
        )
    }
}
