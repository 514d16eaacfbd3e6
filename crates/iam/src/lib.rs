//! Identities and access: who the callers of the S3 API are. Today: the users file
//! ([`users`]), access keys and their secrets.

pub mod users;
