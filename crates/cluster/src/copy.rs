//! Moving records between metadata services (`cipherstore meta copy`, docs/SCALE-OUT.md
//! §9): every key under the given prefixes, read in pages from one [`Kv`] and written in
//! batches to another, then a second pass that reads both sides in step and compares every
//! key and value. Revisions are the destination's own (the records never hold one).

use super::kv::{Entry, Kv, KvError, Op, Txn, prefix_end};

/// Keys read per page.
const PAGE: usize = 1000;
/// Most puts in one transaction (etcd's default `--max-txn-ops` is 128).
const BATCH_OPS: usize = 100;
/// Most value bytes in one transaction (etcd's default request limit is 1.5 MiB).
const BATCH_BYTES: usize = 1 << 20;

/// What a copy or a check counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Keys.
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// Why a copy or a check stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// One of the services failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The destination already holds records under a prefix (a copy never merges).
    #[error("the destination already holds records under {0:?}: copy into an empty one")]
    NotEmpty(String),
    /// A transaction was refused (a compare failed: someone else is writing).
    #[error("a write to the destination was refused: is a gateway writing to it?")]
    Conflict,
    /// The two sides differ.
    #[error("the copy differs from the source: {differ} keys differ, first {first:?}")]
    Differs {
        /// Keys missing, extra or with another value.
        differ: u64,
        /// The first such key (lossy UTF-8).
        first: String,
    },
}

/// Every entry under `prefix`, page by page.
struct Pages<'a> {
    kv: &'a dyn Kv,
    next: Option<Vec<u8>>,
    end: Vec<u8>,
}

impl<'a> Pages<'a> {
    fn new(kv: &'a dyn Kv, prefix: &[u8]) -> Self {
        Self { kv, next: Some(prefix.to_vec()), end: prefix_end(prefix) }
    }

    async fn next_page(&mut self) -> Result<Option<Vec<Entry>>, KvError> {
        let Some(start) = self.next.take() else { return Ok(None) };
        let page = self.kv.range(&start, &self.end, PAGE).await?;
        if page.more
            && let Some(last) = page.entries.last()
        {
            self.next = Some([last.key.as_slice(), &[0]].concat());
        }
        Ok(Some(page.entries))
    }
}

/// Copies every key under `prefixes` from `from` to `to`, which must hold none yet;
/// `progress` is told the running tally after each batch.
pub async fn copy(
    from: &dyn Kv,
    to: &dyn Kv,
    prefixes: &[&[u8]],
    mut progress: impl FnMut(Tally),
) -> Result<Tally, CopyError> {
    for p in prefixes {
        if !to.range(p, &prefix_end(p), 1).await?.entries.is_empty() {
            return Err(CopyError::NotEmpty(String::from_utf8_lossy(p).into_owned()));
        }
    }
    let mut tally = Tally::default();
    for p in prefixes {
        let mut pages = Pages::new(from, p);
        let (mut ops, mut bytes) = (Vec::new(), 0usize);
        while let Some(entries) = pages.next_page().await? {
            for e in entries {
                bytes += e.key.len() + e.value.len();
                tally.keys += 1;
                tally.bytes += (e.key.len() + e.value.len()) as u64;
                ops.push(Op::Put(e.key, e.value));
                if ops.len() >= BATCH_OPS || bytes >= BATCH_BYTES {
                    write(to, std::mem::take(&mut ops)).await?;
                    bytes = 0;
                    progress(tally);
                }
            }
        }
        if !ops.is_empty() {
            write(to, ops).await?;
            progress(tally);
        }
    }
    Ok(tally)
}

async fn write(to: &dyn Kv, ops: Vec<Op>) -> Result<(), CopyError> {
    match to.txn(Txn { compares: Vec::new(), ops }).await? {
        Some(_) => Ok(()),
        None => Err(CopyError::Conflict),
    }
}

/// Reads both sides under `prefixes` in step and compares every key and value.
pub async fn verify(
    a: &dyn Kv,
    b: &dyn Kv,
    prefixes: &[&[u8]],
    mut progress: impl FnMut(Tally),
) -> Result<Tally, CopyError> {
    let (mut tally, mut reported) = (Tally::default(), 0);
    let (mut differ, mut first) = (0u64, None::<Vec<u8>>);
    let mut note = |key: &[u8], differ: &mut u64| {
        *differ += 1;
        first.get_or_insert_with(|| key.to_vec());
    };
    for p in prefixes {
        let (mut left, mut right) = (Pages::new(a, p), Pages::new(b, p));
        let (mut l, mut r) = (Vec::new().into_iter().peekable(), Vec::new().into_iter().peekable());
        loop {
            if l.peek().is_none()
                && let Some(page) = left.next_page().await?
            {
                l = page.into_iter().peekable();
            }
            if r.peek().is_none()
                && let Some(page) = right.next_page().await?
            {
                r = page.into_iter().peekable();
            }
            match (l.peek(), r.peek()) {
                (None, None) if left.next.is_none() && right.next.is_none() => break,
                (None, None) => continue,
                (Some(x), Some(y)) if x.key == y.key => {
                    if x.value != y.value {
                        note(&x.key, &mut differ);
                    }
                    tally.keys += 1;
                    tally.bytes += (x.key.len() + x.value.len()) as u64;
                    l.next();
                    r.next();
                }
                // The smaller key is missing on the other side (or that side ran out).
                (Some(x), Some(y)) if x.key < y.key => {
                    note(&x.key, &mut differ);
                    l.next();
                }
                (Some(x), None) => {
                    note(&x.key, &mut differ);
                    l.next();
                }
                (_, Some(y)) => {
                    note(&y.key, &mut differ);
                    r.next();
                }
            }
            if tally.keys >= reported + 10_000 {
                reported = tally.keys;
                progress(tally);
            }
        }
    }
    match first {
        None => Ok(tally),
        Some(key) => Err(CopyError::Differs { differ, first: String::from_utf8_lossy(&key).into_owned() }),
    }
}
