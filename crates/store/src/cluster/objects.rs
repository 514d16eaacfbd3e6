//! Objects of the cluster store: the current version of each key, read from its entry or
//! its blobs, listed in key order.

use super::*;

#[async_trait::async_trait]
impl ObjectStore for ClusterStore {
    async fn put(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError> {
        check_key(key)?;
        // The commit's transaction requires the bucket again.
        self.inner.require_bucket_before_commit(bucket).await?;
        Ok(Box::new(self.writer(bucket, "d", Target::Object(key.to_owned()))))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<StoredObject, StoreError> {
        check_key(key)?;
        let inner = &self.inner;
        let entry = match inner.get(&object_key(bucket, key)).await? {
            Some(e) => e,
            None => {
                inner.require_bucket(bucket).await?;
                return Err(StoreError::NoSuchKey { bucket: bucket.to_owned(), key: key.to_owned() });
            }
        };
        self.stored(key, Located::decode(key, &entry.value)?)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let inner = &self.inner;
        inner.require_bucket(bucket).await?;
        let k = object_key(bucket, key);
        let mut tries = Retries::default();
        while tries.next().await {
            let Some(e) = inner.get(&k).await? else { return Ok(false) };
            let located = Located::decode(key, &e.value)?;
            let mut ops = vec![Op::Delete(k.clone()), bump(bucket)];
            ops.extend(retire(&located.blobs));
            if inner.txn(vec![Compare::Revision(k.clone(), e.mod_revision)], ops).await? {
                return Ok(true);
            }
        }
        Err(StoreError::Unavailable("the object kept changing; retry".into()))
    }

    async fn list(&self, bucket: &str, page: Page<'_>) -> Result<Vec<Named>, StoreError> {
        let Page { prefix, after: start_after, limit } = page;
        let base = objects_of(bucket);
        let first = object_key(bucket, prefix);
        let start = match start_after {
            Some(a) if a.as_bytes() >= prefix.as_bytes() => {
                [object_key(bucket, a).as_slice(), b"\0"].concat()
            }
            _ => first.clone(),
        };
        let end = prefix_end(&first);
        let inner = &self.inner;
        inner.require_bucket(bucket).await?;
        let mut out = Vec::new();
        let mut start = start;
        while out.len() < limit {
            let page = inner.kv.range(&start, &end, limit - out.len()).await.map_err(kv_error)?;
            for e in &page.entries {
                let name =
                    String::from_utf8(e.key[base.len()..].to_vec()).map_err(|e| corrupt("a key", &e))?;
                let located = Located::decode(&name, &e.value)?;
                // A delete marker is no object.
                if !located.version(&name)?.marker {
                    out.push(Named { record: located.record(&name)?, annex: located.annex(&name)?, name });
                }
            }
            match page.entries.last() {
                Some(last) if page.more => start = [last.key.as_slice(), b"\0"].concat(),
                _ => break,
            }
        }
        Ok(out)
    }
}
