//! Multipart uploads in the filesystem backend. Layout under a bucket:
//!
//! ```text
//! uploads/<upload-id>/upload.json     the upload's record
//! uploads/<upload-id>/<number>.o      one file per part: stored bytes, record trailer
//! ```
//!
//! Parts are written like objects (temp file, flush, rename). Completing copies the chosen
//! parts' stored bytes, in order, into a new object file that appears with one rename;
//! only then is the upload directory removed, so a crash at any point leaves either the
//! upload (which can be completed again or aborted) or the object.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{FsStore, place, sync_dir};
use crate::{Completion, Result, UploadStore, blocking};
use crate::{Named, PartWriter, StoreError, StoredPart, check_key, check_upload_id};

const UPLOAD_FILE: &str = "upload.json";
/// Bytes copied at a time when completing.
const COPY_BUF: usize = 1 << 20;

fn part_name(number: u32) -> String {
    format!("{number:05}.o")
}

/// A part being written.
struct FsPartWriter {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    upload_id: String,
}

super::write_to_tmp!(FsPartWriter);

#[async_trait::async_trait]
impl PartWriter for FsPartWriter {
    async fn commit(self: Box<Self>, record: &[u8]) -> Result<u64, StoreError> {
        let FsPartWriter { tmp, target, upload_id } = *self;
        let record = record.to_vec();
        blocking(move || {
            let stored = tmp.as_file().metadata().map_err(StoreError::io("cannot stat a part"))?.len();
            match place(tmp, &record, None, &target, None) {
                Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Err(StoreError::NoSuchUpload(upload_id))
                }
                other => other.map(|()| stored),
            }
        })
        .await
    }
}

impl FsStore {
    fn uploads_dir(&self, bucket: &str) -> Result<PathBuf, StoreError> {
        Ok(self.existing_bucket(bucket)?.join("uploads"))
    }

    fn upload_dir(&self, bucket: &str, upload_id: &str) -> Result<PathBuf, StoreError> {
        check_upload_id(upload_id)?;
        let dir = self.uploads_dir(bucket)?.join(upload_id);
        if dir.join(UPLOAD_FILE).is_file() {
            Ok(dir)
        } else {
            Err(StoreError::NoSuchUpload(upload_id.to_owned()))
        }
    }

    fn read_upload(dir: &Path) -> Result<Vec<u8>, StoreError> {
        let path = dir.join(UPLOAD_FILE);
        fs::read(&path).map_err(StoreError::io(format!("cannot read {}", path.display())))
    }

    /// Removes a directory tree at once (rename into tmp/), then at leisure.
    fn discard_dir(&self, dir: &Path) -> Result<(), StoreError> {
        let graveyard = self.staging_dir("deleted-")?.keep();
        fs::rename(dir, graveyard.join("gone")).map_err(StoreError::io("cannot remove an upload"))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent);
        }
        fs::remove_dir_all(&graveyard).map_err(StoreError::io("cannot remove a discarded upload"))
    }
}

#[async_trait::async_trait]
impl UploadStore for FsStore {
    async fn create_upload(&self, bucket: &str, upload_id: &str, record: &[u8]) -> Result<(), StoreError> {
        check_upload_id(upload_id)?;
        let (bucket, upload_id, record) = (bucket.to_owned(), upload_id.to_owned(), record.to_vec());
        self.run(move |this| {
            let uploads = this.uploads_dir(&bucket)?;
            super::mkdirs(&uploads)?;
            let staging = this.staging_dir("upload-")?;
            base::durable::write_atomic(&staging.path().join(UPLOAD_FILE), &record)
                .map_err(StoreError::io("cannot write the upload record"))?;
            let staged = staging.keep();
            if let Err(e) = fs::rename(&staged, uploads.join(upload_id)) {
                let _ = fs::remove_dir_all(&staged);
                return Err(StoreError::io("cannot create the upload")(e));
            }
            sync_dir(&uploads);
            Ok(())
        })
        .await
    }

