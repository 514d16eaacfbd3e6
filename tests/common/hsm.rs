//! A SoftHSM2 token of the test's own. SoftHSM2 reads its configuration once per
//! process, so a test using a token re-runs itself in a child process with its own token
//! directory (made by hsm/create-token): tests run in parallel safely and never touch a
//! global token store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keys::{Hsm, HsmConfig, KeyManager, ManagerOptions, WrapMethod};

const CHILD: &str = "CIPHERSTORE_TEST_TOKEN_DIR";
/// The wrapping method a child's token configuration forces (unset: the token's choice).
const WRAP: &str = "CIPHERSTORE_TEST_WRAP";
pub(crate) const LABEL: &str = "cipherstore-test";
pub(crate) const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

pub(crate) struct Token {
    pub dir: PathBuf,
}

impl Token {
    pub(crate) fn pin(&self) -> String {
        std::fs::read_to_string(self.dir.join("user.pin")).unwrap().trim().to_owned()
    }
    /// The token's configuration, forcing the wrapping method the child was started with.
    pub(crate) fn config(&self) -> HsmConfig {
        let config = HsmConfig::new(Path::new(MODULE), LABEL, &self.pin());
        match std::env::var(WRAP) {
            Ok(name) => config.with_wrap(WrapMethod::parse(&name).unwrap()),
            Err(_) => config,
        }
    }
    pub(crate) fn manager(&self, ttl: Duration) -> KeyManager {
        let mut o = ManagerOptions::new(&self.dir.join("keys"));
        o.cache_ttl = ttl;
        KeyManager::open(Hsm::open(&self.config()).unwrap(), &o).unwrap()
    }
}

/// Runs `body` in a child process of this test binary that has its own token.
pub(crate) fn with_token(test: &str, body: impl FnOnce(&Token)) {
    with_token_wrapping(test, None, body)
}

/// [`with_token`] with new root keys wrapping by `method` (else the token's first choice).
pub(crate) fn with_token_wrapping(test: &str, method: Option<WrapMethod>, body: impl FnOnce(&Token)) {
    if let Ok(dir) = std::env::var(CHILD) {
        body(&Token { dir: dir.into() });
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/create-token");
    let made = Command::new(&script).arg(tmp.path()).arg(LABEL).output().unwrap();
    assert!(made.status.success(), "hsm/create-token failed: {}", String::from_utf8_lossy(&made.stderr));
    let mut child = Command::new(std::env::current_exe().unwrap());
    if let Some(m) = method {
        child.env(WRAP, m.name());
    }
    let out = child
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, tmp.path())
        .env("SOFTHSM2_CONF", tmp.path().join("softhsm2.conf"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "child run of {test} failed:\n{text}");
}
