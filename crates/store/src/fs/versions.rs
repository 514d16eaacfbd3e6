//! Object versions in the filesystem backend. A key's current version is its object file
//! (`<cn>.o`, as without versioning); its noncurrent versions are object files in the
//! directory beside it:
//!
//! ```text
//! <cn>.v/<id>.o     a noncurrent version (its id as file name)
//! <cn>.n            … the null version: `<cn>.v/<id>.n`
//! <cn>.v/<id>.t     its annex, if it has one
//! ```
//!
//! A version's id and flags are in its file's trailer (`CSMETA02`); a file without them
//! (written before its bucket kept versions) is the null version with
//! [`Version::unversioned`]'s id. Changes to one key's versions are serialised by a lock
//! (the data directory belongs to one process), and each step is a link or a rename:
//!
//! - a commit links the current file into `<cn>.v/`, then renames the new file over
//!   the current one, then removes a null version it replaces. A crash between the link
//!   and the rename leaves the current version also in `<cn>.v/` under the same id; reads
//!   ignore that copy and the next change of the key removes it;
//! - removing the current version renames the newest noncurrent one over it.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{FsStore, TAGS_SUFFIX, place, sync_dir};
use crate::keypath;
use crate::{AnnexEdit, Page, Removal, Removed, Result, VersionStore, in_place};
use crate::{ListedVersion, StoreError, StoredObject, Version, VersionCursor, Wanted};

/// Stripes of the per-key lock (a versioned commit holds its stripe over a flush).
const STRIPES: usize = 256;
/// The suffix of a noncurrent null version's file.
const NULL_SUFFIX: &str = "n";
/// The suffix of any other noncurrent version's file.
const OBJECT_SUFFIX: &str = "o";

/// Locks that serialise changes to one key's versions (striped by the key's path).
pub(super) struct KeyLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for KeyLocks {
    fn default() -> Self {
        Self { stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() }
    }
}

impl KeyLocks {
    /// Holds the lock of the key whose object file is `path`.
    pub(super) fn lock(&self, path: &Path) -> MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut h);
        let stripe = &self.stripes[(h.finish() as usize) % STRIPES];
        stripe.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The directory of the noncurrent versions of the key whose object file is `target`.
fn versions_dir(target: &Path) -> PathBuf {
    target.with_extension("v")
}

/// The file of a noncurrent version in `dir`.
fn archived(dir: &Path, v: &Version) -> PathBuf {
    dir.join(format!("{}.{}", v.id, if v.null { NULL_SUFFIX } else { OBJECT_SUFFIX }))
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// Removes a file; gone already is fine.
fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if !not_found(&e) => Err(StoreError::io(format!("cannot remove {}", path.display()))(e)),
        _ => Ok(()),
    }
}

/// The record and version of an object file (the null version's if it has none), or
/// `None` if there is no such file.
fn read_version(path: &Path) -> Result<Option<(Version, Vec<u8>)>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(StoreError::io(format!("cannot open {}", path.display()))(e)),
    };
    let t = FsStore::read_record(&file, path)?;
    Ok(Some((t.version.unwrap_or_else(Version::unversioned), t.record)))
}

/// The version of an object file (the null version's if it has none) from one read of its
/// end, or `None` if there is no such file.
fn version_of(path: &Path) -> Result<Option<Version>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(StoreError::io(format!("cannot open {}", path.display()))(e)),
    };
    let len = file.metadata().map_err(StoreError::io(format!("cannot stat {}", path.display())))?.len();
    let mut end = [0u8; super::VERSION_BLOCK + super::TRAILER];
    let n = end.len().min(usize::try_from(len).unwrap_or(end.len()));
    let at = len - n as u64;
    let from = end.len() - n;
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut end[from..], at)
        .map_err(StoreError::io(format!("cannot read {}", path.display())))?;
    let magic = &end[end.len() - 8..];
    if magic == super::MAGIC {
        return Ok(Some(Version::unversioned()));
    }
    if magic != super::MAGIC_VERSIONED || n < end.len() {
        return Err(StoreError::Corrupt {
            path: path.display().to_string(),
            reason: "no metadata trailer".into(),
        });
    }
    FsStore::version_block(&end[..super::VERSION_BLOCK], path).map(Some)
}

