//! The operator's operations on identities, one place for both front ends
//! (`cipherstore iam` and the admin HTTP API): users, HMAC credentials and roles, each
//! change committed to the identities every gateway follows and then recorded in the IAM
//! audit trail ([`AuditTrail`]) with who asked and the outcome, never a secret. What they
//! answer is [`UserView`] and [`KeyView`], the JSON both front ends print.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

use super::apikey::{ApiKey, NewApiKey};
use super::directory::{Credential, Directory, NewCredential, NewUser, StoredSecret, check_secret};
use super::error::IamError;
use super::live::Identities;
use super::role::Role;

/// The IAM audit trail: one JSON line per change (time, initiator, action, target,
/// outcome), appended to a file.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    path: PathBuf,
}

impl AuditTrail {
    /// The trail kept in `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Appends one event; a trail that cannot be written is reported on stderr and in the
    /// log, and the change stands (it is committed already).
    pub fn record(&self, initiator: &str, action: &str, target: &str, outcome: &str) {
        let line = serde_json::json!({
            "time": base::clock::rfc3339(base::clock::now_unix()),
            "initiator": initiator,
            "action": action,
            "target": target,
            "outcome": outcome,
        });
        if let Err(e) = base::durable::append_line(&self.path, &line.to_string()) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot append to the IAM audit trail");
        }
    }
}

/// A user as the operations answer it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserView {
    /// Name.
    pub name: String,
    /// Canonical id.
    pub canonical_id: String,
    /// Display name.
    pub display_name: String,
    /// Email.
    pub email: Option<String>,
    /// Whether the user may create buckets.
    pub create_buckets: bool,
    /// When it was made (RFC 3339).
    pub created: String,
    /// Role per bucket.
    pub roles: BTreeMap<String, Role>,
    /// Its access keys.
    pub access_keys: Vec<KeyView>,
}

/// An access key as the operations answer it (never its secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyView {
    /// Access key id.
    pub access_key_id: String,
    /// Whose.
    pub user: String,
    /// Whether it may sign requests.
    pub enabled: bool,
    /// When it was made (RFC 3339).
    pub created: String,
    /// When it stops (RFC 3339), if ever.
    pub expires: Option<String>,
    /// Whether its secret is kept sealed under the HSM-wrapped key.
    pub sealed: bool,
}

impl KeyView {
    fn of(c: &Credential) -> Self {
        Self {
            access_key_id: c.access_key_id.clone(),
            user: c.user.clone(),
            enabled: c.enabled,
            created: base::clock::rfc3339(c.created),
            expires: c.expires.map(base::clock::rfc3339),
            sealed: matches!(c.secret, StoredSecret::Sealed(_)),
        }
    }
}

/// A key asked for: its id and secret given (both) or made at random (neither).
pub struct NewKey {
    /// Whose.
    pub user: String,
    /// The access key id and secret to use; random ones when `None`.
    pub given: Option<(String, Zeroizing<String>)>,
    /// Unix seconds after which it is refused.
    pub expires: Option<u64>,
}

/// A key just made, with its secret: shown this once.
pub struct IssuedKey {
    /// The key.
    pub key: KeyView,
    /// Its secret.
    pub secret: Zeroizing<String>,
}

impl IssuedKey {
    /// `{"user","access_key_id","secret_access_key","expires"}`, in memory that is wiped.
    pub fn to_json(&self) -> Zeroizing<String> {
        Zeroizing::new(
            serde_json::json!({
                "user": self.key.user,
                "access_key_id": self.key.access_key_id,
                "secret_access_key": self.secret.as_str(),
                "expires": self.key.expires,
            })
            .to_string(),
        )
    }
}

/// The operations, on the identities in force, recorded in `audit`.
pub struct Admin {
    ids: Arc<Identities>,
    audit: AuditTrail,
}

impl Admin {
    /// Operations on `ids`, recorded in `audit`.
    pub fn new(ids: Arc<Identities>, audit: AuditTrail) -> Self {
        Self { ids, audit }
    }

    /// Commits `change`, records it (by `by`, as `action` on `target`), returns the
    /// directory after it.
    async fn change(
        &self,
        by: &str,
        action: &str,
        target: &str,
        mut change: impl FnMut(&mut Directory) -> Result<(), IamError> + Send,
    ) -> Result<Directory, IamError> {
        let result = self.ids.change(&mut change).await;
        let outcome = match &result {
            Ok(_) => "success".to_owned(),
            Err(e) => format!("failure: {e}"),
        };
        self.audit.record(by, action, target, &outcome);
        result
    }

    /// The directory as committed.
    async fn directory(&self) -> Result<Directory, IamError> {
        // A change that changes nothing reads the committed directory.
        self.ids.change(&mut |_| Ok(())).await
    }

    fn view(d: &Directory, name: &str) -> Result<UserView, IamError> {
        let u = d.user(name)?;
        Ok(UserView {
            name: u.name.clone(),
            canonical_id: u.canonical_id.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            create_buckets: u.create_buckets,
            created: base::clock::rfc3339(u.created),
            roles: u.grants.clone(),
            access_keys: d.credentials_of(name).map(KeyView::of).collect(),
        })
    }

