//! A live orchestration kept between turns: the code stays in memory, so a turn applies only its
//! new events where `execute` replays the whole history first.

use super::error::ExecuteError;
use super::executor::{Executor, Lifetime, Turn};
use super::history::HistoryEvent;
use super::registry::Registry;

/// A live orchestration kept between turns, so a turn costs its new events, not a replay. Each
/// turn equals `execute` over the history so far, except that the code is not dropped after a
/// running turn: a panic in user drop code, which `execute` reports then, is not reported.
pub struct Session {
    instance_id: String,
    state: State,
}

enum State {
    /// The execution goes on; the executor holds the live code.
    Open(Box<Executor>),
    /// The execution ended, its history recorded the end, or a turn returned an error.
    Closed,
}

impl Session {
    /// Opens a session: replays `past_events` (is_replaying = true), applies `new_events`, and
    /// returns the first turn. Same errors and same Turn as `execute(registry, instance_id,
    /// past_events, new_events)`.
    pub fn open(
        registry: &Registry,
        instance_id: &str,
        past_events: &[HistoryEvent],
        new_events: &[HistoryEvent],
    ) -> Result<(Session, Turn), ExecuteError> {
        let (executor, turn) = Executor::open(
            registry,
            instance_id,
            past_events,
            new_events,
            Lifetime::Session,
        )?;
        let state = if executor.goes_on() {
            State::Open(Box::new(executor))
        } else {
            State::Closed
        };
        let session = Session {
            instance_id: instance_id.to_string(),
            state,
        };
        Ok((session, turn))
    }

    /// Applies the next turn's `new_events` (opened by an OrchestratorStarted carrying the turn's
    /// time) and returns exactly the Turn that `execute(registry, instance_id, past ++ every
    /// earlier turn's history_delta, new_events)` returns.
    pub fn next_turn(&mut self, new_events: &[HistoryEvent]) -> Result<Turn, ExecuteError> {
        let State::Open(executor) = &mut self.state else {
            return Err(ExecuteError::SessionClosed(self.instance_id.clone()));
        };
        let turn = executor.next_turn(new_events);
        if turn.is_err() || !executor.goes_on() {
            self.state = State::Closed;
        }
        turn
    }

    /// Whether another turn may follow: false once a turn's outcome ended the execution
    /// (Completed, Failed, Terminated, ContinuedAsNew), the history recorded its end, or a turn
    /// returned an error.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }
}
