//! Lifecycle rules (PutBucketLifecycleConfiguration): the configuration as AWS validates
//! it ([`rules`]), lifecycle time ([`day`]), and one pass of the rules over a bucket
//! ([`pass`]: expirations, transitions, delete markers, noncurrent versions, stale
//! uploads).

pub mod day;
pub mod pass;
pub mod rules;

pub use day::{Day, Expiry, REAL_DAY};
pub use pass::{Action, Counts, Event, Pacer};
pub use rules::{
    And, AndDraft, Expiration, ExpirationDraft, Filter, FilterDraft, Lifecycle, LifecycleError, Noncurrent,
    NoncurrentDraft, NoncurrentTransition, NoncurrentTransitionDraft, Rule, RuleDraft, TRANSITION_CLASSES,
    Transition, TransitionDraft, When,
};
