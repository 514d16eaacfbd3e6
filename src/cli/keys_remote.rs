//! `cipherstore keys --service URL …`: the same commands against a key service's API
//! (Key Protect's v2 routes), from a machine that holds no HSM, with an API key
//! (`cipherstore iam apikey create` on the service) instead of a PIN. What each command
//! may do is the API key's role.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;
use serde_json::{Value, json};

use super::keyfile::read_key;
use super::keys::KeysCommand;
use keys::{KeyRef, KeySource, RemoteConfig, RemoteKeys};

/// Where the service is, and the credentials to reach it.
pub(super) struct Service {
    /// `https://HOST:PORT`.
    pub url: String,
    /// File holding the API key.
    pub apikey_file: PathBuf,
    /// PEM file the service's certificate chains to.
    pub ca: PathBuf,
    /// The instance (`Bluemix-Instance`).
    pub instance: String,
}

fn state_name(code: &Value) -> &'static str {
    match code.as_u64() {
        Some(0) => "pre-active",
        Some(1) => "active",
        Some(2) => "suspended",
        Some(3) => "deactivated",
        Some(5) => "destroyed",
        _ => "unknown",
    }
}

fn print_key(k: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(k)?);
        return Ok(());
    }
    let s = |f: &str| k[f].as_str().unwrap_or("-").to_owned();
    println!("{}", s("crn"));
    println!("  name      {}", s("name"));
    println!("  state     {}", state_name(&k["state"]));
    println!("  origin    {}", if k["imported"].as_bool() == Some(true) { "imported" } else { "generated" });
    println!("  version   {}", k["keyVersion"]["id"].as_str().unwrap_or("-"));
    println!("  wrapping  {}", s("algorithmMode"));
    println!("  created   {} by {}", s("creationDate"), s("createdBy"));
    if k["deleted"].as_bool() == Some(true) {
        println!("  deleted   {} (restore until {})", s("deletionDate"), s("restoreExpirationDate"));
    }
    if let Some(a) = k["aliases"].as_array().filter(|a| !a.is_empty()) {
        let names: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
        println!("  aliases   {}", names.join(", "));
    }
    Ok(())
}

fn first(v: &Value) -> &Value {
    &v["resources"][0]
}

/// Runs `command` against the service.
pub(super) fn run(service: &Service, command: &KeysCommand, json: bool) -> anyhow::Result<()> {
    let apikey = zeroize::Zeroizing::new(
        std::fs::read_to_string(&service.apikey_file)
            .with_context(|| format!("cannot read the API key file {}", service.apikey_file.display()))?,
    );
    let runtime = super::gateway::runtime()?;
    let _entered = runtime.enter();
    let remote = RemoteKeys::connect(RemoteConfig {
        url: service.url.clone(),
        apikey: zeroize::Zeroizing::new(apikey.trim().to_owned()),
        instance: service.instance.clone(),
        ca: service.ca.clone(),
        cache_ttl: std::time::Duration::ZERO,
    })?;
    let key_path = |k: &KeyRef| format!("/api/v2/keys/{}", RemoteKeys::segment(&k.to_string()));
    let call = |method: &str, path: &str, body: Option<Value>, subject: &str| {
        remote.request(method, path, body, subject)
    };
    let shown = |k: &KeyRef| -> anyhow::Result<Value> {
        Ok(first(&call("GET", &key_path(k), None, &k.to_string())?).clone())
    };
    let b64 = |m: &engine::SecretKey| base64::engine::general_purpose::STANDARD.encode(m.expose());
    match command {
        KeysCommand::Create { name } | KeysCommand::Import { name, .. } => {
            let mut resource =
                json!({"type": "application/vnd.ibm.kms.key+json", "name": name, "extractable": false});
            if let KeysCommand::Import { material_file, .. } = command {
                resource["payload"] = json!(b64(&read_key(material_file)?));
            }
            let v = call("POST", "/api/v2/keys", Some(json!({"resources": [resource]})), name)?;
            print_key(first(&v), json)
        }
        KeysCommand::List => {
            let v = call("GET", "/api/v2/keys?state=0,1,2,3,5&limit=5000", None, "keys")?;
            let keys = v["resources"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                for k in &keys {
                    let name = k["name"].as_str().unwrap_or("-");
                    println!(
                        "{:<10} {:<24} {}",
                        state_name(&k["state"]),
                        name,
                        k["crn"].as_str().unwrap_or("-")
                    );
                }
            }
            Ok(())
        }
        KeysCommand::Show { key } => print_key(&shown(key)?, json),
        KeysCommand::Rotate { key, material_file } => {
            let body = match material_file {
                Some(f) => json!({"payload": b64(&read_key(f)?)}),
                None => json!({}),
            };
            call("POST", &format!("{}/actions/rotate", key_path(key)), Some(body), &key.to_string())?;
            print_key(&shown(key)?, json)
        }
        KeysCommand::Disable { key } | KeysCommand::Enable { key } => {
            let action = if matches!(command, KeysCommand::Disable { .. }) { "disable" } else { "enable" };
            call("POST", &format!("{}/actions/{action}", key_path(key)), None, &key.to_string())?;
            print_key(&shown(key)?, json)
        }
        KeysCommand::Delete { key, force } => {
            call("DELETE", &format!("{}?force={force}", key_path(key)), None, &key.to_string())?;
            print_key(&shown(key)?, json)
        }
        KeysCommand::Restore { key, material_file } => {
            anyhow::ensure!(
                material_file.is_none(),
                "a key service restores its deleted keys without material: drop --material-file"
            );
            let v = call("POST", &format!("{}/restore", key_path(key)), None, &key.to_string())?;
            print_key(first(&v), json)
        }
        KeysCommand::Instance => {
            println!("{}", service.instance);
            Ok(())
        }
        KeysCommand::Audit => {
            let mut offset = 0;
            loop {
                let path = format!("/api/v2/events?limit=5000&offset={offset}");
                let v = call("GET", &path, None, "events")?;
                let page = v["resources"].as_array().cloned().unwrap_or_default();
                for e in &page {
                    println!("{}", serde_json::to_string(e)?);
                }
                if page.len() < 5000 {
                    return Ok(());
                }
                offset += page.len();
            }
        }
        KeysCommand::BindBucket { bucket, key } => {
            remote.create_bucket_key(bucket, key)?;
            println!("bucket {bucket} bound to {}", remote.crn_of(key)?);
            Ok(())
        }
        KeysCommand::CheckBucket { bucket } => {
            let root = remote.bucket_root(bucket).with_context(|| format!("bucket {bucket}"))?;
            remote.bucket_key(bucket, &KeyRef::parse(&root)).with_context(|| format!("bucket {bucket}"))?;
            if json {
                println!("{}", json!({"bucket": bucket, "root": root}));
            } else {
                println!("bucket {bucket}: its key comes from the key service under {root}");
            }
            Ok(())
        }
    }
}
