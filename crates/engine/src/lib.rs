//! The replay engine: pure orchestration semantics with no I/O, no clock and no async runtime.
//! A turn is `execute(registry, instance, past_events, new_events) -> Turn`; a `Session` keeps
//! the orchestration alive between turns.

mod action;
pub mod builder;
mod client_json;
mod combinators;
mod context;
pub mod entity;
mod error;
mod executor;
mod future;
mod history;
mod registry;
mod retry;
mod scope;
mod session;
pub mod verify;
mod versioning;

#[cfg(test)]
mod tests;

pub use action::Action;
pub use builder::HistoryBuilder;
pub use combinators::{
    completions, join2, join_all, select2, select_first, Completions, Either, Join2, JoinAll,
    Select2, SelectFirst,
};
pub use context::add_saturating;
pub use context::{ContinueAsNew, OrchestrationContext};
pub use entity::{EntityContext, EntityError, EntityId, LockGuard};
pub use error::panic_message;
pub use error::{ActivityError, ExecuteError, OrchestrationError, TaskError};
pub use executor::{
    execute, Turn, TurnOutcome, FOREIGN_AWAIT_ERROR_TYPE, NONDETERMINISM_ERROR_TYPE,
};
pub use future::DurableFuture;
pub use history::{
    EventKind, EventType, FailureDetails, HistoryEvent, OrchestrationInstance, OrchestrationStatus,
    ParentInstance, TraceContext,
};
pub use registry::{ActivityContext, ActivityFuture, Registry, RegistryBuilder, RegistryError};
pub use retry::RetryPolicy;
pub use session::Session;
pub use versioning::{compare_versions, UnknownStrategy, VersionFailure, VersionMatch, Versioning};
