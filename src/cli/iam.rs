//! `cipherstore iam …`: users, their HMAC credentials and their roles on buckets, changed
//! live in the identities a server keeps (`DATA/iam/` on one node, the metadata service of
//! a cluster): every running gateway applies a change within seconds, no restart. Each
//! change is appended to the IAM audit trail (`DATA/iam-audit.jsonl`), never a secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use zeroize::Zeroizing;

use crate::serve::config::{Flags, ServeConfig};
use crate::serve::identities as opening;
use iam::{Directory, Identities, NewCredential, NewUser, Role, StoredSecret};

const IAM_EXAMPLES: &str = "\
Examples:
  cipherstore iam user create alice --email alice@example.com
  cipherstore iam hmac create alice                 # prints the new secret once
  cipherstore iam grant alice --bucket photos --role reader
  cipherstore iam hmac disable AKIA...              # refused by every gateway within seconds
  cipherstore iam --config gateway.toml user list   # a cluster's identities, in etcd

Roles (docs/ACCESS.md): reader lists and reads objects and bucket settings; writer also
writes and deletes objects; manager also changes bucket settings, deletes the bucket and
may bypass GOVERNANCE retention. A bucket's owner has full control.";

/// Which identities to change: those of `serve` with the same configuration.
#[derive(clap::Args, Debug)]
#[command(after_help = IAM_EXAMPLES)]
pub(super) struct IamArgs {
    /// The gateways' configuration file (`serve --config`): with `[store] kind =
    /// "cluster"`, the identities every gateway shares in etcd.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// The server's data directory (identities in DIR/iam) [env: CIPHERSTORE_DATA_DIR;
    /// default: data].
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: IamCommand,
}

#[derive(Subcommand, Debug)]
enum IamCommand {
    /// Users (or service ids): who owns buckets and holds roles.
    #[command(subcommand)]
    User(UserCommand),
    /// HMAC credentials (access key id and secret key) of a user.
    #[command(subcommand)]
    Hmac(HmacCommand),
    /// Give a user a role on a bucket (replacing the role held there).
    Grant {
        /// The user.
        name: String,
        /// The bucket.
        #[arg(long)]
        bucket: String,
        /// reader, writer or manager.
        #[arg(long)]
        role: Role,
    },
    /// Take a user's role on a bucket away.
    Revoke {
        /// The user.
        name: String,
        /// The bucket.
        #[arg(long)]
        bucket: String,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user.
    Create {
        /// A unique name: 1 to 64 of letters, digits and _.@+=,-
        name: String,
        /// The id S3 names as owner [default: 64 random hex digits].
        #[arg(long, value_name = "ID")]
        canonical_id: Option<String>,
        /// Shown beside the canonical id [default: the name].
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        /// Contact address.
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        /// The user may not create buckets (only use buckets granted to them).
        #[arg(long)]
        no_create_buckets: bool,
    },
    /// List users.
    List,
    /// Show a user, their access keys and roles.
    Show {
        /// The user.
        name: String,
    },
    /// Delete a user and every access key of theirs (their buckets stay, owned by their
    /// canonical id).
    Delete {
        /// The user.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum HmacCommand {
    /// Create an access key for a user; prints the secret key once.
    Create {
        /// The user.
        name: String,
        /// Use this access key id [default: 20 random characters]; needs --secret-file.
        #[arg(long, value_name = "ID", requires = "secret_file")]
        access_key: Option<String>,
        /// Read the secret key from this file (8 to 128 printable characters) instead of
        /// generating one.
        #[arg(long, value_name = "FILE", requires = "access_key")]
        secret_file: Option<PathBuf>,
        /// Refuse the key from this instant on (RFC 3339, e.g. 2027-01-31T00:00:00Z).
        #[arg(long, value_name = "RFC3339")]
        expires: Option<String>,
    },
    /// List access keys (of one user, or all).
    List {
        /// Only this user's.
        name: Option<String>,
    },
    /// Refuse an access key until enabled again.
    Disable {
        /// The access key id.
        access_key: String,
    },
    /// Accept a disabled access key again.
    Enable {
        /// The access key id.
        access_key: String,
    },
    /// Delete an access key.
    Delete {
        /// The access key id.
        access_key: String,
    },
}

/// The identities and where their audit trail goes, with the runtime their clients use.
struct Opened {
    ids: std::sync::Arc<Identities>,
    audit: PathBuf,
    runtime: tokio::runtime::Runtime,
}

fn open(args: &IamArgs) -> anyhow::Result<Opened> {
    let flags = Flags { config: args.config.clone(), data_dir: args.data_dir.clone(), ..Flags::default() };
    let config = ServeConfig::resolve(flags, engine::Backend::default())?;
    let runtime = super::gateway::runtime()?;
    let ids = runtime.block_on(async {
        let kv = crate::serve::connect_kv(&config).await?;
        let keys = crate::serve::open_keys(&config, kv.clone()).await?;
        let seal = opening::seal(keys.as_ref(), config.backend)?;
        let (ids, _) = opening::open(opening::keep(&config, kv)?, seal, None).await?;
        anyhow::Ok(ids)
    })?;
    Ok(Opened { ids, audit: config.data_dir.join("iam-audit.jsonl"), runtime })
}

impl Opened {
    /// Commits `change`, audits it as `action` on `target`, and returns the directory.
    fn change(
        &self,
        action: &str,
        target: &str,
        mut change: impl FnMut(&mut Directory) -> Result<(), iam::IamError> + Send,
    ) -> anyhow::Result<Directory> {
        let result = self.runtime.block_on(self.ids.change(&mut change));
        let outcome = match &result {
            Ok(_) => "success".to_owned(),
            Err(e) => format!("failure: {e}"),
        };
        audit(&self.audit, action, target, &outcome);
        Ok(result?)
    }

    fn directory(&self) -> anyhow::Result<Directory> {
        // A change that commits nothing reads the committed directory.
        Ok(self.runtime.block_on(self.ids.change(&mut |_| Ok(())))?)
    }
}

/// One line of the IAM audit trail: when, who ran the command, what, on what, outcome.
fn audit(path: &Path, action: &str, target: &str, outcome: &str) {
    let who =
        std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let line = serde_json::json!({
        "time": base::clock::rfc3339(base::clock::now_unix()),
        "initiator": format!("{who}@{}", host.trim()),
        "action": action,
        "target": target,
        "outcome": outcome,
    });
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("warning: cannot append to the IAM audit trail {}: {e}", path.display());
    }
}

/// 20 characters from A-Z and 2-7 (an AWS-like access key id), and 40 from a base64-like
/// alphabet (the secret key).
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

fn parse_expiry(text: &str) -> anyhow::Result<u64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).with_context(
        || format!("--expires {text:?} is not an RFC 3339 instant (e.g. 2027-01-31T00:00:00Z)"),
    )?;
    let secs = u64::try_from(t.unix_timestamp()).context("--expires is before 1970")?;
    anyhow::ensure!(secs > base::clock::now_unix(), "--expires {text} is in the past");
    Ok(secs)
}

