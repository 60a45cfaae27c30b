//! At-least-once delivery and arrival order: duplicated or unknown completions change nothing, and
//! races resolve in history order while joins keep argument order.

use std::time::Duration;

use durable_engine::HistoryBuilder;
use durable_engine::{
    execute, join_all, select2, select_first, verify::verify_history, Action, ActivityContext,
    ActivityError, Either, EventKind, HistoryEvent, OrchestrationContext, OrchestrationError,
    OrchestrationStatus, Registry, Turn, TurnOutcome,
};
use durable_runtime::testkit::InMemoryRuntime;

const ID: &str = "order-1";
const CHILD_ID: &str = "order-1:0000";

fn registry() -> Registry {
    Registry::builder()
        .activity("Work", |_: ActivityContext, item: String| async move {
            Ok::<_, ActivityError>(item.to_uppercase())
        })
        .orchestrator("TwoCalls", |ctx: OrchestrationContext, (): ()| async move {
            let a: String = ctx.call_activity("Work", "a").await?;
            let b: String = ctx.call_activity("Work", "b").await?;
            Ok::<_, OrchestrationError>(vec![a, b])
        })
        .orchestrator(
            "TimerThenCall",
            |ctx: OrchestrationContext, (): ()| async move {
                ctx.create_timer_after(Duration::from_secs(60)).await;
                Ok::<String, OrchestrationError>(ctx.call_activity("Work", "after timer").await?)
            },
        )
        .orchestrator(
            "ChildThenCall",
            |ctx: OrchestrationContext, (): ()| async move {
                let child: String = ctx.call_sub_orchestrator("Child", None, &()).await?;
                let call: String = ctx.call_activity("Work", "after child").await?;
                Ok::<_, OrchestrationError>(vec![child, call])
            },
        )
        .orchestrator("Child", |_: OrchestrationContext, (): ()| async move {
            Ok::<_, OrchestrationError>("child".to_string())
        })
        .orchestrator(
            "RaceFirst",
            |ctx: OrchestrationContext, (): ()| async move {
                let calls = ["a", "b"].map(|item| ctx.call_activity::<String>("Work", item));
                let (index, value, _rest) = select_first(calls).await;
                Ok::<_, OrchestrationError>(format!("{index}:{}", value?))
            },
        )
        .orchestrator(
            "CallOrTimeout",
            |ctx: OrchestrationContext, (): ()| async move {
                let call = ctx.call_activity::<String>("Work", "a");
                let timer = ctx.create_timer_after(Duration::from_secs(60));
                Ok::<_, OrchestrationError>(match select2(call, timer).await {
                    Either::Left((value, _timer)) => value?,
                    Either::Right(((), _call)) => "timer".to_string(),
                })
            },
        )
        .orchestrator(
            "Gather",
            |ctx: OrchestrationContext, count: usize| async move {
                let calls =
                    (0..count).map(|n| ctx.call_activity::<String>("Work", &format!("item{n}")));
                let mut results = Vec::new();
                for result in join_all(calls).await {
                    results.push(result?);
                }
                Ok::<_, OrchestrationError>(results)
            },
        )
        .build()
        .expect("valid registry")
}

/// Executes the last turn of `events` (from its OrchestratorStarted) on top of the earlier ones.
fn run_last_turn(events: &[HistoryEvent]) -> Turn {
    let start = events
        .iter()
        .rposition(|event| matches!(event.kind, EventKind::OrchestratorStarted))
        .expect("a turn");
    execute(&registry(), ID, &events[..start], &events[start..]).expect("valid history")
}

fn decisions(turn: &Turn) -> Vec<(i32, EventKind)> {
    turn.history_delta
        .iter()
        .filter(|event| event.kind.is_turn_output())
        .map(|event| (event.event_id, event.kind.clone()))
        .collect()
}

fn scheduled_names(turn: &Turn) -> Vec<(i32, String)> {
    turn.actions
        .iter()
        .map(|action| match action {
            Action::ScheduleTask { id, name, .. } => (*id, name.clone()),
            other => panic!("unexpected action {other:?}"),
        })
        .collect()
}

/// The first turn of TwoCalls, then the second turn's OrchestratorStarted.
fn two_calls_second_turn() -> HistoryBuilder {
    HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("TwoCalls", &())
        .task_scheduled(0, "Work", "a")
        .orchestrator_completed()
        .advance(Duration::from_secs(1))
        .orchestrator_started()
}

