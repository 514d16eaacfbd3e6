//! A bucket's lifecycle configuration as AWS validates it: a draft that mirrors the XML
//! (everything optional, numbers as sent) becomes a [`Lifecycle`] of typed rules, or the
//! [`LifecycleError`] AWS would answer. The rules are kept in the bucket record.

use serde::{Deserialize, Serialize};

use crate::tags::TagSet;

/// The most rules a configuration holds.
pub const MAX_RULES: usize = 1000;
/// The longest rule id.
pub const MAX_ID: usize = 255;
/// The most noncurrent versions `NewerNoncurrentVersions` keeps.
pub const MAX_NEWER_NONCURRENT: i64 = 100;
/// The storage classes a transition may go to: those whose objects are read at once, as
/// every object here is (they are recorded and answered; the bytes stay where they are).
pub const TRANSITION_CLASSES: [&str; 4] = ["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"];
/// Archive classes, whose objects AWS serves only once restored: not offered.
const ARCHIVE_CLASSES: [&str; 2] = ["GLACIER", "DEEP_ARCHIVE"];

/// Why a configuration is refused; each names the error code AWS answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The document does not have the shape AWS's schema gives it (MalformedXML).
    #[error("{0}")]
    Malformed(String),
    /// A value is out of range (InvalidArgument).
    #[error("{0}")]
    InvalidArgument(String),
    /// Elements that cannot go together (InvalidRequest).
    #[error("{0}")]
    InvalidRequest(String),
    /// A transition to a storage class not offered (InvalidStorageClass).
    #[error("{0}")]
    InvalidStorageClass(String),
}

fn malformed(why: impl Into<String>) -> LifecycleError {
    LifecycleError::Malformed(why.into())
}

fn argument(why: impl Into<String>) -> LifecycleError {
    LifecycleError::InvalidArgument(why.into())
}

fn request(why: impl Into<String>) -> LifecycleError {
    LifecycleError::InvalidRequest(why.into())
}

/// One rule as sent: the elements of `<Rule>`, each as the XML had it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleDraft {
    /// `<ID>`.
    pub id: Option<String>,
    /// `<Status>`: `Enabled` or `Disabled`.
    pub status: String,
    /// The legacy top-level `<Prefix>`.
    pub prefix: Option<String>,
    /// `<Filter>`.
    pub filter: Option<FilterDraft>,
    /// `<Expiration>`.
    pub expiration: Option<ExpirationDraft>,
    /// `<NoncurrentVersionExpiration>`.
    pub noncurrent: Option<NoncurrentDraft>,
    /// `<AbortIncompleteMultipartUpload><DaysAfterInitiation>`, or `Some(None)` when the
    /// element came without it.
    pub abort_after: Option<Option<i64>>,
    /// `<Transition>` elements.
    pub transitions: Vec<TransitionDraft>,
    /// `<NoncurrentVersionTransition>` elements.
    pub noncurrent_transitions: Vec<NoncurrentTransitionDraft>,
}

/// `<Transition>` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransitionDraft {
    /// `<Days>`.
    pub days: Option<i64>,
    /// `<Date>`, in Unix seconds.
    pub date: Option<i64>,
    /// `<StorageClass>`.
    pub class: Option<String>,
}

/// `<NoncurrentVersionTransition>` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoncurrentTransitionDraft {
    /// `<NoncurrentDays>`.
    pub days: Option<i64>,
    /// `<NewerNoncurrentVersions>`.
    pub newer: Option<i64>,
    /// `<StorageClass>`.
    pub class: Option<String>,
}

/// `<Filter>` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterDraft {
    /// `<Prefix>`.
    pub prefix: Option<String>,
    /// `<Tag>`: key and value.
    pub tag: Option<(String, String)>,
    /// `<ObjectSizeGreaterThan>`.
    pub greater_than: Option<i64>,
    /// `<ObjectSizeLessThan>`.
    pub less_than: Option<i64>,
    /// `<And>`.
    pub and: Option<AndDraft>,
}

