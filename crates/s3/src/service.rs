//! The state every S3 request shares ([`CipherS3`]: the object layer, the key manager,
//! the identities, the parsed bucket policies, limits) and the limit on a declared
//! length. Who may do what is decided in `access`.

use std::sync::Arc;
use std::time::Duration;

use s3s::{S3Result, s3_error};

use super::access::Policies;
use engine::Backend;
use iam::Identities;
use keys::KeySource;
use object::{Objects, Policy};

/// Largest object accepted in one PUT, and largest part (S3's limit).
pub(crate) const MAX_PUT: u64 = 5 << 30;

/// How long a request body may send nothing before the request fails, by default.
const DEFAULT_BODY_IDLE: Duration = Duration::from_secs(60);

/// The S3 service state shared by every request (cheap to clone: its parts are shared).
#[derive(Clone)]
pub struct CipherS3 {
    pub(crate) objects: Objects,
    pub(crate) backend: Backend,
    /// Which protection new objects get and which key opens a stored one.
    pub(crate) policy: Policy,
    pub(crate) max_object: u64,
    pub(crate) body_idle: std::time::Duration,
    /// How long a lifecycle day lasts (`x-amz-expiration`).
    pub(crate) lifecycle_day: object::Day,
    /// Who the callers are and their roles; `None`: each access key is its own user.
    pub(crate) identities: Option<Arc<Identities>>,
    /// Bucket policies as parsed.
    pub(crate) policies: Arc<Policies>,
}

impl CipherS3 {
    /// A service over `objects`; `keys` enables SSE-KP.
    pub fn new(objects: Objects, backend: Backend, keys: Option<Arc<dyn KeySource>>) -> Self {
        Self {
            objects,
            backend,
            policy: policy(keys),
            max_object: MAX_PUT,
            body_idle: DEFAULT_BODY_IDLE,
            lifecycle_day: object::Day::default(),
            identities: None,
            policies: Arc::default(),
        }
    }

    /// The key manager, if the server has an HSM.
    pub(crate) fn keys(&self) -> Option<&dyn KeySource> {
        self.policy.keys()
    }

    /// Sets how long a lifecycle day lasts (tests shorten it), as `x-amz-expiration`
    /// computes expiry dates.
    pub fn set_lifecycle_day(&mut self, day: object::Day) {
        self.lifecycle_day = day;
    }

    /// Sets the largest single PUT and part (at most S3's 5 GiB).
    pub fn set_max_object_size(&mut self, bytes: u64) {
        self.max_object = bytes.min(MAX_PUT);
    }

    /// Sets how long a request body may send nothing before the request fails with
    /// RequestTimeout.
    pub fn set_body_idle_timeout(&mut self, idle: std::time::Duration) {
        self.body_idle = idle;
    }

    /// Checks a declared body length against the size limit.
    pub(crate) fn check_length(&self, declared: Option<i64>) -> S3Result<Option<u64>> {
        match declared {
            Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "negative Content-Length")),
            Some(n) if n as u64 > self.max_object => Err(s3_error!(
                EntityTooLarge,
                "at most {} bytes per PUT or part; larger objects need multipart",
                self.max_object
            )),
            Some(n) => Ok(Some(n as u64)),
            None => Ok(None),
        }
    }

    /// Sets the identities callers are looked up in. Without them (library use, tests),
    /// each access key is a user of its own whose canonical id is the access key.
    pub fn set_identities(&mut self, identities: Arc<Identities>) {
        self.identities = Some(identities);
    }

    /// The display name of the user with `canonical_id` (the id itself if unknown).
    pub(crate) fn display_name(&self, canonical_id: &str) -> String {
        self.identities
            .as_ref()
            .and_then(|ids| ids.snapshot().display_name(canonical_id).map(str::to_owned))
            .unwrap_or_else(|| canonical_id.to_owned())
    }
}

/// The protection policy over `keys`; benchmark builds store new default-protection
/// objects unencrypted when CIPHERSTORE_BENCH_PLAINTEXT=1.
fn policy(keys: Option<Arc<dyn KeySource>>) -> Policy {
    let policy = Policy::new(keys);
    #[cfg(feature = "bench-plaintext")]
    let policy = policy.with_plaintext(std::env::var("CIPHERSTORE_BENCH_PLAINTEXT").is_ok_and(|v| v == "1"));
    policy
}
