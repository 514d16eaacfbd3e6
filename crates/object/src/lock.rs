//! S3 Object Lock as the object layer keeps it: a version's [`Lock`] (retention: a mode
//! and a retain-until instant; and a legal hold), a bucket's [`BucketLock`] (enabled, with
//! an optional default retention), and the rules AWS documents for them: whether a version
//! may be removed ([`may_remove`]) and whether its retention may change ([`may_change`]).
//! Instants are Unix milliseconds, as precise as S3's `RetainUntilDate`.

use serde::{Deserialize, Serialize};

/// How strictly a retention holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Holds unless the request bypasses governance retention
    /// (`x-amz-bypass-governance-retention: true`).
    Governance,
    /// Holds for everyone until it expires; it can be extended, never shortened.
    Compliance,
}

impl Mode {
    /// S3's name for it.
    pub fn as_s3(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }

    /// From S3's name.
    pub fn from_s3(name: &str) -> Option<Self> {
        match name {
            "GOVERNANCE" => Some(Self::Governance),
            "COMPLIANCE" => Some(Self::Compliance),
            _ => None,
        }
    }
}

/// A version's retention: it may not be removed before `until_ms` (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// How strictly.
    pub mode: Mode,
    /// Until when.
    pub until_ms: u64,
}

impl Retention {
    /// Whether it still holds at `now_ms`.
    pub fn in_effect(&self, now_ms: u64) -> bool {
        self.until_ms > now_ms
    }
}

/// The lock state of one version: its retention and legal hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Its retention, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The legal hold, if one was ever set: on (it holds until turned off, whatever the
    /// retention) or off. S3 tells "off" from "never set" (GetObjectLegalHold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<bool>,
}

impl Lock {
    /// Neither a retention nor a legal hold ever set.
    pub fn is_empty(&self) -> bool {
        self.retention.is_none() && self.legal_hold.is_none()
    }

    /// Whether a legal hold is on.
    pub fn held(&self) -> bool {
        self.legal_hold == Some(true)
    }
}

/// The length of a default retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Days (of 24 hours).
    Days(u32),
    /// Years (of 365 days, as AWS counts them).
    Years(u32),
}

/// Longest default retention AWS accepts, in days (100 years).
pub const MAX_DAYS: u64 = 36_500;

impl Period {
    /// Its length in milliseconds; `None` if it is 0 or longer than [`MAX_DAYS`].
    pub fn millis(self) -> Option<u64> {
        let days = match self {
            Self::Days(d) => u64::from(d),
            Self::Years(y) => u64::from(y) * 365,
        };
        (1..=MAX_DAYS).contains(&days).then_some(days * 86_400_000)
    }
}

/// The retention a bucket gives new versions that ask for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// The mode.
    pub mode: Mode,
    /// For how long from the write.
    pub period: Period,
}

impl DefaultRetention {
    /// The retention of a version written at `now_ms`.
    pub fn from(&self, now_ms: u64) -> Retention {
        Retention { mode: self.mode, until_ms: now_ms.saturating_add(self.period.millis().unwrap_or(0)) }
    }
}

/// A bucket's Object Lock configuration: present means enabled (for good, as on AWS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketLock {
    /// Its default retention, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultRetention>,
}

/// Why Object Lock refuses a change (S3 answers 403 AccessDenied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockRefusal {
    /// A legal hold is on.
    #[error("Access Denied because object protected by object lock: a legal hold is on")]
    LegalHold,
    /// A retention holds.
    #[error(
        "Access Denied because object protected by object lock: {} retention until {}",
        mode.as_s3(),
        base::clock::rfc3339(until_ms / 1000)
    )]
    Retained {
        /// Its mode.
        mode: Mode,
        /// Until when (Unix milliseconds).
        until_ms: u64,
    },
}

/// Whether a version locked by `lock` may be removed at `now_ms`; `bypass`: the request
/// bypasses governance retention.
pub fn may_remove(lock: &Lock, now_ms: u64, bypass: bool) -> Result<(), LockRefusal> {
    if lock.held() {
        return Err(LockRefusal::LegalHold);
    }
    match lock.retention {
        Some(r) if r.in_effect(now_ms) && !(r.mode == Mode::Governance && bypass) => {
            Err(LockRefusal::Retained { mode: r.mode, until_ms: r.until_ms })
        }
        _ => Ok(()),
    }
}

