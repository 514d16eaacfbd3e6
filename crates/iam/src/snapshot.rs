//! The identities as every request sees them ([`Snapshot`]): secrets opened, credentials
//! and users indexed for one look-up each, and the access decision ([`Principal::may`]):
//! the bucket's owner may do everything, a user with a role on the bucket what the role
//! allows, anyone else nothing; and the key service's API keys and bearer tokens. Built afresh from a [`Directory`] whenever it changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::directory::Directory;
use super::error::IamError;
use super::role::{Action, Role};
use super::seal::{Seal, open};
use super::token::{Caller, Issued, Signer, TOKEN_KEY_NAME, TokenRefusal, Tokens};

/// An authenticated caller: the user behind the access key a request was signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's name.
    pub user: String,
    /// The id buckets record as their owner.
    pub canonical_id: String,
    /// Shown beside the canonical id.
    pub display_name: String,
    /// Whether the user may create buckets.
    pub create_buckets: bool,
    /// Roles on buckets, by bucket name.
    pub grants: BTreeMap<String, Role>,
}

/// Why a caller may act on a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The caller owns the bucket: full control.
    Owner,
    /// The caller holds this role on it.
    Role(Role),
}

impl Principal {
    /// What the caller is to the bucket `bucket` owned by `owner`, if anything.
    pub fn standing(&self, bucket: &str, owner: &str) -> Option<Standing> {
        if self.canonical_id == owner {
            return Some(Standing::Owner);
        }
        self.grants.get(bucket).map(|r| Standing::Role(*r))
    }

    /// Whether the caller may do `action` on `bucket`, owned by `owner`.
    pub fn may(&self, action: Action, bucket: &str, owner: &str) -> bool {
        match self.standing(bucket, owner) {
            Some(Standing::Owner) => true,
            Some(Standing::Role(r)) => r.allows(action),
            None => false,
        }
    }
}

/// Why a credential is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such access key (or its secret cannot be opened here).
    Unknown,
    /// Disabled by an operator.
    Disabled,
    /// Past its expiry.
    Expired,
}

struct Key {
    secret: Zeroizing<String>,
    principal: Arc<Principal>,
    expires: Option<u64>,
    enabled: bool,
}

/// The identities, ready for look-ups.
#[derive(Default)]
pub struct Snapshot {
    keys: HashMap<String, Key>,
    names: HashMap<String, String>,
    granted: HashSet<String>,
    user_names: HashSet<String>,
    emails: HashMap<String, String>,
    tokens: Tokens,
}

impl Snapshot {
    /// Indexes `directory`, opening sealed secrets with `seal`. A credential whose secret
    /// does not open is left out (and its error returned), so one bad record refuses one
    /// key, not every caller.
    pub fn build(directory: &Directory, seal: Option<&Seal>) -> (Self, Vec<IamError>) {
        let principals: HashMap<&str, Arc<Principal>> = directory
            .users
            .values()
            .map(|u| {
                let p = Principal {
                    user: u.name.clone(),
                    canonical_id: u.canonical_id.clone(),
                    display_name: u.display_name.clone(),
                    create_buckets: u.create_buckets,
                    grants: u.grants.clone(),
                };
                (u.name.as_str(), Arc::new(p))
            })
            .collect();
        let mut errors = Vec::new();
        let mut keys = HashMap::new();
        for c in directory.credentials.values() {
            let Some(principal) = principals.get(c.user.as_str()) else { continue };
            match open(seal, &c.access_key_id, &c.secret) {
                Ok(secret) => {
                    let key =
                        Key { secret, principal: principal.clone(), expires: c.expires, enabled: c.enabled };
                    keys.insert(c.access_key_id.clone(), key);
                }
                Err(e) => errors.push(e),
            }
        }
        let names =
            directory.users.values().map(|u| (u.canonical_id.clone(), u.display_name.clone())).collect();
        let granted = directory.users.values().flat_map(|u| u.grants.keys().cloned()).collect();
        let user_names = directory.users.keys().cloned().collect();
        // Emails compare without case, as AWS resolves grants by email.
        let emails = directory
            .users
            .values()
            .filter_map(|u| Some((u.email.as_ref()?.to_ascii_lowercase(), u.canonical_id.clone())))
            .collect();
        let tokens = Self::tokens(directory, seal, &mut errors);
        (Self { keys, names, granted, user_names, emails, tokens }, errors)
    }