fn assert_same_turn(single: &Turn, duplicated: &Turn) {
    assert_eq!(single.outcome, duplicated.outcome);
    assert_eq!(single.actions, duplicated.actions);
    assert_eq!(decisions(single), decisions(duplicated));
}

#[test]
fn duplicate_task_completed_in_one_turn_is_ignored() {
    let single = run_last_turn(&two_calls_second_turn().task_completed(0, "A").build());
    let duplicated = run_last_turn(
        &two_calls_second_turn()
            .task_completed(0, "A")
            .task_completed(0, "A")
            .build(),
    );
    assert_eq!(scheduled_names(&single), [(1, "Work".to_string())]);
    assert_same_turn(&single, &duplicated);
}

#[test]
fn duplicate_task_completed_in_a_later_turn_is_ignored() {
    let history = two_calls_second_turn()
        .task_completed(0, "A")
        .task_scheduled(1, "Work", "b")
        .orchestrator_completed()
        .advance(Duration::from_secs(1))
        .orchestrator_started()
        .task_completed(0, "A")
        .build();
    let turn = run_last_turn(&history);
    assert_eq!(turn.outcome, TurnOutcome::Running);
    assert!(turn.actions.is_empty());
    assert!(decisions(&turn)
        .iter()
        .all(|(_, kind)| matches!(kind, EventKind::OrchestratorCompleted)));
}

#[test]
fn duplicate_final_completion_completes_once() {
    let history = two_calls_second_turn()
        .task_completed(0, "A")
        .task_scheduled(1, "Work", "b")
        .orchestrator_completed()
        .orchestrator_started()
        .task_completed(1, "B")
        .task_completed(1, "B")
        .build();
    let turn = run_last_turn(&history);
    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: Some(r#"["A","B"]"#.to_string())
        }
    );
    let completions = decisions(&turn)
        .into_iter()
        .filter(|(_, kind)| matches!(kind, EventKind::ExecutionCompleted { .. }))
        .count();
    assert_eq!(completions, 1);
}

#[test]
fn duplicate_timer_fired_is_ignored() {
    let timer_turn = || {
        let builder = HistoryBuilder::new(ID)
            .orchestrator_started()
            .execution_started("TimerThenCall", &());
        let fire_at = builder.time() + chrono::Duration::seconds(60);
        let builder = builder
            .timer_created(0, fire_at)
            .orchestrator_completed()
            .advance(Duration::from_secs(60))
            .orchestrator_started();
        (builder, fire_at)
    };
    let (builder, fire_at) = timer_turn();
    let single = run_last_turn(&builder.timer_fired(0, fire_at).build());
    let (builder, fire_at) = timer_turn();
    let duplicated = run_last_turn(
        &builder
            .timer_fired(0, fire_at)
            .timer_fired(0, fire_at)
            .build(),
    );
    assert_eq!(scheduled_names(&single), [(1, "Work".to_string())]);
    assert_same_turn(&single, &duplicated);
}

#[test]
fn duplicate_sub_orchestration_completed_is_ignored() {
    let child_turn = || {
        HistoryBuilder::new(ID)
            .orchestrator_started()
            .execution_started("ChildThenCall", &())
            .sub_orchestration_created(0, "Child", CHILD_ID, &())
            .orchestrator_completed()
            .orchestrator_started()
            .sub_orchestration_completed(0, "child")
    };
    let single = run_last_turn(&child_turn().build());
    let duplicated = run_last_turn(&child_turn().sub_orchestration_completed(0, "child").build());
    assert_eq!(scheduled_names(&single), [(1, "Work".to_string())]);
    assert_same_turn(&single, &duplicated);
}

#[test]
fn completions_for_unknown_sequence_numbers_are_ignored() {
    let single = run_last_turn(&two_calls_second_turn().task_completed(0, "A").build());
    let with_strays = run_last_turn(
        &two_calls_second_turn()
            .task_completed(7, "stray")
            .task_completed(-1, "stray")
            .timer_fired(42, chrono::DateTime::UNIX_EPOCH)
            .sub_orchestration_completed(9, "stray")
            .task_completed(0, "A")
            .build(),
    );
    assert_same_turn(&single, &with_strays);
}