/// `<And>` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AndDraft {
    /// `<Prefix>`.
    pub prefix: Option<String>,
    /// `<Tag>` elements.
    pub tags: Vec<(String, String)>,
    /// `<ObjectSizeGreaterThan>`.
    pub greater_than: Option<i64>,
    /// `<ObjectSizeLessThan>`.
    pub less_than: Option<i64>,
}

/// `<Expiration>` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpirationDraft {
    /// `<Days>`.
    pub days: Option<i64>,
    /// `<Date>`, in Unix seconds.
    pub date: Option<i64>,
    /// `<ExpiredObjectDeleteMarker>`.
    pub delete_marker: Option<bool>,
}

/// `<NoncurrentVersionExpiration>` as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoncurrentDraft {
    /// `<NoncurrentDays>`.
    pub days: Option<i64>,
    /// `<NewerNoncurrentVersions>`.
    pub newer: Option<i64>,
}

/// A bucket's lifecycle rules, valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// The rules, in the order sent.
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Its id (one is made when none was sent).
    pub id: String,
    /// `Status` was `Enabled`.
    pub enabled: bool,
    /// Which objects it applies to.
    pub filter: Filter,
    /// What happens to current versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
    /// What happens to noncurrent versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent: Option<Noncurrent>,
    /// Days after which an unfinished multipart upload is aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_after_days: Option<u32>,
    /// When current versions move to another storage class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<Transition>,
    /// When noncurrent versions move to another storage class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noncurrent_transitions: Vec<NoncurrentTransition>,
}

/// When a transition happens: days after the write (0: at the next midnight UTC), or at
/// a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum When {
    /// This many days after the write (rounded up to the next midnight UTC).
    Days(u32),
    /// At this time (Unix seconds, a midnight UTC).
    Date(u64),
}

/// A current version's move to another storage class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When.
    pub when: When,
    /// To which class (one of [`TRANSITION_CLASSES`]).
    pub class: String,
}

/// A noncurrent version's move to another storage class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentTransition {
    /// Days after the version became noncurrent.
    pub days: u32,
    /// How many of the newest noncurrent versions stay where they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer: Option<u32>,
    /// To which class.
    pub class: String,
}

/// Which objects a rule applies to, in the shape it was sent (so that it reads back so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    /// Neither `<Filter>` nor `<Prefix>`, or an empty `<Filter/>`: every object.
    All,
    /// The legacy top-level `<Prefix>`.
    Legacy(String),
    /// `<Filter><Prefix>`.
    Prefix(String),
    /// `<Filter><Tag>`.
    Tag(String, String),
    /// `<Filter><ObjectSizeGreaterThan>`.
    GreaterThan(u64),
    /// `<Filter><ObjectSizeLessThan>`.
    LessThan(u64),
    /// `<Filter><And>`.
    And(And),
}

/// Conditions that must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct And {
    /// Keys start with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The object has each of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// Its size is larger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greater_than: Option<u64>,
    /// Its size is smaller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub less_than: Option<u64>,
}

/// What expires current versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expiration {
    /// This many days after the object was written (rounded up to the next midnight UTC).
    Days(u32),
    /// At this time (Unix seconds, a midnight UTC).
    Date(u64),
    /// A delete marker with no other version left is removed.
    DeleteMarker,
}

/// What expires noncurrent versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Noncurrent {
    /// Days after a version became noncurrent.
    pub days: u32,
    /// How many of the newest noncurrent versions are kept whatever their age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer: Option<u32>,
}

impl Filter {
    /// The key prefix every object it applies to has.
    pub fn prefix(&self) -> &str {
        match self {
            Self::Legacy(p) | Self::Prefix(p) => p,
            Self::And(a) => a.prefix.as_deref().unwrap_or(""),
            _ => "",
        }
    }

    /// Whether it looks at tags (so an object's tags must be read to apply it).
    pub fn has_tags(&self) -> bool {
        match self {
            Self::Tag(..) => true,
            Self::And(a) => !a.tags.is_empty(),
            _ => false,
        }
    }

    /// Whether it looks at sizes.
    fn has_sizes(&self) -> bool {
        match self {
            Self::GreaterThan(_) | Self::LessThan(_) => true,
            Self::And(a) => a.greater_than.is_some() || a.less_than.is_some(),
            _ => false,
        }
    }

