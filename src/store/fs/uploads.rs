//! Multipart uploads in the filesystem backend. Layout under a bucket:
//!
//! ```text
//! uploads/<upload-id>/upload.json     the upload (UploadMeta)
//! uploads/<upload-id>/<number>.o      one file per part: stored bytes, PartMeta trailer
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
use crate::store::{ObjectMeta, PartMeta, PartWriter, StoreError, UploadMeta, check_key, check_upload_id};

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
    number: u32,
    upload_id: String,
}

super::write_to_tmp!(FsPartWriter);

impl PartWriter for FsPartWriter {
    fn commit(self: Box<Self>, mut meta: PartMeta) -> Result<PartMeta, StoreError> {
        let FsPartWriter { tmp, target, number, upload_id } = *self;
        meta.number = number;
        meta.stored = tmp.as_file().metadata().map_err(StoreError::io("cannot stat a part"))?.len();
        match place(tmp, &meta, &target, None) {
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NoSuchUpload(upload_id))
            }
            other => other.map(|()| meta),
        }
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

    fn read_upload(dir: &Path) -> Result<UploadMeta, StoreError> {
        let path = dir.join(UPLOAD_FILE);
        let bytes = fs::read(&path).map_err(StoreError::io(format!("cannot read {}", path.display())))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { path: path.display().to_string(), reason: e.to_string() })
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

    pub(super) fn fs_create_upload(&self, bucket: &str, upload: &UploadMeta) -> Result<(), StoreError> {
        check_key(&upload.object.key)?;
        check_upload_id(&upload.upload_id)?;
        let uploads = self.uploads_dir(bucket)?;
        super::mkdirs(&uploads)?;
        let staging = self.staging_dir("upload-")?;
        let json = serde_json::to_vec_pretty(upload)
            .map_err(|e| StoreError::Corrupt { path: upload.upload_id.clone(), reason: e.to_string() })?;
        crate::durable::write_atomic(&staging.path().join(UPLOAD_FILE), &json)
            .map_err(StoreError::io("cannot write upload metadata"))?;
        let staged = staging.keep();
        if let Err(e) = fs::rename(&staged, uploads.join(&upload.upload_id)) {
            let _ = fs::remove_dir_all(&staged);
            return Err(StoreError::io("cannot create the upload")(e));
        }
        sync_dir(&uploads);
        Ok(())
    }

    pub(super) fn fs_upload(&self, bucket: &str, upload_id: &str) -> Result<UploadMeta, StoreError> {
        Self::read_upload(&self.upload_dir(bucket, upload_id)?)
    }

    pub(super) fn fs_put_part(
        &self,
        bucket: &str,
        upload_id: &str,
        number: u32,
    ) -> Result<Box<dyn PartWriter>, StoreError> {
        let dir = self.upload_dir(bucket, upload_id)?;
        Ok(Box::new(FsPartWriter {
            tmp: self.temp()?,
            target: dir.join(part_name(number)),
            number,
            upload_id: upload_id.to_owned(),
        }))
    }

    pub(super) fn fs_list_parts(&self, bucket: &str, upload_id: &str) -> Result<Vec<PartMeta>, StoreError> {
        let dir = self.upload_dir(bucket, upload_id)?;
        let mut parts = Vec::new();
        for entry in fs::read_dir(&dir).map_err(StoreError::io("cannot list parts"))? {
            let name = entry.map_err(StoreError::io("cannot list parts"))?.file_name();
            let Some(number) = name.to_str().and_then(|n| n.strip_suffix(".o")).and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let path = dir.join(part_name(number));
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(format!("cannot open {}", path.display()))(e)),
            };
            let (mut meta, stored) = Self::read_meta::<PartMeta>(&file, &path)?;
            meta.stored = stored;
            parts.push(meta);
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    pub(super) fn fs_list_uploads(&self, bucket: &str) -> Result<Vec<UploadMeta>, StoreError> {
        let uploads = self.uploads_dir(bucket)?;
        let entries = match fs::read_dir(&uploads) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("cannot list uploads")(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let dir = entry.map_err(StoreError::io("cannot list uploads"))?.path();
            if dir.join(UPLOAD_FILE).is_file() {
                out.push(Self::read_upload(&dir)?);
            }
        }
        out.sort_by(|a, b| a.object.key.cmp(&b.object.key).then(a.initiated.cmp(&b.initiated)));
        Ok(out)
    }

    pub(super) fn fs_abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), StoreError> {
        let dir = self.upload_dir(bucket, upload_id)?;
        self.discard_dir(&dir)
    }

    pub(super) fn fs_complete_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        parts: &[u32],
        meta: ObjectMeta,
    ) -> Result<ObjectMeta, StoreError> {
        use crate::store::Store as _;
        let dir = self.upload_dir(bucket, upload_id)?;
        let mut writer = self.put(bucket, &meta.key)?;
        let mut buf = vec![0u8; COPY_BUF];
        for &number in parts {
            let path = dir.join(part_name(number));
            let file =
                File::open(&path).map_err(StoreError::io(format!("cannot open {}", path.display())))?;
            let (_, stored) = Self::read_meta::<PartMeta>(&file, &path)?;
            let mut offset = 0u64;
            while offset < stored {
                let n = buf.len().min((stored - offset) as usize);
                file.read_exact_at(&mut buf[..n], offset)
                    .map_err(StoreError::io(format!("cannot read {}", path.display())))?;
                writer.write_all(&buf[..n]).map_err(StoreError::io("cannot write the completed object"))?;
                offset += n as u64;
            }
        }
        let meta = writer.commit(meta)?;
        self.discard_dir(&dir)?;
        Ok(meta)
    }
}
