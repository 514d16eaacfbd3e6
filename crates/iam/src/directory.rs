//! The identities as kept ([`Directory`]): users with their canonical ids, display names,
//! emails, bucket-creation flag and roles on buckets, and HMAC credentials (access key id,
//! secret as kept, expiry, enabled). Every change an operator makes is a method here that
//! checks its input and the directory's rules (unique names, ids and access keys; a
//! credential belongs to an existing user) before it changes anything. docs/FORMAT.md
//! §8 describes the stored form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::IamError;
use super::role::Role;

/// A user (or service id): who owns buckets and holds roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique name operators use (`iam user show NAME`).
    pub name: String,
    /// The id S3 answers as owner and policies name (unique).
    pub canonical_id: String,
    /// Shown beside the canonical id as owner.
    pub display_name: String,
    /// Contact address, also usable in ACL grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the user may create buckets.
    pub create_buckets: bool,
    /// Unix seconds.
    pub created: u64,
    /// Roles on buckets the user does not own, by bucket name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, Role>,
}

/// A secret key as kept: in the clear (no HSM; the file is 0600 or the metadata service is
/// trusted), or sealed under the identity seal key (docs/FORMAT.md §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredSecret {
    /// The secret itself.
    Plain(String),
    /// AES-256-GCM of the secret, hex: 12-byte nonce, ciphertext, 16-byte tag; the access
    /// key id is the associated data.
    Sealed(String),
}

/// An HMAC credential: an access key id and its secret, belonging to one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Access key id (unique).
    pub access_key_id: String,
    /// The user's name.
    pub user: String,
    /// The secret, as kept.
    pub secret: StoredSecret,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds after which it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Disabled credentials are refused until enabled.
    pub enabled: bool,
}

/// Everything kept about identities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Users by name.
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    /// Credentials by access key id.
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
    /// The key service's API keys by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apikeys: BTreeMap<String, super::apikey::ApiKey>,
    /// The key that signs bearer tokens (32 bytes, hex), sealed like secrets; made the
    /// first time a key service starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key: Option<StoredSecret>,
}

/// A new user as asked for.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Name.
    pub name: String,
    /// Canonical id; 64 random hex digits when none.
    pub canonical_id: Option<String>,
    /// Display name; the name when none.
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Whether the user may create buckets.
    pub create_buckets: bool,
}

/// A new credential as asked for (its secret already in the form kept).
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// The user's name.
    pub user: String,
    /// Access key id.
    pub access_key_id: String,
    /// The secret as kept.
    pub secret: StoredSecret,
    /// Unix seconds after which it is refused.
    pub expires: Option<u64>,
}