    /// Whether an object of `key` and `size` (bytes) matches, before its tags are
    /// looked at.
    pub fn matches_key(&self, key: &str, size: u64) -> bool {
        match self {
            Self::All | Self::Tag(..) => true,
            Self::Legacy(p) | Self::Prefix(p) => key.starts_with(p.as_str()),
            Self::GreaterThan(n) => size > *n,
            Self::LessThan(n) => size < *n,
            Self::And(a) => {
                a.prefix.as_deref().is_none_or(|p| key.starts_with(p))
                    && a.greater_than.is_none_or(|n| size > n)
                    && a.less_than.is_none_or(|n| size < n)
            }
        }
    }

    /// Whether an object with `tags` has every tag the filter names.
    pub fn matches_tags(&self, tags: &TagSet) -> bool {
        let has = |k: &str, v: &str| tags.pairs().iter().any(|(tk, tv)| tk == k && tv == v);
        match self {
            Self::Tag(k, v) => has(k, v),
            Self::And(a) => a.tags.iter().all(|(k, v)| has(k, v)),
            _ => true,
        }
    }
}

impl Rule {
    /// Whether it acts on versions (so a pass walks the keys under its prefix), not on
    /// uploads only.
    pub fn walks(&self) -> bool {
        self.expiration.is_some()
            || self.noncurrent.is_some()
            || !self.transitions.is_empty()
            || !self.noncurrent_transitions.is_empty()
    }
}

impl Lifecycle {
    /// Validates `drafts` as AWS does; `make_id` gives an id to a rule sent without one.
    pub fn new(drafts: Vec<RuleDraft>, mut make_id: impl FnMut() -> String) -> Result<Self, LifecycleError> {
        if drafts.is_empty() {
            return Err(malformed("a lifecycle configuration needs at least one Rule"));
        }
        if drafts.len() > MAX_RULES {
            return Err(malformed(format!("a lifecycle configuration holds at most {MAX_RULES} rules")));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(drafts.len());
        for d in drafts {
            let rule = Rule::new(d, &mut make_id)?;
            if rules.iter().any(|r| r.id == rule.id) {
                return Err(argument(format!(
                    "Rule ID must be unique. Found same ID for more than one rule: {:?}",
                    rule.id
                )));
            }
            rules.push(rule);
        }
        Ok(Self { rules })
    }

    /// The rules in force.
    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }
}

fn size(what: &str, n: Option<i64>) -> Result<Option<u64>, LifecycleError> {
    n.map(|n| u64::try_from(n).map_err(|_| request(format!("{what} must be a non-negative number of bytes"))))
        .transpose()
}

fn sizes_agree(greater: Option<u64>, less: Option<u64>) -> Result<(), LifecycleError> {
    match (greater, less) {
        (Some(g), Some(l)) if g >= l => {
            Err(request(format!("ObjectSizeGreaterThan ({g}) must be less than ObjectSizeLessThan ({l})")))
        }
        _ => Ok(()),
    }
}

fn days(what: &str, n: Option<i64>) -> Result<u32, LifecycleError> {
    let n = n.ok_or_else(|| malformed(format!("{what} is missing")))?;
    u32::try_from(n)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| argument(format!("'{what}' must be a positive integer, not {n}")))
}

