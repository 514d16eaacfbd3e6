//! Changes to a stored version that leave its record and bytes alone: its tags, its
//! Object Lock retention and legal hold (kept in its annex, [`super::annex`]), each made
//! atomically against other changes of the same version; and the removal of a version,
//! which Object Lock may refuse. The rules are [`super::lock`]'s.

use super::annex::{self, Annex};
use super::error::ObjectError;
use super::lock::{self, Lock, Retention};
use super::objects::Objects;
use super::record::ObjectRecord;
use super::tags::TagSet;
use super::versions::{Deleted, wanted};
use store::{AnnexEdit, Removal, StoreError, Wanted};

/// How a removal meets Object Lock: `None` in a bucket without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// The request bypasses governance retention.
    pub bypass: bool,
}

impl Objects {
    /// Applies `f` to the annex of a version of `key` (the current one if `version_id` is
    /// `None`), given the version's record; returns the version's id as S3 shows it
    /// (`None`: the null version).
    pub(crate) async fn amend(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        mut f: impl FnMut(&ObjectRecord, &mut Annex) -> Result<(), ObjectError> + Send,
    ) -> Result<Option<String>, ObjectError> {
        let wanted = version_id.map(|v| wanted(bucket, key, v)).transpose()?;
        let mut why = None;
        let mut shown = None;
        let mut change = |record: &[u8], kept: Option<&[u8]>| {
            let mut amended = || {
                let opened = Self::open_record(record, key)?;
                let r = opened.unchecked();
                if let Some(Wanted::Id(id)) = &wanted
                    && r.version_id.as_ref() != Some(id)
                {
                    return Err(ObjectError::Integrity(format!(
                        "the record filed as version {id:?} of {key:?} names another"
                    )));
                }
                if r.is_delete_marker() {
                    return Err(ObjectError::DeleteMarker { named: wanted.is_some() });
                }
                let mut annex = annex::decode(record, kept)?;
                f(r, &mut annex)?;
                shown = Some(r.version_id.clone());
                annex::encode(record, &annex)
            };
            amended().map_err(|e| {
                why = Some(e);
                StoreError::Refused
            })
        };
        match self.store.set_annex(bucket, key, AnnexEdit { at: wanted.as_ref(), change: &mut change }).await
        {
            Ok(()) => Ok(shown.flatten().map(|v| v.to_string())),
            Err(StoreError::Refused) => Err(why.unwrap_or(ObjectError::Store(StoreError::Refused))),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the tags of a version (PutObjectTagging; an empty set is DeleteObjectTagging).
    pub async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &TagSet,
    ) -> Result<Option<String>, ObjectError> {
        self.amend(bucket, key, version_id, |_, annex| {
            annex.tags = Some(tags.clone());
            Ok(())
        })
        .await
    }

    /// Sets (or, `None`, removes) the retention of a version (PutObjectRetention): refused
    /// as [`lock::may_change`] says. `bypass`: the request bypasses governance retention.
    pub async fn set_retention(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        retention: Option<Retention>,
        bypass: bool,
    ) -> Result<Option<String>, ObjectError> {
        let now = base::clock::now_unix_ms();
        self.amend(bucket, key, version_id, |record, annex| {
            let mut state: Lock = annex.lock.unwrap_or(record.lock);
            lock::may_change(state.retention.as_ref(), retention.as_ref(), now, bypass)?;
            state.retention = retention;
            annex.lock = Some(state);
            Ok(())
        })
        .await
    }

    /// Replaces the ACL of a version (PutObjectAcl).
    pub async fn set_acl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl: &iam::acl::Acl,
    ) -> Result<Option<String>, ObjectError> {
        self.amend(bucket, key, version_id, |_, annex| {
            annex.acl = Some(acl.clone());
            Ok(())
        })
        .await
    }

    /// Turns the legal hold of a version on or off (PutObjectLegalHold).
    pub async fn set_legal_hold(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        on: bool,
    ) -> Result<Option<String>, ObjectError> {
        self.amend(bucket, key, version_id, |record, annex| {
            let mut state: Lock = annex.lock.unwrap_or(record.lock);
            state.legal_hold = Some(on);
            annex.lock = Some(state);
            Ok(())
        })
        .await
    }

    /// Removes one version of `key` for good (a version that is not there is no error,
    /// as in S3), unless Object Lock keeps it (`guard`: the bucket has Object Lock; the
    /// check is made under the same lock or transaction as the removal). Blocking.
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        guard: Option<Guard>,
    ) -> Result<Deleted, ObjectError> {
        let wanted = match wanted(bucket, key, version_id) {
            // As S3: removing a version that is not there removes nothing, and succeeds.
            Err(ObjectError::Store(StoreError::NoSuchVersion { .. })) => {
                return Ok(Deleted { version_id: Some(version_id.to_owned()), marker: false });
            }
            other => other?,
        };
        let now = base::clock::now_unix_ms();
        let mut why = None;
        let mut allow = |record: &[u8], kept: Option<&[u8]>| {
            let Some(guard) = guard else { return Ok(()) };
            let judged = || {
                let opened = Self::open_record(record, key)?;
                let state = annex::decode(record, kept)?.lock.unwrap_or(opened.unchecked().lock);
                Ok(lock::may_remove(&state, now, guard.bypass)?)
            };
            judged().map_err(|e: ObjectError| {
                why = Some(e);
                StoreError::Refused
            })
        };
        let removed = match self
            .store
            .delete_version(bucket, key, Removal { wanted: &wanted, allow: &mut allow })
            .await
        {
            Err(StoreError::Refused) => return Err(why.unwrap_or(ObjectError::Store(StoreError::Refused))),
            other => other?,
        };
        Ok(Deleted {
            version_id: Some(version_id.to_owned()),
            marker: removed.is_some_and(|(v, _)| v.marker),
        })
    }
}
