//! What this process last saw of each summary row (absent, or its revision, ETag and blob), so a
//! summary write can go straight to a conditional insert or replace instead of reading first.
//! Only a hint: the condition is checked by the service, and a stale entry costs one retry.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use azure_core::Etag;
use lru::LruCache;

/// Enough for every instance a busy worker touches in a few seconds.
const CAPACITY: NonZeroUsize = match NonZeroUsize::new(8192) {
    Some(capacity) => capacity,
    None => unreachable!(),
};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum KnownSummary {
    Absent,
    Stored {
        revision: u64,
        etag: Etag,
        blob: Option<String>,
        /// The row's `PoisonMessages`, which a summary write must carry over.
        poison_messages: u32,
    },
}

pub(super) struct KnownSummaries {
    rows: Mutex<LruCache<String, KnownSummary>>,
}

impl Default for KnownSummaries {
    fn default() -> Self {
        Self {
            rows: Mutex::new(LruCache::new(CAPACITY)),
        }
    }
}

impl KnownSummaries {
    /// Takes what is known of `instance_id`'s row: a write that uses it records what it wrote.
    pub fn take(&self, instance_id: &str) -> Option<KnownSummary> {
        self.lock().pop(instance_id)
    }

    pub fn remember(&self, instance_id: &str, known: KnownSummary) {
        self.lock().put(instance_id.to_string(), known);
    }

    pub fn forget(&self, instance_id: &str) {
        self.lock().pop(instance_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, KnownSummary>> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_an_entry_removes_it() {
        let known = KnownSummaries::default();
        assert_eq!(known.take("a"), None);
        known.remember("a", KnownSummary::Absent);
        assert_eq!(known.take("a"), Some(KnownSummary::Absent));
        assert_eq!(known.take("a"), None);
        known.remember("b", KnownSummary::Absent);
        known.forget("b");
        assert_eq!(known.take("b"), None);
    }

    #[test]
    fn the_oldest_entries_make_room() {
        let known = KnownSummaries::default();
        for i in 0..=CAPACITY.get() {
            known.remember(&format!("i{i}"), KnownSummary::Absent);
        }
        assert_eq!(known.take("i0"), None);
        assert_eq!(
            known.take(&format!("i{}", CAPACITY.get())),
            Some(KnownSummary::Absent)
        );
    }
}
