//! `cipherstore iam …`: users, their HMAC credentials and their roles on buckets, changed
//! live in the identities a server keeps (`DATA/iam/` on one node, the metadata service of
//! a cluster): every running gateway applies a change within seconds, no restart. Each
//! change is appended to the IAM audit trail (`DATA/iam-audit.jsonl`), never a secret.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use zeroize::Zeroizing;

use crate::serve::config::{Flags, ServeConfig};
use crate::serve::identities as opening;
use iam::{Admin, AuditTrail, KeyView, NewKey, NewUser, Role, UserView};

const IAM_EXAMPLES: &str = "\
Examples:
  cipherstore iam user create alice --email alice@example.com
  cipherstore iam hmac create alice                 # prints the new secret once
  cipherstore iam grant alice --bucket photos --role reader
  cipherstore iam hmac disable AKIA...              # refused by every gateway within seconds
  cipherstore iam --config gateway.toml user list   # a cluster's identities, in etcd
  cipherstore iam apikey create backup-svc --role reader   # for the key service (Key Protect API)

Roles (docs/ACCESS.md): reader lists and reads objects and bucket settings; writer also
writes and deletes objects; manager also changes bucket settings, deletes the bucket and
may bypass GOVERNANCE retention. A bucket's owner has full control.

API keys are for the key service (serve --kms-listen; docs/KEYS.md): exchanged at
POST /identity/token for a one-hour bearer token. Their role there: reader lists and reads
keys and wraps, unwraps and rewraps with them; writer also creates and rotates keys and
sets aliases; manager also disables, enables, deletes, restores and purges keys.";

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
    /// API keys for the key service (IBM Key Protect's API, `serve --kms-listen`).
    #[command(subcommand)]
    Apikey(ApikeyCommand),
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

