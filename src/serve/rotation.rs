//! Rotation by policy (Key Protect's rotation policy, per key or for the instance): every
//! check, the keys whose current version is older than their policy's interval are
//! rotated in the HSM, their bucket keys rewrapped (`KeyManager::rotate`; nothing is
//! re-encrypted), each audited with `rotation-policy` as initiator. In a cluster one
//! gateway at a time checks, the holder of the `key-rotation` lease. A month is 30 days;
//! `CIPHERSTORE_KMS_MONTH_SECONDS` shortens it, for tests only.

use std::sync::Arc;
use std::time::Duration;

use cluster::kv::Kv;
use cluster::lease::Lease;
use keys::{KeyManager, KeyRef};

/// A month, as rotation policies count them.
pub(crate) const MONTH: Duration = Duration::from_secs(30 * 86_400);

/// How often the policies are checked: every minute, or four times a (shortened) month.
fn check_every(month: Duration) -> Duration {
    (month / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Rotates due keys until `stop` turns true.
pub(crate) async fn run(
    keys: Arc<KeyManager>,
    kv: Option<Arc<dyn Kv>>,
    month: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = check_every(month);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let owner = format!("{}:{}", host.trim(), std::process::id());
    let mut lease =
        kv.map(|kv| Lease::new(kv, "key-rotation", &owner, (every * 3).max(Duration::from_secs(15))));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        if let Some(l) = lease.as_mut() {
            match l.hold().await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the key rotation lease; trying again");
                    continue;
                }
            }
        }
        let keys = keys.clone();
        let month_secs = month.as_secs().max(1);
        let pass = tokio::task::spawn_blocking(move || {
            let due = keys.due_rotations(base::clock::now_unix(), month_secs)?;
            let mut rotated = 0;
            for id in due {
                let done = keys::audit::as_initiator("rotation-policy", || keys.rotate(&KeyRef::parse(&id), None));
                match done {
                    Ok(v) => {
                        rotated += 1;
                        tracing::info!(key = %v.crn, version = v.version, "rotated by its rotation policy");
                    }
                    Err(e) => tracing::warn!(key = %id, error = %e, "rotation by policy failed; trying again next check"),
                }
            }
            Ok::<_, keys::KeysError>(rotated)
        })
        .await;
        match pass {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the key state for rotation policies"),
            Err(e) => tracing::warn!(error = %e, "the rotation check failed"),
        }
    }
    if let Some(l) = lease.as_mut()
        && let Err(e) = l.release().await
    {
        tracing::warn!(error = %e, "cannot give the key rotation lease up; it lapses by itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_every_minute_or_four_times_a_short_month() {
        assert_eq!(check_every(MONTH), Duration::from_secs(60));
        assert_eq!(check_every(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(check_every(Duration::from_secs(1)), Duration::from_secs(1));
    }
}
