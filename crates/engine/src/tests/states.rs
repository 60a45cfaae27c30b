//! One test per state transition: of the orchestrator code (`Root`), of the execution's end
//! (`End`), of message delivery (`Delivery`) in executor.rs, and of a command's decision
//! (`Decision`) and result slot (`SlotState`) in context.rs.

use std::cell::Cell;
use std::time::Duration;

use super::{failure, json, started, turn, with_drop_guards, DROPS, ID};
use crate::{
    execute, select2, Action, Either, EventKind, ExecuteError, FailureDetails, HistoryBuilder,
    HistoryEvent, OrchestrationContext, OrchestrationError, OrchestrationStatus, Registry,
    TurnOutcome, NONDETERMINISM_ERROR_TYPE,
};

const MINUTE: Duration = Duration::from_secs(60);

fn registry() -> Registry {
    with_drop_guards(Registry::builder())
        .orchestrator("Clock", |ctx: OrchestrationContext, (): ()| async move {
            Ok::<_, OrchestrationError>(ctx.current_utc_datetime().to_rfc3339())
        })
        .orchestrator("Immediate", |_: OrchestrationContext, (): ()| async move {
            Ok::<_, OrchestrationError>("done")
        })
        .orchestrator("CallA", |ctx: OrchestrationContext, (): ()| async move {
            Ok::<String, OrchestrationError>(ctx.call_activity("A", "x").await?)
        })
        .orchestrator(
            "CallAThenB",
            |ctx: OrchestrationContext, (): ()| async move {
                let a: String = ctx.call_activity("A", "x").await?;
                let b: String = ctx.call_activity("B", "y").await?;
                Ok::<_, OrchestrationError>(vec![a, b])
            },
        )
        .orchestrator(
            "RaceThenWait",
            |ctx: OrchestrationContext, (): ()| async move {
                let race = select2(
                    ctx.call_activity::<String>("A", "x"),
                    ctx.create_timer_after(MINUTE),
                );
                let winner = match race.await {
                    Either::Left(_) => "activity",
                    Either::Right(_) => "timer",
                };
                let go: String = ctx.wait_for_external_event("Go").await?;
                Ok::<_, OrchestrationError>(format!("{winner} {go}"))
            },
        )
        .orchestrator(
            "EventRaceThenEvent",
            |ctx: OrchestrationContext, (): ()| async move {
                let race = select2(
                    ctx.wait_for_external_event::<String>("E"),
                    ctx.create_timer_after(MINUTE),
                );
                let first = match race.await {
                    Either::Left((event, _)) => event?,
                    Either::Right(_) => "timed out".to_string(),
                };
                let second: String = ctx.wait_for_external_event("E").await?;
                Ok::<_, OrchestrationError>(format!("{first}, {second}"))
            },
        )
        .orchestrator(
            "AwaitADropB",
            |ctx: OrchestrationContext, (): ()| async move {
                let a = ctx.call_activity::<String>("A", "x");
                let b = ctx.call_activity::<String>("B", "y");
                let a = a.await?;
                drop(b);
                Ok::<_, OrchestrationError>(a)
            },
        )
        .orchestrator(
            "CallAThenEvent",
            |ctx: OrchestrationContext, (): ()| async move {
                let a: String = ctx.call_activity("A", "x").await?;
                let e: String = ctx.wait_for_external_event("E").await?;
                Ok::<_, OrchestrationError>(format!("{a} {e}"))
            },
        )
        .build()
        .expect("valid registry")
}

fn schedule_a() -> Action {
    Action::ScheduleTask {
        id: 0,
        name: "A".to_string(),
        input: json("x"),
    }
}

fn completed(output: &(impl serde::Serialize + ?Sized)) -> TurnOutcome {
    TurnOutcome::Completed {
        output: json(output),
    }
}

fn count(events: &[HistoryEvent], wanted: fn(&EventKind) -> bool) -> usize {
    events.iter().filter(|event| wanted(&event.kind)).count()
}

