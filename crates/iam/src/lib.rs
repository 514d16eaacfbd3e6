//! Identities and access: who the callers of the S3 API are and what they may do.
//!
//! - [`Directory`]: users (canonical id, display name, email, bucket-creation flag, roles
//!   on buckets) and their HMAC credentials, with every change an operator can make;
//! - [`Role`] and [`Action`]: IBM COS's reader, writer and manager roles and the table of
//!   what each allows;
//! - [`Snapshot`] and [`Principal`]: the directory indexed for requests, secrets opened,
//!   and the access decision;
//! - [`Keep`]: where the directory is kept, a file on one node ([`FileKeep`]) or the
//!   metadata service every gateway shares ([`KvKeep`]);
//! - [`Identities`]: the snapshot in force, followed live;
//! - [`Seal`]: secrets sealed at rest under a key the HSM wraps;
//! - [`users`]: the users file, imported at start;
//! - [`policy`]: bucket policies, checked and evaluated;
//! - [`Admin`]: the operator's operations (users, keys, roles), audited; what
//!   `cipherstore iam` and the admin HTTP API both call; [`admin_api`]: that API's
//!   routes and bodies;
//! - [`acl`]: access control lists, canned ACLs, grant headers and object ownership;
//! - [`decide`]: the access decision, roles, the bucket policy and ACLs together;
//! - [`apikey`] and [`token`]: the key service's API keys and the bearer tokens they are
//!   exchanged for, as IBM Cloud IAM issues them.

mod access;
pub mod acl;
mod admin;
pub mod admin_api;
pub mod apikey;
mod directory;
mod error;
mod keep;
mod keep_file;
mod keep_kv;
mod live;
pub mod policy;
mod role;
mod seal;
mod snapshot;
pub mod token;
pub mod users;

pub use access::{BucketAccess, Denial, Grounds, decide};
pub use admin::{
    Admin, ApiKeyView, AuditTrail, IssuedApiKey, IssuedKey, KeyView, NewKey, UserView, parse_expiry,
};
pub use apikey::{ApiKey, NewApiKey};
pub use directory::{
    Credential, Directory, NewCredential, NewUser, StoredSecret, User, check_access_key_id, check_secret,
    random_canonical_id,
};
pub use error::IamError;
pub use keep::{Change, Keep, Stamp};
pub use keep_file::FileKeep;
pub use keep_kv::KvKeep;
pub use live::Identities;
pub use role::{Action, Role, UnknownRole};
pub use seal::Seal;
pub use snapshot::{Principal, Refusal, Snapshot, Standing};
pub use token::{Caller, Issued, TokenRefusal};