    /// Makes a user.
    pub async fn create_user(&self, by: &str, new: NewUser) -> Result<UserView, IamError> {
        let now = base::clock::now_unix();
        let name = new.name.clone();
        let d =
            self.change(by, "user.create", &name, |d| d.create_user(new.clone(), now).map(|_| ())).await?;
        Self::view(&d, &name)
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserView>, IamError> {
        let d = self.directory().await?;
        d.users.keys().map(|n| Self::view(&d, n)).collect()
    }

    /// One user.
    pub async fn user(&self, name: &str) -> Result<UserView, IamError> {
        Self::view(&self.directory().await?, name)
    }

    /// Deletes a user and its keys; returns how many keys went with it.
    pub async fn delete_user(&self, by: &str, name: &str) -> Result<usize, IamError> {
        let mut removed = 0;
        self.change(by, "user.delete", name, |d| {
            removed = d.delete_user(name)?.len();
            Ok(())
        })
        .await?;
        Ok(removed)
    }

    /// Makes an access key; its secret is sealed when the identities have a seal, and
    /// never kept in clear beside sealed ones.
    pub async fn create_key(&self, by: &str, new: NewKey) -> Result<IssuedKey, IamError> {
        let (ak, sk) = new.given.unwrap_or_else(random_pair);
        check_secret(&sk)?;
        let secret = match self.ids.seal() {
            Some(seal) => seal.seal(&ak, &sk)?,
            None => {
                let sealed = self
                    .directory()
                    .await?
                    .credentials
                    .values()
                    .any(|c| matches!(c.secret, StoredSecret::Sealed(_)));
                if sealed {
                    return Err(IamError::Seal {
                        action: "seal",
                        access_key: ak,
                        reason: "the identities' secrets are sealed under an HSM, and none is configured here: \
                                 set the HSM the server uses (CIPHERSTORE_PKCS11_MODULE, CIPHERSTORE_HSM_TOKEN, \
                                 CIPHERSTORE_HSM_PIN_FILE, CIPHERSTORE_KEYS_DIR) or pass its --config"
                            .into(),
                    });
                }
                StoredSecret::Plain(sk.to_string())
            }
        };
        let credential =
            NewCredential { user: new.user.clone(), access_key_id: ak.clone(), secret, expires: new.expires };
        let now = base::clock::now_unix();
        let d = self
            .change(by, "hmac.create", &format!("{}/{ak}", new.user), |d| {
                d.add_credential(credential.clone(), now).map(|_| ())
            })
            .await?;
        let key =
            d.credentials.get(&ak).map(KeyView::of).ok_or_else(|| IamError::NoSuchAccessKey(ak.clone()))?;
        Ok(IssuedKey { key, secret: sk })
    }

    /// Every access key, or a user's.
    pub async fn keys(&self, user: Option<&str>) -> Result<Vec<KeyView>, IamError> {
        let d = self.directory().await?;
        if let Some(u) = user {
            d.user(u)?;
        }
        Ok(d.credentials.values().filter(|c| user.is_none_or(|u| c.user == u)).map(KeyView::of).collect())
    }

    /// Enables or disables an access key.
    pub async fn set_enabled(&self, by: &str, access_key: &str, enabled: bool) -> Result<KeyView, IamError> {
        let action = if enabled { "hmac.enable" } else { "hmac.disable" };
        let d = self.change(by, action, access_key, |d| d.set_enabled(access_key, enabled)).await?;
        d.credentials
            .get(access_key)
            .map(KeyView::of)
            .ok_or_else(|| IamError::NoSuchAccessKey(access_key.into()))
    }

    /// Deletes an access key.
    pub async fn delete_key(&self, by: &str, access_key: &str) -> Result<(), IamError> {
        self.change(by, "hmac.delete", access_key, |d| d.delete_credential(access_key).map(|_| ())).await?;
        Ok(())
    }

    /// Gives a user a role on a bucket (replacing the one held there).
    pub async fn grant(&self, by: &str, name: &str, bucket: &str, role: Role) -> Result<(), IamError> {
        self.change(by, "role.grant", &format!("{name} {bucket} {role}"), |d| d.grant(name, bucket, role))
            .await?;
        Ok(())
    }

    /// Takes a user's role on a bucket away; returns the role it was.
    pub async fn revoke(&self, by: &str, name: &str, bucket: &str) -> Result<Role, IamError> {
        let mut was = Role::Reader;
        self.change(by, "role.revoke", &format!("{name} {bucket}"), |d| {
            was = d.revoke(name, bucket)?;
            Ok(())
        })
        .await?;
        Ok(was)
    }
}

/// An RFC 3339 instant in the future, as Unix seconds (a key's expiry).
pub fn parse_expiry(text: &str) -> Result<u64, IamError> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
            IamError::invalid(
                "expiry",
                format!("{text:?} is not an RFC 3339 instant (e.g. 2027-01-31T00:00:00Z)"),
            )
        })?;
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| IamError::invalid("expiry", "before 1970"))?;
    if secs <= base::clock::now_unix() {
        return Err(IamError::invalid("expiry", format!("{text} is in the past")));
    }
    Ok(secs)
}