    fn tokens(directory: &Directory, seal: Option<&Seal>, errors: &mut Vec<IamError>) -> Tokens {
        let mut tokens = Tokens::default();
        if let Some(kept) = &directory.token_key {
            match open(seal, TOKEN_KEY_NAME, kept) {
                Ok(hex) => match base::hex::decode(&hex).map(Zeroizing::new) {
                    Some(key) if key.len() == 32 => tokens.signer = Some(Signer::new(&key)),
                    _ => errors.push(IamError::invalid("token key", "it is not 32 bytes of hex")),
                },
                Err(e) => errors.push(e),
            }
        }
        for k in directory.apikeys.values() {
            if k.user.as_ref().is_some_and(|u| !directory.users.contains_key(u)) {
                continue;
            }
            let caller = Arc::new(Caller {
                apikey_id: k.id.clone(),
                name: k.name.clone(),
                identity: k.identity(),
                role: k.role,
            });
            if k.enabled {
                tokens.by_digest.insert(k.digest.clone(), caller.clone());
            }
            tokens.by_id.insert(k.id.clone(), (caller, k.enabled));
        }
        tokens
    }

    /// Exchanges a key service API key for a bearer token at `now` (Unix seconds).
    pub fn exchange_apikey(&self, apikey: &str, now: u64) -> Result<(Issued, Arc<Caller>), TokenRefusal> {
        self.tokens.exchange(apikey, now)
    }

    /// The key service caller a bearer token names, if it holds at `now`.
    pub fn bearer(&self, token: &str, now: u64) -> Result<Arc<Caller>, TokenRefusal> {
        self.tokens.caller(token, now)
    }

    /// Whether tokens can be issued (the directory has a token key that opens here).
    pub fn has_token_key(&self) -> bool {
        self.tokens.signer.is_some()
    }

    /// The secret of `access_key` if it may sign requests at `now` (Unix seconds).
    pub fn secret(&self, access_key: &str, now: u64) -> Result<&str, Refusal> {
        let key = self.keys.get(access_key).ok_or(Refusal::Unknown)?;
        if !key.enabled {
            return Err(Refusal::Disabled);
        }
        if key.expires.is_some_and(|e| now >= e) {
            return Err(Refusal::Expired);
        }
        Ok(key.secret.as_str())
    }

    /// The caller behind `access_key`, if it may sign requests at `now`.
    pub fn principal(&self, access_key: &str, now: u64) -> Option<Arc<Principal>> {
        self.secret(access_key, now).ok()?;
        self.keys.get(access_key).map(|k| k.principal.clone())
    }

    /// The display name of the user with `canonical_id`.
    pub fn display_name(&self, canonical_id: &str) -> Option<&str> {
        self.names.get(canonical_id).map(String::as_str)
    }

    /// Whether a user named `name` exists.
    pub fn has_user(&self, name: &str) -> bool {
        self.user_names.contains(name)
    }

    /// Whether a user with `canonical_id` exists.
    pub fn has_canonical_id(&self, canonical_id: &str) -> bool {
        self.names.contains_key(canonical_id)
    }

    /// The canonical id of the user whose email is `email` (any case).
    pub fn canonical_id_by_email(&self, email: &str) -> Option<&str> {
        self.emails.get(&email.to_ascii_lowercase()).map(String::as_str)
    }

    /// Whether any user holds a role on `bucket`.
    pub fn has_grants_on(&self, bucket: &str) -> bool {
        self.granted.contains(bucket)
    }

