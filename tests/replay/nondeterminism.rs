//! Original-versus-changed code: each history is recorded with one orchestrator and replayed with
//! a changed one, which must fail as nondeterministic naming both sides and the sequence number.

use std::future::Future;
use std::time::Duration;

use durable_engine::HistoryBuilder;
use durable_engine::{
    execute, verify::verify_history, Action, ActivityContext, ActivityError, HistoryEvent,
    OrchestrationContext, OrchestrationError, Registry, TurnOutcome, NONDETERMINISM_ERROR_TYPE,
};
use durable_runtime::testkit::InMemoryRuntime;

const INSTANCE: &str = "order-1";

/// A registry whose orchestrator "Order" is `code`, with echo activities A, B, C and X and the
/// sub-orchestrators "Child" and "OtherChild".
fn registry<F, Fut>(code: F) -> Registry
where
    F: Fn(OrchestrationContext, ()) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<String>, OrchestrationError>> + 'static,
{
    let mut builder = Registry::builder().orchestrator("Order", code);
    for activity in ["A", "B", "C", "X"] {
        builder = builder.activity(activity, move |_: ActivityContext, (): ()| async move {
            Ok::<_, ActivityError>(activity.to_lowercase())
        });
    }
    for child in ["Child", "OtherChild"] {
        builder = builder.orchestrator(child, move |_: OrchestrationContext, (): ()| async move {
            Ok::<_, OrchestrationError>(child.to_string())
        });
    }
    builder.build().expect("valid registry")
}

/// Runs the orchestrator in `registry` to completion and returns its history.
fn record(registry: Registry) -> Vec<HistoryEvent> {
    let mut runtime = InMemoryRuntime::new(registry);
    runtime.start("Order", INSTANCE, &()).expect("start");
    runtime
        .run_to_completion(Duration::from_secs(86_400))
        .expect("run");
    assert!(runtime
        .state(INSTANCE)
        .expect("instance")
        .status
        .is_terminal());
    runtime.history(INSTANCE).expect("history").to_vec()
}

/// Code that calls `names` in order, one after the other.
fn calls(names: &'static [&'static str]) -> Registry {
    registry(move |ctx, ()| async move {
        let mut results = Vec::new();
        for name in names {
            results.push(ctx.call_activity::<String>(name, &()).await?);
        }
        Ok(results)
    })
}

/// Replays the whole `history` against `changed` and returns the nondeterminism message.
fn nondeterminism_message(changed: &Registry, history: &[HistoryEvent]) -> String {
    let turn = execute(changed, INSTANCE, history, &[]).expect("a valid history");
    assert!(
        turn.actions.is_empty(),
        "a failed replay dispatches nothing: {:?}",
        turn.actions
    );
    match turn.outcome {
        TurnOutcome::Failed { details } => {
            assert_eq!(
                details.error_type, NONDETERMINISM_ERROR_TYPE,
                "{}",
                details.error_message
            );
            details.error_message
        }
        other => panic!("expected a nondeterminism failure, got {other:?}"),
    }
}

/// Records a history with `original`, replays it against `changed`, and asserts the
/// nondeterminism message mentions each of `fragments`.
fn assert_replay_reports(original: Registry, changed: &Registry, fragments: &[&str]) {
    let message = nondeterminism_message(changed, &record(original));
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "{fragment:?} missing from: {message}"
        );
    }
}

#[test]
fn changed_activity_name_is_reported_with_both_names() {
    assert_replay_reports(
        calls(&["A", "B"]),
        &calls(&["A", "C"]),
        &[
            "sequence #1",
            "TaskScheduled for activity 'B'",
            "scheduled activity 'C' there",
        ],
    );
}

#[test]
fn removed_call_in_the_middle_is_reported() {
    assert_replay_reports(
        calls(&["A", "B", "C"]),
        &calls(&["A", "C"]),
        &[
            "sequence #1",
            "TaskScheduled for activity 'B'",
            "scheduled activity 'C' there",
        ],
    );
}

#[test]
fn removed_last_call_is_reported_as_an_early_completion() {
    assert_replay_reports(
        calls(&["A", "B"]),
        &calls(&["A"]),
        &[
            "sequence #1",
            "TaskScheduled for activity 'B'",
            "completed the orchestration there",
        ],
    );
}

#[test]
fn added_call_in_the_middle_is_reported() {
    assert_replay_reports(
        calls(&["A", "C"]),
        &calls(&["A", "B", "C"]),
        &[
            "sequence #1",
            "TaskScheduled for activity 'C'",
            "scheduled activity 'B' there",
        ],
    );
}