/// The end the turn appends, if any.
fn appended_end(delta: &[HistoryEvent]) -> Option<&HistoryEvent> {
    delta
        .iter()
        .find(|event| matches!(event.kind, EventKind::ExecutionCompleted { .. }))
}

/// A failure the engine or a client wrote in history, with no sequence number.
fn recorded_failure(history: HistoryBuilder, error_type: &str) -> HistoryBuilder {
    history.push(
        -1,
        EventKind::ExecutionCompleted {
            orchestration_status: OrchestrationStatus::Failed,
            result: None,
            failure_details: Some(FailureDetails::new(error_type, "written earlier")),
        },
    )
}

// ---- Root: Unclocked → NotStarted → Running → Returned | Stopped ----

#[test]
fn root_unclocked_refuses_execution_started() {
    let history = HistoryBuilder::new(ID)
        .execution_started("Clock", &())
        .build();
    assert_eq!(
        execute(&registry(), ID, &[], &history),
        Err(ExecuteError::MissingOrchestratorStarted(ID.to_string()))
    );
}

#[test]
fn root_unclocked_to_not_started_takes_the_orchestrator_started_time() {
    let opened = HistoryBuilder::new(ID).orchestrator_started();
    let opened_at = opened.time();
    let history = opened
        .advance(MINUTE)
        .execution_started("Clock", &())
        .build();
    let turn = turn(&registry(), &[], &history);
    assert_eq!(turn.outcome, completed(&opened_at.to_rfc3339()));
}

#[test]
fn root_not_started_to_running_runs_the_code_to_its_first_await() {
    let turn = turn(&registry(), &[], &started("CallAThenB").build());
    assert_eq!(turn.outcome, TurnOutcome::Running);
    assert_eq!(turn.actions, vec![schedule_a()]);
}

#[test]
fn root_not_started_to_stopped_when_no_orchestrator_has_the_name() {
    let turn = turn(&registry(), &[], &started("Nobody").build());
    assert_eq!(failure(&turn).error_type, "OrchestratorNotFound");
    assert!(turn.actions.is_empty());
}

#[test]
fn root_running_to_returned_completes_at_the_next_sequence_number() {
    let history = started("CallA")
        .task_scheduled(0, "A", "x")
        .task_completed(0, "a")
        .build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(turn.outcome, completed("a"));
    assert_eq!(
        appended_end(&turn.history_delta).map(|e| e.event_id),
        Some(1)
    );
}

#[test]
fn root_running_to_stopped_drops_the_code_at_the_end_of_the_turn() {
    let before = DROPS.with(Cell::get);
    let turn = turn(&registry(), &[], &started("GuardedCallA").build());
    assert_eq!(turn.outcome, TurnOutcome::Running);
    assert_eq!(DROPS.with(Cell::get), before + 1);
}

#[test]
fn root_returned_refuses_a_second_execution_started() {
    let history = started("Immediate")
        .execution_started("Immediate", &())
        .build();
    let error = execute(&registry(), ID, &history, &[]).expect_err("two starts");
    assert!(
        matches!(error, ExecuteError::CorruptHistory { .. }),
        "{error:?}"
    );
}

// ---- End: Open → FailedByEngine | Terminated | Recorded ----

#[test]
fn end_open_to_failed_by_engine_on_nondeterminism() {
    let history = started("CallA").task_scheduled(0, "B", "x").build();
    let turn = turn(&registry(), &history, &[]);
    let details = failure(&turn);
    assert_eq!(details.error_type, NONDETERMINISM_ERROR_TYPE);
    assert!(
        details.error_message.contains("activity 'A'"),
        "{}",
        details.error_message
    );
    assert_eq!(
        appended_end(&turn.history_delta).map(|e| e.event_id),
        Some(-1)
    );
}

#[test]
fn end_open_to_terminated_dispatches_nothing_from_the_turn() {
    let history = started("CallA").terminated("stop").build();
    let turn = turn(&registry(), &[], &history);
    assert_eq!(
        turn.outcome,
        TurnOutcome::Terminated {
            reason: json("stop")
        }
    );
    assert!(turn.actions.is_empty(), "{:?}", turn.actions);
    assert_eq!(
        appended_end(&turn.history_delta).map(|e| e.event_id),
        Some(-1)
    );
}

