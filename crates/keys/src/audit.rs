//! The audit trail: one JSON line per lifecycle change or refused key use, appended to
//! `audit.jsonl` (in the spirit of Activity Tracker's
//! `cloud-object-storage.bucket-key-state.update`). Events carry ids, versions, outcomes
//! and affected buckets, never key material. Who asked is the [`initiator`] in force on
//! the calling thread (the key service names its caller; the CLI leaves it unset).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

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
    /// Who asked (`iam-ServiceId-…` for key service callers); unset for the local CLI
    /// and the S3 service's own bucket keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
}

thread_local! {
    static INITIATOR: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `who` as the initiator of every audit event it records on this thread.
pub fn as_initiator<T>(who: &str, f: impl FnOnce() -> T) -> T {
    let before = INITIATOR.with(|i| i.replace(Some(who.to_owned())));
    let out = f();
    INITIATOR.with(|i| *i.borrow_mut() = before);
    out
}

/// The initiator in force on this thread.
pub fn initiator() -> Option<String> {
    INITIATOR.with(|i| i.borrow().clone())
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
