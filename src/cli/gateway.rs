//! What the operator commands that act on a cluster's shared state (`keys --config`,
//! `sweep`) need from a gateway's configuration file: the settings `serve` would resolve
//! from it, and a small async runtime for the metadata and blob clients.

use std::path::Path;

use anyhow::Context;

use crate::serve::config::{Flags, ServeConfig};

/// The settings `cipherstore serve --config FILE` would run with (file, then environment).
pub(super) fn settings(file: &Path) -> anyhow::Result<ServeConfig> {
    let flags = Flags { config: Some(file.to_path_buf()), ..Flags::default() };
    ServeConfig::resolve(flags, engine::Backend::default())
}

/// A one-worker runtime for the clients of one command.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
