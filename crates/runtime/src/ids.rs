//! Where the runtime's ids come from (message ids, execution ids, the instance ids a client leaves
//! to it): random in production, a counter where a test needs reproducible recordings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use uuid::Uuid;

/// Names the counter's ids, so they have the shape of random ones (32 hex digits).
const SEQUENCE_NAMESPACE: Uuid = Uuid::from_u128(0x2d0c_6a5e_8f1b_4c53_9a47_0b1e_3c5d_7f90);

/// A source of unique ids. Clones share one sequence.
#[derive(Debug, Clone, Default)]
pub struct IdSource {
    /// `None` draws random ids.
    sequence: Option<Arc<AtomicU64>>,
}

impl IdSource {
    /// Random (UUID v4): ids made by separate processes never collide. The default.
    pub fn random() -> Self {
        Self::default()
    }

    /// UUID v5 of 1, 2, 3…: a run that asks for ids in the same order gets the same ids. Only
    /// for one runtime alone on its task hub (the testkit's): another process counting from 1
    /// would make the same ids.
    pub fn sequence() -> Self {
        Self {
            sequence: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    pub fn next_id(&self) -> String {
        let uuid = match &self.sequence {
            None => Uuid::new_v4(),
            Some(counter) => {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                Uuid::new_v5(&SEQUENCE_NAMESPACE, n.to_string().as_bytes())
            }
        };
        uuid.simple().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_repeat_and_random_ids_do_not() {
        let (a, b) = (IdSource::sequence(), IdSource::sequence());
        let first: Vec<String> = (0..3).map(|_| a.next_id()).collect();
        let second: Vec<String> = (0..3).map(|_| b.next_id()).collect();
        assert_eq!(first, second);
        assert_ne!(first[0], first[1]);
        assert_eq!(first[0].len(), 32);
        let random = IdSource::random();
        assert_ne!(random.next_id(), random.next_id());
    }

    #[test]
    fn clones_share_one_sequence() {
        let ids = IdSource::sequence();
        let clone = ids.clone();
        assert_ne!(ids.next_id(), clone.next_id());
    }
}
