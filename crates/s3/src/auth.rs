//! Secret-key look-ups for s3s's SigV4 and SigV2 checks, answered from the identities
//! [`iam`] keeps.

use std::sync::Arc;

use iam::users::Users;
use s3s::auth::{S3Auth, SecretKey};

/// The callers s3s may authenticate: every access key [`Users`] knows.
pub struct Auth(Arc<Users>);

impl Auth {
    /// Look-ups from these users.
    pub fn new(users: Arc<Users>) -> Self {
        Self(users)
    }
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<SecretKey> {
        // The code AWS answers an unknown access key with (clients and tools key on it).
        self.0.secret(access_key).map(SecretKey::from).ok_or_else(|| {
            s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )
        })
    }
}
