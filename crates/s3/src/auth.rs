//! Secret-key look-ups for s3s's SigV4 and SigV2 checks, answered from the identities in
//! force ([`iam::Identities`]): a disabled, expired or deleted key is refused from the
//! moment the change is seen, presigned URLs included.

use std::sync::Arc;

use iam::{Identities, Refusal};
use s3s::auth::{S3Auth, SecretKey};

/// The callers s3s may authenticate: every usable credential of the identities.
pub struct Auth(Arc<Identities>);

impl Auth {
    /// Look-ups from these identities.
    pub fn new(identities: Arc<Identities>) -> Self {
        Self(identities)
    }
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<SecretKey> {
        let snapshot = self.0.snapshot();
        // The codes AWS answers with (clients and tools key on them).
        match snapshot.secret(access_key, base::clock::now_unix()) {
            Ok(secret) => Ok(SecretKey::from(secret)),
            Err(Refusal::Unknown) => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )),
            Err(Refusal::Disabled) => {
                Err(s3s::s3_error!(InvalidAccessKeyId, "The AWS access key Id you provided is disabled."))
            }
            Err(Refusal::Expired) => {
                Err(s3s::s3_error!(ExpiredToken, "The access key you provided has expired."))
            }
        }
    }
}
