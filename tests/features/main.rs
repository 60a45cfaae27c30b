//! Context feature tests: each feature of the orchestration API driven through the in-memory
//! runtime (and hand-written histories where the exact event order matters).

mod activities;
mod combinators;
mod common;
mod context_values;
mod continue_as_new;
mod events;
#[path = "../common/failure_details.rs"]
mod failure_details;
mod history_cap;
mod lifecycle;
mod recursive;
mod retention;
mod retry;
mod same_turn_races;
mod stuck;
mod sub_orchestrations;
mod timers;
