//! In-process turn order per instance: messages for the same instance that this worker processes
//! at the same time take turns instead of racing, since all but one would lose the ETag check
//! and redo their load and turn. Across processes the ETag still decides; this only saves work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

/// Past this many entries, entries nobody holds are swept out on the next lock.
const SWEEP_AT: usize = 1024;

#[derive(Default)]
pub(crate) struct InstanceLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl InstanceLocks {
    /// Waits until no other turn of `instance_id` runs in this process; the turn runs while the
    /// guard lives.
    pub(crate) async fn lock(&self, instance_id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if locks.len() >= SWEEP_AT {
                locks.retain(|_, lock| lock.strong_count() > 0);
            }
            match locks.get(instance_id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(instance_id.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn turns_of_one_instance_take_turns_and_others_do_not_wait() {
        let locks = Arc::new(InstanceLocks::default());
        let first = locks.lock("a").await;
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { locks.lock("a").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a second turn of 'a' waits");
        let other = tokio::time::timeout(Duration::from_secs(5), locks.lock("b")).await;
        assert!(other.is_ok(), "another instance does not wait");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(
            second.is_ok(),
            "the waiting turn runs once the first is done"
        );
    }

    #[tokio::test]
    async fn entries_nobody_holds_are_swept() {
        let locks = InstanceLocks::default();
        for i in 0..SWEEP_AT + 10 {
            drop(locks.lock(&i.to_string()).await);
        }
        let held = locks.lock("held").await;
        let size = locks.locks.lock().unwrap().len();
        assert!(size < SWEEP_AT, "swept down to {size}");
        drop(held);
    }
}
