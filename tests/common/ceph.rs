//! A single-node Ceph with radosgw on loopback for the tests, started by `scripts/dev/ceph`
//! (which installs Debian's packages if missing) in a directory of its own, on free ports,
//! and stopped by PID when dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cluster::blobs::BlobConfig;

use super::ports::{free_port, free_ports};

pub(crate) struct Ceph {
    dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dev/ceph")
}

impl Ceph {
    /// Starts the cluster (about 20 s).
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Two adjacent ports for the monitor (msgr v2 and v1).
        let mon = free_ports(2);
        let out = Command::new(script())
            .args(["up"])
            .arg(dir.path())
            .env("RGW_PORT", free_port().to_string())
            .env("MON_PORT", mon.to_string())
            .env("CEPH_MEM_BYTES", (512u64 << 20).to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let ceph = Self {
            vars: stdout
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            dir,
        };
        assert!(
            out.status.success() && ceph.vars.contains_key("BACKEND_ENDPOINT"),
            "scripts/dev/ceph up failed:\n{}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        ceph
    }

    pub(crate) fn var(&self, name: &str) -> &str {
        &self.vars[name]
    }

    /// The blob configuration of the cluster's bucket.
    pub(crate) fn blob_config(&self) -> BlobConfig {
        BlobConfig::new(
            self.var("BACKEND_ENDPOINT"),
            self.var("BACKEND_BUCKET"),
            self.var("BACKEND_AK"),
            self.var("BACKEND_SK"),
        )
    }

    fn run(&self, cmd: &str) {
        let status = Command::new(script()).arg(cmd).arg(self.dir.path()).status().unwrap();
        assert!(status.success(), "scripts/dev/ceph {cmd} failed");
    }

    /// Stops radosgw only.
    pub(crate) fn stop_rgw(&self) {
        self.run("stop-rgw");
    }

    /// Starts radosgw again and waits until it answers.
    pub(crate) fn start_rgw(&self) {
        self.run("start-rgw");
    }
}

impl Drop for Ceph {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("down").arg(self.dir.path()).status();
    }
}
