//! The users file: `ACCESS_KEY SECRET_KEY [CANONICAL_ID [DISPLAY NAME...]]` per line, `#`
//! comments. On first start without one, a file with a single random development user is
//! created (mode 0600). Read at every start and imported into the identity store
//! ([`import`]): a line whose access key is already there is left as the store has it, so
//! changes made with `cipherstore iam` stick.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::directory::{self, Directory, NewCredential, NewUser};
use super::error::IamError;
use super::seal::Seal;

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
    /// A line is not `ACCESS_KEY SECRET_KEY [CANONICAL_ID [DISPLAY NAME...]]` with a secret
    /// of 8 or more characters.
    #[error(
        "{path} line {line}: expected `ACCESS_KEY SECRET_KEY [CANONICAL_ID [DISPLAY NAME...]]` (secret of 8+ characters): {reason}"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong (never the secret).
        reason: String,
    },
    /// The file lists nobody.
    #[error("{0} lists no users")]
    Empty(PathBuf),
}

/// One line of the users file.
pub struct FileUser {
    /// The line number, from 1.
    pub line: usize,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret: Zeroizing<String>,
    /// Canonical id: the access key when none is given (what buckets made before
    /// identities were kept record as their owner).
    pub canonical_id: String,
    /// Display name, if given.
    pub display_name: Option<String>,
}

/// The users the file lists.
pub fn load(path: &Path) -> Result<Vec<FileUser>, UsersError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| UsersError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?);
    parse(&text, path)
}

/// The users a users file's `text` lists (`path` names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<Vec<FileUser>, UsersError> {
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let malformed = |reason: String| UsersError::Malformed { path: path.to_owned(), line: n + 1, reason };
        let mut parts = line.split_whitespace();
        let (Some(ak), Some(sk)) = (parts.next(), parts.next()) else {
            return Err(malformed("no secret key".into()));
        };
        directory::check_access_key_id(ak).map_err(|e| malformed(e.to_string()))?;
        directory::check_secret(sk).map_err(|e| malformed(e.to_string()))?;
        let canonical_id = parts.next().unwrap_or(ak).to_owned();
        directory::check_canonical_id(&canonical_id).map_err(|e| malformed(e.to_string()))?;
        let rest: Vec<&str> = parts.collect();
        let display_name = (!rest.is_empty()).then(|| rest.join(" "));
        users.push(FileUser {
            line: n + 1,
            access_key: ak.to_owned(),
            secret: Zeroizing::new(sk.to_owned()),
            canonical_id,
            display_name,
        });
    }
    if users.is_empty() {
        return Err(UsersError::Empty(path.to_owned()));
    }
    Ok(users)
}

/// Adds the file's users missing from `directory`: a credential for each access key it
/// does not know, under the user with the line's canonical id (created, named after the
/// canonical id, if there is none). Secrets are sealed when `seal` is given. Returns how
/// many credentials were added.
pub fn import(
    directory: &mut Directory,
    users: &[FileUser],
    seal: Option<&Seal>,
    now: u64,
) -> Result<usize, IamError> {
    let mut added = 0;
    for u in users {
        if directory.credentials.contains_key(&u.access_key) {
            continue;
        }
        let existing =
            directory.users.values().find(|x| x.canonical_id == u.canonical_id).map(|x| x.name.clone());
        let name = match existing {
            Some(name) => name,
            None => {
                let new = NewUser {
                    name: u.canonical_id.clone(),
                    canonical_id: Some(u.canonical_id.clone()),
                    display_name: u.display_name.clone(),
                    email: None,
                    create_buckets: true,
                };
                directory.create_user(new, now)?.name.clone()
            }
        };
        let secret = match seal {
            Some(s) => s.seal(&u.access_key, &u.secret)?,
            None => directory::StoredSecret::Plain(u.secret.to_string()),
        };
        let new = NewCredential { user: name, access_key_id: u.access_key.clone(), secret, expires: None };
        directory.add_credential(new, now)?;
        added += 1;
    }
    Ok(added)
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
        "# ACCESS_KEY SECRET_KEY [CANONICAL_ID [DISPLAY NAME...]], one per line\ndev{} {}\n",
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
    use crate::snapshot::Snapshot;

    #[test]
    fn reads_users_and_refuses_malformed_lines_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "# comment\n\nAK1 secret-one\n  AK2   secret-two  CAN2 Bob  Smith\n").unwrap();
        let users = load(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!((users[0].access_key.as_str(), users[0].secret.as_str()), ("AK1", "secret-one"));
        assert_eq!(users[0].canonical_id, "AK1");
        assert_eq!(users[0].display_name, None);
        assert_eq!(users[1].canonical_id, "CAN2");
        assert_eq!(users[1].display_name.as_deref(), Some("Bob Smith"));

        std::fs::write(&path, "AK1 secret-one\nAK2 short\n").unwrap();
        let err = load(&path).err().unwrap();
        assert!(matches!(err, UsersError::Malformed { line: 2, .. }), "{err}");
        assert!(!err.to_string().contains("short"), "a secret in an error: {err}");
        std::fs::write(&path, "AK1 secret-one bad:id\n").unwrap();
        assert!(load(&path).err().unwrap().to_string().contains("canonical id"));
        std::fs::write(&path, "AK1\n").unwrap();
        assert!(matches!(load(&path), Err(UsersError::Malformed { line: 1, .. })));

        std::fs::write(&path, "# nobody\n").unwrap();
        assert!(matches!(load(&path), Err(UsersError::Empty(_))));
    }

    #[test]
    fn import_adds_what_is_missing_and_keeps_what_the_store_has() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "AK1 secret-one\nAK2 secret-two CAN2 Bob\nAK3 secret-three CAN2\n").unwrap();
        let users = load(&path).unwrap();
        let mut d = Directory::default();
        assert_eq!(import(&mut d, &users, None, 1).unwrap(), 3);
        assert_eq!(d.users.len(), 2, "AK2 and AK3 are one user");
        assert_eq!(d.user("CAN2").unwrap().display_name, "Bob");
        assert_eq!(d.user("AK1").unwrap().canonical_id, "AK1");
        d.set_enabled("AK1", false).unwrap();
        assert_eq!(import(&mut d, &users, None, 2).unwrap(), 0, "nothing new");
        assert!(!d.credentials["AK1"].enabled, "an operator's change sticks");
        let seal = Seal::new(&engine::SecretKey::random(), "root", engine::Backend::default()).unwrap();
        let mut sealed = Directory::default();
        import(&mut sealed, &users, Some(&seal), 1).unwrap();
        assert!(matches!(sealed.credentials["AK2"].secret, directory::StoredSecret::Sealed(_)));
        let (snap, errors) = Snapshot::build(&sealed, Some(&seal));
        assert!(errors.is_empty());
        assert_eq!(snap.secret("AK2", 1), Ok("secret-two"));
    }

    #[test]
    fn ensure_creates_one_private_user_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        ensure(&path).unwrap();
        let first = std::fs::read(&path).unwrap();
        let users = load(&path).unwrap();
        assert_eq!(users.len(), 1);
        assert!(users[0].access_key.starts_with("dev") && users[0].secret.len() >= 8);
        ensure(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first, "an existing file is kept");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