impl Filter {
    fn new(prefix: Option<String>, filter: Option<FilterDraft>) -> Result<Self, LifecycleError> {
        let f = match (prefix, filter) {
            (Some(_), Some(_)) => {
                return Err(malformed("a rule has either a Filter or a Prefix (the legacy form), not both"));
            }
            (Some(p), None) => return Ok(Self::Legacy(p)),
            (None, None) => return Ok(Self::All),
            (None, Some(f)) => f,
        };
        let given = usize::from(f.prefix.is_some())
            + usize::from(f.tag.is_some())
            + usize::from(f.greater_than.is_some())
            + usize::from(f.less_than.is_some())
            + usize::from(f.and.is_some());
        if given > 1 {
            return Err(malformed(
                "a Filter holds one of Prefix, Tag, ObjectSizeGreaterThan, ObjectSizeLessThan or And; use And to combine them",
            ));
        }
        if let Some(p) = f.prefix {
            return Ok(Self::Prefix(p));
        }
        if let Some((k, v)) = f.tag {
            let (k, v) = tags(vec![(k, v)])?.pop().ok_or_else(|| malformed("a Tag is empty"))?;
            return Ok(Self::Tag(k, v));
        }
        if f.greater_than.is_some() {
            return Ok(Self::GreaterThan(size("ObjectSizeGreaterThan", f.greater_than)?.unwrap_or(0)));
        }
        if f.less_than.is_some() {
            return Ok(Self::LessThan(size("ObjectSizeLessThan", f.less_than)?.unwrap_or(0)));
        }
        let Some(a) = f.and else { return Ok(Self::All) };
        let and = And {
            prefix: a.prefix,
            tags: tags(a.tags)?,
            greater_than: size("ObjectSizeGreaterThan", a.greater_than)?,
            less_than: size("ObjectSizeLessThan", a.less_than)?,
        };
        sizes_agree(and.greater_than, and.less_than)?;
        let conditions = usize::from(and.prefix.is_some())
            + and.tags.len()
            + usize::from(and.greater_than.is_some())
            + usize::from(and.less_than.is_some());
        if conditions < 2 {
            return Err(malformed("And combines at least two conditions (a Prefix, Tags, sizes)"));
        }
        Ok(Self::And(and))
    }
}

/// Tags of a filter, checked as object tags are, without two of one key.
fn tags(pairs: Vec<(String, String)>) -> Result<Vec<(String, String)>, LifecycleError> {
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(seen, _)| seen == k) {
            return Err(request("Duplicate Tag Keys are not allowed"));
        }
    }
    let set = TagSet::new(pairs).map_err(|e| argument(format!("a filter's tag is invalid: {e}")))?;
    Ok(set.pairs().to_vec())
}

impl Rule {
    fn new(d: RuleDraft, make_id: &mut impl FnMut() -> String) -> Result<Self, LifecycleError> {
        let id = match d.id {
            Some(id) if id.chars().count() > MAX_ID => {
                return Err(argument(format!("ID length should not exceed allowed limit of {MAX_ID}")));
            }
            Some(id) if !id.is_empty() => id,
            _ => make_id(),
        };
        let enabled = match d.status.as_str() {
            "Enabled" => true,
            "Disabled" => false,
            other => return Err(malformed(format!("Status is Enabled or Disabled, not {other:?}"))),
        };
        let filter = Filter::new(d.prefix, d.filter)?;
        let transitions = d.transitions.into_iter().map(transition).collect::<Result<Vec<_>, _>>()?;
        let noncurrent_transitions =
            d.noncurrent_transitions.into_iter().map(noncurrent_transition).collect::<Result<Vec<_>, _>>()?;
        let expiration = d.expiration.map(|e| expiration(e, &filter)).transpose()?;
        let noncurrent = d
            .noncurrent
            .map(|n| Ok(Noncurrent { days: days("NoncurrentDays", n.days)?, newer: newer(n.newer)? }))
            .transpose()?;
        let abort_after_days = d
            .abort_after
            .map(|a| {
                if filter.has_tags() || filter.has_sizes() {
                    return Err(request(
                        "AbortIncompleteMultipartUpload cannot be specified with tags or object sizes: an upload has neither yet",
                    ));
                }
                days("DaysAfterInitiation", a)
            })
            .transpose()?;
        if expiration.is_none()
            && noncurrent.is_none()
            && abort_after_days.is_none()
            && transitions.is_empty()
            && noncurrent_transitions.is_empty()
        {
            return Err(request("At least one action needs to be specified in a rule"));
        }
        transitions_agree(expiration, noncurrent, &transitions, &noncurrent_transitions)?;
        Ok(Self {
            id,
            enabled,
            filter,
            expiration,
            noncurrent,
            abort_after_days,
            transitions,
            noncurrent_transitions,
        })
    }
}

