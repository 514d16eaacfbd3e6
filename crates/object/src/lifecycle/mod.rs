//! Lifecycle rules (PutBucketLifecycleConfiguration): the configuration as AWS validates
//! it ([`rules`]) and lifecycle time ([`day`]). One pass of the rules over a bucket is
//! [`crate::lifecycle_pass`].

pub mod day;
pub mod rules;

pub use day::{Day, Expiry, REAL_DAY};
pub use rules::{
    And, AndDraft, Expiration, ExpirationDraft, Filter, FilterDraft, Lifecycle, LifecycleError, Noncurrent,
    NoncurrentDraft, NoncurrentTransition, NoncurrentTransitionDraft, Rule, RuleDraft, TRANSITION_CLASSES,
    Transition, TransitionDraft, When,
};