impl Directory {
    /// Adds a user.
    pub fn create_user(&mut self, new: NewUser, now: u64) -> Result<&User, IamError> {
        check_name(&new.name)?;
        if self.users.contains_key(&new.name) {
            return Err(IamError::UserExists(new.name));
        }
        let canonical_id = match new.canonical_id {
            Some(id) => {
                check_canonical_id(&id)?;
                id
            }
            None => random_canonical_id(),
        };
        if let Some(other) = self.users.values().find(|u| u.canonical_id == canonical_id) {
            return Err(IamError::CanonicalIdTaken(canonical_id, other.name.clone()));
        }
        let display_name = new.display_name.unwrap_or_else(|| new.name.clone());
        check_display_name(&display_name)?;
        if let Some(e) = &new.email {
            check_email(e)?;
        }
        let user = User {
            name: new.name.clone(),
            canonical_id,
            display_name,
            email: new.email,
            create_buckets: new.create_buckets,
            created: now,
            grants: BTreeMap::new(),
        };
        Ok(self.users.entry(new.name).or_insert(user))
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Result<&User, IamError> {
        self.users.get(name).ok_or_else(|| IamError::NoSuchUser(name.to_owned()))
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut User, IamError> {
        self.users.get_mut(name).ok_or_else(|| IamError::NoSuchUser(name.to_owned()))
    }

    /// Removes a user and every credential of theirs; returns the access key ids removed.
    pub fn delete_user(&mut self, name: &str) -> Result<Vec<String>, IamError> {
        self.user(name)?;
        self.users.remove(name);
        let keys: Vec<String> =
            self.credentials.values().filter(|c| c.user == name).map(|c| c.access_key_id.clone()).collect();
        for k in &keys {
            self.credentials.remove(k);
        }
        self.apikeys.retain(|_, k| k.user.as_deref() != Some(name));
        Ok(keys)
    }

    /// Sets whether a user may create buckets.
    pub fn set_create_buckets(&mut self, name: &str, allowed: bool) -> Result<(), IamError> {
        self.user_mut(name)?.create_buckets = allowed;
        Ok(())
    }

    /// The credentials of a user, by access key id.
    pub fn credentials_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Credential> + 'a {
        self.credentials.values().filter(move |c| c.user == name)
    }

    /// Adds a credential to an existing user.
    pub fn add_credential(&mut self, new: NewCredential, now: u64) -> Result<&Credential, IamError> {
        self.user(&new.user)?;
        check_access_key_id(&new.access_key_id)?;
        if self.credentials.contains_key(&new.access_key_id) {
            return Err(IamError::AccessKeyTaken(new.access_key_id));
        }
        if let StoredSecret::Plain(s) = &new.secret {
            check_secret(s)?;
        }
        let credential = Credential {
            access_key_id: new.access_key_id.clone(),
            user: new.user,
            secret: new.secret,
            created: now,
            expires: new.expires,
            enabled: true,
        };
        Ok(self.credentials.entry(new.access_key_id).or_insert(credential))
    }

    /// Enables or disables a credential.
    pub fn set_enabled(&mut self, access_key_id: &str, enabled: bool) -> Result<(), IamError> {
        self.credentials
            .get_mut(access_key_id)
            .ok_or_else(|| IamError::NoSuchAccessKey(access_key_id.to_owned()))?
            .enabled = enabled;
        Ok(())
    }

    /// Removes a credential.
    pub fn delete_credential(&mut self, access_key_id: &str) -> Result<Credential, IamError> {
        self.credentials
            .remove(access_key_id)
            .ok_or_else(|| IamError::NoSuchAccessKey(access_key_id.to_owned()))
    }

    /// Gives a user a role on a bucket (replacing any role held there).
    pub fn grant(&mut self, name: &str, bucket: &str, role: Role) -> Result<(), IamError> {
        check_bucket(bucket)?;
        self.user_mut(name)?.grants.insert(bucket.to_owned(), role);
        Ok(())
    }

    /// Takes a user's role on a bucket away.
    pub fn revoke(&mut self, name: &str, bucket: &str) -> Result<Role, IamError> {
        self.user_mut(name)?
            .grants
            .remove(bucket)
            .ok_or_else(|| IamError::NoSuchGrant(name.to_owned(), bucket.to_owned()))
    }

    /// Removes every role on `bucket` (it was deleted, or is being created anew: a new
    /// bucket never inherits the roles of an old one of the same name). Whether any was.
    pub fn forget_bucket(&mut self, bucket: &str) -> bool {
        let mut changed = false;
        for u in self.users.values_mut() {
            changed |= u.grants.remove(bucket).is_some();
        }
        changed
    }

    /// Whether any user holds a role on `bucket`.
    pub fn has_grants_on(&self, bucket: &str) -> bool {
        self.users.values().any(|u| u.grants.contains_key(bucket))
    }

    /// Parses a kept directory.
    pub fn parse(bytes: &[u8], place: &str) -> Result<Self, IamError> {
        serde_json::from_slice(bytes)
            .map_err(|e| IamError::Stored { place: place.to_owned(), reason: e.to_string() })
    }
}

/// 64 random lowercase hex digits, the shape of AWS canonical ids.
pub fn random_canonical_id() -> String {
    let mut b = [0u8; 32];
    engine::primitives::fill_random(&mut b);
    base::hex::encode(&b)
}

fn check_chars(
    what: &'static str,
    s: &str,
    max: usize,
    ok: impl Fn(char) -> bool,
    allowed: &str,
) -> Result<(), IamError> {
    if s.is_empty() || s.chars().count() > max {
        return Err(IamError::invalid(what, format!("must be 1 to {max} characters")));
    }
    if let Some(c) = s.chars().find(|c| !ok(*c)) {
        return Err(IamError::invalid(what, format!("{c:?} is not allowed ({allowed})")));
    }
    Ok(())
}

/// A user name: 1 to 64 of `A-Z a-z 0-9 _ . @ + = , -` (AWS IAM's user names).
pub(crate) fn check_name(name: &str) -> Result<(), IamError> {
    check_chars(
        "user name",
        name,
        64,
        |c| c.is_ascii_alphanumeric() || "_.@+=,-".contains(c),
        "letters, digits and _.@+=,-",
    )
}

/// A canonical id: 1 to 128 of `A-Z a-z 0-9 _ -`.
pub(crate) fn check_canonical_id(id: &str) -> Result<(), IamError> {
    check_chars(
        "canonical id",
        id,
        128,
        |c| c.is_ascii_alphanumeric() || "_-".contains(c),
        "letters, digits, _ and -",
    )
}

/// A display name: 1 to 128 characters, no control characters.
pub(crate) fn check_display_name(name: &str) -> Result<(), IamError> {
    check_chars("display name", name, 128, |c| !c.is_control(), "no control characters")
}

/// An email: at most 254 characters, one `@` with text either side, no spaces.
pub(crate) fn check_email(email: &str) -> Result<(), IamError> {
    check_chars(
        "email",
        email,
        254,
        |c| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control()),
        "no spaces",
    )?;
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => Ok(()),
        _ => Err(IamError::invalid("email", "expected one @ with text either side")),
    }
}