/// The annex kept beside the object file `path`, if its bucket may have any (not
/// `untagged`) and it has one.
pub(super) fn read_annex(path: &Path, untagged: bool) -> Result<Option<Vec<u8>>, StoreError> {
    if untagged {
        return Ok(None);
    }
    let annex = path.with_extension(TAGS_SUFFIX);
    match fs::read(&annex) {
        Ok(t) => Ok(Some(t)),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(StoreError::io(format!("cannot read {}", annex.display()))(e)),
    }
}

/// The noncurrent versions in `dir`, newest first, by their file names.
fn noncurrent(dir: &Path) -> Result<Vec<(Version, PathBuf)>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(format!("cannot list {}", dir.display()))(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(StoreError::io(format!("cannot list {}", dir.display())))?;
        let name = entry.file_name();
        let Some((id, suffix)) = name.to_str().and_then(|n| n.split_once('.')) else { continue };
        let null = match suffix {
            NULL_SUFFIX => true,
            OBJECT_SUFFIX => false,
            _ => continue,
        };
        if let Some(v) = Version::from_parts(id, u8::from(null)) {
            out.push((v, entry.path()));
        }
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(out)
}

/// Moves (by a hard link: the current file stays until it is replaced) the current
/// version `v` of `target` into `dir`, with its annex if it has one.
fn keep_noncurrent(target: &Path, dir: &Path, v: &Version) -> Result<(), StoreError> {
    super::mkdirs(dir)?;
    let to = archived(dir, v);
    match fs::hard_link(target, &to) {
        Ok(()) => {}
        // Left by a commit that crashed after this step.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StoreError::io(format!("cannot keep {} as a version", target.display()))(e)),
    }
    let tags = target.with_extension(TAGS_SUFFIX);
    let tags_to = to.with_extension(TAGS_SUFFIX);
    match fs::hard_link(&tags, &tags_to) {
        Err(e) if !not_found(&e) && e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(StoreError::io(format!("cannot keep {}", tags.display()))(e));
        }
        _ => {}
    }
    sync_dir(dir);
    Ok(())
}

/// Removes a noncurrent version's file and annex, and its directory once empty.
fn drop_noncurrent(path: &Path) -> Result<(), StoreError> {
    remove(&path.with_extension(TAGS_SUFFIX))?;
    remove(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
        // Fails while other versions are in it.
        let _ = fs::remove_dir(dir);
    }
    Ok(())
}

/// Commits `tmp` as version `v` of the key whose object file is `target` (under the key's
/// lock): the current version is kept as noncurrent, unless both are null versions; a
/// noncurrent null version the new one replaces is removed. Returns the replaced null
/// version's record. The annexes are moved whatever the bucket's `untagged` flag said when
/// the write began: an annex written since (a retention) must not be left behind.
pub(super) fn install(
    tmp: tempfile::NamedTempFile,
    record: &[u8],
    v: &Version,
    target: &Path,
    objects: &Path,
) -> Result<Option<Vec<u8>>, StoreError> {
    let dir = versions_dir(target);
    let current = version_of(target)?;
    let mut removed = None;
    match &current {
        Some(c) if c.null && v.null => removed = read_version(target)?.map(|(_, r)| r),
        Some(c) => keep_noncurrent(target, &dir, c)?,
        None => {}
    }
    place(tmp, record, Some(v), target, Some(objects))?;
    // The annex of the version replaced (kept with it, if it was kept).
    remove(&target.with_extension(TAGS_SUFFIX))?;
    // Only a null version replaces one in the directory (a listing there costs a read of
    // every name).
    let others = if v.null { noncurrent(&dir)? } else { Vec::new() };
    for (old, path) in others {
        let stale_copy = current.as_ref().is_some_and(|c| c.id == old.id && !(c.null && v.null));
        if v.null && old.null && !stale_copy {
            if removed.is_none() {
                removed = read_version(&path)?.map(|(_, r)| r);
            }
            drop_noncurrent(&path)?;
        }
    }
    Ok(removed)
}