/// A transition's class: one of [`TRANSITION_CLASSES`].
fn class(sent: Option<String>) -> Result<String, LifecycleError> {
    let class = sent.ok_or_else(|| malformed("a transition needs a StorageClass"))?;
    if TRANSITION_CLASSES.contains(&class.as_str()) {
        return Ok(class);
    }
    let why = if ARCHIVE_CLASSES.contains(&class.as_str()) {
        "archive classes are not offered: every object is stored for immediate reads"
    } else {
        "not a storage class objects can move to"
    };
    Err(LifecycleError::InvalidStorageClass(format!(
        "{class}: {why} ({} are)",
        TRANSITION_CLASSES.join(", ")
    )))
}

fn transition(t: TransitionDraft) -> Result<Transition, LifecycleError> {
    let when = match (t.days, t.date) {
        (Some(d), None) => When::Days(
            u32::try_from(d)
                .map_err(|_| argument(format!("'Days' in a Transition must not be negative: {d}")))?,
        ),
        (None, Some(at)) => When::Date(midnight(at)?),
        _ => return Err(malformed("a Transition holds either Days or Date")),
    };
    Ok(Transition { when, class: class(t.class)? })
}

fn noncurrent_transition(t: NoncurrentTransitionDraft) -> Result<NoncurrentTransition, LifecycleError> {
    let days = t.days.ok_or_else(|| malformed("a NoncurrentVersionTransition needs NoncurrentDays"))?;
    let days = u32::try_from(days).map_err(|_| {
        argument(format!("'NoncurrentDays' in a NoncurrentVersionTransition must not be negative: {days}"))
    })?;
    Ok(NoncurrentTransition { days, newer: newer(t.newer)?, class: class(t.class)? })
}

fn newer(n: Option<i64>) -> Result<Option<u32>, LifecycleError> {
    n.map(|v| {
        u32::try_from(v).ok().filter(|v| (1..=MAX_NEWER_NONCURRENT).contains(&i64::from(*v))).ok_or_else(
            || argument(format!("NewerNoncurrentVersions must be 1 to {MAX_NEWER_NONCURRENT}, not {v}")),
        )
    })
    .transpose()
}

fn midnight(at: i64) -> Result<u64, LifecycleError> {
    let at = u64::try_from(at).map_err(|_| argument("'Date' must be after 1970"))?;
    if at % 86_400 != 0 {
        return Err(argument("'Date' must be at midnight GMT"));
    }
    Ok(at)
}

/// AWS's rules between a rule's transitions and expirations: Days and Dates not mixed,
/// one transition per class, expiration after every transition.
fn transitions_agree(
    expiration: Option<Expiration>,
    noncurrent: Option<Noncurrent>,
    transitions: &[Transition],
    noncurrent_transitions: &[NoncurrentTransition],
) -> Result<(), LifecycleError> {
    let dated = transitions.iter().filter(|t| matches!(t.when, When::Date(_))).count();
    let by_days = transitions.len() - dated;
    let mixed = (dated > 0 && (by_days > 0 || matches!(expiration, Some(Expiration::Days(_)))))
        || (by_days > 0 && matches!(expiration, Some(Expiration::Date(_))));
    if mixed {
        return Err(request(
            "Found mixed 'Date' and 'Days' based Expiration and Transition actions in lifecycle rule",
        ));
    }
    let mut classes: Vec<&str> = transitions.iter().map(|t| t.class.as_str()).collect();
    classes.sort_unstable();
    let mut noncurrent_classes: Vec<&str> = noncurrent_transitions.iter().map(|t| t.class.as_str()).collect();
    noncurrent_classes.sort_unstable();
    if classes.windows(2).any(|w| w[0] == w[1]) || noncurrent_classes.windows(2).any(|w| w[0] == w[1]) {
        return Err(request("'StorageClass' must be different for 'Transition' actions in same 'Rule'"));
    }
    for t in transitions {
        match (t.when, expiration) {
            (When::Days(t), Some(Expiration::Days(e))) if e <= t => {
                return Err(argument(format!(
                    "'Days' in the Expiration action ({e}) must be greater than 'Days' in the Transition action ({t})"
                )));
            }
            (When::Date(t), Some(Expiration::Date(e))) if e <= t => {
                return Err(argument(
                    "'Date' in the Expiration action must be later than 'Date' in the Transition action",
                ));
            }
            _ => {}
        }
    }
    if let Some(n) = noncurrent
        && let Some(t) = noncurrent_transitions.iter().find(|t| t.days >= n.days)
    {
        return Err(argument(format!(
            "'NoncurrentDays' in the NoncurrentVersionExpiration action ({}) must be greater than in the NoncurrentVersionTransition action ({})",
            n.days, t.days
        )));
    }
    Ok(())
}

