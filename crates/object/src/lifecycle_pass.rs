//! One pass of a bucket's lifecycle rules: it walks the versions of the keys the rules
//! cover and the bucket's multipart uploads, and does what the rules say is due:
//! - a current version whose Expiration has come is removed (a bucket that never kept
//!   versions) or hidden under a new delete marker (one that keeps them);
//! - a noncurrent version is removed once NoncurrentDays have passed since it became
//!   noncurrent, except the NewerNoncurrentVersions newest;
//! - a version whose Transition (or NoncurrentVersionTransition) has come gets that storage
//!   class, kept in its annex (the bytes stay where they are: every class is read at
//!   once);
//! - a delete marker left with no other version is removed (ExpiredObjectDeleteMarker, or
//!   an Expiration in days once the marker is that old, as AWS does);
//! - an upload older than DaysAfterInitiation is aborted and its parts freed.
//!
//! A pass follows the rules it started with while they are the bucket's: it looks again
//! every [`RECHECK`] actions and at every listing page, and stops when they were changed
//! or deleted (the next pass applies the new ones).
//!
//! Each action is one store operation (a removal, a commit, an abort), atomic on its own:
//! a pass killed at any point leaves every object whole, and the next pass does what is
//! still due. A removal is checked in the same store operation against what was judged
//! (the same record) and against Object Lock (never bypassed): a version under retention
//! or legal hold is kept and counted.

use std::collections::BTreeSet;

use crate::annex;
use crate::bucket::{BucketRecord, Versioning};
use crate::error::ObjectError;
use crate::lifecycle::{Day, Expiration, Lifecycle, Rule, When};
use crate::lock;
use crate::objects::Objects;
use crate::tags::TagSet;
use crate::versions::{ListedVersion, wanted};
use store::{Removal, StoreError};

/// Versions read per listing page.
const PAGE: usize = 1000;
/// Actions between two looks at whether the bucket's rules are still the ones applied.
const RECHECK: u32 = 64;

/// What a pass did to one version or upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A current version removed (a bucket that never kept versions).
    Expired,
    /// A delete marker made over an expired current version.
    MarkerMade,
    /// A delete marker with no other version left removed.
    MarkerRemoved,
    /// A noncurrent version removed.
    NoncurrentRemoved,
    /// An unfinished multipart upload aborted.
    UploadAborted,
    /// A version due for removal kept: Object Lock keeps it.
    KeptLocked,
    /// A version moved to another storage class.
    Transitioned,
}

impl Action {
    /// Its name in the audit trail and in /metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::MarkerMade => "delete_marker_made",
            Self::MarkerRemoved => "delete_marker_removed",
            Self::NoncurrentRemoved => "noncurrent_removed",
            Self::UploadAborted => "upload_aborted",
            Self::KeptLocked => "kept_locked",
            Self::Transitioned => "transitioned",
        }
    }

    /// Every action, in a fixed order.
    pub const ALL: [Action; 7] = [
        Self::Expired,
        Self::MarkerMade,
        Self::MarkerRemoved,
        Self::NoncurrentRemoved,
        Self::UploadAborted,
        Self::KeptLocked,
        Self::Transitioned,
    ];
}

/// One thing a pass did, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What.
    pub action: Action,
    /// The bucket.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// The version concerned (made, removed or kept), or the upload id.
    pub id: Option<String>,
    /// The rule that asked for it.
    pub rule: String,
}

/// What a pass did, by action, and how many versions and uploads it looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Versions and uploads looked at.
    pub scanned: u64,
    /// Actions, in the order of [`Action::ALL`].
    pub actions: [u64; Action::ALL.len()],
}

impl Counts {
    /// How many times `action` was done.
    pub fn of(&self, action: Action) -> u64 {
        self.actions[action as usize]
    }

    fn note(&mut self, action: Action) {
        self.actions[action as usize] += 1;
    }
}

/// Paces a pass so it never starves requests, and stops it when it must.
#[async_trait::async_trait]
pub trait Pacer: Send + Sync {
    /// Waits before the next store operation; false when the pass is to stop (the
    /// process is shutting down, or another gateway took the work over).
    async fn next(&self) -> bool;
    /// Hears of one thing done (the audit trail, /metrics).
    fn done(&self, event: &Event);
}

