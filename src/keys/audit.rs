//! The audit trail: one JSON line per lifecycle change or refused key use, appended to
//! `audit.jsonl` (in the spirit of Activity Tracker's
//! `cloud-object-storage.bucket-key-state.update`). Events carry ids, versions, outcomes
//! and affected buckets, never key material.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::error::KeysError;

/// One audit event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditEvent {
    /// RFC 3339 UTC time.
    pub time: String,
    /// What happened, e.g. `key.rotate`, `key.use`.
    pub action: String,
    /// The key's CRN.
    pub key: String,
    /// The key version concerned.
    pub key_version: u32,
    /// `success`, `refused` or `failure`.
    pub outcome: String,
    /// Why, for refusals and failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Buckets whose keys the change affects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<String>,
    /// For bucket-affecting changes, the event name of the bucket key state change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// RFC 3339 UTC for Unix seconds (proleptic Gregorian calendar).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Appends events to a JSON-lines file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// A log at `path` (created on first event, mode 0600).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Where events go.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends one event and flushes it to disk.
    pub fn append(&self, event: &AuditEvent) -> Result<(), KeysError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut line = serde_json::to_vec(event).map_err(|e| KeysError::Io {
            what: "cannot encode an audit event".into(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(KeysError::io(format!("cannot open the audit log {}", self.path.display())))?;
        f.write_all(&line).map_err(KeysError::io("cannot write the audit log"))?;
        f.sync_data().map_err(KeysError::io("cannot flush the audit log"))
    }

    /// Every event so far (for `cipherstore keys audit` and tests).
    pub fn read_all(&self) -> Result<Vec<serde_json::Value>, KeysError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeysError::io("cannot read the audit log")(e)),
        };
        text.lines()
            .map(|l| {
                serde_json::from_str(l).map_err(|e| KeysError::State {
                    path: self.path.display().to_string(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_453_261), "2026-11-23T17:01:01Z");
    }
}
