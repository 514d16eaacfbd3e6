//! Bucket policies: the JSON document AWS defines, checked when it is put
//! ([`Policy::parse`], refusals as [`Malformed`]) and evaluated for each request
//! ([`Policy::evaluate`] over a [`Request`] and its [`Context`] of condition keys).
//!
//! - `document`: the document's fields and every check made at PutBucketPolicy;
//! - `actions`: the S3 action names and what each acts on;
//! - `condition`: condition operators and keys;
//! - `context`: the condition keys of one request;
//! - `evaluate`: statement matching, explicit deny first, and what makes a policy public;
//! - `pattern`: `*` and `?` wildcards.

mod actions;
mod condition;
mod context;
mod document;
mod evaluate;
mod pattern;

pub use condition::date as date_of;
pub use context::Context;
pub use document::{MAX_POLICY_BYTES, Malformed, Policy};
pub use evaluate::{Request, Verdict};
