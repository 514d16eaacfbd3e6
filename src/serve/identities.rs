//! Opening the identities a server (or `cipherstore iam`) works on: where they are kept
//! (`DATA/iam/` on one node, the metadata service in a cluster), the seal key the HSM
//! wraps when one is configured, and the users file imported at start.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::config::{ServeConfig, StoreSettings};
use cluster::kv::Kv;
use iam::{FileKeep, Identities, Keep, KvKeep, Seal};
use keys::{KeyRef, KeySource, KeysError};

/// The name under which the identity seal key is bound to a root key in the key state, as
/// a bucket key is (no S3 bucket name starts with a dot).
pub(crate) const SEAL_BINDING: &str = ".iam";

/// Where the identities of this configuration are kept.
pub(crate) fn keep(config: &ServeConfig, kv: Option<Arc<dyn Kv>>) -> anyhow::Result<Arc<dyn Keep>> {
    Ok(match (&config.store, kv) {
        (StoreSettings::Cluster { .. }, Some(kv)) => Arc::new(KvKeep::new(kv)),
        (StoreSettings::Cluster { .. }, None) => {
            anyhow::bail!("the cluster's identities need its metadata service")
        }
        (StoreSettings::Fs, _) => Arc::new(FileKeep::open(&config.data_dir.join("iam"))?),
    })
}

/// The root key that wraps the identity seal key unless another is already bound: generated
/// in the HSM on first use, apart from the SSE default key (disabling or deleting that one
/// must not lock every user out).
pub(crate) const SEAL_ROOT: &str = "cipherstore-iam";

/// The seal for secret keys: a key wrapped by the root key bound to [`SEAL_BINDING`], or
/// else by [`SEAL_ROOT`] (created on first use).
pub(crate) fn seal(keys: Option<&dyn KeySource>, backend: engine::Backend) -> anyhow::Result<Option<Seal>> {
    let Some(m) = keys else { return Ok(None) };
    let root = match m.bucket_root(SEAL_BINDING) {
        Ok(root) => root,
        Err(KeysError::BucketNotFound(_)) => {
            let named = KeyRef::parse(SEAL_ROOT);
            match m.crn_of(&named) {
                Ok(crn) => crn,
                // Another gateway may create it at the same moment: then use theirs.
                Err(_) => match m.create_root(SEAL_ROOT) {
                    Ok(crn) => crn,
                    Err(e) => {
                        m.crn_of(&named).map_err(|_| e).context("cannot create the identity root key")?
                    }
                },
            }
        }
        Err(e) => return Err(e).context("cannot find the identity seal key"),
    };
    let key = m.bucket_key_for_write(SEAL_BINDING, &KeyRef::parse(&root), false).with_context(|| {
        format!("cannot unwrap the identity seal key with root key {root} (is it disabled?)")
    })?;
    Ok(Some(Seal::new(&key, &root, backend)?))
}

/// Opens the identities, imports `users_file` if given, and says what was found.
pub(crate) async fn open(
    keep: Arc<dyn Keep>,
    seal: Option<Seal>,
    users_file: Option<&Path>,
) -> anyhow::Result<(Arc<Identities>, String)> {
    let (ids, errors) = Identities::open(keep, seal).await.context("cannot read the identities")?;
    for e in &errors {
        tracing::warn!(error = %e, "a credential is refused: its secret does not open");
    }
    let mut imported = 0;
    if let Some(path) = users_file {
        let users = iam::users::load(path)?;
        let now = base::clock::now_unix();
        let seal = ids.seal();
        let mut import = |d: &mut iam::Directory| {
            imported = iam::users::import(d, &users, seal, now)?;
            Ok(())
        };
        ids.change(&mut import).await.with_context(|| format!("cannot import {}", path.display()))?;
    }
    let (users, keys) = ids.snapshot().counts();
    let mut line = format!("{users} users, {keys} access keys, in {}", ids.describe());
    if users_file.is_some() {
        line.push_str(&format!("; {imported} imported from the users file"));
    }
    line.push_str(match ids.seal() {
        Some(_) => "; secrets sealed under the HSM",
        None => "; secrets kept in the clear (no HSM)",
    });
    if !errors.is_empty() {
        line.push_str(&format!("; {} keys refused (secrets that do not open here)", errors.len()));
    }
    Ok((ids, line))
}