/// An access key id: 3 to 128 of `A-Z a-z 0-9 _ . + = / -`.
pub fn check_access_key_id(id: &str) -> Result<(), IamError> {
    if id.len() < 3 {
        return Err(IamError::invalid("access key id", "must be 3 to 128 characters"));
    }
    check_chars(
        "access key id",
        id,
        128,
        |c| c.is_ascii_alphanumeric() || "_.+=/-".contains(c),
        "letters, digits and _.+=/-",
    )
}

/// A secret key: 8 to 128 printable ASCII characters without spaces. The error never
/// repeats it.
pub fn check_secret(secret: &str) -> Result<(), IamError> {
    if secret.len() < 8 || secret.len() > 128 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IamError::invalid(
            "secret key",
            "must be 8 to 128 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// A bucket name as S3 allows it: 3 to 63 of `a-z 0-9 . -`.
pub(crate) fn check_bucket(bucket: &str) -> Result<(), IamError> {
    if bucket.len() < 3 {
        return Err(IamError::invalid("bucket name", "must be 3 to 63 characters"));
    }
    check_chars(
        "bucket name",
        bucket,
        63,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c),
        "lowercase letters, digits, . and -",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> NewUser {
        NewUser { name: "alice".into(), create_buckets: true, ..NewUser::default() }
    }

    fn key(user: &str, ak: &str) -> NewCredential {
        NewCredential {
            user: user.into(),
            access_key_id: ak.into(),
            secret: StoredSecret::Plain("s3cr3t-key".into()),
            expires: None,
        }
    }

    #[test]
    fn users_are_unique_by_name_and_canonical_id() {
        let mut d = Directory::default();
        let id = d.create_user(alice(), 1).unwrap().canonical_id.clone();
        assert_eq!(id.len(), 64);
        assert_eq!(d.user("alice").unwrap().display_name, "alice");
        assert!(matches!(d.create_user(alice(), 2), Err(IamError::UserExists(_))));
        let bob = NewUser { name: "bob".into(), canonical_id: Some(id), ..NewUser::default() };
        assert!(matches!(d.create_user(bob, 2), Err(IamError::CanonicalIdTaken(_, n)) if n == "alice"));
    }

    #[test]
    fn bad_input_is_refused_naming_what_is_wrong() {
        let mut d = Directory::default();
        let cases: Vec<(NewUser, &str)> = vec![
            (NewUser { name: "".into(), ..alice() }, "user name"),
            (NewUser { name: "a b".into(), ..alice() }, "user name"),
            (NewUser { name: "x".repeat(65), ..alice() }, "user name"),
            (NewUser { canonical_id: Some("id with space".into()), ..alice() }, "canonical id"),
            (NewUser { display_name: Some("bell\u{7}".into()), ..alice() }, "display name"),
            (NewUser { email: Some("nobody".into()), ..alice() }, "email"),
            (NewUser { email: Some("a@b@c".into()), ..alice() }, "email"),
        ];
        for (u, what) in cases {
            let err = d.create_user(u, 1).unwrap_err();
            assert!(matches!(&err, IamError::Invalid { what: w, .. } if *w == what), "{err}");
        }
        d.create_user(alice(), 1).unwrap();
        let bad_secret =
            NewCredential { secret: StoredSecret::Plain("short".into()), ..key("alice", "AKIA1") };
        let err = d.add_credential(bad_secret, 1).unwrap_err();
        assert!(matches!(err, IamError::Invalid { what: "secret key", .. }));
        assert!(!err.to_string().contains("short"), "the secret in an error: {err}");
        assert!(matches!(
            d.add_credential(key("alice", "A"), 1),
            Err(IamError::Invalid { what: "access key id", .. })
        ));
        assert!(matches!(d.add_credential(key("alice", "AK 1"), 1), Err(IamError::Invalid { .. })));
        assert!(matches!(
            d.grant("alice", "Bad_Bucket", Role::Reader),
            Err(IamError::Invalid { what: "bucket name", .. })
        ));
        assert!(matches!(d.grant("nobody", "photos", Role::Reader), Err(IamError::NoSuchUser(_))));
    }

    #[test]
    fn credentials_belong_to_users_and_go_with_them() {
        let mut d = Directory::default();
        assert!(matches!(d.add_credential(key("alice", "AKIA1"), 1), Err(IamError::NoSuchUser(_))));
        d.create_user(alice(), 1).unwrap();
        d.add_credential(key("alice", "AKIA1"), 1).unwrap();
        d.add_credential(key("alice", "AKIA2"), 1).unwrap();
        assert!(matches!(d.add_credential(key("alice", "AKIA1"), 1), Err(IamError::AccessKeyTaken(_))));
        d.set_enabled("AKIA1", false).unwrap();
        assert!(!d.credentials["AKIA1"].enabled);
        assert!(matches!(d.set_enabled("AKIA9", true), Err(IamError::NoSuchAccessKey(_))));
        assert_eq!(d.credentials_of("alice").count(), 2);
        d.delete_credential("AKIA2").unwrap();
        assert_eq!(d.delete_user("alice").unwrap(), vec!["AKIA1".to_owned()]);
        assert!(d.credentials.is_empty() && d.users.is_empty());
    }

    #[test]
    fn grants_are_replaced_revoked_and_forgotten_with_the_bucket() {
        let mut d = Directory::default();
        d.create_user(alice(), 1).unwrap();
        d.grant("alice", "photos", Role::Reader).unwrap();
        d.grant("alice", "photos", Role::Writer).unwrap();
        assert_eq!(d.user("alice").unwrap().grants["photos"], Role::Writer);
        assert!(d.has_grants_on("photos"));
        assert_eq!(d.revoke("alice", "photos").unwrap(), Role::Writer);
        assert!(matches!(d.revoke("alice", "photos"), Err(IamError::NoSuchGrant(..))));
        d.grant("alice", "photos", Role::Manager).unwrap();
        assert!(d.forget_bucket("photos"));
        assert!(!d.forget_bucket("photos"));
        assert!(!d.has_grants_on("photos"));
    }

    #[test]
    fn the_kept_form_reads_back() {
        let mut d = Directory::default();
        d.create_user(NewUser { email: Some("a@example.com".into()), ..alice() }, 7).unwrap();
        d.add_credential(NewCredential { expires: Some(99), ..key("alice", "AKIA1") }, 7).unwrap();
        d.grant("alice", "photos", Role::Reader).unwrap();
        let bytes = serde_json::to_vec(&d).unwrap();
        assert_eq!(Directory::parse(&bytes, "test").unwrap(), d);
        assert!(matches!(Directory::parse(b"{\"users\": 3}", "test"), Err(IamError::Stored { .. })));
    }
}
