//! Key custody: root keys inside a PKCS#11 HSM used only to wrap and unwrap ([`hsm`], by the
//! method the token allows, [`wrapping`]) through a module loaded once per process and
//! re-initialised after HSM failures ([`module`]), its token found among its slots
//! ([`slots`]),
//! configured by module path, token and PIN source ([`config`]); the Key Protect lifecycle
//! and the root key → bucket key hierarchy ([`manager`]) over persistent state ([`state`]:
//! a file, [`state_file`], or the metadata service gateways share, [`state_kv`]),
//! an in-memory bucket key cache ([`cache`]) and an audit trail ([`audit`]); data encryption
//! keys wrapped for key service callers ([`dek`]) and the other actions they ask for
//! ([`actions`]), and key policies (rotation, dual authorization
//! for deletion: [`policy`]) key rings ([`rings`]) and import tokens
//! ([`import_token`]). Per-object
//! keys are derived from bucket keys by the engine, which owns each object's salt.

pub mod actions;
pub mod audit;
pub mod cache;
pub mod config;
pub mod dek;
pub mod error;
pub mod hsm;
pub mod id;
pub mod import_token;
pub mod manager;
pub mod module;
pub mod policy;
pub mod remote;
pub mod rings;
pub mod slots;
pub mod source;
pub mod state;
pub mod state_file;
pub mod state_kv;
pub mod wrapping;

pub use actions::{BucketKeyMode, Registration, UnwrappedDek, WrappedDek};
pub use config::HsmConfig;
pub use error::KeysError;
pub use hsm::Hsm;
pub use id::{KeyId, KeyRef};
pub use manager::{KeyManager, KeyMetrics, KeyView, ManagerOptions, NewRootKey};
pub use remote::{RemoteConfig, RemoteKeys};
pub use source::KeySource;
pub use wrapping::WrapMethod;