    /// How many users and usable credentials there are.
    pub fn counts(&self) -> (usize, usize) {
        (self.user_names.len(), self.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{NewCredential, NewUser, StoredSecret};

    fn directory() -> Directory {
        let mut d = Directory::default();
        for (name, id) in
            [("owner", "OWNER"), ("reader", "R"), ("writer", "W"), ("manager", "M"), ("other", "O")]
        {
            let u = NewUser {
                name: name.into(),
                canonical_id: Some(id.into()),
                create_buckets: true,
                ..NewUser::default()
            };
            d.create_user(u, 1).unwrap();
            let c = NewCredential {
                user: name.into(),
                access_key_id: format!("AK-{name}"),
                secret: StoredSecret::Plain(format!("secret-of-{name}")),
                expires: None,
            };
            d.add_credential(c, 1).unwrap();
        }
        d.grant("reader", "photos", Role::Reader).unwrap();
        d.grant("writer", "photos", Role::Writer).unwrap();
        d.grant("manager", "photos", Role::Manager).unwrap();
        d.grant("other", "music", Role::Manager).unwrap();
        d
    }

    /// The access matrix, cell by cell: principal x action on bucket `photos` (owned by
    /// OWNER).
    #[test]
    fn owners_and_roles_decide_every_cell() {
        let (snap, errors) = Snapshot::build(&directory(), None);
        assert!(errors.is_empty());
        use Action::*;
        let rows: [(&str, [bool; 8]); 5] = [
            //          List  Read  RdSet Write Del   Conf  DelB  Bypass
            ("owner", [true, true, true, true, true, true, true, true]),
            ("manager", [true, true, true, true, true, true, true, true]),
            ("writer", [true, true, true, true, true, false, false, false]),
            ("reader", [true, true, true, false, false, false, false, false]),
            ("other", [false, false, false, false, false, false, false, false]),
        ];
        for (who, cells) in rows {
            let p = snap.principal(&format!("AK-{who}"), 2).unwrap();
            for (action, want) in Action::ALL.into_iter().zip(cells) {
                assert_eq!(p.may(action, "photos", "OWNER"), want, "{who} {}", action.as_str());
            }
        }
        let other = snap.principal("AK-other", 2).unwrap();
        assert!(other.may(Configure, "music", "OWNER"), "a role on one bucket only");
        assert_eq!(snap.display_name("R"), Some("reader"));
        assert!(snap.has_grants_on("photos") && snap.has_grants_on("music") && !snap.has_grants_on("other"));
        assert_eq!(snap.counts(), (5, 5));
    }

    #[test]
    fn disabled_expired_and_unknown_keys_are_refused() {
        let mut d = directory();
        d.set_enabled("AK-reader", false).unwrap();
        d.credentials.get_mut("AK-writer").unwrap().expires = Some(100);
        let (snap, _) = Snapshot::build(&d, None);
        assert_eq!(snap.secret("AK-reader", 1), Err(Refusal::Disabled));
        assert_eq!(snap.secret("AK-writer", 99), Ok("secret-of-writer"));
        assert_eq!(snap.secret("AK-writer", 100), Err(Refusal::Expired));
        assert_eq!(snap.secret("AK-nobody", 1), Err(Refusal::Unknown));
        assert!(snap.principal("AK-reader", 1).is_none());
        assert!(snap.principal("AK-writer", 100).is_none());
    }

    #[test]
    fn a_secret_that_does_not_open_refuses_only_its_key() {
        let mut d = directory();
        d.credentials.get_mut("AK-reader").unwrap().secret = StoredSecret::Sealed("00".repeat(40));
        let (snap, errors) = Snapshot::build(&d, None);
        assert_eq!(errors.len(), 1);
        assert!(!errors[0].to_string().contains("secret-of"), "{}", errors[0]);
        assert_eq!(snap.secret("AK-reader", 1), Err(Refusal::Unknown));
        assert!(snap.secret("AK-writer", 1).is_ok());
    }
}