/// Whether a version's retention may change from `old` to `new` at `now_ms`: a retention
/// in effect may be extended in its own mode by anyone; a governance one shortened,
/// removed or made compliance only with `bypass` (as AWS and Ceph decide); a compliance
/// one never shortened, removed or made governance.
pub fn may_change(
    old: Option<&Retention>,
    new: Option<&Retention>,
    now_ms: u64,
    bypass: bool,
) -> Result<(), LockRefusal> {
    let Some(old) = old.filter(|r| r.in_effect(now_ms)) else { return Ok(()) };
    let refused = Err(LockRefusal::Retained { mode: old.mode, until_ms: old.until_ms });
    let keeps = new.is_some_and(|n| n.until_ms >= old.until_ms && n.mode == old.mode);
    match old.mode {
        _ if keeps => Ok(()),
        Mode::Governance if bypass => Ok(()),
        _ => refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn r(mode: Mode, until_ms: u64) -> Retention {
        Retention { mode, until_ms }
    }

    #[test]
    fn removal_waits_for_retention_and_legal_hold() {
        let gov = Lock { retention: Some(r(Mode::Governance, NOW + 1)), legal_hold: Some(false) };
        let comp = Lock { retention: Some(r(Mode::Compliance, NOW + 1)), legal_hold: None };
        assert!(may_remove(&Lock::default(), NOW, false).is_ok());
        assert!(matches!(may_remove(&gov, NOW, false), Err(LockRefusal::Retained { .. })));
        assert!(may_remove(&gov, NOW, true).is_ok(), "governance yields to bypass");
        assert!(may_remove(&comp, NOW, true).is_err(), "compliance does not");
        assert!(may_remove(&comp, NOW + 1, false).is_ok(), "an expired retention holds nothing");
        let held = Lock { retention: None, legal_hold: Some(true) };
        assert_eq!(may_remove(&held, NOW, true), Err(LockRefusal::LegalHold));
        let both = Lock { legal_hold: Some(true), ..comp };
        assert_eq!(may_remove(&both, NOW + 5, true), Err(LockRefusal::LegalHold));
    }

    #[test]
    fn retention_extends_freely_and_shortens_only_in_governance_with_bypass() {
        let (g, c) = (r(Mode::Governance, NOW + 100), r(Mode::Compliance, NOW + 100));
        for old in [g, c] {
            assert!(may_change(Some(&old), Some(&r(old.mode, NOW + 200)), NOW, false).is_ok(), "extend");
            assert!(may_change(Some(&old), Some(&old), NOW, false).is_ok(), "same");
        }
        assert!(may_change(Some(&g), Some(&r(Mode::Governance, NOW + 50)), NOW, false).is_err());
        assert!(may_change(Some(&g), Some(&r(Mode::Governance, NOW + 50)), NOW, true).is_ok());
        assert!(may_change(Some(&g), None, NOW, false).is_err());
        assert!(may_change(Some(&g), None, NOW, true).is_ok());
        assert!(may_change(Some(&g), Some(&r(Mode::Compliance, NOW + 100)), NOW, false).is_err());
        assert!(may_change(Some(&g), Some(&r(Mode::Compliance, NOW + 100)), NOW, true).is_ok());
        assert!(may_change(Some(&c), Some(&r(Mode::Compliance, NOW + 50)), NOW, true).is_err());
        assert!(may_change(Some(&c), Some(&r(Mode::Governance, NOW + 500)), NOW, true).is_err());
        assert!(may_change(Some(&c), None, NOW, true).is_err());
        assert!(may_change(Some(&c), None, NOW + 100, false).is_ok(), "expired");
        assert!(may_change(None, Some(&g), NOW, false).is_ok());
    }

    #[test]
    fn default_periods_count_days_and_365_day_years() {
        assert_eq!(Period::Days(1).millis(), Some(86_400_000));
        assert_eq!(Period::Years(1).millis(), Some(365 * 86_400_000));
        assert_eq!(Period::Days(0).millis(), None);
        assert_eq!(Period::Years(101).millis(), None);
        let d = DefaultRetention { mode: Mode::Compliance, period: Period::Days(2) };
        assert_eq!(d.from(NOW), r(Mode::Compliance, NOW + 2 * 86_400_000));
    }
}
