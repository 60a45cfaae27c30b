//! Invariants every stored history must keep, whatever crashed or was redelivered.

use std::collections::HashSet;

use durable_engine::{EventKind, HistoryEvent};

/// Asserts the history never records the same thing twice: one decision per sequence number,
/// one completion per task, one event per delivering message.
pub fn assert_no_duplicates(history: &[HistoryEvent]) {
    let mut decisions = HashSet::new();
    let mut completions = HashSet::new();
    for event in history {
        if let Some(task_id) = event.kind.completed_task_id() {
            assert!(
                completions.insert(task_id),
                "completion of #{task_id} twice"
            );
        } else if event.kind.is_turn_output() && event.event_id >= 0 {
            assert!(
                decisions.insert(event.event_id),
                "decision #{} twice",
                event.event_id
            );
        }
    }
    let started = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ExecutionStarted { .. }))
        .count();
    assert_eq!(started, 1, "exactly one ExecutionStarted");
}