#[test]
fn added_call_where_the_orchestration_completed_is_reported() {
    assert_replay_reports(
        calls(&["A"]),
        &calls(&["A", "B"]),
        &[
            "sequence #1",
            "ExecutionCompleted with status Completed",
            "scheduled activity 'B' there",
        ],
    );
}

#[test]
fn activity_replaced_by_timer_is_reported() {
    let changed = registry(|ctx, ()| async move {
        let first = ctx.call_activity::<String>("A", &()).await?;
        ctx.create_timer_after(Duration::from_secs(60)).await;
        Ok(vec![first])
    });
    assert_replay_reports(
        calls(&["A", "B"]),
        &changed,
        &[
            "sequence #1",
            "TaskScheduled for activity 'B'",
            "scheduled a timer there",
        ],
    );
}

#[test]
fn timer_replaced_by_activity_is_reported() {
    let original = registry(|ctx, ()| async move {
        ctx.create_timer_after(Duration::from_secs(60)).await;
        Ok(vec![ctx.call_activity::<String>("A", &()).await?])
    });
    assert_replay_reports(
        original,
        &calls(&["B", "A"]),
        &[
            "sequence #0",
            "TimerCreated",
            "scheduled activity 'B' there",
        ],
    );
}

#[test]
fn changed_sub_orchestration_name_is_reported() {
    let calling = |child: &'static str| {
        registry(move |ctx, ()| async move {
            Ok(vec![
                ctx.call_sub_orchestrator::<String>(child, None, &())
                    .await?,
            ])
        })
    };
    assert_replay_reports(
        calling("Child"),
        &calling("OtherChild"),
        &[
            "sequence #0",
            "SubOrchestrationInstanceCreated for sub-orchestration 'Child'",
            "scheduled sub-orchestration 'OtherChild' there",
        ],
    );
}

#[test]
fn changed_code_is_caught_by_the_turn_that_made_the_decision() {
    let history = record(calls(&["A", "B", "C"]));
    let error = verify_history(&calls(&["A", "B", "X"]), INSTANCE, &history)
        .expect_err("the third call changed");
    assert!(
        error.to_string().starts_with("turn 2 decided differently"),
        "{error}"
    );
}

#[test]
fn a_mismatch_names_the_recorded_and_the_replayed_decision() {
    let history = record(calls(&["A", "B", "C"]));
    assert_eq!(
        verify_history(&calls(&["A", "B", "X"]), INSTANCE, &history)
            .expect_err("the third call changed")
            .to_string(),
        "turn 2 decided differently: recorded activity 'C' (#2) with input null, replayed \
         activity 'X' (#2) with input null"
    );
    let greeting = |name: &'static str| {
        registry(
            move |ctx, ()| async move { Ok(vec![ctx.call_activity::<String>("A", &name).await?]) },
        )
    };
    assert_eq!(
        verify_history(&greeting("Ada"), INSTANCE, &record(greeting("Grace")))
            .expect_err("the input changed")
            .to_string(),
        "turn 0 decided differently: recorded activity 'A' (#0) with input \"Grace\", replayed \
         activity 'A' (#0) with input \"Ada\""
    );
    assert_eq!(
        verify_history(&calls(&["A"]), INSTANCE, &record(calls(&["A", "B"])))
            .expect_err("the second call is gone")
            .to_string(),
        "turn 1 decided differently: recorded activity 'B' (#1) with input null, replayed the \
         end of the orchestration as Completed with output [\"a\"]"
    );
}

/// The history stops after `A` completed; the new code's extra call is simply the next step.
#[test]
fn added_call_after_history_is_exhausted_is_new_work() {
    let history = HistoryBuilder::new(INSTANCE)
        .orchestrator_started()
        .execution_started("Order", &())
        .task_scheduled(0, "A", &())
        .orchestrator_completed()
        .build();
    let new_events = HistoryBuilder::new(INSTANCE)
        .advance(Duration::from_secs(1))
        .orchestrator_started()
        .task_completed(0, "a")
        .build();
    let turn =
        execute(&calls(&["A", "X", "B"]), INSTANCE, &history, &new_events).expect("valid history");
    assert_eq!(turn.outcome, TurnOutcome::Running);
    let scheduled: Vec<(i32, String)> = turn
        .actions
        .iter()
        .map(|action| match action {
            Action::ScheduleTask { id, name, .. } => (*id, name.clone()),
            other => panic!("unexpected action {other:?}"),
        })
        .collect();
    assert_eq!(scheduled, [(1, "X".to_string())]);
}