    async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Vec<u8>, StoreError> {
        Self::read_upload(&self.upload_dir(bucket, upload_id)?)
    }

    async fn put_part(&self, bucket: &str, upload_id: &str, number: u32) -> Result<Box<dyn PartWriter>> {
        let dir = self.upload_dir(bucket, upload_id)?;
        Ok(Box::new(FsPartWriter {
            tmp: self.temp()?,
            target: dir.join(part_name(number)),
            upload_id: upload_id.to_owned(),
        }))
    }

    async fn list_parts(&self, bucket: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        let (bucket, upload_id) = (bucket.to_owned(), upload_id.to_owned());
        self.run(move |this| {
            let dir = this.upload_dir(&bucket, &upload_id)?;
            let mut parts = Vec::new();
            for entry in fs::read_dir(&dir).map_err(StoreError::io("cannot list parts"))? {
                let name = entry.map_err(StoreError::io("cannot list parts"))?.file_name();
                let Some(number) =
                    name.to_str().and_then(|n| n.strip_suffix(".o")).and_then(|n| n.parse().ok())
                else {
                    continue;
                };
                let path = dir.join(part_name(number));
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io(format!("cannot open {}", path.display()))(e)),
                };
                let t = Self::read_record(&file, &path)?;
                let (record, stored) = (t.record, t.body_len);
                parts.push(StoredPart { number, stored, record });
            }
            parts.sort_by_key(|p| p.number);
            Ok(parts)
        })
        .await
    }

    async fn list_uploads(&self, bucket: &str) -> Result<Vec<Named>, StoreError> {
        let bucket = bucket.to_owned();
        self.run(move |this| {
            let uploads = this.uploads_dir(&bucket)?;
            let entries = match fs::read_dir(&uploads) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(StoreError::io("cannot list uploads")(e)),
            };
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(StoreError::io("cannot list uploads"))?;
                let dir = entry.path();
                if let Some(id) = entry.file_name().to_str().filter(|id| check_upload_id(id).is_ok())
                    && dir.join(UPLOAD_FILE).is_file()
                {
                    out.push(Named { name: id.to_owned(), record: Self::read_upload(&dir)?, annex: None });
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), StoreError> {
        let (bucket, upload_id) = (bucket.to_owned(), upload_id.to_owned());
        self.run(move |this| {
            let dir = this.upload_dir(&bucket, &upload_id)?;
            this.discard_dir(&dir)
        })
        .await
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        done: Completion<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Completion { upload_id, key, parts, record, version } = done;
        check_key(key)?;
        let (bucket, upload_id, key) = (bucket.to_owned(), upload_id.to_owned(), key.to_owned());
        let (parts, record, version) = (parts.to_vec(), record.to_vec(), version.cloned());
        self.run(move |this| {
            let dir = this.upload_dir(&bucket, &upload_id)?;
            let mut writer = this.writer(&bucket, &key)?;
            let mut buf = vec![0u8; COPY_BUF];
            for number in parts {
                let path = dir.join(part_name(number));
                let file =
                    File::open(&path).map_err(StoreError::io(format!("cannot open {}", path.display())))?;
                let stored = Self::read_record(&file, &path)?.body_len;
                let mut offset = 0u64;
                while offset < stored {
                    let n = buf.len().min((stored - offset) as usize);
                    file.read_exact_at(&mut buf[..n], offset)
                        .map_err(StoreError::io(format!("cannot read {}", path.display())))?;
                    writer
                        .write_all(&buf[..n])
                        .map_err(StoreError::io("cannot write the completed object"))?;
                    offset += n as u64;
                }
            }
            let removed = match &version {
                Some(v) => writer.commit_version_now(&record, v)?,
                None => writer.commit_now(&record).map(|()| None)?,
            };
            this.discard_dir(&dir)?;
            Ok(removed)
        })
        .await
    }
}
