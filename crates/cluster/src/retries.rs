//! Pacing of optimistic work on the key-value store: how often, and after what pause, a
//! transaction whose compare failed (another writer committed first), or a consistent read
//! that a commit overtook, is tried again. Used by the cluster store's commits and by the
//! identities kept in the store.
//!
//! Writers contending for one key that retry at once collide again; a random pause that
//! doubles with each failed try spreads them out, so that each gets through in turn.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Tries of a commit whose compare failed because another writer committed first.
pub const COMMIT_TRIES: usize = 16;
/// The longest pause between two tries.
const MOST: Duration = Duration::from_millis(64);

/// The tries of one commit: `while tries.next().await { … }` makes at most
/// [`COMMIT_TRIES`], the first at once and each later one after a random pause.
#[derive(Debug, Default)]
pub struct Retries {
    made: usize,
}

impl Retries {
    /// Waits as the next try should; false once every try has been made.
    pub async fn next(&mut self) -> bool {
        if self.made == COMMIT_TRIES {
            return false;
        }
        if self.made > 0 {
            tokio::time::sleep(pause(self.made)).await;
        }
        self.made += 1;
        true
    }

    /// Whether the try under way is the first.
    pub fn first(&self) -> bool {
        self.made <= 1
    }
}

/// A random pause before try `made + 1`: up to 1 ms after the first failure, doubling to
/// at most [`MOST`].
fn pause(made: usize) -> Duration {
    let ceiling = Duration::from_micros(1000u64 << made.min(6)).min(MOST);
    // A fresh RandomState is seeded differently on every call: jitter enough, no
    // dependency. The pause needs no secrecy.
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX).max(1);
    Duration::from_micros(random % micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_a_ceiling_and_vary() {
        for made in 1..COMMIT_TRIES {
            let p = pause(made);
            assert!(p < MOST, "try {made}: {p:?}");
            assert!(p < Duration::from_micros(1000u64 << made.min(6)));
        }
        let seen: std::collections::BTreeSet<Duration> = (0..32).map(|_| pause(6)).collect();
        assert!(seen.len() > 1, "pauses vary: {seen:?}");
    }

    #[tokio::test]
    async fn makes_every_try_and_no_more() {
        let mut tries = Retries::default();
        let mut made = 0;
        while tries.next().await {
            assert_eq!(tries.first(), made == 0);
            made += 1;
        }
        assert_eq!(made, COMMIT_TRIES);
        assert!(!tries.next().await);
    }
}
