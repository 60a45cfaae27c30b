//! Sessions (session.rs): each turn of a live session equals `execute` over the history so far;
//! the session closes when the execution ends or a turn errs, and keeps the code alive between.

use std::cell::Cell;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use super::{failure, json, started, with_drop_guards, DROPS, ID};
use crate::{
    completions, execute, join_all, ExecuteError, HistoryBuilder, HistoryEvent,
    OrchestrationContext, OrchestrationError, Registry, Session, Turn, TurnOutcome,
    NONDETERMINISM_ERROR_TYPE,
};

const MINUTE: Duration = Duration::from_secs(60);

thread_local! {
    /// How many times this test thread started an orchestrator that counts its starts.
    static STARTS: Cell<u32> = const { Cell::new(0) };
}

fn registry() -> Registry {
    with_drop_guards(Registry::builder())
        .orchestrator(
            "FanOut",
            |ctx: OrchestrationContext, count: i32| async move {
                STARTS.with(|starts| starts.set(starts.get() + 1));
                let squares = (0..count).map(|n| ctx.call_activity::<i32>("Square", &n));
                let mut sum = 0;
                for square in join_all(squares).await {
                    sum += square?;
                }
                Ok::<_, OrchestrationError>(sum)
            },
        )
        .orchestrator(
            "CallAThenB",
            |ctx: OrchestrationContext, (): ()| async move {
                let a: String = ctx.call_activity("A", "x").await?;
                let b: String = ctx.call_activity("B", "y").await?;
                Ok::<_, OrchestrationError>(vec![a, b])
            },
        )
        .orchestrator(
            "CallAThenTwoEvents",
            |ctx: OrchestrationContext, (): ()| async move {
                let a: String = ctx.call_activity("A", "x").await?;
                let first: String = ctx.wait_for_external_event("E").await?;
                let second: String = ctx.wait_for_external_event("E").await?;
                Ok::<_, OrchestrationError>(format!("{a} {first} {second}"))
            },
        )
        .orchestrator(
            "Countdown",
            |ctx: OrchestrationContext, remaining: u32| async move {
                let a: String = ctx.call_activity("A", &remaining).await?;
                if remaining == 0 {
                    return Ok::<_, OrchestrationError>(a);
                }
                ctx.continue_as_new(&(remaining - 1)).await
            },
        )
        .orchestrator(
            "Unordered",
            |ctx: OrchestrationContext, (): ()| async move {
                let mut tasks: FuturesUnordered<_> = ["a", "b", "c"]
                    .into_iter()
                    .map(|name| ctx.call_activity::<String>("Echo", name))
                    .collect();
                let mut finished = Vec::new();
                while let Some(result) = tasks.next().await {
                    finished.push(result?);
                    ctx.create_timer_after(MINUTE).await;
                }
                Ok::<_, OrchestrationError>(finished)
            },
        )
        .orchestrator(
            "Completions",
            |ctx: OrchestrationContext, (): ()| async move {
                let calls = ["a", "b", "c"].map(|name| ctx.call_activity::<String>("Echo", name));
                let mut calls = completions(calls);
                let mut order = Vec::new();
                while let Some((index, result)) = calls.next_completed().await {
                    let echoed = result?;
                    let next: String = ctx.call_activity("Echo", &echoed).await?;
                    order.push(format!("{index}:{next}"));
                }
                Ok::<_, OrchestrationError>(order)
            },
        )
        // Schedules a different activity when replayed: what code changed under a running
        // instance looks like to a replay.
        .orchestrator("Fickle", |ctx: OrchestrationContext, (): ()| async move {
            let name = if ctx.is_replaying() {
                "Replayed"
            } else {
                "Live"
            };
            Ok::<String, OrchestrationError>(ctx.call_activity(name, "x").await?)
        })
        .build()
        .expect("valid registry")
}

/// The new events of turn `turn` (counted from 1), which opens `turn` minutes in.
fn turn_events(turn: u32) -> HistoryBuilder {
    HistoryBuilder::new(ID)
        .advance(MINUTE * turn)
        .orchestrator_started()
}

/// A session driven next to `execute`: every turn must equal `execute` over the history so far.
struct Lockstep {
    registry: Registry,
    session: Session,
    history: Vec<HistoryEvent>,
}

impl Lockstep {
    fn open(name: &str, input: &(impl serde::Serialize + ?Sized)) -> (Self, Turn) {
        let registry = registry();
        let new = HistoryBuilder::new(ID)
            .orchestrator_started()
            .execution_started(name, input)
            .build();
        let expected = execute(&registry, ID, &[], &new);
        let (session, turn) = Session::open(&registry, ID, &[], &new).expect("a valid history");
        assert_eq!(Ok(&turn), expected.as_ref(), "first turn");
        let lockstep = Self {
            registry,
            session,
            history: turn.history_delta.clone(),
        };
        (lockstep, turn)
    }

