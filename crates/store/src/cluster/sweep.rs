//! The sweep: blobs that no record names (a gateway killed between write and commit) and
//! retired blobs past their grace are deleted (docs/SCALE-OUT.md §4).

use super::*;

/// What a sweep found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Blobs looked at.
    pub checked: usize,
    /// Blobs no record named, deleted: retired ones and orphans.
    pub removed: usize,
    /// Of these, blobs retired by overwrites and deletes whose grace was over.
    pub retired: usize,
    /// Of these, blobs no entry ever named (a gateway killed between bytes and commit).
    pub orphans: usize,
    /// Their bytes.
    pub removed_bytes: u64,
}

impl ClusterStore {
    /// Deletes the blobs under `d/` and `p/` that no record names and that are older than
    /// `grace` (longer than any write takes): what gateways killed mid-write left. Returns
    /// how many it deleted.
    pub async fn sweep(&self, grace: Duration) -> Result<usize, StoreError> {
        Ok(self.sweep_paced(grace, Duration::ZERO, false).await?.removed)
    }

    /// [`ClusterStore::sweep`], waiting `pause` after each blob it checks (a background
    /// sweep on a busy cluster), with what it found; `dry_run` deletes nothing (the report
    /// counts what it would delete).
    pub async fn sweep_paced(
        &self,
        grace: Duration,
        pause: Duration,
        dry_run: bool,
    ) -> Result<SweepReport, StoreError> {
        let inner = &self.inner;
        let cutoff = base::clock::now_unix().saturating_sub(grace.as_secs());
        let mut report = SweepReport::default();
        // Retired blobs whose grace is over, oldest first: the blob, then its entries.
        let until = retired_key(cutoff + 1, "");
        for e in inner.all(RETIRED, &until).await? {
            let Some(name) =
                std::str::from_utf8(&e.key[RETIRED.len()..]).ok().and_then(|k| k.split_once('/'))
            else {
                continue;
            };
            let name = name.1.to_owned();
            report.checked += 1;
            report.retired += 1;
            report.removed += 1;
            if !dry_run {
                inner.blobs.delete(&name).await.map_err(blob_error)?;
                inner.txn(vec![], vec![Op::Delete(ref_key(&name)), Op::Delete(e.key.clone())]).await?;
            }
            report.removed_bytes +=
                std::str::from_utf8(&e.value).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        for dir in ["d", "p"] {
            for blob in inner.blobs.list(dir).await.map_err(blob_error)? {
                report.checked += 1;
                if blob.modified <= cutoff && inner.get(&ref_key(&blob.name)).await?.is_none() {
                    report.orphans += 1;
                    if !dry_run {
                        inner.blobs.delete(&blob.name).await.map_err(blob_error)?;
                    }
                    report.removed += 1;
                    report.removed_bytes += blob.len;
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }
        Ok(report)
    }
}
