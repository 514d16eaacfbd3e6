//! The audit trail: one JSON line per lifecycle change or refused key use, appended to
//! `audit.jsonl` (in the spirit of Activity Tracker's
//! `cloud-object-storage.bucket-key-state.update`). Events carry ids, versions, outcomes
//! and affected buckets, never key material. Who asked is the [`initiator`] in force on
//! the calling thread (the key service names its caller; the CLI leaves it unset).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

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

/// Appends events to a JSON-lines file. Each append returns once its line is on disk;
/// appends made at the same moment from several threads share one write and one
/// `fdatasync` (group commit: the first waiting thread writes every line queued so far),
/// so a busy key service pays one flush per batch, not per event.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    queue: Arc<(Mutex<Queue>, Condvar)>,
}

/// Lines waiting to be written, in batches numbered from 0.
#[derive(Debug, Default)]
struct Queue {
    /// Lines of the batch being filled.
    pending: Vec<u8>,
    /// The number of the batch being filled.
    filling: u64,
    /// How many batches are written (batches below this number are done).
    written: u64,
    /// Whether a thread is writing a batch now.
    writing: bool,
    /// Recent batches that failed, with why.
    failed: Vec<(u64, String)>,
}

impl AuditLog {
    /// A log at `path` (created on first event, mode 0600).
    pub fn new(path: PathBuf) -> Self {
        Self { path, queue: Arc::new((Mutex::new(Queue::default()), Condvar::new())) }
    }

    fn write_batch(&self, lines: &[u8]) -> Result<(), std::io::Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        f.write_all(lines)?;
        f.sync_data()
    }

    /// Where events go.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends one event; returns once it is on disk.
    pub fn append(&self, event: &AuditEvent) -> Result<(), KeysError> {
        let mut line = serde_json::to_vec(event).map_err(|e| KeysError::Io {
            what: "cannot encode an audit event".into(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let (lock, wake) = &*self.queue;
        let mut q = lock.lock().unwrap_or_else(PoisonError::into_inner);
        q.pending.extend_from_slice(&line);
        let mine = q.filling;
        loop {
            if q.written > mine {
                return match q.failed.iter().find(|(b, _)| *b == mine) {
                    Some((_, why)) => Err(KeysError::Io {
                        what: format!("cannot write the audit log {}", self.path.display()),
                        source: std::io::Error::other(why.clone()),
                    }),
                    None => Ok(()),
                };
            }
            if !q.writing {
                q.writing = true;
                let batch = q.filling;
                let lines = std::mem::take(&mut q.pending);
                q.filling += 1;
                drop(q);
                let result = self.write_batch(&lines);
                q = lock.lock().unwrap_or_else(PoisonError::into_inner);
                q.writing = false;
                q.written = batch + 1;
                if let Err(e) = result {
                    q.failed.push((batch, e.to_string()));
                    let excess = q.failed.len().saturating_sub(64);
                    q.failed.drain(..excess);
                }
                wake.notify_all();
                continue;
            }
            q = wake.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
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

    fn event(i: usize) -> AuditEvent {
        AuditEvent {
            time: "2026-12-07T00:00:00Z".into(),
            action: "key.wrap".into(),
            key: format!("crn:{i}"),
            key_version: 1,
            outcome: "success".into(),
            reason: None,
            buckets: vec![],
            event: None,
            initiator: Some(format!("thread-{}", i % 8)),
        }
    }

    #[test]
    fn concurrent_appends_each_land_once_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        std::thread::scope(|s| {
            for t in 0..8 {
                let log = log.clone();
                s.spawn(move || {
                    for i in 0..50 {
                        log.append(&event(t * 50 + i)).unwrap();
                    }
                });
            }
        });
        let events = log.read_all().unwrap();
        assert_eq!(events.len(), 400);
        let mut keys: Vec<String> = events.iter().map(|e| e["key"].as_str().unwrap().to_owned()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 400, "every event once");
        // A log that cannot be written fails every append of the batch, and recovers.
        let bad = AuditLog::new(dir.path().join("missing-dir/audit.jsonl"));
        assert!(bad.append(&event(0)).is_err());
        assert!(bad.append(&event(1)).is_err());
    }
}
