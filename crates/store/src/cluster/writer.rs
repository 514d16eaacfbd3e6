//! Writing an object or part: buffered while small (one backend request at commit),
//! streamed as a backend multipart upload once larger than a part, committed as one
//! transaction that also moves the blob references.

use super::*;

/// What a writer commits into.
pub(super) enum Target {
    Object(String),
    /// A new version of the key.
    Version(String, Version),
    Part(String, u32),
}

/// An object or part being written: buffered while small (one backend request at
/// commit), streamed as a backend multipart upload once larger than a part.
pub(super) struct ClusterWriter {
    pub(super) inner: Arc<Inner>,
    pub(super) bucket: String,
    pub(super) blob: String,
    pub(super) target: Target,
    pub(super) buffer: Vec<u8>,
    pub(super) stream: Option<BlobWriter>,
}

impl Write for ClusterWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = self.inner.clone();
        if self.stream.is_none() && self.buffer.len() + buf.len() <= PART {
            self.buffer.extend_from_slice(buf);
            return Ok(buf.len());
        }
        let blob = self.blob.clone();
        let pending = std::mem::take(&mut self.buffer);
        let mut stream = self.stream.take();
        let result = inner.wait(async {
            let w = match &mut stream {
                Some(w) => w,
                None => stream.insert(inner.blobs.writer(&blob).await?),
            };
            if !pending.is_empty() {
                w.write(&pending).await?;
            }
            w.write(buf).await
        });
        self.stream = stream;
        result.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ClusterWriter {
    /// Makes the bytes durable as one blob and returns its entry, or, for a small object,
    /// returns them for its entry.
    pub(super) async fn finish(&mut self, record: &[u8]) -> Result<Located, StoreError> {
        let len = match self.stream.take() {
            Some(w) => w.finish().await.map_err(blob_error)?,
            None if matches!(self.target, Target::Object(_) | Target::Version(..))
                && self.buffer.len() <= self.inner.inline_max =>
            {
                let mut entry = Located::new(Vec::new(), record);
                entry.inline = Some(Bytes::from(std::mem::take(&mut self.buffer)));
                return Ok(entry);
            }
            None => {
                let bytes = Bytes::from(std::mem::take(&mut self.buffer));
                let len = bytes.len() as u64;
                self.inner.blobs.put(&self.blob, bytes).await.map_err(blob_error)?;
                len
            }
        };
        Ok(Located::new(vec![BlobRef { name: self.blob.clone(), len }], record))
    }

    /// Writes the blob (unless the bytes go inline), then commits `record` for it; if the
    /// commit is refused, the blob goes (if its outcome is unknown, the sweep decides).
    pub(super) async fn commit_entry(mut self, record: &[u8]) -> Result<(u64, Option<Vec<u8>>), StoreError> {
        let inner = self.inner.clone();
        let mut entry = self.finish(record).await?;
        let stored = entry.stored();
        let bucket = self.bucket.clone();
        if let Target::Version(key, v) = &self.target {
            entry.set_version(v);
            let removed = match inner.commit_version(&bucket, key, &entry, v).await {
                Ok(removed) => removed,
                Err(e @ StoreError::Unavailable(_)) => return Err(e),
                Err(e) => {
                    inner.discard(&entry.blobs).await;
                    return Err(e);
                }
            };
            return Ok((stored, removed.map(|r| r.record(key)).transpose()?));
        }
        let committed = match &self.target {
            // Committed above.
            Target::Version(..) => Err(StoreError::InvalidKey("a version commits as a version")),
            Target::Object(key) => {
                inner
                    .commit(
                        &bucket,
                        object_key(&bucket, key),
                        &entry,
                        Compare::Present(bucket_key(&bucket)),
                        true,
                        || StoreError::NoSuchBucket(bucket.clone()),
                    )
                    .await
            }
            Target::Part(id, number) => {
                let guard = Compare::Present(upload_key(&bucket, id));
                inner
                    .commit(&bucket, part_key(&bucket, id, *number), &entry, guard, false, || {
                        StoreError::NoSuchUpload(id.clone())
                    })
                    .await
            }
        };
        match committed {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    inner.discard(&old.blobs).await;
                }
                Ok((stored, None))
            }
            // Refused for good (the bucket or upload is gone): the blob goes. If etcd
            // did not answer, the commit may still have happened: the blob stays,
            // and the sweep removes it only if no record names it.
            Err(e @ StoreError::Unavailable(_)) => Err(e),
            Err(e) => {
                inner.discard(&entry.blobs).await;
                Err(e)
            }
        }
    }
}

impl Drop for ClusterWriter {
    fn drop(&mut self) {
        // Never committed: the upload in progress is aborted (whole blobs never appear).
        if let Some(w) = self.stream.take() {
            self.inner.bridge.handle().spawn(async move {
                let _ = w.abort().await;
            });
        }
    }
}

#[async_trait::async_trait]
impl ObjectWriter for ClusterWriter {
    async fn commit(self: Box<Self>, record: &[u8]) -> Result<(), StoreError> {
        self.commit_entry(record).await.map(|_| ())
    }

    async fn commit_version(
        mut self: Box<Self>,
        record: &[u8],
        version: &Version,
    ) -> Result<Option<Vec<u8>>> {
        let key = match &self.target {
            Target::Object(key) => key.clone(),
            _ => return Err(StoreError::InvalidKey("only an object is committed as a version")),
        };
        self.target = Target::Version(key, version.clone());
        self.commit_entry(record).await.map(|(_, removed)| removed)
    }
}

#[async_trait::async_trait]
impl PartWriter for ClusterWriter {
    async fn commit(self: Box<Self>, record: &[u8]) -> Result<u64, StoreError> {
        self.commit_entry(record).await.map(|(stored, _)| stored)
    }
}
