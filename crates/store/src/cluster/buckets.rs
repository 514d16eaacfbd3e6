//! Buckets of the cluster store: records under `b/`, kept in memory by the bucket cache.

use super::*;

#[async_trait::async_trait]
impl BucketStore for ClusterStore {
    async fn create_bucket(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        check_bucket_name(name)?;
        let key = bucket_key(name);
        let ops = vec![Op::Put(key.clone(), record.to_vec()), Op::Put(seq_key(name), Vec::new())];
        match self.inner.txn_at(vec![Compare::Absent(key)], ops).await? {
            Some(revision) => {
                self.inner.buckets.note(name, revision, Some(record.to_vec()));
                Ok(())
            }
            None => Err(StoreError::BucketExists(name.to_owned())),
        }
    }

    async fn bucket(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        check_bucket_name(name)?;
        match self.inner.bucket_record(name).await? {
            Some(record) => Ok(record),
            None => Err(StoreError::NoSuchBucket(name.to_owned())),
        }
    }

    async fn update_bucket(&self, name: &str, expected: &[u8], record: &[u8]) -> Result<(), StoreError> {
        check_bucket_name(name)?;
        let key = bucket_key(name);
        // Read where the records are (the cache may be behind another gateway's change),
        // then write only if nothing changed it in between.
        let Some(current) = self.inner.get(&key).await? else {
            return Err(StoreError::NoSuchBucket(name.to_owned()));
        };
        if current.value != expected {
            self.inner.buckets.note(name, current.mod_revision, Some(current.value));
            return Err(StoreError::BucketChanged(name.to_owned()));
        }
        let ops = vec![Op::Put(key.clone(), record.to_vec())];
        match self.inner.txn_at(vec![Compare::Revision(key, current.mod_revision)], ops).await? {
            Some(revision) => {
                self.inner.buckets.note(name, revision, Some(record.to_vec()));
                Ok(())
            }
            None => Err(StoreError::BucketChanged(name.to_owned())),
        }
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        check_bucket_name(name)?;
        let inner = &self.inner;
        let mut tries = Retries::default();
        while tries.next().await {
            let Some(seq) = inner.get(&seq_key(name)).await? else {
                return Err(StoreError::NoSuchBucket(name.to_owned()));
            };
            for prefix in [objects_of(name), uploads_of(name)] {
                let page = inner.kv.range(&prefix, &prefix_end(&prefix), 1).await.map_err(kv_error)?;
                if !page.entries.is_empty() {
                    return Err(StoreError::BucketNotEmpty(name.to_owned()));
                }
            }
            // Every shard of the write sequence as read now: a write that commits after
            // the emptiness check bumps one, and this transaction then fails and retries.
            let shards = inner.all(&seq_shards_of(name), &prefix_end(&seq_shards_of(name))).await?;
            let mut compares = vec![Compare::Revision(seq_key(name), seq.mod_revision)];
            for shard in 0..SEQ_SHARDS {
                let key = seq_shard_key(name, shard);
                compares.push(match shards.iter().find(|e| e.key == key) {
                    Some(e) => Compare::Revision(key, e.mod_revision),
                    None => Compare::Absent(key),
                });
            }
            let shards_end = prefix_end(&seq_shards_of(name));
            let ops = vec![
                Op::Delete(bucket_key(name)),
                Op::Delete(seq_key(name)),
                Op::DeleteRange(seq_shards_of(name), shards_end),
            ];
            if let Some(revision) = inner.txn_at(compares, ops).await? {
                inner.buckets.note(name, revision, None);
                return Ok(());
            }
        }
        Err(StoreError::Unavailable("the bucket kept changing; retry".into()))
    }

    async fn list_buckets(&self) -> Result<Vec<Named>, StoreError> {
        let entries = self.inner.all(b"b/", &prefix_end(b"b/")).await?;
        Ok(entries
            .into_iter()
            .map(|e| Named {
                name: String::from_utf8_lossy(&e.key[2..]).into_owned(),
                record: e.value,
                annex: None,
            })
            .collect())
    }
}
