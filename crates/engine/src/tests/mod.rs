//! Engine unit tests, each driving `execute` (or a `Session`) over a history written with
//! `HistoryBuilder`: the executor's state transitions, foreign awaits, sessions, and the error
//! names that get persisted.

mod error_names;
mod foreign_await;
mod session;
mod states;

use crate::{execute, FailureDetails, HistoryBuilder, HistoryEvent, Registry, Turn, TurnOutcome};

const ID: &str = "instance-1";

/// The opening of every history: the turn's clock, then the start of `name`.
fn started(name: &str) -> HistoryBuilder {
    HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started(name, &())
}

fn turn(registry: &Registry, past: &[HistoryEvent], new: &[HistoryEvent]) -> Turn {
    execute(registry, ID, past, new).expect("a valid instance history")
}

fn failure(turn: &Turn) -> &FailureDetails {
    match &turn.outcome {
        TurnOutcome::Failed { details } => details,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// JSON text of `value`, as payloads are stored.
fn json(value: &(impl serde::Serialize + ?Sized)) -> Option<String> {
    Some(serde_json::to_string(value).expect("test payloads serialize"))
}
