//! What this runtime has done since it started, counted for benchmarks and operators: turns
//! committed, and the work that contention with other processes made it redo.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    turns: AtomicU64,
    conflicts: AtomicU64,
    redone_turns: AtomicU64,
}

/// A reading of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterSnapshot {
    /// Orchestration turns committed: one per batch of messages the engine ran for.
    pub turns: u64,
    /// Attempts at a batch that found the instance changed by another process (a commit, or a
    /// cached copy, that lost to another writer) and started the batch over.
    pub conflicts: u64,
    /// Turns whose orchestration code ran but whose commit was refused, so they ran again.
    pub redone_turns: u64,
}

impl Counters {
    pub(crate) fn turn_committed(&self) {
        self.turns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn conflict(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn turn_refused(&self) {
        self.redone_turns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            turns: self.turns.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            redone_turns: self.redone_turns.load(Ordering::Relaxed),
        }
    }
}
