//! The metadata service a cluster store keeps its records in (docs/SCALE-OUT.md §2): an
//! ordered key-value store with three operations, small enough that TiKV or FoundationDB
//! can take etcd's place — an ordered range read with a limit ([`Kv::range`]), an
//! all-or-nothing transaction guarded by compares ([`Kv::txn`]), and a watch on a prefix
//! ([`Kv::watch`]). [`super::etcd::EtcdKv`] implements it on etcd,
//! [`super::postgres::PgKv`] on PostgreSQL.

use tokio::sync::mpsc;

/// One key and its value, with the revisions that transactions compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
    /// The revision of the key's last change.
    pub mod_revision: i64,
}

/// A range read's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Entries in byte order of their keys.
    pub entries: Vec<Entry>,
    /// Whether more keys lie in the range past the limit.
    pub more: bool,
    /// The store's revision the page was read at.
    pub revision: i64,
}

/// A condition a transaction checks before it changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key exists and was last changed at this revision.
    Revision(Vec<u8>, i64),
    /// The key does not exist.
    Absent(Vec<u8>),
    /// The key exists (at any revision).
    Present(Vec<u8>),
}

/// A change a transaction makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets a key.
    Put(Vec<u8>, Vec<u8>),
    /// Removes a key (nothing if absent).
    Delete(Vec<u8>),
    /// Removes every key in `[start, end)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// Compares, then changes made all together only if every compare holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// What must hold.
    pub compares: Vec<Compare>,
    /// What is then changed.
    pub ops: Vec<Op>,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key was set (its new value and revision).
    Put(Entry),
    /// A key was removed, at this revision.
    Delete(Vec<u8>, i64),
}

/// Errors from a metadata service.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The service cannot be reached, or cannot answer (no quorum): retry later.
    #[error("the metadata service is unavailable: {0}")]
    Unavailable(String),
    /// The watch cannot resume: the revision asked for was compacted away.
    #[error("the watch fell behind: revision {0} was compacted")]
    Compacted(i64),
    /// The service refused the request.
    #[error("the metadata service refused a request: {0}")]
    Refused(String),
    /// The service is out of space (etcd's quota, a full disk under PostgreSQL): nothing
    /// was written, and writes fail until space is freed.
    #[error("the metadata service is out of space: {0}")]
    Full(String),
}

/// Changes under a prefix, as they happen; ends (with an error) when the watch breaks.
pub struct Watch {
    pub(crate) rx: mpsc::Receiver<Result<Event, KvError>>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// The next change; `None` once the watch has ended.
    pub async fn next(&mut self) -> Option<Result<Event, KvError>> {
        self.rx.recv().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An ordered key-value store with transactions and watches.
#[async_trait::async_trait]
pub trait Kv: Send + Sync {
    /// Up to `limit` entries with keys in `[start, end)`, in byte order of their keys.
    async fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Page, KvError>;
    /// Applies `txn`: its ops if every compare holds, nothing otherwise. Returns the
    /// revision it committed at, or `None` if a compare failed.
    async fn txn(&self, txn: Txn) -> Result<Option<i64>, KvError>;
    /// Changes to keys under `prefix` after revision `after` (0: from now on).
    async fn watch(&self, prefix: &[u8], after: i64) -> Result<Watch, KvError>;

    /// How late a watch may report a change (0: as it commits). A follower that must not
    /// act on a stale copy reads the key itself when this is not zero.
    fn watch_delay(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// The entry under `key`, if any.
    async fn get(&self, key: &[u8]) -> Result<Option<Entry>, KvError> {
        let mut end = key.to_vec();
        end.push(0);
        Ok(self.range(key, &end, 1).await?.entries.pop())
    }
}

/// The first key after every key that starts with `prefix` (the end of a prefix range).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or empty): the range runs to the end of the key space.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_bound_exactly_the_prefix() {
        assert_eq!(prefix_end(b"o/b\0"), b"o/b\x01");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
