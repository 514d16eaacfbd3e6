//! The cluster store's bucket records kept in each gateway's memory (docs/SCALE-OUT.md §6),
//! current through a watch on `b/`: a request to an existing bucket gets its record without
//! an etcd round trip (the store reads etcd again when the cache says a bucket is absent). While the watch is down (or not yet caught up) the
//! cache answers nothing and every lookup reads etcd, so a broken watch never serves a
//! stale answer for long. A change made through another gateway is seen here within the
//! watch's delay (milliseconds); commits still check the bucket in their transaction, so a
//! bucket deleted elsewhere never receives an object.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use ::cluster::kv::{Event, Kv, prefix_end};

/// The bucket records' prefix.
const PREFIX: &[u8] = b"b/";
/// Pause before a broken watch is set up again.
const RETRY: Duration = Duration::from_secs(1);

/// What the cache knows of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The bucket exists with this record.
    Present(Vec<u8>),
    /// No such bucket.
    Absent,
    /// The cache cannot tell now: read etcd.
    Unknown,
}

/// Bucket name → the revision of its last change and its record (`None`: deleted), or
/// nothing while the watch is down. A change older than the one held is ignored, so this
/// gateway's own changes (noted at once) are never undone by late watch events.
type Records = HashMap<String, (i64, Option<Vec<u8>>)>;

/// Bucket records as last seen.
pub(super) struct BucketCache {
    map: RwLock<Option<Records>>,
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for BucketCache {
    fn drop(&mut self) {
        if let Some(task) = self.follower.lock().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
        }
    }
}

fn name_of(key: &[u8]) -> Option<String> {
    key.strip_prefix(PREFIX).and_then(|n| std::str::from_utf8(n).ok()).map(str::to_owned)
}

impl BucketCache {
    /// Starts following `kv`'s bucket records on `handle`'s runtime.
    pub(super) fn start(kv: Arc<dyn Kv>, handle: &tokio::runtime::Handle) -> Arc<Self> {
        let cache = Arc::new(Self { map: RwLock::new(None), follower: std::sync::Mutex::new(None) });
        let task = handle.spawn(follow(kv, Arc::downgrade(&cache)));
        *cache.follower.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        cache
    }

    /// What the cache knows of bucket `name`.
    pub(super) fn lookup(&self, name: &str) -> Lookup {
        match self.map.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
            None => Lookup::Unknown,
            Some(m) => match m.get(name) {
                Some((_, Some(record))) => Lookup::Present(record.clone()),
                _ => Lookup::Absent,
            },
        }
    }

    fn set(&self, map: Option<Records>) {
        *self.map.write().unwrap_or_else(PoisonError::into_inner) = map;
    }

    /// Notes a change to bucket `name` committed at `revision` (`None`: deleted).
    pub(super) fn note(&self, name: &str, revision: i64, record: Option<Vec<u8>>) {
        let mut guard = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(map) = guard.as_mut() {
            let newer = map.get(name).is_none_or(|(held, _)| *held < revision);
            if newer {
                map.insert(name.to_owned(), (revision, record));
            }
        }
    }

    fn apply(&self, event: Event) {
        match event {
            Event::Put(e) => {
                if let Some(name) = name_of(&e.key) {
                    self.note(&name, e.mod_revision, Some(e.value));
                }
            }
            Event::Delete(key, revision) => {
                if let Some(name) = name_of(&key) {
                    self.note(&name, revision, None);
                }
            }
        }
    }
}

/// Reads every bucket record, then follows changes from the revision read; on any break
/// the cache goes blank and the loop starts over.
async fn follow(kv: Arc<dyn Kv>, cache: Weak<BucketCache>) {
    loop {
        if let Err(e) = follow_once(&kv, &cache).await {
            tracing::debug!(error = %e, "the bucket record watch broke; reading etcd until it is back");
        }
        match cache.upgrade() {
            Some(c) => c.set(None),
            None => return,
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn follow_once(kv: &Arc<dyn Kv>, cache: &Weak<BucketCache>) -> Result<(), ::cluster::kv::KvError> {
    let end = prefix_end(PREFIX);
    let mut map = HashMap::new();
    let mut start = PREFIX.to_vec();
    let mut revision = None;
    loop {
        let page = kv.range(&start, &end, 1000).await?;
        revision.get_or_insert(page.revision);
        for e in &page.entries {
            if let Some(name) = name_of(&e.key) {
                map.insert(name, (e.mod_revision, Some(e.value.clone())));
            }
        }
        match page.entries.last() {
            Some(last) if page.more => start = [last.key.as_slice(), &[0]].concat(),
            _ => break,
        }
    }
    // Changes after the first page's revision are replayed over the pages read since:
    // the result is the state as of the latest event.
    let mut watch = kv.watch(PREFIX, revision.unwrap_or(0)).await?;
    match cache.upgrade() {
        Some(c) => c.set(Some(map)),
        None => return Ok(()),
    }
    while let Some(event) = watch.next().await {
        let event = event?;
        match cache.upgrade() {
            Some(c) => c.apply(event),
            None => return Ok(()),
        }
    }
    Ok(())
}