#[derive(Subcommand, Debug)]
enum ApikeyCommand {
    /// Create an API key; prints it once (only its digest is kept).
    Create {
        /// A unique name: 1 to 64 letters, digits, '-', '_', '.' or '@'.
        name: String,
        /// Its role on the key service: reader, writer or manager.
        #[arg(long)]
        role: Role,
        /// Act as this user (else the key is its own identity, `iam-ServiceId-…`; dual
        /// authorization counts identities).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// List API keys (never their secrets).
    List,
    /// Refuse an API key, and the tokens it was exchanged for, until enabled again.
    Disable {
        /// Name or id.
        name: String,
    },
    /// Accept a disabled API key again.
    Enable {
        /// Name or id.
        name: String,
    },
    /// Delete an API key (its tokens are refused at once).
    Delete {
        /// Name or id.
        name: String,
    },
}

fn print_apikey_line(k: &iam::ApiKeyView) {
    let state = if k.enabled { "enabled" } else { "disabled" };
    println!("{:<24} {:<8} {:<9} {:<39} {}", k.name, k.role.as_str(), state, k.id, k.identity);
}

/// The operations on the identities a server keeps, with the runtime their clients use.
struct Opened {
    admin: Admin,
    runtime: tokio::runtime::Runtime,
}

fn open(args: &IamArgs) -> anyhow::Result<Opened> {
    let flags = Flags { config: args.config.clone(), data_dir: args.data_dir.clone(), ..Flags::default() };
    let config = ServeConfig::resolve(flags, engine::Backend::default())?;
    let runtime = super::gateway::runtime()?;
    let ids = runtime.block_on(async {
        let kv = crate::serve::connect_kv(&config).await?.map(|m| m.control);
        let (_, keys) = crate::serve::open_key_source(&config, kv.clone()).await?;
        let seal = opening::seal(keys.as_deref(), config.backend)?;
        let (ids, _) = opening::open(opening::keep(&config, kv)?, seal, None).await?;
        anyhow::Ok(ids)
    })?;
    let audit = AuditTrail::new(config.data_dir.join("iam-audit.jsonl"));
    Ok(Opened { admin: Admin::new(ids, audit), runtime })
}

/// Who runs the command, for the audit trail: the login (the one behind sudo) at the host.
pub(super) fn initiator() -> String {
    let who =
        std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{who}@{}", host.trim())
}

fn print_key_line(k: &KeyView) {
    let state = if k.enabled { "enabled" } else { "disabled" };
    let expires = k.expires.as_deref().unwrap_or("never");
    println!("{:<24} {:<9} user {:<20} expires {expires}", k.access_key_id, state, k.user);
}

pub(super) fn run(args: &IamArgs) -> anyhow::Result<()> {
    let o = open(args)?;
    let (admin, json, by) = (&o.admin, args.json, initiator());
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
            show_user(&o.runtime.block_on(admin.create_user(&by, new))?, json)
        }
        IamCommand::User(UserCommand::List) => {
            let users = o.runtime.block_on(admin.users())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                for u in &users {
                    println!(
                        "{:<24} {:<64} {} keys, {} roles",
                        u.name,
                        u.canonical_id,
                        u.access_keys.len(),
                        u.roles.len()
                    );
                }
            }
            Ok(())
        }
        IamCommand::User(UserCommand::Show { name }) => {
            show_user(&o.runtime.block_on(admin.user(name))?, json)
        }
        IamCommand::User(UserCommand::Delete { name }) => {
            let removed = o.runtime.block_on(admin.delete_user(&by, name))?;
            println!("user {name} deleted, with {removed} access keys");
            Ok(())
        }
        IamCommand::Hmac(HmacCommand::Create { name, access_key, secret_file, expires }) => {
            let expires = expires.as_deref().map(iam::parse_expiry).transpose()?;
            let given = match (access_key, secret_file) {
                (Some(ak), Some(f)) => {
                    let text = Zeroizing::new(
                        std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
                    );
                    Some((ak.clone(), Zeroizing::new(text.trim().to_owned())))
                }
                _ => None,
            };
            let issued =
                o.runtime.block_on(admin.create_key(&by, NewKey { user: name.clone(), given, expires }))?;
            if json {
                println!("{}", issued.to_json().as_str());
            } else {
                println!("access_key_id:     {}", issued.key.access_key_id);
                println!("secret_access_key: {}", issued.secret.as_str());
                println!("(the secret is shown this once; store it now)");
            }
            Ok(())
        }
        IamCommand::Hmac(HmacCommand::List { name }) => {
            let keys = o.runtime.block_on(admin.keys(name.as_deref()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                keys.iter().for_each(print_key_line);
            }
            Ok(())
        }
        IamCommand::Hmac(HmacCommand::Disable { access_key }) => {
            print_key_line(&o.runtime.block_on(admin.set_enabled(&by, access_key, false))?);
            Ok(())
        }
        IamCommand::Hmac(HmacCommand::Enable { access_key }) => {
            print_key_line(&o.runtime.block_on(admin.set_enabled(&by, access_key, true))?);
            Ok(())
        }
        IamCommand::Hmac(HmacCommand::Delete { access_key }) => {
            o.runtime.block_on(admin.delete_key(&by, access_key))?;
            println!("access key {access_key} deleted");
            Ok(())
        }
        IamCommand::Apikey(ApikeyCommand::Create { name, role, user }) => {
            let new = iam::NewApiKey { name: name.clone(), role: *role, user: user.clone() };
            let issued = o.runtime.block_on(admin.create_apikey(&by, new))?;
            if json {
                println!("{}", issued.to_json().as_str());
            } else {
                println!("name:     {}", issued.key.name);
                println!("role:     {}", issued.key.role);
                println!("identity: {}", issued.key.identity);
                println!("apikey:   {}", issued.apikey.as_str());
                println!("(the API key is shown this once; store it now)");
            }
            Ok(())
        }
        IamCommand::Apikey(ApikeyCommand::List) => {
            let keys = o.runtime.block_on(admin.apikeys())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                keys.iter().for_each(print_apikey_line);
            }
            Ok(())
        }
        IamCommand::Apikey(ApikeyCommand::Disable { name }) => {
            print_apikey_line(&o.runtime.block_on(admin.set_apikey_enabled(&by, name, false))?);
            Ok(())
        }
        IamCommand::Apikey(ApikeyCommand::Enable { name }) => {
            print_apikey_line(&o.runtime.block_on(admin.set_apikey_enabled(&by, name, true))?);
            Ok(())
        }
        IamCommand::Apikey(ApikeyCommand::Delete { name }) => {
            o.runtime.block_on(admin.delete_apikey(&by, name))?;
            println!("API key {name} deleted");
            Ok(())
        }
        IamCommand::Grant { name, bucket, role } => {
            o.runtime.block_on(admin.grant(&by, name, bucket, *role))?;
            println!("{name} is {role} on bucket {bucket}");
            Ok(())
        }
        IamCommand::Revoke { name, bucket } => {
            let was = o.runtime.block_on(admin.revoke(&by, name, bucket))?;
            println!("{name} is no longer {} on bucket {bucket}", was.as_str());
            Ok(())
        }
    }
}

fn show_user(u: &UserView, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(u)?);
        return Ok(());
    }
    println!("user:           {}", u.name);
    println!("canonical id:   {}", u.canonical_id);
    println!("display name:   {}", u.display_name);
    if let Some(e) = &u.email {
        println!("email:          {e}");
    }
    println!("create buckets: {}", if u.create_buckets { "yes" } else { "no" });
    println!("created:        {}", u.created);
    for (bucket, role) in &u.roles {
        println!("role:           {role} on {bucket}");
    }
    for k in &u.access_keys {
        print!("access key:     ");
        print_key_line(k);
    }
    Ok(())
}
