//! Lifecycle time: how long a lifecycle day lasts (a real day, or a few seconds in tests)
//! and when a rule's days run out, rounded up to the next midnight UTC as AWS does.

use serde::{Deserialize, Serialize};

use super::rules::{Expiration, Lifecycle, Rule};
use crate::tags::TagSet;

/// Seconds in a real day.
pub const REAL_DAY: u64 = 86_400;

/// The length of a lifecycle day, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day(u64);

impl Default for Day {
    fn default() -> Self {
        Self(REAL_DAY)
    }
}

impl Day {
    /// A day of `seconds` (at least 1).
    pub fn of(seconds: u64) -> Self {
        Self(seconds.max(1))
    }

    /// Its length in seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }

    /// Whether it is shortened (tests only).
    pub fn is_shortened(self) -> bool {
        self.0 != REAL_DAY
    }

    /// When `days` days after `start` (Unix seconds) run out: rounded up to the next
    /// day boundary (midnight UTC for real days).
    pub fn after(self, start: u64, days: u32) -> u64 {
        let end = start.saturating_add(u64::from(days).saturating_mul(self.0));
        end.div_ceil(self.0).saturating_mul(self.0)
    }
}

/// When a current version expires, and by which rule (the `x-amz-expiration` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Unix seconds.
    pub at: u64,
    /// The rule's id.
    pub rule: String,
}

impl Rule {
    /// When this rule expires an object written at `written` (Unix seconds), if it
    /// expires current versions at all.
    pub fn expires_at(&self, written: u64, day: Day) -> Option<u64> {
        match self.expiration? {
            Expiration::Days(d) => Some(day.after(written, d)),
            Expiration::Date(at) => Some(at),
            Expiration::DeleteMarker => None,
        }
    }
}

impl Lifecycle {
    /// The earliest expiry the enabled rules give the current version of `key` (`size`
    /// bytes, `tags`, written at `written`).
    pub fn expiry(&self, key: &str, size: u64, tags: &TagSet, written: u64, day: Day) -> Option<Expiry> {
        self.enabled()
            .filter(|r| r.filter.matches_key(key, size) && r.filter.matches_tags(tags))
            .filter_map(|r| Some(Expiry { at: r.expires_at(written, day)?, rule: r.id.clone() }))
            .min_by_key(|e| e.at)
    }
}