    fn next(&mut self, new: HistoryBuilder) -> Result<Turn, ExecuteError> {
        let new = new.build();
        let expected = execute(&self.registry, ID, &self.history, &new);
        let turn = self.session.next_turn(&new);
        assert_eq!(turn, expected, "turn after {} events", self.history.len());
        if let Ok(turn) = &turn {
            self.history.extend(turn.history_delta.iter().cloned());
        }
        turn
    }

    fn turn(&mut self, new: HistoryBuilder) -> Turn {
        self.next(new).expect("a valid turn")
    }
}

#[test]
fn a_fan_out_completed_one_per_turn_equals_execute_every_turn() {
    const COUNT: i32 = 40;
    let (mut lockstep, first) = Lockstep::open("FanOut", &COUNT);
    assert_eq!(first.actions.len(), 40);
    // Completions in an order other than scheduling's, one per turn.
    let order: Vec<i32> = (0..COUNT).map(|n| (n * 7) % COUNT).collect();
    for (turn, &id) in (1..).zip(&order) {
        let last = id == *order.last().expect("not empty");
        let turn = lockstep.turn(turn_events(turn).task_completed(id, &(id * id)));
        assert!(turn.actions.is_empty(), "{:?}", turn.actions);
        assert_eq!(lockstep.session.is_open(), !last);
    }
    let sum: i32 = (0..COUNT).map(|n| n * n).sum();
    let end = execute(&lockstep.registry, ID, &lockstep.history, &[]).expect("replay");
    assert_eq!(end.outcome, TurnOutcome::Completed { output: json(&sum) });
}

#[test]
fn a_session_starts_the_code_once() {
    let registry = registry();
    let new = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("FanOut", &3)
        .build();
    let before = STARTS.with(Cell::get);
    let (mut session, _) = Session::open(&registry, ID, &[], &new).expect("opens");
    for (turn, id) in (1..).zip(0..3) {
        session
            .next_turn(&turn_events(turn).task_completed(id, &0).build())
            .expect("a valid turn");
    }
    assert!(!session.is_open());
    assert_eq!(STARTS.with(Cell::get), before + 1, "never replayed");
}

#[test]
fn suspend_and_resume_across_turns_equal_execute() {
    let (mut lockstep, _) = Lockstep::open("CallAThenB", &());
    let turn = lockstep.turn(turn_events(1).suspended());
    assert_eq!(turn.outcome, TurnOutcome::Suspended);
    let turn = lockstep.turn(turn_events(2).task_completed(0, "a"));
    assert_eq!(turn.outcome, TurnOutcome::Suspended);
    assert!(turn.actions.is_empty(), "A's result is held");
    let turn = lockstep.turn(turn_events(3).resumed());
    assert_eq!(turn.outcome, TurnOutcome::Running);
    assert_eq!(turn.actions.len(), 1, "B is scheduled on resume");
    let turn = lockstep.turn(turn_events(4).task_completed(1, "b"));
    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: json(&["a", "b"])
        }
    );
}

#[test]
fn external_events_buffered_across_turns_equal_execute() {
    let (mut lockstep, _) = Lockstep::open("CallAThenTwoEvents", &());
    lockstep.turn(turn_events(1).event_raised("E", "one"));
    lockstep.turn(turn_events(2).event_raised("e", "two"));
    let turn = lockstep.turn(turn_events(3).task_completed(0, "a"));
    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: json("a one two")
        }
    );
}

#[test]
fn combinators_kept_across_turns_equal_execute() {
    let (mut lockstep, _) = Lockstep::open("Unordered", &());
    let fire_at = |turn: u32| turn_events(turn).time() + MINUTE;
    lockstep.turn(turn_events(1).task_completed(1, "b"));
    lockstep.turn(turn_events(2).task_completed(0, "a"));
    lockstep.turn(turn_events(3).timer_fired(3, fire_at(1)));
    lockstep.turn(turn_events(4).timer_fired(4, fire_at(3)));
    lockstep.turn(turn_events(5).task_completed(2, "c"));
    let turn = lockstep.turn(turn_events(6).timer_fired(5, fire_at(5)));
    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: json(&["b", "a", "c"])
        }
    );

    let (mut lockstep, _) = Lockstep::open("Completions", &());
    lockstep.turn(turn_events(1).task_completed(2, "c"));
    lockstep.turn(turn_events(2).task_completed(0, "a"));
    lockstep.turn(turn_events(3).task_completed(3, "c2"));
    lockstep.turn(turn_events(4).task_completed(1, "b"));
    lockstep.turn(turn_events(5).task_completed(4, "a2"));
    let turn = lockstep.turn(turn_events(6).task_completed(5, "b2"));
    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: json(&["2:c2", "0:a2", "1:b2"])
        }
    );
}