impl FsStore {
    /// [`VersionStore::list_versions`], blocking.
    pub(super) fn versions_page(
        &self,
        bucket: &str,
        page: Page<'_, VersionCursor>,
    ) -> Result<Vec<ListedVersion>> {
        let Page { prefix, after, limit } = page;
        let (dir, known) = self.known_bucket(bucket)?;
        let objects = dir.join("objects");
        let hex_prefix = keypath::hex(prefix.as_bytes());
        let start = after.map(|a| keypath::hex(a.key.as_bytes()));
        let resume_in = after.and_then(|a| a.after_id.as_ref().map(|id| (a.key.as_str(), id.as_str())));
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.walk(&objects, "", &hex_prefix, start.as_deref(), resume_in.is_some(), &mut |key, path| {
            let Some((current, record)) = read_version(&path)? else { return Ok(true) };
            // By name only, so that resuming deep in a key's versions reads no other file.
            let others: Vec<(Version, PathBuf)> =
                noncurrent(&versions_dir(&path))?.into_iter().filter(|(v, _)| v.id != current.id).collect();
            let skip_others = match resume_in {
                Some((k, id)) if k == key && id != current.id.as_str() => {
                    match others.iter().position(|(v, _)| v.id.as_str() == id) {
                        Some(i) => i + 1,
                        // Gone meanwhile: after where it was.
                        None => others.iter().take_while(|(v, _)| v.id.as_str() < id).count(),
                    }
                }
                _ => 0,
            };
            if resume_in.is_none_or(|(k, _)| k != key) {
                let annex = read_annex(&path, known.untagged())?;
                out.push(ListedVersion { key: key.clone(), version: current, latest: true, record, annex });
            }
            for (v, p) in others.into_iter().skip(skip_others) {
                if out.len() >= limit {
                    return Ok(false);
                }
                if let Some((stored, record)) = read_version(&p)? {
                    // The name says id and nullness; the trailer whether it is a marker.
                    let version = Version { marker: stored.marker, ..v };
                    let annex = read_annex(&p, known.untagged())?;
                    out.push(ListedVersion { key: key.clone(), version, latest: false, record, annex });
                }
            }
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }
}

#[async_trait::async_trait]
impl VersionStore for FsStore {
    async fn get_version(&self, bucket: &str, key: &str, wanted: &Wanted) -> Result<StoredObject> {
        let (target, known) = self.object_in(bucket, key)?;
        let no_such = || wanted.missing(bucket, key);
        // Which version is current: one read of the file's end (GET reads the rest).
        match version_of(&target)? {
            Some(c) if c.is(wanted) => match self.current(bucket, key) {
                // Unless a commit made it noncurrent meanwhile (it is then in `.v/`: a
                // commit keeps the current file there before it replaces it).
                Ok(o) if o.version.clone().unwrap_or_else(Version::unversioned).is(wanted) => return Ok(o),
                Ok(_) | Err(StoreError::NoSuchKey { .. }) => {}
                Err(e) => return Err(e),
            },
            Some(_) => {}
            None => return Err(no_such()),
        }
        let path = noncurrent(&versions_dir(&target))?
            .into_iter()
            .find(|(v, _)| v.is(wanted))
            .map(|(_, path)| path)
            .ok_or_else(no_such)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if not_found(&e) => return Err(no_such()),
            Err(e) => return Err(StoreError::io(format!("cannot open {}", path.display()))(e)),
        };
        let named = Version::from_parts(
            path.file_stem().and_then(|s| s.to_str()).unwrap_or_default(),
            u8::from(path.extension().is_some_and(|e| e == NULL_SUFFIX)),
        );
        let (record, body, version) = Self::open_object(file, &path)?;
        let annex = read_annex(&path, known.untagged())?;
        // Where it is filed says which version it is (the object layer checks that its
        // record agrees); the trailer whether it is a marker.
        let marker = version.is_some_and(|v| v.marker);
        let version = named.map(|v| Version { marker, ..v });
        Ok(StoredObject { record, body: Box::new(body), annex, version })
    }

    /// [`crate::VersionStore::set_annex`], under the key's lock.
    async fn set_annex(&self, bucket: &str, key: &str, edit: AnnexEdit<'_>) -> Result<()> {
        let AnnexEdit { at, change } = edit;
        // In place: `change` is the caller's borrowed closure (tags, retention, ACLs and
        // legal holds are set far less often than objects are written).
        in_place(|| {
            let (target, known) = self.object_in(bucket, key)?;
            let _key = self.locks.lock(&target);
            let missing = || match at {
                Some(w) => w.missing(bucket, key),
                None => StoreError::NoSuchKey { bucket: bucket.to_owned(), key: key.to_owned() },
            };
            let (path, record) = match (read_version(&target)?, at) {
                (None, _) => return Err(missing()),
                (Some((_, record)), None) => (target, record),
                (Some((c, record)), Some(w)) if c.is(w) => (target, record),
                (Some((c, _)), Some(w)) => {
                    let path = noncurrent(&versions_dir(&target))?
                        .into_iter()
                        .find(|(v, _)| v.is(w) && v.id != c.id)
                        .map(|(_, path)| path)
                        .ok_or_else(missing)?;
                    (path.clone(), read_version(&path)?.ok_or_else(missing)?.1)
                }
            };
            let annex_path = path.with_extension(TAGS_SUFFIX);
            let Some(annex) = change(&record, read_annex(&path, known.untagged())?.as_deref())? else {
                return remove(&annex_path);
            };
            if known.untagged() {
                self.mark_tagged(bucket, &known)?;
            }
            let mut tmp = self.temp()?;
            std::io::Write::write_all(tmp.as_file_mut(), &annex)
                .map_err(StoreError::io("cannot write an annex"))?;
            tmp.as_file().sync_all().map_err(StoreError::io("cannot flush an annex"))?;
            // Under the key's lock no versioned change moves the file; an unversioned delete
            // racing this may leave an annex behind, which names the record it belongs to, so
            // it never applies to another object, and the next delete of the key removes it.
            if !path.exists() {
                return Err(missing());
            }
            tmp.persist(&annex_path)
                .map_err(|e| StoreError::io("cannot move an annex into place")(e.error))?;
            if let Some(parent) = annex_path.parent() {
                sync_dir(parent);
            }
            Ok(())
        })
    }

    async fn delete_version(&self, bucket: &str, key: &str, removal: Removal<'_>) -> Result<Removed> {
        let Removal { wanted, allow } = removal;
        // In place: `allow` is the caller's borrowed closure (a version removed by id or
        // by lifecycle, not the unversioned DELETE of the hot path).
        in_place(|| {
            let (target, known) = self.object_in(bucket, key)?;
            let objects = self.existing_bucket(bucket)?.join("objects");
            let _key = self.locks.lock(&target);
            let dir = versions_dir(&target);
            let Some((current, record)) = read_version(&target)? else { return Ok(None) };
            let others = noncurrent(&dir)?;
            if !current.is(wanted) {
                let Some((v, path)) = others.into_iter().find(|(v, _)| v.is(wanted) && v.id != current.id)
                else {
                    return Ok(None);
                };
                let Some((stored, record)) = read_version(&path)? else { return Ok(None) };
                allow(&record, read_annex(&path, known.untagged())?.as_deref())?;
                drop_noncurrent(&path)?;
                // The name says id and nullness; the trailer whether it is a marker.
                return Ok(Some((Version { marker: stored.marker, ..v }, record)));
            }
            allow(&record, read_annex(&target, known.untagged())?.as_deref())?;
            // The current version goes: the newest other one takes its place in one rename.
            let mut promoted = false;
            for (v, path) in others {
                if v.id == current.id {
                    drop_noncurrent(&path)?;
                    continue;
                }
                if promoted {
                    break;
                }
                let tags = path.with_extension(TAGS_SUFFIX);
                match fs::rename(&tags, target.with_extension(TAGS_SUFFIX)) {
                    Err(e) if not_found(&e) => remove(&target.with_extension(TAGS_SUFFIX))?,
                    Err(e) => return Err(StoreError::io(format!("cannot move {}", tags.display()))(e)),
                    Ok(()) => {}
                }
                fs::rename(&path, &target)
                    .map_err(StoreError::io(format!("cannot move {}", path.display())))?;
                promoted = true;
            }
            if promoted {
                sync_dir(&dir);
                let _ = fs::remove_dir(&dir);
            } else {
                remove(&target.with_extension(TAGS_SUFFIX))?;
                remove(&target)?;
                let _ = fs::remove_dir(&dir);
                if let Some(parent) = target.parent() {
                    sync_dir(parent);
                    Self::prune(parent, &objects);
                }
                return Ok(Some((current, record)));
            }
            if let Some(parent) = target.parent() {
                sync_dir(parent);
            }
            Ok(Some((current, record)))
        })
    }

    async fn list_versions(&self, bucket: &str, page: Page<'_, VersionCursor>) -> Result<Vec<ListedVersion>> {
        let Page { prefix, after, limit } = page;
        let (bucket, prefix, after) = (bucket.to_owned(), prefix.to_owned(), after.cloned());
        self.run(move |this| this.versions_page(&bucket, Page::new(&prefix, after.as_ref(), limit))).await
    }
}
