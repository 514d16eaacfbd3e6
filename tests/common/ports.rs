//! Ports for the servers the tests start (etcd members, Ceph's monitor and radosgw,
//! PostgreSQL).
//!
//! A port is chosen free and let go before its server binds it, and a member stopped and
//! started again binds the same port later. A port from the kernel's ephemeral range
//! (32768-60999, what binding to port 0 gives) can meanwhile become the local port of any
//! outgoing connection (etcd clients reconnect many times a second while a member is down),
//! and the server then cannot listen. Ports here come from below that range, clear of the
//! project's fixed ports (scripts/cluster's 9100s, 12379-19543) and of the e2e harness's
//! 20000-29999, and are never handed out twice in one test process.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::sync::Mutex;

const FIRST: u16 = 30000;
const LAST: u16 = 32767;

static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// `count` adjacent ports on 127.0.0.1, none bound now; returns the first.
pub(crate) fn free_ports(count: u16) -> u16 {
    let span = u64::from(LAST - FIRST + 2 - count);
    for _ in 0..1000 {
        let random = RandomState::new().build_hasher().finish();
        let first = FIRST + u16::try_from(random % span).unwrap();
        let mut given = GIVEN.lock().unwrap();
        let ports = first..first + count;
        if ports.clone().any(|p| given.contains(&p)) {
            continue;
        }
        if ports.clone().all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            given.extend(ports);
            return first;
        }
    }
    panic!("no {count} free adjacent ports on 127.0.0.1 in {FIRST}-{LAST}");
}

/// A port on 127.0.0.1 nothing is bound to now.
pub(crate) fn free_port() -> u16 {
    free_ports(1)
}
