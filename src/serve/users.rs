//! The users file: `ACCESS_KEY SECRET_KEY` per line, `#` comments. On first start without
//! one, a file with a single random development user is created (mode 0600). [`Users`]
//! answers s3s's secret-key look-ups from it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use s3s::auth::{S3Auth, SecretKey};

/// The secret keys by access key, for SigV4 and SigV2 checks.
pub struct Users(HashMap<String, SecretKey>);

impl Users {
    /// Reads the users file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        Ok(Self(load(path)?.into_iter().map(|(ak, sk)| (ak, SecretKey::from(sk))).collect()))
    }
}

#[async_trait::async_trait]
impl S3Auth for Users {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<SecretKey> {
        // The code AWS answers an unknown access key with (clients and tools key on it).
        self.0.get(access_key).cloned().ok_or_else(|| {
            s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )
        })
    }
}

/// Users as (access key, secret key).
pub fn load(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read users file {}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(ak), Some(sk), None) if sk.len() >= 8 => users.push((ak.to_owned(), sk.to_owned())),
            _ => anyhow::bail!(
                "{} line {}: expected `ACCESS_KEY SECRET_KEY` (secret of 8+ characters)",
                path.display(),
                n + 1
            ),
        }
    }
    anyhow::ensure!(!users.is_empty(), "{} lists no users", path.display());
    Ok(users)
}

/// A users file with one random development user, created if missing (mode 0600).
pub fn ensure(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut rnd = [0u8; 30];
    crate::engine::primitives::fill_random(&mut rnd);
    let hexs = crate::hex::encode(&rnd);
    let line = format!(
        "# access-key secret-key, one user per line\ndev{} {}\n",
        &hexs[..12].to_uppercase(),
        &hexs[12..]
    );
    crate::durable::write_atomic(path, line.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