fn user_json(d: &Directory, name: &str) -> anyhow::Result<serde_json::Value> {
    let u = d.user(name)?;
    let keys: Vec<serde_json::Value> = d.credentials_of(name).map(key_json).collect();
    Ok(serde_json::json!({
        "name": u.name,
        "canonical_id": u.canonical_id,
        "display_name": u.display_name,
        "email": u.email,
        "create_buckets": u.create_buckets,
        "created": base::clock::rfc3339(u.created),
        "roles": u.grants,
        "access_keys": keys,
    }))
}

fn key_json(c: &iam::Credential) -> serde_json::Value {
    serde_json::json!({
        "access_key_id": c.access_key_id,
        "user": c.user,
        "enabled": c.enabled,
        "created": base::clock::rfc3339(c.created),
        "expires": c.expires.map(base::clock::rfc3339),
        "sealed": matches!(c.secret, StoredSecret::Sealed(_)),
    })
}

fn print_key_line(c: &iam::Credential) {
    let state = if c.enabled { "enabled" } else { "disabled" };
    let expires = c.expires.map_or_else(|| "never".to_owned(), base::clock::rfc3339);
    println!("{:<24} {:<9} user {:<20} expires {expires}", c.access_key_id, state, c.user);
}

pub(super) fn run(args: &IamArgs) -> anyhow::Result<()> {
    let o = open(args)?;
    let json = args.json;
    let now = base::clock::now_unix();
    match &args.command {
        IamCommand::User(UserCommand::Create {
            name,
            canonical_id,
            display_name,
            email,
            no_create_buckets,
        }) => {
            let new = NewUser {
                name: name.clone(),
                canonical_id: canonical_id.clone(),
                display_name: display_name.clone(),
                email: email.clone(),
                create_buckets: !no_create_buckets,
            };
            let d = o.change("user.create", name, |d| d.create_user(new.clone(), now).map(|_| ()))?;
            show_user(&d, name, json)
        }
        IamCommand::User(UserCommand::List) => {
            let d = o.directory()?;
            if json {
                let all: Vec<_> = d.users.keys().map(|n| user_json(&d, n)).collect::<Result<_, _>>()?;
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for u in d.users.values() {
                    let keys = d.credentials_of(&u.name).count();
                    println!("{:<24} {:<64} {keys} keys, {} roles", u.name, u.canonical_id, u.grants.len());
                }
            }
            Ok(())
        }
        IamCommand::User(UserCommand::Show { name }) => show_user(&o.directory()?, name, json),
        IamCommand::User(UserCommand::Delete { name }) => {
            let mut removed = Vec::new();
            o.change("user.delete", name, |d| {
                removed = d.delete_user(name)?;
                Ok(())
            })?;
            println!("user {name} deleted, with {} access keys", removed.len());
            Ok(())
        }
        IamCommand::Hmac(HmacCommand::Create { name, access_key, secret_file, expires }) => {
            let expires = expires.as_deref().map(parse_expiry).transpose()?;
            let (ak, sk) = match (access_key, secret_file) {
                (Some(ak), Some(f)) => {
                    let text = Zeroizing::new(
                        std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
                    );
                    (ak.clone(), Zeroizing::new(text.trim().to_owned()))
                }
                _ => random_pair(),
            };
            iam::check_secret(&sk)?;
            let secret = match o.ids.seal() {
                Some(seal) => seal.seal(&ak, &sk)?,
                None => {
                    // Never a secret in the clear beside sealed ones: the HSM is missing here.
                    let sealed = o
                        .directory()?
                        .credentials
                        .values()
                        .any(|c| matches!(c.secret, StoredSecret::Sealed(_)));
                    anyhow::ensure!(
                        !sealed,
                        "the identities' secrets are sealed under an HSM, and none is configured here: \
                         set the HSM the server uses (CIPHERSTORE_PKCS11_MODULE, CIPHERSTORE_HSM_TOKEN, \
                         CIPHERSTORE_HSM_PIN_FILE, CIPHERSTORE_KEYS_DIR) or pass its --config"
                    );
                    StoredSecret::Plain(sk.to_string())
                }
            };
            let new = NewCredential { user: name.clone(), access_key_id: ak.clone(), secret, expires };
            o.change("hmac.create", &format!("{name}/{ak}"), |d| {
                d.add_credential(new.clone(), now).map(|_| ())
            })?;
            if json {
                let out = Zeroizing::new(
                    serde_json::json!({"user": name, "access_key_id": ak, "secret_access_key": sk.as_str(),
                        "expires": expires.map(base::clock::rfc3339)})
                    .to_string(),
                );
                println!("{}", out.as_str());
            } else {
                println!("access_key_id:     {ak}");
                println!("secret_access_key: {}", sk.as_str());
                println!("(the secret is shown this once; store it now)");
            }
            Ok(())
        }
        IamCommand::Hmac(HmacCommand::List { name }) => {
            let d = o.directory()?;
            if let Some(n) = name {
                d.user(n)?;
            }
            let keys: Vec<&iam::Credential> =
                d.credentials.values().filter(|c| name.as_ref().is_none_or(|n| &c.user == n)).collect();
            if json {
                let all: Vec<_> = keys.iter().map(|c| key_json(c)).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                keys.iter().for_each(|c| print_key_line(c));
            }
            Ok(())
        }
        IamCommand::Hmac(HmacCommand::Disable { access_key }) => set_enabled(&o, access_key, false),
        IamCommand::Hmac(HmacCommand::Enable { access_key }) => set_enabled(&o, access_key, true),
        IamCommand::Hmac(HmacCommand::Delete { access_key }) => {
            o.change("hmac.delete", access_key, |d| d.delete_credential(access_key).map(|_| ()))?;
            println!("access key {access_key} deleted");
            Ok(())
        }
        IamCommand::Grant { name, bucket, role } => {
            o.change("role.grant", &format!("{name} {bucket} {role}"), |d| d.grant(name, bucket, *role))?;
            println!("{name} is {role} on bucket {bucket}");
            Ok(())
        }
        IamCommand::Revoke { name, bucket } => {
            let mut was = None;
            o.change("role.revoke", &format!("{name} {bucket}"), |d| {
                was = Some(d.revoke(name, bucket)?);
                Ok(())
            })?;
            println!("{name} is no longer {} on bucket {bucket}", was.map_or("", Role::as_str));
            Ok(())
        }
    }
}

fn set_enabled(o: &Opened, access_key: &str, enabled: bool) -> anyhow::Result<()> {
    let action = if enabled { "hmac.enable" } else { "hmac.disable" };
    let d = o.change(action, access_key, |d| d.set_enabled(access_key, enabled))?;
    if let Some(c) = d.credentials.get(access_key) {
        print_key_line(c);
    }
    Ok(())
}

fn show_user(d: &Directory, name: &str, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&user_json(d, name)?)?);
        return Ok(());
    }
    let u = d.user(name)?;
    println!("user:           {}", u.name);
    println!("canonical id:   {}", u.canonical_id);
    println!("display name:   {}", u.display_name);
    if let Some(e) = &u.email {
        println!("email:          {e}");
    }
    println!("create buckets: {}", if u.create_buckets { "yes" } else { "no" });
    println!("created:        {}", base::clock::rfc3339(u.created));
    for (bucket, role) in &u.grants {
        println!("role:           {role} on {bucket}");
    }
    for c in d.credentials_of(name) {
        print!("access key:     ");
        print_key_line(c);
    }
    Ok(())
}
