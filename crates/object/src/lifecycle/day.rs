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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::rules::{ExpirationDraft, RuleDraft};

    #[test]
    fn days_run_out_at_the_next_midnight() {
        let day = Day::default();
        let jan_1_10h = 1_704_103_200; // 2024-01-01T10:00:00Z
        assert_eq!(day.after(jan_1_10h, 1), 1_704_240_000, "2024-01-03T00:00:00Z");
        assert_eq!(day.after(1_704_067_200, 1), 1_704_153_600, "from a midnight: the next one");
        let short = Day::of(4);
        assert_eq!(short.after(5, 1), 12);
        assert_eq!(short.after(8, 2), 16);
        assert!(short.is_shortened() && !day.is_shortened());
        assert_eq!(Day::of(0).seconds(), 1);
    }

    #[test]
    fn the_earliest_rule_names_the_expiry() {
        let rule = |id: &str, days: i64, prefix: &str| RuleDraft {
            id: Some(id.into()),
            status: "Enabled".into(),
            prefix: Some(prefix.into()),
            expiration: Some(ExpirationDraft { days: Some(days), ..Default::default() }),
            ..Default::default()
        };
        let l = Lifecycle::new(vec![rule("slow", 5, ""), rule("fast", 2, "tmp/")], String::new).unwrap();
        let none = TagSet::default();
        let day = Day::of(10);
        assert_eq!(l.expiry("tmp/a", 1, &none, 3, day), Some(Expiry { at: 30, rule: "fast".into() }));
        assert_eq!(l.expiry("a", 1, &none, 3, day), Some(Expiry { at: 60, rule: "slow".into() }));
    }
}