#[test]
fn end_stays_open_when_terminated_after_the_code_returned() {
    let history = started("Immediate").terminated("too late").build();
    let turn = turn(&registry(), &[], &history);
    assert_eq!(turn.outcome, completed("done"));
}

#[test]
fn end_open_to_recorded_by_code_appends_no_second_end() {
    let past = started("Immediate").build();
    let new = HistoryBuilder::new(ID)
        .execution_completed(0, "done")
        .build();
    let turn = turn(&registry(), &past, &new);
    assert_eq!(turn.outcome, completed("done"));
    let ends = count(&turn.history_delta, |kind| {
        matches!(kind, EventKind::ExecutionCompleted { .. })
    });
    assert_eq!(ends, 1, "only the recorded end: {:?}", turn.history_delta);
}

#[test]
fn end_open_to_recorded_by_engine_replays_the_written_failure() {
    let history = recorded_failure(started("CallA").task_scheduled(0, "A", "x"), "Written").build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(failure(&turn).error_type, "Written");
    assert!(turn.history_delta.is_empty());
    assert!(turn.actions.is_empty());
}

#[test]
fn end_terminated_to_failed_by_engine_when_dropping_the_code_panics() {
    let history = started("PanickyCallA").terminated("stop").build();
    let turn = turn(&registry(), &[], &history);
    let details = failure(&turn);
    assert_eq!(details.error_type, "Panic");
    assert!(
        details.error_message.contains("while being dropped"),
        "{}",
        details.error_message
    );
}

#[test]
fn end_failed_by_engine_is_replaced_by_a_later_engine_failure() {
    // Reporting the nondeterminism drops the code, whose drop panics first.
    let history = started("PanickyCallA").task_scheduled(0, "B", "x").build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(failure(&turn).error_type, NONDETERMINISM_ERROR_TYPE);
}

#[test]
fn end_recorded_by_engine_is_kept_over_a_panic_while_dropping() {
    let history = recorded_failure(
        started("PanickyCallA").task_scheduled(0, "A", "x"),
        "Written",
    )
    .build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(failure(&turn).error_type, "Written");
}

// ---- Delivery: Flowing ⇄ Suspended ----

#[test]
fn delivery_flowing_to_suspended_holds_completions() {
    let past = started("CallAThenB").task_scheduled(0, "A", "x").build();
    let new = HistoryBuilder::new(ID)
        .orchestrator_started()
        .suspended()
        .task_completed(0, "a")
        .build();
    let turn = turn(&registry(), &past, &new);
    assert_eq!(turn.outcome, TurnOutcome::Suspended);
    assert!(turn.actions.is_empty(), "B waits for the resume");
}

#[test]
fn delivery_suspended_to_flowing_applies_what_was_held() {
    let past = started("CallAThenB").task_scheduled(0, "A", "x").build();
    let new = HistoryBuilder::new(ID)
        .orchestrator_started()
        .suspended()
        .task_completed(0, "a")
        .resumed()
        .build();
    let turn = turn(&registry(), &past, &new);
    assert_eq!(turn.outcome, TurnOutcome::Running);
    assert_eq!(turn.actions.len(), 1);
    assert_eq!(turn.actions[0].id(), 1, "B was scheduled after A's result");
}

#[test]
fn delivery_suspended_again_keeps_what_the_first_suspend_held() {
    let past = started("CallAThenB").task_scheduled(0, "A", "x").build();
    let new = HistoryBuilder::new(ID)
        .orchestrator_started()
        .suspended()
        .task_completed(0, "a")
        .suspended()
        .resumed()
        .build();
    let turn = turn(&registry(), &past, &new);
    assert_eq!(turn.actions.len(), 1, "A's held result reached the code");
}

// ---- Decision: Emitted → Recorded ----

