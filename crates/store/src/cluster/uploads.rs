//! Multipart uploads of the cluster store: upload and part entries, completed by listing
//! the part blobs (no copy).

use super::*;

#[async_trait::async_trait]
impl UploadStore for ClusterStore {
    async fn create_upload(&self, bucket: &str, upload_id: &str, record: &[u8]) -> Result<(), StoreError> {
        check_upload_id(upload_id)?;
        check_bucket_name(bucket)?;
        let ops = vec![Op::Put(upload_key(bucket, upload_id), record.to_vec())];
        if self.inner.txn(vec![Compare::Present(bucket_key(bucket))], ops).await? {
            Ok(())
        } else {
            Err(StoreError::NoSuchBucket(bucket.to_owned()))
        }
    }

    async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Vec<u8>, StoreError> {
        check_upload_id(upload_id)?;
        let inner = &self.inner;
        inner.require_bucket(bucket).await?;
        match inner.get(&upload_key(bucket, upload_id)).await? {
            Some(e) => Ok(e.value),
            None => Err(StoreError::NoSuchUpload(upload_id.to_owned())),
        }
    }

    async fn put_part(&self, bucket: &str, upload_id: &str, number: u32) -> Result<Box<dyn PartWriter>> {
        self.upload(bucket, upload_id).await?;
        Ok(Box::new(self.writer(bucket, "p", Target::Part(upload_id.to_owned(), number))))
    }

    async fn list_parts(&self, bucket: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        self.upload(bucket, upload_id).await?;
        let prefix = parts_of(bucket, upload_id);
        let entries = self.inner.all(&prefix, &prefix_end(&prefix)).await?;
        entries
            .into_iter()
            .map(|e| {
                let number = std::str::from_utf8(&e.key[prefix.len()..])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| corrupt("a part key", &"not a part number"))?;
                let located = Located::decode("a part", &e.value)?;
                Ok(StoredPart { number, stored: located.stored(), record: located.record("a part")? })
            })
            .collect()
    }

    async fn list_uploads(&self, bucket: &str) -> Result<Vec<Named>, StoreError> {
        let prefix = uploads_of(bucket);
        let inner = &self.inner;
        inner.require_bucket(bucket).await?;
        let entries = inner.all(&prefix, &prefix_end(&prefix)).await?;
        Ok(entries
            .into_iter()
            .map(|e| Named {
                name: String::from_utf8_lossy(&e.key[prefix.len()..]).into_owned(),
                record: e.value,
                annex: None,
            })
            .collect())
    }

    async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), StoreError> {
        check_upload_id(upload_id)?;
        let inner = &self.inner;
        inner.require_bucket(bucket).await?;
        let mut tries = Retries::default();
        while tries.next().await {
            let Standing { mut compares, parts, removal: mut ops, .. } =
                inner.standing(bucket, upload_id).await?;
            let mut blobs = Vec::new();
            for p in &parts {
                compares.push(Compare::Revision(p.key.clone(), p.mod_revision));
                blobs.extend(Located::decode("a part", &p.value)?.blobs);
            }
            ops.extend(blobs.iter().map(|b| Op::Delete(ref_key(&b.name))));
            if inner.txn(compares, ops).await? {
                inner.discard(&blobs).await;
                return Ok(());
            }
        }
        Err(StoreError::Unavailable("the upload kept changing; retry".into()))
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        done: Completion<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Completion { upload_id, key, parts, record, version } = done;
        check_upload_id(upload_id)?;
        check_key(key)?;
        let inner = &self.inner;
        inner.require_bucket(bucket).await?;
        let mut tries = Retries::default();
        while tries.next().await {
            let Standing { mut compares, parts: uploaded, prefix_len, removal } =
                inner.standing(bucket, upload_id).await?;
            let mut chosen = Vec::new();
            let mut unchosen = Vec::new();
            for p in &uploaded {
                let located = Located::decode("a part", &p.value)?;
                let number: Option<u32> =
                    std::str::from_utf8(&p.key[prefix_len..]).ok().and_then(|n| n.parse().ok());
                if number.is_some_and(|n| parts.contains(&n)) {
                    compares.push(Compare::Revision(p.key.clone(), p.mod_revision));
                    chosen.push((number, located));
                } else {
                    unchosen.extend(located.blobs);
                }
            }
            let mut blobs = Vec::with_capacity(parts.len());
            for n in parts {
                let located = chosen
                    .iter()
                    .find(|(number, _)| *number == Some(*n))
                    .map(|(_, l)| l)
                    .ok_or_else(|| StoreError::NoSuchUpload(upload_id.to_owned()))?;
                blobs.extend(located.blobs.iter().cloned());
            }
            let entry = Located::new(blobs, record);
            let (placing, mut ops, removed) = inner.completing(bucket, key, entry, version).await?;
            compares.extend(placing);
            ops.extend(removal);
            ops.extend(unchosen.iter().map(|b| Op::Delete(ref_key(&b.name))));
            if inner.txn(compares, ops).await? {
                inner.discard(&unchosen).await;
                return removed.map(|r| r.record(key)).transpose();
            }
        }
        Err(StoreError::Unavailable("the upload kept changing; retry".into()))
    }
}

/// An upload as it stands: the compare that holds while its entry is unchanged, its parts'
/// entries, and the operations that remove the upload and every part entry.
struct Standing {
    compares: Vec<Compare>,
    parts: Vec<Entry>,
    /// Where a part's number starts in its entry's key.
    prefix_len: usize,
    removal: Vec<Op>,
}

impl Inner {
    /// Reads an upload and its parts; [`StoreError::NoSuchUpload`] if there is none.
    async fn standing(&self, bucket: &str, upload_id: &str) -> Result<Standing> {
        let upload = upload_key(bucket, upload_id);
        let prefix = parts_of(bucket, upload_id);
        let Some(u) = self.get(&upload).await? else {
            return Err(StoreError::NoSuchUpload(upload_id.to_owned()));
        };
        let parts = self.all(&prefix, &prefix_end(&prefix)).await?;
        let compares = vec![Compare::Revision(upload.clone(), u.mod_revision)];
        let removal = vec![Op::Delete(upload), Op::DeleteRange(prefix.clone(), prefix_end(&prefix))];
        Ok(Standing { compares, parts, prefix_len: prefix.len(), removal })
    }
}