/// A pass over one bucket.
struct Pass<'a> {
    objects: &'a Objects,
    bucket: &'a BucketRecord,
    lifecycle: &'a Lifecycle,
    rules: Vec<&'a Rule>,
    since_check: u32,
    now: u64,
    day: Day,
    pacer: &'a dyn Pacer,
    counts: Counts,
    stopped: bool,
}

impl Objects {
    /// Applies `bucket`'s lifecycle rules as of `now` (Unix seconds) with days of `day`;
    /// returns what it did. Stops early, with what it did so far, when `pacer` says so.
    pub async fn lifecycle_pass(
        &self,
        bucket: &BucketRecord,
        lifecycle: &Lifecycle,
        now: u64,
        day: Day,
        pacer: &dyn Pacer,
    ) -> Result<Counts, ObjectError> {
        let mut pass = Pass {
            objects: self,
            bucket,
            lifecycle,
            rules: lifecycle.enabled().collect(),
            since_check: 0,
            now,
            day,
            pacer,
            counts: Counts::default(),
            stopped: false,
        };
        if pass.rules.iter().any(|r| r.walks()) {
            for prefix in prefixes(&pass.rules) {
                pass.walk(&prefix).await?;
            }
        }
        if pass.rules.iter().any(|r| r.abort_after_days.is_some()) && !pass.stopped {
            pass.uploads().await?;
        }
        Ok(pass.counts)
    }
}

/// The prefixes to walk so that every key a rule with a version action covers is seen
/// once: the rules' prefixes without those another one covers.
fn prefixes(rules: &[&Rule]) -> Vec<String> {
    let all: BTreeSet<&str> = rules.iter().filter(|r| r.walks()).map(|r| r.filter.prefix()).collect();
    let mut kept: Vec<String> = Vec::new();
    for p in all {
        if !kept.iter().any(|k| p.starts_with(k.as_str())) {
            kept.push(p.to_owned());
        }
    }
    kept
}

