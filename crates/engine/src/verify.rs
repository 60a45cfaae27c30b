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
    /// `recorded` and `replayed` describe the first decision where the two part ("nothing"
    /// for a side that has none there).
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
        if let Some((recorded, replayed)) = first_difference(&recorded, &replayed) {
            return Err(VerifyError::Mismatch {
                turn,
                recorded,
                replayed,
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

/// Both sides of the first decision where `recorded` and `replayed` part, described.
fn first_difference(
    recorded: &[(i32, &EventKind)],
    replayed: &[(i32, &EventKind)],
) -> Option<(String, String)> {
    let position = (0..recorded.len().max(replayed.len()))
        .find(|&index| recorded.get(index) != replayed.get(index))?;
    let describe = |decisions: &[(i32, &EventKind)]| {
        decisions.get(position).map_or_else(
            || "nothing".to_string(),
            |(event_id, kind)| describe_decision(*event_id, kind),
        )
    };
    let (recorded, mut replayed) = (describe(recorded), describe(replayed));
    if recorded == replayed {
        replayed.push_str(" (the payloads differ past the part shown)");
    }
    Some((recorded, replayed))
}

/// Longest payload a description quotes: enough to tell two inputs apart, short enough for a line.
const QUOTED_PAYLOAD_CHARS: usize = 120;

/// A decision event as a person reads it: what was decided, its sequence number and payload.
fn describe_decision(event_id: i32, kind: &EventKind) -> String {
    match kind {
        EventKind::TaskScheduled { name, input, .. } => {
            format!("activity '{name}' (#{event_id}){}", with_input(input))
        }
        EventKind::SubOrchestrationInstanceCreated {
            name,
            instance_id,
            input,
            ..
        } => format!(
            "sub-orchestration '{name}' as '{instance_id}' (#{event_id}){}",
            with_input(input)
        ),
        EventKind::TimerCreated { fire_at } => {
            format!("a timer (#{event_id}) firing at {}", fire_at.to_rfc3339())
        }
        EventKind::EventSent {
            instance_id,
            name,
            input,
        } => format!(
            "event '{name}' sent to '{instance_id}' (#{event_id}){}",
            with_input(input)
        ),
        EventKind::ExecutionCompleted {
            orchestration_status,
            result,
            failure_details,
        } => {
            let detail = match failure_details {
                Some(failure) => format!(
                    " ({}: {})",
                    failure.error_type,
                    quoted(&failure.error_message)
                ),
                None => with_payload("output", result),
            };
            format!("the end of the orchestration as {orchestration_status:?}{detail}")
        }
        EventKind::ContinueAsNew { result } => {
            format!("continue-as-new{}", with_input(result))
        }
        other => format!("{:?} (#{event_id})", other.event_type()),
    }
}

fn with_input(input: &Option<String>) -> String {
    with_payload("input", input)
}

fn with_payload(what: &str, payload: &Option<String>) -> String {
    payload
        .as_deref()
        .map_or_else(String::new, |text| format!(" with {what} {}", quoted(text)))
}

/// `text` cut to [`QUOTED_PAYLOAD_CHARS`] characters, marked when cut.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_PAYLOAD_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}
