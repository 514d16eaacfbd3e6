//! The key service: IBM Key Protect's v2 REST API over the HSM root keys of
//! [`keys::KeyManager`], so that IBM's SDKs (the Python `keyprotect` package, the Go
//! `keyprotect-go-client`) manage cipherstore's keys with only the service URL and the
//! token URL changed. HTTP-free: the binary's `serve/kms.rs` listens and hands requests
//! to [`KeyService::handle`].
//!
//! - [`route`]: the routes served, from method, path and query;
//! - [`access`]: the least role (reader, writer, manager) each route needs;
//! - [`body`]: request bodies, every fault named;
//! - [`view`]: answers in Key Protect's shapes;
//! - [`error`]: refusals in Key Protect's error shape;
//! - [`service`]: the checks in order and the calls on the key manager.
//!
//! Callers authenticate as IBM Cloud IAM's clients do: `POST /identity/token` exchanges
//! an API key (`cipherstore iam apikey create`) for a bearer token (`iam::token`).

pub mod access;
pub mod body;
pub mod error;
pub mod route;
pub mod service;
pub mod view;

pub use error::KpError;
pub use service::{KeyService, PURGE_WAIT, Request, Response, ServiceOptions};
