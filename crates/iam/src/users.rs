//! The users file: `ACCESS_KEY SECRET_KEY` per line, `#` comments. On first start without
//! one, a file with a single random development user is created (mode 0600). [`Users`]
//! answers secret-key look-ups from it; the S3 layer turns them into SigV4 and SigV2
//! checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why the users file cannot be used. Never carries a secret: a malformed line is named by
/// its number only.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file cannot be read or written.
    #[error("cannot {action} users file {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not `ACCESS_KEY SECRET_KEY` with a secret of 8 or more characters.
    #[error("{path} line {line}: expected `ACCESS_KEY SECRET_KEY` (secret of 8+ characters)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// The file lists nobody.
    #[error("{0} lists no users")]
    Empty(PathBuf),
}

/// The secret keys by access key, for SigV4 and SigV2 checks.
pub struct Users(HashMap<String, Zeroizing<String>>);

impl Users {
    /// Reads the users file.
    pub fn from_file(path: &Path) -> Result<Self, UsersError> {
        Ok(Self(load(path)?.into_iter().map(|(ak, sk)| (ak, Zeroizing::new(sk))).collect()))
    }

    /// The secret key of an access key, if it is known.
    pub fn secret(&self, access_key: &str) -> Option<&str> {
        self.0.get(access_key).map(|s| s.as_str())
    }
}

/// Users as (access key, secret key).
pub fn load(path: &Path) -> Result<Vec<(String, String)>, UsersError> {
    let text = std::fs::read_to_string(path).map_err(|source| UsersError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(ak), Some(sk), None) if sk.len() >= 8 => users.push((ak.to_owned(), sk.to_owned())),
            _ => return Err(UsersError::Malformed { path: path.to_owned(), line: n + 1 }),
        }
    }
    if users.is_empty() {
        return Err(UsersError::Empty(path.to_owned()));
    }
    Ok(users)
}

/// A users file with one random development user, created if missing (mode 0600).
pub fn ensure(path: &Path) -> Result<(), UsersError> {
    if path.exists() {
        return Ok(());
    }
    let mut rnd = [0u8; 30];
    engine::primitives::fill_random(&mut rnd);
    let hexs = Zeroizing::new(base::hex::encode(&rnd));
    zeroize::Zeroize::zeroize(&mut rnd);
    let line = Zeroizing::new(format!(
        "# access-key secret-key, one user per line\ndev{} {}\n",
        &hexs[..12].to_uppercase(),
        &hexs[12..]
    ));
    base::durable::write_atomic(path, line.as_bytes()).map_err(|source| UsersError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_users_and_refuses_malformed_lines_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "# comment\n\nAK1 secret-one\n  AK2   secret-two  \n").unwrap();
        let users = Users::from_file(&path).unwrap();
        assert_eq!(users.secret("AK1"), Some("secret-one"));
        assert_eq!(users.secret("AK2"), Some("secret-two"));
        assert_eq!(users.secret("AK3"), None);

        std::fs::write(&path, "AK1 secret-one\nAK2 short\n").unwrap();
        let err = Users::from_file(&path).err().unwrap();
        assert!(matches!(err, UsersError::Malformed { line: 2, .. }), "{err}");
        assert!(!err.to_string().contains("short"), "a secret in an error: {err}");

        std::fs::write(&path, "# nobody\n").unwrap();
        assert!(matches!(Users::from_file(&path), Err(UsersError::Empty(_))));
    }

    #[test]
    fn ensure_creates_one_private_user_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        ensure(&path).unwrap();
        let first = std::fs::read(&path).unwrap();
        let users = load(&path).unwrap();
        assert_eq!(users.len(), 1);
        assert!(users[0].0.starts_with("dev") && users[0].1.len() >= 8);
        ensure(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first, "an existing file is kept");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