fn expiration(e: ExpirationDraft, filter: &Filter) -> Result<Expiration, LifecycleError> {
    match (e.days, e.date, e.delete_marker) {
        (Some(d), None, None | Some(false)) => Ok(Expiration::Days(days("Days", Some(d))?)),
        (None, Some(at), None | Some(false)) => Ok(Expiration::Date(midnight(at)?)),
        (None, None, Some(true)) => {
            if filter.has_tags() {
                return Err(request("ExpiredObjectDeleteMarker cannot be specified with tags"));
            }
            Ok(Expiration::DeleteMarker)
        }
        (None, None, Some(false)) | (None, None, None) => {
            Err(malformed("Expiration needs one of Days, Date or ExpiredObjectDeleteMarker"))
        }
        _ => Err(malformed("Expiration holds one of Days, Date or ExpiredObjectDeleteMarker, not several")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> RuleDraft {
        RuleDraft {
            id: Some("r".into()),
            status: "Enabled".into(),
            expiration: Some(ExpirationDraft { days: Some(3), ..Default::default() }),
            ..Default::default()
        }
    }

    fn check(drafts: Vec<RuleDraft>) -> Result<Lifecycle, LifecycleError> {
        Lifecycle::new(drafts, || "made".to_owned())
    }

    fn one(d: RuleDraft) -> Result<Rule, LifecycleError> {
        check(vec![d]).map(|mut l| l.rules.remove(0))
    }

    fn kind(r: Result<Rule, LifecycleError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(LifecycleError::Malformed(_)) => "MalformedXML",
            Err(LifecycleError::InvalidArgument(_)) => "InvalidArgument",
            Err(LifecycleError::InvalidRequest(_)) => "InvalidRequest",
            Err(LifecycleError::InvalidStorageClass(_)) => "InvalidStorageClass",
        }
    }

    fn transition_to(class: &str, days: i64) -> TransitionDraft {
        TransitionDraft { days: Some(days), date: None, class: Some(class.into()) }
    }

    fn filter(f: FilterDraft) -> RuleDraft {
        RuleDraft { filter: Some(f), ..rule() }
    }

    #[test]
    fn a_valid_rule_reads_as_sent() {
        let r = one(rule()).unwrap();
        assert_eq!((r.id.as_str(), r.enabled, &r.filter), ("r", true, &Filter::All));
        assert_eq!(r.expiration, Some(Expiration::Days(3)));
        let unnamed = one(RuleDraft { id: None, ..rule() }).unwrap();
        assert_eq!(unnamed.id, "made", "a rule without an id gets one");
        let legacy = one(RuleDraft { prefix: Some("logs/".into()), ..rule() }).unwrap();
        assert_eq!(legacy.filter, Filter::Legacy("logs/".into()));
        let disabled = one(RuleDraft { status: "Disabled".into(), ..rule() }).unwrap();
        assert!(!disabled.enabled);
        let and = one(filter(FilterDraft {
            and: Some(AndDraft {
                prefix: Some("a/".into()),
                tags: vec![("k".into(), "v".into())],
                greater_than: Some(10),
                less_than: Some(20),
            }),
            ..Default::default()
        }))
        .unwrap();
        assert!(and.filter.matches_key("a/x", 15) && !and.filter.matches_key("b/x", 15));
        assert!(!and.filter.matches_key("a/x", 10) && !and.filter.matches_key("a/x", 20));
        let tags = TagSet::new(vec![("k".into(), "v".into()), ("o".into(), "p".into())]).unwrap();
        assert!(and.filter.matches_tags(&tags) && !and.filter.matches_tags(&TagSet::default()));
    }

    #[test]
    fn every_bad_configuration_is_refused_with_the_code_aws_gives() {
        assert!(matches!(check(vec![]), Err(LifecycleError::Malformed(_))));
        let many: Vec<RuleDraft> =
            (0..=MAX_RULES).map(|i| RuleDraft { id: Some(i.to_string()), ..rule() }).collect();
        assert!(matches!(check(many), Err(LifecycleError::Malformed(_))));
        let twice = check(vec![rule(), rule()]).unwrap_err();
        assert!(matches!(&twice, LifecycleError::InvalidArgument(m) if m.contains("unique")));
        let cases: Vec<(&str, RuleDraft, &str)> = vec![
            ("id too long", RuleDraft { id: Some("x".repeat(MAX_ID + 1)), ..rule() }, "InvalidArgument"),
            ("id of 255", RuleDraft { id: Some("x".repeat(MAX_ID)), ..rule() }, "ok"),
            ("status", RuleDraft { status: "enabled".into(), ..rule() }, "MalformedXML"),
            (
                "filter and prefix",
                RuleDraft { prefix: Some("a".into()), filter: Some(FilterDraft::default()), ..rule() },
                "MalformedXML",
            ),
            (
                "two filter elements",
                filter(FilterDraft { prefix: Some("a".into()), greater_than: Some(1), ..Default::default() }),
                "MalformedXML",
            ),
            (
                "and of one",
                filter(FilterDraft {
                    and: Some(AndDraft { prefix: Some("a".into()), ..Default::default() }),
                    ..Default::default()
                }),
                "MalformedXML",
            ),
            (
                "sizes crossed",
                filter(FilterDraft {
                    and: Some(AndDraft { greater_than: Some(9), less_than: Some(9), ..Default::default() }),
                    ..Default::default()
                }),
                "InvalidRequest",
            ),
            (
                "negative size",
                filter(FilterDraft { less_than: Some(-1), ..Default::default() }),
                "InvalidRequest",
            ),
            (
                "duplicate tag keys",
                filter(FilterDraft {
                    and: Some(AndDraft {
                        tags: vec![("k".into(), "1".into()), ("k".into(), "2".into())],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                "InvalidRequest",
            ),
            (
                "tag key too long",
                filter(FilterDraft { tag: Some(("k".repeat(129), "v".into())), ..Default::default() }),
                "InvalidArgument",
            ),
            ("no action", RuleDraft { expiration: None, ..rule() }, "InvalidRequest"),
            (
                "days zero",
                RuleDraft {
                    expiration: Some(ExpirationDraft { days: Some(0), ..Default::default() }),
                    ..rule()
                },
                "InvalidArgument",
            ),
            (
                "days negative",
                RuleDraft {
                    expiration: Some(ExpirationDraft { days: Some(-2), ..Default::default() }),
                    ..rule()
                },
                "InvalidArgument",
            ),
            (
                "date not midnight",
                RuleDraft {
                    expiration: Some(ExpirationDraft { date: Some(86_400 + 5), ..Default::default() }),
                    ..rule()
                },
                "InvalidArgument",
            ),
            (
                "date at midnight",
                RuleDraft {
                    expiration: Some(ExpirationDraft { date: Some(86_400 * 20_000), ..Default::default() }),
                    ..rule()
                },
                "ok",
            ),
            (
                "days and date",
                RuleDraft {
                    expiration: Some(ExpirationDraft { days: Some(1), date: Some(0), delete_marker: None }),
                    ..rule()
                },
                "MalformedXML",
            ),
            (
                "empty expiration",
                RuleDraft { expiration: Some(ExpirationDraft::default()), ..rule() },
                "MalformedXML",
            ),
            (
                "days and delete marker",
                RuleDraft {
                    expiration: Some(ExpirationDraft {
                        days: Some(1),
                        date: None,
                        delete_marker: Some(true),
                    }),
                    ..rule()
                },
                "MalformedXML",
            ),
            (
                "delete marker with a tag",
                RuleDraft {
                    expiration: Some(ExpirationDraft { delete_marker: Some(true), ..Default::default() }),
                    filter: Some(FilterDraft { tag: Some(("k".into(), "v".into())), ..Default::default() }),
                    ..rule()
                },
                "InvalidRequest",
            ),
            (
                "noncurrent without days",
                RuleDraft { noncurrent: Some(NoncurrentDraft { days: None, newer: Some(2) }), ..rule() },
                "MalformedXML",
            ),
            (
                "newer noncurrent zero",
                RuleDraft { noncurrent: Some(NoncurrentDraft { days: Some(1), newer: Some(0) }), ..rule() },
                "InvalidArgument",
            ),
            (
                "newer noncurrent over 100",
                RuleDraft { noncurrent: Some(NoncurrentDraft { days: Some(1), newer: Some(101) }), ..rule() },
                "InvalidArgument",
            ),
            ("abort without days", RuleDraft { abort_after: Some(None), ..rule() }, "MalformedXML"),
            ("abort after zero days", RuleDraft { abort_after: Some(Some(0)), ..rule() }, "InvalidArgument"),
            (
                "abort with a tag filter",
                RuleDraft {
                    abort_after: Some(Some(1)),
                    filter: Some(FilterDraft { tag: Some(("k".into(), "v".into())), ..Default::default() }),
                    ..rule()
                },
                "InvalidRequest",
            ),
            (
                "abort with a size filter",
                RuleDraft {
                    abort_after: Some(Some(1)),
                    filter: Some(FilterDraft { greater_than: Some(1), ..Default::default() }),
                    ..rule()
                },
                "InvalidRequest",
            ),
            (
                "transition to an archive class",
                RuleDraft { transitions: vec![transition_to("GLACIER", 1)], ..rule() },
                "InvalidStorageClass",
            ),
            (
                "transition to STANDARD",
                RuleDraft { transitions: vec![transition_to("STANDARD", 1)], ..rule() },
                "InvalidStorageClass",
            ),
            ("transition", RuleDraft { transitions: vec![transition_to("STANDARD_IA", 1)], ..rule() }, "ok"),
            (
                "transition at 0 days",
                RuleDraft { transitions: vec![transition_to("STANDARD_IA", 0)], ..rule() },
                "ok",
            ),
            (
                "transition after the expiration",
                RuleDraft { transitions: vec![transition_to("STANDARD_IA", 3)], ..rule() },
                "InvalidArgument",
            ),
            (
                "two transitions to one class",
                RuleDraft {
                    expiration: None,
                    transitions: vec![transition_to("GLACIER_IR", 1), transition_to("GLACIER_IR", 2)],
                    ..rule()
                },
                "InvalidRequest",
            ),
            (
                "days and dates mixed",
                RuleDraft {
                    transitions: vec![TransitionDraft {
                        date: Some(86_400),
                        class: Some("STANDARD_IA".into()),
                        ..Default::default()
                    }],
                    ..rule()
                },
                "InvalidRequest",
            ),
            (
                "transition without a class",
                RuleDraft {
                    transitions: vec![TransitionDraft { days: Some(1), ..Default::default() }],
                    ..rule()
                },
                "MalformedXML",
            ),
            (
                "noncurrent transition after the noncurrent expiration",
                RuleDraft {
                    noncurrent: Some(NoncurrentDraft { days: Some(2), newer: None }),
                    noncurrent_transitions: vec![NoncurrentTransitionDraft {
                        days: Some(2),
                        newer: None,
                        class: Some("ONEZONE_IA".into()),
                    }],
                    ..rule()
                },
                "InvalidArgument",
            ),
        ];
        for (name, draft, want) in cases {
            assert_eq!(kind(one(draft)), want, "{name}");
        }
    }

    #[test]
    fn configurations_keep_their_shape_through_the_bucket_record() {
        let l = check(vec![
            RuleDraft { prefix: Some("old/".into()), ..rule() },
            RuleDraft {
                id: Some("n".into()),
                expiration: None,
                noncurrent: Some(NoncurrentDraft { days: Some(2), newer: Some(3) }),
                abort_after: Some(Some(7)),
                filter: Some(FilterDraft { prefix: Some("x".into()), ..Default::default() }),
                ..rule()
            },
        ])
        .unwrap();
        let json = serde_json::to_vec(&l).unwrap();
        assert_eq!(serde_json::from_slice::<Lifecycle>(&json).unwrap(), l);
    }
}