/// 20 characters from A-Z and 2-7 (an AWS-like access key id, starting with C), and 40
/// from a base64-like alphabet (the secret key).
fn random_pair() -> (String, Zeroizing<String>) {
    const AK: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SK: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut r = Zeroizing::new([0u8; 60]);
    engine::primitives::fill_random(&mut r[..]);
    let ak: String =
        std::iter::once('C').chain(r[..19].iter().map(|b| AK[usize::from(b % 32)] as char)).collect();
    let sk = Zeroizing::new(r[20..].iter().map(|b| SK[usize::from(b % 64)] as char).collect::<String>());
    (ak, sk)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    #[test]
    fn expiries_are_future_rfc3339_instants() {
        assert!(parse_expiry("2999-01-01T00:00:00Z").is_ok());
        assert!(parse_expiry("2001-01-01T00:00:00Z").unwrap_err().to_string().contains("in the past"));
        assert!(parse_expiry("tomorrow").unwrap_err().to_string().contains("RFC 3339"));
    }

    #[test]
    fn random_keys_have_the_aws_shape() {
        let (ak, sk) = random_pair();
        assert_eq!(ak.len(), 20);
        assert!(
            ak.starts_with('C') && ak.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
        assert_eq!(sk.len(), 40);
        assert!(check_secret(&sk).is_ok());
        assert_ne!(random_pair().0, ak);
    }
}

/// A key service API key as the operations answer it (never its secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApiKeyView {
    /// Name.
    pub name: String,
    /// Id.
    pub id: String,
    /// Role on the key service.
    pub role: Role,
    /// The user it acts as, if any.
    pub user: Option<String>,
    /// The identity it acts as.
    pub identity: String,
    /// Whether it may get tokens.
    pub enabled: bool,
    /// When it was made (RFC 3339).
    pub created: String,
}

impl ApiKeyView {
    fn of(k: &ApiKey) -> Self {
        Self {
            name: k.name.clone(),
            id: k.id.clone(),
            role: k.role,
            user: k.user.clone(),
            identity: k.identity(),
            enabled: k.enabled,
            created: base::clock::rfc3339(k.created),
        }
    }
}

/// An API key just made, with its secret: shown this once.
pub struct IssuedApiKey {
    /// The key.
    pub key: ApiKeyView,
    /// The secret to exchange for tokens.
    pub apikey: Zeroizing<String>,
}

impl IssuedApiKey {
    /// The view and `"apikey"`, in memory that is wiped.
    pub fn to_json(&self) -> Zeroizing<String> {
        let mut v = serde_json::to_value(&self.key).unwrap_or_default();
        v["apikey"] = serde_json::Value::String(self.apikey.to_string());
        let text = Zeroizing::new(v.to_string());
        if let serde_json::Value::Object(m) = &mut v
            && let Some(serde_json::Value::String(s)) = m.get_mut("apikey")
        {
            zeroize::Zeroize::zeroize(s);
        }
        text
    }
}

impl Admin {
    /// Makes a key service API key (its secret returned once, only its digest kept).
    pub async fn create_apikey(&self, by: &str, new: NewApiKey) -> Result<IssuedApiKey, IamError> {
        let (secret, digest) = super::apikey::random_secret();
        let now = base::clock::now_unix();
        let name = new.name.clone();
        let d = self
            .change(by, "apikey.create", &format!("{name} {}", new.role), |d| {
                d.add_apikey(new.clone(), digest.clone(), now).map(|_| ())
            })
            .await?;
        Ok(IssuedApiKey { key: ApiKeyView::of(d.apikey(&name)?), apikey: secret })
    }

    /// Every API key.
    pub async fn apikeys(&self) -> Result<Vec<ApiKeyView>, IamError> {
        Ok(self.directory().await?.apikeys.values().map(ApiKeyView::of).collect())
    }

    /// Enables or disables an API key (its tokens with it).
    pub async fn set_apikey_enabled(
        &self,
        by: &str,
        name: &str,
        enabled: bool,
    ) -> Result<ApiKeyView, IamError> {
        let action = if enabled { "apikey.enable" } else { "apikey.disable" };
        let d = self.change(by, action, name, |d| d.set_apikey_enabled(name, enabled)).await?;
        Ok(ApiKeyView::of(d.apikey(name)?))
    }

    /// Deletes an API key (its tokens are refused from now on).
    pub async fn delete_apikey(&self, by: &str, name: &str) -> Result<(), IamError> {
        self.change(by, "apikey.delete", name, |d| d.delete_apikey(name).map(|_| ())).await?;
        Ok(())
    }
}