#[test]
fn continue_as_new_closes_the_session() {
    let (mut lockstep, _) = Lockstep::open("Countdown", &1);
    let turn = lockstep.turn(
        turn_events(1)
            .event_raised("Unread", "carried")
            .task_completed(0, "a"),
    );
    let TurnOutcome::ContinuedAsNew {
        input,
        carryover_events,
    } = &turn.outcome
    else {
        panic!("expected continue-as-new, got {:?}", turn.outcome);
    };
    assert_eq!(input, &json(&0));
    assert_eq!(carryover_events.len(), 1);
    assert!(!lockstep.session.is_open());
    assert_eq!(
        lockstep.session.next_turn(&turn_events(2).build()),
        Err(ExecuteError::SessionClosed(ID.to_string()))
    );
}

#[test]
fn next_turn_does_not_replay_so_code_that_would_not_replay_goes_on() {
    let registry = registry();
    let mut history = started("Fickle").build();
    let (mut session, first) = Session::open(&registry, ID, &[], &history).expect("opens");
    history = first.history_delta;
    let new = turn_events(1).task_completed(0, "done").build();
    let turn = session.next_turn(&new).expect("a valid turn");
    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: json("done")
        }
    );
    let replayed = execute(&registry, ID, &history, &new).expect("a valid history");
    assert_eq!(failure(&replayed).error_type, NONDETERMINISM_ERROR_TYPE);
}

#[test]
fn a_completion_of_the_wrong_kind_fails_the_turn_as_in_execute() {
    let (mut lockstep, _) = Lockstep::open("CallAThenB", &());
    let fire_at = turn_events(1).time();
    let turn = lockstep.turn(turn_events(1).timer_fired(0, fire_at));
    assert_eq!(failure(&turn).error_type, NONDETERMINISM_ERROR_TYPE);
    assert!(!lockstep.session.is_open());
}

#[test]
fn terminate_ends_the_session() {
    let (mut lockstep, _) = Lockstep::open("CallAThenB", &());
    lockstep.turn(turn_events(1).task_completed(0, "a"));
    let turn = lockstep.turn(turn_events(2).terminated("stop"));
    assert_eq!(
        turn.outcome,
        TurnOutcome::Terminated {
            reason: json("stop")
        }
    );
    assert!(turn.actions.is_empty());
    assert!(!lockstep.session.is_open());
    assert_eq!(
        lockstep
            .session
            .next_turn(&turn_events(3).task_completed(1, "b").build()),
        Err(ExecuteError::SessionClosed(ID.to_string()))
    );
}

#[test]
fn a_turn_that_errs_closes_the_session() {
    let (mut lockstep, _) = Lockstep::open("CallAThenB", &());
    let error = lockstep
        .next(turn_events(1).execution_started("CallAThenB", &()))
        .expect_err("a second start");
    assert!(
        matches!(error, ExecuteError::CorruptHistory { .. }),
        "{error:?}"
    );
    assert!(!lockstep.session.is_open());
    assert_eq!(
        lockstep.session.next_turn(&turn_events(2).build()),
        Err(ExecuteError::SessionClosed(ID.to_string()))
    );
}

#[test]
fn a_history_that_recorded_its_end_opens_a_closed_session() {
    let registry = registry();
    let history = started("CallAThenB")
        .task_scheduled(0, "A", "x")
        .terminated("stop")
        .build();
    let (_, ended) = Session::open(&registry, ID, &[], &history).expect("opens");
    let past = ended.history_delta;
    let (session, turn) = Session::open(&registry, ID, &past, &[]).expect("opens");
    assert_eq!(Ok(&turn), execute(&registry, ID, &past, &[]).as_ref());
    assert!(turn.history_delta.is_empty());
    assert!(!session.is_open());
}

#[test]
fn the_code_stays_alive_between_turns() {
    let registry = registry();
    let before = DROPS.with(Cell::get);
    let (mut session, turn) =
        Session::open(&registry, ID, &[], &started("GuardedCallA").build()).expect("opens");
    assert_eq!(turn.outcome, TurnOutcome::Running);
    assert_eq!(DROPS.with(Cell::get), before, "kept for the next turn");
    let turn = session
        .next_turn(&turn_events(1).task_completed(0, "a").build())
        .expect("a valid turn");
    assert_eq!(turn.outcome, TurnOutcome::Completed { output: json("a") });
    assert_eq!(
        DROPS.with(Cell::get),
        before + 1,
        "dropped when it returned"
    );
}

#[test]
fn a_panic_in_drop_code_is_not_reported_while_the_session_runs() {
    let registry = registry();
    let history = started("PanickyCallA").build();
    let dropped = execute(&registry, ID, &[], &history).expect("a valid history");
    assert_eq!(failure(&dropped).error_type, "Panic");
    let (session, kept) = Session::open(&registry, ID, &[], &history).expect("opens");
    assert_eq!(kept.outcome, TurnOutcome::Running);
    // Letting the session go drops the code; its panic stays inside the engine.
    drop(session);
}