/// Sequence #1 is scheduled by the code in this very turn but not yet recorded in history.
#[test]
fn completion_for_an_unrecorded_decision_is_ignored() {
    let turn = run_last_turn(
        &two_calls_second_turn()
            .task_completed(0, "A")
            .task_completed(1, "B")
            .build(),
    );
    assert_eq!(turn.outcome, TurnOutcome::Running);
    assert_eq!(scheduled_names(&turn), [(1, "Work".to_string())]);
}

fn race_history(completion_order: [(i32, &str); 2]) -> Vec<HistoryEvent> {
    let mut builder = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("RaceFirst", &())
        .task_scheduled(0, "Work", "a")
        .task_scheduled(1, "Work", "b")
        .orchestrator_completed()
        .orchestrator_started();
    for (id, result) in completion_order {
        builder = builder.task_completed(id, result);
    }
    builder.build()
}

#[test]
fn select_first_picks_the_completion_first_in_history_not_first_in_code() {
    let second_first = run_last_turn(&race_history([(1, "B"), (0, "A")]));
    assert_eq!(
        second_first.outcome,
        TurnOutcome::Completed {
            output: Some(r#""1:B""#.to_string())
        }
    );
    let first_first = run_last_turn(&race_history([(0, "A"), (1, "B")]));
    assert_eq!(
        first_first.outcome,
        TurnOutcome::Completed {
            output: Some(r#""0:A""#.to_string())
        }
    );
}

#[test]
fn select2_picks_the_timer_when_it_fired_first_in_history() {
    let builder = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("CallOrTimeout", &());
    let fire_at = builder.time() + chrono::Duration::seconds(60);
    let history = builder
        .task_scheduled(0, "Work", "a")
        .timer_created(1, fire_at)
        .orchestrator_completed()
        .advance(Duration::from_secs(60))
        .orchestrator_started()
        .timer_fired(1, fire_at)
        .task_completed(0, "A")
        .build();
    let turn = run_last_turn(&history);
    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: Some(r#""timer""#.to_string())
        }
    );
}

#[test]
fn join_all_returns_argument_order_whatever_the_completion_order() {
    let mut builder = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("Gather", &4);
    for n in 0..4 {
        builder = builder.task_scheduled(n, "Work", &format!("item{n}"));
    }
    builder = builder.orchestrator_completed().orchestrator_started();
    for n in [2, 0, 3, 1] {
        builder = builder.task_completed(n, &format!("ITEM{n}"));
    }
    let turn = run_last_turn(&builder.build());
    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: Some(r#"["ITEM0","ITEM1","ITEM2","ITEM3"]"#.to_string())
        }
    );
}

/// The output, history and number of messages the runtime dropped of a shuffled `Gather` of six.
fn run_gather(duplicate_completions: bool) -> (Vec<String>, Vec<HistoryEvent>, u64) {
    let mut runtime = InMemoryRuntime::new(registry());
    runtime.set_activity_shuffle(Some(11));
    runtime.set_duplicate_completions(duplicate_completions);
    runtime.start("Gather", ID, &6).expect("start");
    runtime
        .run_to_completion(Duration::from_secs(60))
        .expect("run");
    let state = runtime.state(ID).expect("instance");
    assert_eq!(state.status, OrchestrationStatus::Completed);
    (
        state.output_as().expect("output"),
        runtime.history(ID).expect("history"),
        runtime.messages_dropped(),
    )
}

#[test]
fn runtime_with_duplicate_completions_gives_the_same_result_and_verifies() {
    let (expected, _, dropped_without) = run_gather(false);
    let (output, history, dropped) = run_gather(true);
    assert_eq!(output, expected);
    assert_eq!(dropped_without, 0);
    let count =
        |wanted: fn(&EventKind) -> bool| history.iter().filter(|event| wanted(&event.kind)).count();
    let scheduled = count(|kind| matches!(kind, EventKind::TaskScheduled { .. }));
    let completed = count(|kind| matches!(kind, EventKind::TaskCompleted { .. }));
    assert_eq!(scheduled, 6);
    // Every completion was delivered twice; the runtime recognised each second copy by its
    // message id and dropped it before it reached history.
    assert_eq!(dropped, 6, "one duplicate dropped per completion");
    assert_eq!(completed, scheduled);
    verify_history(&registry(), ID, &history).expect("the history verifies");
}
