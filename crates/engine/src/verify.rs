//! Replays a recorded history against the current code, turn by turn, and reports the first turn
//! whose decisions differ from the recorded ones: the check to run before deploying changed code.

use super::error::ExecuteError;
use super::executor::execute;
use super::history::{EventKind, HistoryEvent};
use super::registry::Registry;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("turn {turn}: {source}")]
    Execute { turn: usize, source: ExecuteError },
    #[error("turn {turn} decided differently: recorded {recorded}, replayed {replayed}")]
    Mismatch {
        turn: usize,
        recorded: String,
        replayed: String,
    },
}

/// Checks every turn of `history`: given the events before the turn and the messages the turn
/// received, the code must make exactly the recorded decisions (same kinds, sequence numbers,
/// names, inputs and completion). Timestamps are not compared. Returns the number of turns.
pub fn verify_history(
    registry: &Registry,
    instance_id: &str,
    history: &[HistoryEvent],
) -> Result<usize, VerifyError> {
    let turns = recorded_turns(history);
    for (turn, recorded) in turns.iter().enumerate() {
        let replayed = execute(
            registry,
            instance_id,
            &history[..recorded.start],
            &recorded.messages,
        )
        .map_err(|source| VerifyError::Execute { turn, source })?;
        let recorded = decisions(recorded.events);
        let replayed = decisions(&replayed.history_delta);
        if recorded != replayed {
            return Err(VerifyError::Mismatch {
                turn,
                recorded: format!("{recorded:?}"),
                replayed: format!("{replayed:?}"),
            });
        }
    }
    Ok(turns.len())
}

/// One turn of a recorded history.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedTurn<'a> {
    /// Where the turn starts in the history (its OrchestratorStarted).
    pub start: usize,
    /// Every event the turn appended.
    pub events: &'a [HistoryEvent],
    /// The events the turn received rather than produced: what the runtime handed it.
    pub messages: Vec<HistoryEvent>,
}

/// Splits a recorded history into its turns, each opened by an OrchestratorStarted.
pub fn recorded_turns(history: &[HistoryEvent]) -> Vec<RecordedTurn<'_>> {
    let starts: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, event)| matches!(event.kind, EventKind::OrchestratorStarted))
        .map(|(index, _)| index)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(turn, &start)| {
            let end = starts.get(turn + 1).copied().unwrap_or(history.len());
            let events = &history[start..end];
            let messages = events
                .iter()
                .filter(|event| !event.kind.is_turn_output())
                .cloned()
                .collect();
            RecordedTurn {
                start,
                events,
                messages,
            }
        })
        .collect()
}

fn decisions(events: &[HistoryEvent]) -> Vec<(i32, &EventKind)> {
    events
        .iter()
        .filter(|event| {
            event.kind.is_turn_output() && !matches!(event.kind, EventKind::OrchestratorCompleted)
        })
        .map(|event| (event.event_id, &event.kind))
        .collect()
}