#[test]
fn decision_emitted_is_dispatched_with_its_decision_event() {
    let turn = turn(&registry(), &[], &started("CallA").build());
    assert_eq!(turn.actions, vec![schedule_a()]);
    let scheduled = count(&turn.history_delta, |kind| {
        matches!(kind, EventKind::TaskScheduled { .. })
    });
    assert_eq!(scheduled, 1);
}

#[test]
fn decision_emitted_to_recorded_is_not_dispatched_again() {
    let past = started("CallA").task_scheduled(0, "A", "x").build();
    let turn = turn(&registry(), &past, &[]);
    assert!(turn.actions.is_empty(), "{:?}", turn.actions);
    assert_eq!(turn.outcome, TurnOutcome::Running);
}

#[test]
fn decision_recorded_refuses_a_second_decision_event() {
    let history = started("CallA")
        .task_scheduled(0, "A", "x")
        .task_scheduled(0, "A", "x")
        .build();
    let turn = turn(&registry(), &history, &[]);
    let details = failure(&turn);
    assert_eq!(details.error_type, NONDETERMINISM_ERROR_TYPE);
    assert!(
        details.error_message.contains("already matched"),
        "{}",
        details.error_message
    );
}

#[test]
fn decision_emitted_ignores_a_completion() {
    let history = started("CallA").task_completed(0, "stale").build();
    let turn = turn(&registry(), &[], &history);
    assert_eq!(turn.outcome, TurnOutcome::Running);
    assert_eq!(turn.actions, vec![schedule_a()], "still new work");
}

// ---- SlotState: Waiting → Resolved → Settled, Waiting → Abandoned → Settled ----

#[test]
fn slot_waiting_to_resolved_to_settled_hands_the_result_to_the_code() {
    let history = started("CallAThenB")
        .task_scheduled(0, "A", "x")
        .task_completed(0, "a")
        .task_scheduled(1, "B", "y")
        .task_completed(1, "b")
        .build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(turn.outcome, completed(&["a", "b"]));
}

#[test]
fn slot_settled_ignores_a_duplicate_completion() {
    let history = started("CallAThenB")
        .task_scheduled(0, "A", "x")
        .task_completed(0, "first")
        .task_completed(0, "second")
        .task_scheduled(1, "B", "y")
        .task_completed(1, "b")
        .build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(turn.outcome, completed(&["first", "b"]));
}

#[test]
fn slot_resolved_ignores_a_duplicate_and_settles_when_its_future_is_dropped() {
    let history = started("AwaitADropB")
        .task_scheduled(0, "A", "x")
        .task_scheduled(1, "B", "y")
        .task_completed(1, "b")
        .task_completed(1, "b again")
        .task_completed(0, "a")
        .task_completed(1, "b once more")
        .build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(turn.outcome, completed("a"));
}

#[test]
fn slot_waiting_to_abandoned_discards_a_late_completion() {
    let opened = started("RaceThenWait");
    let fire_at = opened.time() + MINUTE;
    let history = opened
        .task_scheduled(0, "A", "x")
        .timer_created(1, fire_at)
        .timer_fired(1, fire_at)
        .task_completed(0, "late")
        .event_raised("Go", "go")
        .build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(turn.outcome, completed("timer go"));
}

#[test]
fn slot_abandoned_event_waiter_leaves_the_event_to_the_next_wait() {
    let opened = started("EventRaceThenEvent");
    let fire_at = opened.time() + MINUTE;
    let history = opened
        .timer_created(0, fire_at)
        .timer_fired(0, fire_at)
        .event_raised("E", "hello")
        .build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(turn.outcome, completed("timed out, hello"));
}

#[test]
fn slot_created_resolved_from_a_buffered_event() {
    let history = started("CallAThenEvent")
        .task_scheduled(0, "A", "x")
        .event_raised("E", "early")
        .task_completed(0, "a")
        .build();
    let turn = turn(&registry(), &history, &[]);
    assert_eq!(turn.outcome, completed("a early"));
}
