//! Shared helpers for the feature tests: running an instance in the in-memory runtime, a
//! serializable picture of a task's result, and picking events out of a history.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use durable_engine::{
    EventKind, EventType, FailureDetails, HistoryEvent, Registry, TaskError, Turn, TurnOutcome,
};
use durable_runtime::testkit::{InMemoryRuntime, InstanceState};
use serde::{Deserialize, Serialize};

/// Instance id every single-instance test uses.
pub const ID: &str = "test";

pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(86_400);

/// The time the in-memory runtime's clock (and `HistoryBuilder`) starts at.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

pub fn at(offset: Duration) -> DateTime<Utc> {
    epoch() + chrono::Duration::from_std(offset).unwrap()
}

/// Starts orchestrator `name` as instance [`ID`] and runs until nothing is left to do at the
/// current time (timers in the future stay pending).
pub fn start(registry: Registry, name: &str, input: &(impl Serialize + ?Sized)) -> InMemoryRuntime {
    let mut rt = InMemoryRuntime::new(registry);
    rt.start(name, ID, input).expect("start");
    rt.run_until_idle().expect("run");
    rt
}

/// Starts orchestrator `name` as instance [`ID`], runs it (firing timers) for up to a year of
/// orchestration time, and returns the runtime and the instance's final state.
pub fn run(
    registry: Registry,
    name: &str,
    input: &(impl Serialize + ?Sized),
) -> (InMemoryRuntime, InstanceState) {
    let mut rt = start(registry, name, input);
    rt.run_to_completion(365 * DAY).expect("run to completion");
    let state = state(&rt, ID);
    (rt, state)
}

/// A value serde_json cannot serialize: JSON object keys must be strings, these are tuples.
pub fn unserializable() -> BTreeMap<(u8, u8), u8> {
    BTreeMap::from([((1, 2), 3)])
}

/// The default instance id of the child that `parent`'s current execution started at `sequence`.
pub fn child_id(rt: &InMemoryRuntime, parent: &str, sequence: i32) -> String {
    let execution = &state(rt, parent).execution_id;
    format!("{parent}:{execution}:{sequence:04x}")
}

pub fn state(rt: &InMemoryRuntime, id: &str) -> InstanceState {
    rt.state(id).expect("instance exists").clone()
}

pub fn history(rt: &InMemoryRuntime, id: &str) -> Vec<HistoryEvent> {
    rt.history(id).expect("instance exists").to_vec()
}

pub fn events_of(history: &[HistoryEvent], event_type: EventType) -> Vec<&HistoryEvent> {
    history
        .iter()
        .filter(|e| e.event_type() == event_type)
        .collect()
}

/// The times of the history's turns, from their OrchestratorStarted events.
pub fn turn_times(history: &[HistoryEvent]) -> Vec<DateTime<Utc>> {
    events_of(history, EventType::OrchestratorStarted)
        .iter()
        .map(|e| e.timestamp)
        .collect()
}

/// Each TimerCreated's fire time minus the start time of the turn that created it.
pub fn timer_delays(history: &[HistoryEvent]) -> Vec<Duration> {
    let mut turn_start = None;
    let mut delays = Vec::new();
    for event in history {
        match &event.kind {
            EventKind::OrchestratorStarted => turn_start = Some(event.timestamp),
            EventKind::TimerCreated { fire_at } => {
                let start = turn_start.expect("a timer is created inside a turn");
                delays.push(
                    (*fire_at - start)
                        .to_std()
                        .expect("timers fire after their turn"),
                );
            }
            _ => {}
        }
    }
    delays
}

/// The names of the activities a history scheduled, in sequence order.
pub fn scheduled_activities(history: &[HistoryEvent]) -> Vec<String> {
    history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TaskScheduled { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// Asserts the turn ended the instance as terminated, with `reason` (JSON text) as the reason,
/// and dispatched nothing.
pub fn assert_terminated(turn: &Turn, reason: &str) {
    assert_eq!(
        turn.outcome,
        TurnOutcome::Terminated {
            reason: Some(reason.to_string())
        }
    );
    assert!(turn.actions.is_empty());
}

/// A serializable copy of a `Result<T, TaskError>`, so an orchestration can return what an awaited
/// task produced and the test can assert on the exact variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome<T> {
    Ok(T),
    ActivityFailed {
        name: String,
        attempts: u32,
        details: FailureDetails,
        message: String,
    },
    SubOrchestrationFailed {
        name: String,
        instance_id: String,
        attempts: u32,
        details: FailureDetails,
        message: String,
    },
    Timeout {
        name: String,
        message: String,
    },
    InputSerialization {
        name: String,
        message: String,
    },
    ResultDeserialization {
        name: String,
        message: String,
    },
    /// An entity operation failed, or a critical section was misused.
    Entity {
        message: String,
    },
    InvalidRetryPolicy {
        name: String,
        message: String,
    },
}

impl<T> From<Result<T, TaskError>> for Outcome<T> {
    fn from(result: Result<T, TaskError>) -> Self {
        let error = match result {
            Ok(value) => return Self::Ok(value),
            Err(error) => error,
        };
        let message = error.to_string();
        match error {
            TaskError::ActivityFailed {
                name,
                attempts,
                details,
            } => Self::ActivityFailed {
                name,
                attempts,
                details: *details,
                message,
            },
            TaskError::SubOrchestrationFailed {
                name,
                instance_id,
                attempts,
                details,
            } => Self::SubOrchestrationFailed {
                name,
                instance_id,
                attempts,
                details: *details,
                message,
            },
            TaskError::Timeout { name } => Self::Timeout { name, message },
            TaskError::InputSerialization { name, .. } => {
                Self::InputSerialization { name, message }
            }
            TaskError::ResultDeserialization { name, .. } => {
                Self::ResultDeserialization { name, message }
            }
            TaskError::InvalidRetryPolicy { name, .. } => {
                Self::InvalidRetryPolicy { name, message }
            }
            TaskError::EntityOperationFailed { .. } | TaskError::LockMisuse { .. } => {
                Self::Entity { message }
            }
        }
    }
}
