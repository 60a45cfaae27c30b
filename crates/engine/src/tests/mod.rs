//! Engine unit tests, each driving `execute` (or a `Session`) over a history written with
//! `HistoryBuilder`: the executor's state transitions, foreign awaits, sessions, and the error
//! names that get persisted.

mod entities;
mod error_names;
mod foreign_await;
mod session;
mod states;

use std::cell::Cell;

use crate::{
    execute, FailureDetails, HistoryBuilder, HistoryEvent, OrchestrationContext,
    OrchestrationError, Registry, RegistryBuilder, Turn, TurnOutcome,
};

const ID: &str = "instance-1";

thread_local! {
    /// How many `CountsDrop` guards this test thread dropped; the engine runs on the test's
    /// thread.
    static DROPS: Cell<u32> = const { Cell::new(0) };
}

/// Counts its drops in [`DROPS`]: tells whether the engine dropped the code.
struct CountsDrop;

impl Drop for CountsDrop {
    fn drop(&mut self) {
        DROPS.with(|drops| drops.set(drops.get() + 1));
    }
}

/// User drop code that panics.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("guard dropped");
    }
}

/// The opening of every history: the turn's clock, then the start of `name`.
fn started(name: &str) -> HistoryBuilder {
    HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started(name, &())
}

/// Registers `GuardedCallA` and `PanickyCallA`: code that holds a drop guard ([`CountsDrop`],
/// [`PanicsOnDrop`]) while it waits for activity `A`.
fn with_drop_guards(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .orchestrator(
            "GuardedCallA",
            |ctx: OrchestrationContext, (): ()| async move {
                let _guard = CountsDrop;
                Ok::<String, OrchestrationError>(ctx.call_activity("A", "x").await?)
            },
        )
        .orchestrator(
            "PanickyCallA",
            |ctx: OrchestrationContext, (): ()| async move {
                let _guard = PanicsOnDrop;
                Ok::<String, OrchestrationError>(ctx.call_activity("A", "x").await?)
            },
        )
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