impl Pass<'_> {
    async fn go_on(&mut self) -> bool {
        if !self.stopped && !self.pacer.next().await {
            self.stopped = true;
        }
        self.since_check += 1;
        if !self.stopped && self.since_check >= RECHECK {
            self.recheck().await;
        }
        !self.stopped
    }

    /// Stops the pass if the bucket's rules are no longer the ones it applies (changed,
    /// deleted, or the bucket gone).
    async fn recheck(&mut self) {
        self.since_check = 0;
        let current = self.objects.bucket(&self.bucket.name).await;
        if !current.is_ok_and(|b| b.lifecycle.as_ref() == Some(self.lifecycle)) {
            self.stopped = true;
        }
    }

    fn record(&mut self, action: Action, key: &str, id: Option<String>, rule: &str) {
        self.counts.note(action);
        self.pacer.done(&Event {
            action,
            bucket: self.bucket.name.clone(),
            key: key.to_owned(),
            id,
            rule: rule.to_owned(),
        });
    }

    /// Walks the versions under `prefix`, a key at a time (a key's versions may span
    /// pages: they are gathered first; the listing resumes after the last version read,
    /// which belongs to a key not yet acted on).
    async fn walk(&mut self, prefix: &str) -> Result<(), ObjectError> {
        let mut after: Option<(String, String)> = None;
        let mut gathered: Vec<ListedVersion> = Vec::new();
        loop {
            self.recheck().await;
            if !self.go_on().await {
                return Ok(());
            }
            let (key_marker, version_marker) = match &after {
                Some((k, v)) => (Some(k.as_str()), Some(v.as_str())),
                None => (None, None),
            };
            let page = self
                .objects
                .list_versions(&self.bucket.name, prefix, key_marker, version_marker, PAGE)
                .await?;
            let full = page.len() == PAGE;
            after = page.last().map(|v| (v.key.clone(), v.version_id.clone()));
            for v in page {
                if gathered.first().is_some_and(|g| g.key != v.key) {
                    let versions = std::mem::take(&mut gathered);
                    self.key(versions).await?;
                    if self.stopped {
                        return Ok(());
                    }
                }
                gathered.push(v);
            }
            if !full {
                break;
            }
        }
        if !gathered.is_empty() {
            self.key(gathered).await?;
        }
        Ok(())
    }

    /// Acts on one key's versions (current first, then the others newest first).
    async fn key(&mut self, versions: Vec<ListedVersion>) -> Result<(), ObjectError> {
        self.counts.scanned += versions.len() as u64;
        let Some(first) = versions.first() else { return Ok(()) };
        let key = first.key.clone();
        let rules: Vec<&Rule> =
            self.rules.iter().copied().filter(|r| key.starts_with(r.filter.prefix())).collect();
        if rules.is_empty() {
            return Ok(());
        }
        let current = versions.iter().find(|v| v.latest).cloned();
        // Noncurrent versions, newest first, each with when it became noncurrent (when
        // the version above it was written).
        let mut left = 0usize;
        let mut noncurrent_index = 0u32;
        for (i, v) in versions.iter().enumerate() {
            if v.latest {
                continue;
            }
            let since = versions[..i].last().map_or(v.last_modified, |above| above.last_modified);
            let index = noncurrent_index;
            noncurrent_index += 1;
            let due = self.noncurrent_due(&rules, v, since, index).await?;
            match due {
                Some(rule) => {
                    if !self.go_on().await {
                        return Ok(());
                    }
                    match self.remove(v, v.marker).await? {
                        Removed::Yes => {
                            self.record(Action::NoncurrentRemoved, &key, Some(v.version_id.clone()), &rule)
                        }
                        Removed::Locked => {
                            left += 1;
                            self.record(Action::KeptLocked, &key, Some(v.version_id.clone()), &rule);
                        }
                        Removed::Changed => left += 1,
                    }
                }
                None => {
                    left += 1;
                    if let Some((rule, class)) = self.noncurrent_class(&rules, v, since, index).await? {
                        self.move_to(v, &class, &rule).await?;
                    }
                }
            }
        }
        let Some(current) = current else { return Ok(()) };
        if current.marker {
            // A delete marker with nothing under it any more: removed by
            // ExpiredObjectDeleteMarker, or (as AWS does) by an Expiration in days once the
            // marker is that old. A marker has no tags: rules that filter on tags skip it.
            let rule = rules.iter().find(|r| match r.expiration {
                Some(Expiration::DeleteMarker) => true,
                Some(Expiration::Days(d)) => {
                    !r.filter.has_tags()
                        && r.filter.matches_key(&key, 0)
                        && self.day.after(current.last_modified, d) <= self.now
                }
                _ => false,
            });
            if let Some(rule) = rule
                && left == 0
                && self.go_on().await
                && self.remove(&current, true).await? == Removed::Yes
            {
                let id = rule.id.clone();
                self.record(Action::MarkerRemoved, &key, Some(current.version_id.clone()), &id);
            }
            return Ok(());
        }
        let mut due = None;
        for r in rules.iter().filter(|r| r.filter.matches_key(&key, current.size)) {
            let Some(at) = r.expires_at(current.last_modified, self.day) else { continue };
            if at > self.now {
                continue;
            }
            if r.filter.has_tags() && !r.filter.matches_tags(&self.tags(&current).await?) {
                continue;
            }
            due = Some(r.id.clone());
            break;
        }
        let Some(rule) = due else {
            if let Some((rule, class)) = self.current_class(&rules, &current).await? {
                self.move_to(&current, &class, &rule).await?;
            }
            return Ok(());
        };
        if !self.go_on().await {
            return Ok(());
        }
        if self.bucket.versioning == Versioning::Off {
            if self.remove(&current, false).await? == Removed::Yes {
                self.record(Action::Expired, &key, None, &rule);
            }
        } else {
            let made = self.objects.delete_in(&self.bucket.name, &key, self.bucket.versioning).await?;
            self.record(Action::MarkerMade, &key, made.version_id, &rule);
        }
        Ok(())
    }

    /// Whether rule `r`'s filter takes in version `v` (its tags read once, into `tags`,
    /// when a filter needs them; a delete marker has none).
    async fn takes_in(
        &self,
        r: &Rule,
        v: &ListedVersion,
        tags: &mut Option<TagSet>,
    ) -> Result<bool, ObjectError> {
        if !r.filter.matches_key(&v.key, v.size) {
            return Ok(false);
        }
        if !r.filter.has_tags() {
            return Ok(true);
        }
        if v.marker {
            return Ok(false);
        }
        if tags.is_none() {
            *tags = Some(self.tags(v).await?);
        }
        Ok(tags.as_ref().is_some_and(|t| r.filter.matches_tags(t)))
    }

    /// The class the current version `v` is due to have now, and the rule that says so,
    /// if that is not its class already.
    async fn current_class(
        &self,
        rules: &[&Rule],
        v: &ListedVersion,
    ) -> Result<Option<(String, String)>, ObjectError> {
        let candidates = rules
            .iter()
            .flat_map(|r| r.transitions.iter().map(move |t| (r, t)))
            .map(|(r, t)| {
                let at = match t.when {
                    When::Days(d) => self.day.after(v.last_modified, d),
                    When::Date(at) => at,
                };
                (at, *r, t.class.as_str())
            })
            .collect();
        self.due_class(v, candidates).await
    }

    /// As [`Pass::current_class`], for noncurrent version `v` (noncurrent since `since`,
    /// the `index`-th newest noncurrent version).
    async fn noncurrent_class(
        &self,
        rules: &[&Rule],
        v: &ListedVersion,
        since: u64,
        index: u32,
    ) -> Result<Option<(String, String)>, ObjectError> {
        if v.marker {
            return Ok(None);
        }
        let candidates = rules
            .iter()
            .flat_map(|r| r.noncurrent_transitions.iter().map(move |t| (r, t)))
            .filter(|(_, t)| index >= t.newer.unwrap_or(0))
            .map(|(r, t)| (self.day.after(since, t.days), *r, t.class.as_str()))
            .collect();
        self.due_class(v, candidates).await
    }

    /// Of the transitions `candidates` (when each comes, its rule, its class), the latest
    /// that has come and whose rule takes `v` in: its rule's id and class, unless `v` has
    /// that class already.
    async fn due_class(
        &self,
        v: &ListedVersion,
        candidates: Vec<(u64, &Rule, &str)>,
    ) -> Result<Option<(String, String)>, ObjectError> {
        let mut tags = None;
        let mut best: Option<(u64, &Rule, &str)> = None;
        for (at, r, class) in candidates {
            if at > self.now || best.is_some_and(|(b, ..)| b >= at) {
                continue;
            }
            if self.takes_in(r, v, &mut tags).await? {
                best = Some((at, r, class));
            }
        }
        Ok(best
            .filter(|(_, _, class)| v.storage_class.as_deref() != Some(*class))
            .map(|(_, r, class)| (r.id.clone(), class.to_owned())))
    }

    /// Gives version `v` storage class `class` (in its annex), if it is still the version
    /// listed.
    async fn move_to(&mut self, v: &ListedVersion, class: &str, rule: &str) -> Result<(), ObjectError> {
        if !self.go_on().await {
            return Ok(());
        }
        let named = (self.bucket.versioning != Versioning::Off).then_some(v.version_id.as_str());
        let mut moved = false;
        let result = self
            .objects
            .amend(&self.bucket.name, &v.key, named, |r, annex| {
                moved = r.last_modified == v.last_modified && r.etag == v.etag;
                if moved {
                    annex.storage_class = Some(class.to_owned());
                }
                Ok(())
            })
            .await;
        match result {
            Ok(_) if moved => {
                let id = named.map(str::to_owned);
                self.record(Action::Transitioned, &v.key, id, rule);
                Ok(())
            }
            Ok(_) => Ok(()),
            // Gone, or a delete marker now, since it was listed: nothing to move.
            Err(ObjectError::Store(StoreError::NoSuchKey { .. } | StoreError::NoSuchVersion { .. }))
            | Err(ObjectError::DeleteMarker { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The rule that removes noncurrent version `v` now (noncurrent since `since`, the
    /// `index`-th newest noncurrent version), if one does.
    async fn noncurrent_due(
        &mut self,
        rules: &[&Rule],
        v: &ListedVersion,
        since: u64,
        index: u32,
    ) -> Result<Option<String>, ObjectError> {
        let mut tags = None;
        for r in rules {
            let Some(n) = r.noncurrent else { continue };
            if index < n.newer.unwrap_or(0) || self.day.after(since, n.days) > self.now {
                continue;
            }
            if !r.filter.matches_key(&v.key, v.size) {
                continue;
            }
            if r.filter.has_tags() {
                if v.marker {
                    continue;
                }
                if tags.is_none() {
                    tags = Some(self.tags(v).await?);
                }
                if !tags.as_ref().is_some_and(|t| r.filter.matches_tags(t)) {
                    continue;
                }
            }
            return Ok(Some(r.id.clone()));
        }
        Ok(None)
    }

    /// The tags of a version now.
    async fn tags(&self, v: &ListedVersion) -> Result<TagSet, ObjectError> {
        match self.objects.get_version(&self.bucket.name, &v.key, &v.version_id).await {
            Ok(f) => Ok(f.tags().clone()),
            Err(ObjectError::Store(StoreError::NoSuchVersion { .. } | StoreError::NoSuchKey { .. })) => {
                Ok(TagSet::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes version `v` for good if it is still the version listed (same record
    /// time and ETag; `marker`: still a delete marker) and Object Lock lets it go.
    async fn remove(&self, v: &ListedVersion, marker: bool) -> Result<Removed, ObjectError> {
        let key = v.key.as_str();
        let target = match wanted(&self.bucket.name, key, &v.version_id) {
            Ok(w) => w,
            Err(ObjectError::Store(StoreError::NoSuchVersion { .. })) => return Ok(Removed::Changed),
            Err(e) => return Err(e),
        };
        let locked = self.bucket.object_lock.is_some();
        let now_ms = base::clock::now_unix_ms();
        let mut verdict = Removed::Yes;
        let mut failure = None;
        let mut allow = |record: &[u8], kept: Option<&[u8]>| {
            let judged = || -> Result<Removed, ObjectError> {
                let opened = Objects::open_record(record, key)?;
                let r = opened.unchecked();
                if r.last_modified != v.last_modified || r.etag != v.etag || r.is_delete_marker() != marker {
                    return Ok(Removed::Changed);
                }
                if locked {
                    let state = annex::decode(record, kept)?.lock.unwrap_or(r.lock);
                    if lock::may_remove(&state, now_ms, false).is_err() {
                        return Ok(Removed::Locked);
                    }
                }
                Ok(Removed::Yes)
            };
            match judged() {
                Ok(Removed::Yes) => Ok(()),
                Ok(other) => {
                    verdict = other;
                    Err(StoreError::Refused)
                }
                Err(e) => {
                    failure = Some(e);
                    Err(StoreError::Refused)
                }
            }
        };
        let result = self
            .objects
            .store
            .delete_version(&self.bucket.name, key, Removal { wanted: &target, allow: &mut allow })
            .await;
        match result {
            Ok(Some(_)) => Ok(verdict),
            Ok(None) => Ok(Removed::Changed),
            Err(StoreError::Refused) => match failure {
                Some(e) => Err(e),
                None => Ok(verdict),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Aborts the uploads the rules say are stale.
    async fn uploads(&mut self) -> Result<(), ObjectError> {
        let uploads = self.objects.list_uploads(&self.bucket.name).await?;
        for u in uploads {
            self.counts.scanned += 1;
            let due = self.rules.iter().find(|r| {
                r.abort_after_days.is_some_and(|d| self.day.after(u.initiated, d) <= self.now)
                    && u.key.starts_with(r.filter.prefix())
            });
            let Some(rule) = due.map(|r| r.id.clone()) else { continue };
            if !self.go_on().await {
                return Ok(());
            }
            match self.objects.abort_upload(&self.bucket.name, &u.upload_id).await {
                Ok(()) => self.record(Action::UploadAborted, &u.key, Some(u.upload_id.clone()), &rule),
                // Completed or aborted since it was listed.
                Err(ObjectError::Store(StoreError::NoSuchUpload(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// What came of a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removed {
    /// Removed.
    Yes,
    /// Object Lock keeps it.
    Locked,
    /// It changed (or went) since it was listed: left for the next pass.
    Changed,
}
