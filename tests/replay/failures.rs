//! Orchestrator code that panics or awaits foreign futures fails its instance instead of crashing
//! or hanging, and histories that are not instance histories are rejected with an ExecuteError.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use durable_engine::HistoryBuilder;
use durable_engine::{
    execute, verify::verify_history, ActivityContext, ActivityError, EventKind, ExecuteError,
    FailureDetails, HistoryEvent, OrchestrationContext, OrchestrationError, OrchestrationInstance,
    OrchestrationStatus, Registry, Turn, TurnOutcome,
};
use durable_engine::{select2, Either};
use durable_runtime::testkit::InMemoryRuntime;

use crate::failure_details::assert_failure;

const ID: &str = "instance-1";

/// A future that is never ready and never arranges to be woken.
struct NeverReady;

impl Future for NeverReady {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// A future that is never ready but asks to be polled again at once, every time.
struct BusyPending;

impl Future for BusyPending {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn registry() -> Registry {
    Registry::builder()
        .activity("Work", |_: ActivityContext, item: String| async move {
            Ok::<_, ActivityError>(item.to_uppercase())
        })
        .orchestrator("Explode", |ctx: OrchestrationContext, (): ()| async move {
            let item: String = ctx.call_activity("Work", "a").await?;
            if !item.is_empty() {
                panic!("boom after {item}");
            }
            Ok::<_, OrchestrationError>(item)
        })
        .orchestrator("Fine", |ctx: OrchestrationContext, (): ()| async move {
            Ok::<String, OrchestrationError>(ctx.call_activity("Work", "fine").await?)
        })
        .orchestrator(
            "AwaitStdPending",
            |_: OrchestrationContext, (): ()| async move {
                std::future::pending::<()>().await;
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "AwaitNeverReady",
            |ctx: OrchestrationContext, (): ()| async move {
                let _: String = ctx.call_activity("Work", "first").await?;
                NeverReady.await;
                Ok::<_, OrchestrationError>(())
            },
        )
        .orchestrator(
            "AwaitBusyPending",
            |_: OrchestrationContext, (): ()| async move {
                BusyPending.await;
                Ok::<_, OrchestrationError>(())
            },
        )
        .build()
        .expect("valid registry")
}

fn run(runtime: &mut InMemoryRuntime, name: &str, instance_id: &str) {
    runtime.start(name, instance_id, &()).expect("start");
    runtime
        .run_to_completion(Duration::from_secs(60))
        .expect("run");
}

fn failure(runtime: &InMemoryRuntime, instance_id: &str) -> FailureDetails {
    let state = runtime.state(instance_id).expect("instance");
    assert_eq!(state.status, OrchestrationStatus::Failed);
    state.failure.clone().expect("failure details")
}

#[test]
fn panic_fails_the_instance_with_the_panic_message() {
    let mut runtime = InMemoryRuntime::new(registry());
    run(&mut runtime, "Explode", "explode-1");
    let details = failure(&runtime, "explode-1");
    assert_failure(&details, "Panic", &["boom after A", "'Explode'"]);
    let history = runtime.history("explode-1").expect("history");
    verify_history(&registry(), "explode-1", &history).expect("the panic replays identically");
}

#[test]
fn executor_keeps_working_after_a_panic() {
    let mut runtime = InMemoryRuntime::new(registry());
    runtime.start("Explode", "explode-1", &()).expect("start");
    runtime.start("Fine", "fine-1", &()).expect("start");
    runtime
        .run_to_completion(Duration::from_secs(60))
        .expect("run");
    run(&mut runtime, "Fine", "fine-2");
    assert_eq!(failure(&runtime, "explode-1").error_type, "Panic");
    for instance_id in ["fine-1", "fine-2"] {
        let state = runtime.state(instance_id).expect("instance");
        assert_eq!(
            state.status,
            OrchestrationStatus::Completed,
            "{instance_id}"
        );
        assert_eq!(state.output_as::<String>().unwrap(), "FINE");
    }
}

#[test]
fn awaiting_std_pending_is_a_foreign_await() {
    let mut runtime = InMemoryRuntime::new(registry());
    run(&mut runtime, "AwaitStdPending", "pending-1");
    let details = failure(&runtime, "pending-1");
    assert_failure(&details, "ForeignAwait", &["'AwaitStdPending'"]);
}

#[test]
fn awaiting_a_hand_written_never_ready_future_after_durable_work_is_a_foreign_await() {
    let mut runtime = InMemoryRuntime::new(registry());
    run(&mut runtime, "AwaitNeverReady", "never-1");
    assert_eq!(failure(&runtime, "never-1").error_type, "ForeignAwait");
    let history = runtime.history("never-1").expect("history");
    let scheduled = history
        .iter()
        .filter(|event| matches!(event.kind, EventKind::TaskScheduled { .. }))
        .count();
    assert_eq!(
        scheduled, 1,
        "the durable call before the foreign await ran"
    );
}

/// Executes the first turn of a new instance of `orchestrator`.
fn first_turn(orchestrator: &str) -> Turn {
    let history = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started(orchestrator, &())
        .build();
    execute(&registry(), ID, &[], &history).expect("valid history")
}

#[test]
fn a_foreign_future_that_wakes_itself_is_reported_not_spun_on() {
    let turn = first_turn("AwaitBusyPending");
    match turn.outcome {
        TurnOutcome::Failed { details } => assert_eq!(details.error_type, "ForeignAwait"),
        other => panic!("expected a ForeignAwait failure, got {other:?}"),
    }
}

#[test]
fn unregistered_orchestrator_fails_with_orchestrator_not_found() {
    let turn = first_turn("NoSuchOrchestrator");
    assert!(turn.actions.is_empty());
    match turn.outcome {
        TurnOutcome::Failed { details } => {
            assert_failure(&details, "OrchestratorNotFound", &["'NoSuchOrchestrator'"]);
        }
        other => panic!("expected OrchestratorNotFound, got {other:?}"),
    }
}

#[test]
fn history_without_execution_started_is_rejected() {
    let history = HistoryBuilder::new(ID)
        .orchestrator_started()
        .task_completed(0, "A")
        .build();
    let error = execute(&registry(), ID, &history, &[]).expect_err("no ExecutionStarted");
    assert_eq!(error, ExecuteError::MissingExecutionStarted(ID.to_string()));
}

#[test]
fn execution_started_before_any_orchestrator_started_is_rejected() {
    let history = HistoryBuilder::new(ID)
        .execution_started("Fine", &())
        .orchestrator_started()
        .build();
    let error = execute(&registry(), ID, &history, &[]).expect_err("ExecutionStarted comes second");
    assert_eq!(
        error,
        ExecuteError::MissingOrchestratorStarted(ID.to_string())
    );
}

#[test]
fn two_execution_started_events_are_rejected_as_corrupt() {
    let history = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("Fine", &())
        .task_scheduled(0, "Work", "fine")
        .orchestrator_completed()
        .orchestrator_started()
        .execution_started("Fine", &())
        .build();
    let error = execute(&registry(), ID, &history, &[]).expect_err("two starts");
    let ExecuteError::CorruptHistory {
        instance_id,
        message,
    } = error
    else {
        panic!("expected CorruptHistory, got {error:?}");
    };
    assert_eq!(instance_id, ID);
    assert!(
        message.contains("more than one ExecutionStarted"),
        "{message}"
    );
}

#[test]
fn history_of_another_instance_is_rejected() {
    let history = HistoryBuilder::new("someone-else")
        .orchestrator_started()
        .execution_started("Fine", &())
        .build();
    let error = execute(&registry(), ID, &history, &[]).expect_err("wrong instance");
    assert_eq!(
        error,
        ExecuteError::InstanceMismatch {
            requested: ID.to_string(),
            found: "someone-else".to_string(),
        }
    );
}

#[test]
fn execution_started_found_in_new_events_only_must_still_match_the_instance() {
    let started = HistoryEvent::message(
        chrono::DateTime::UNIX_EPOCH,
        EventKind::ExecutionStarted {
            name: "Fine".to_string(),
            version: None,
            input: None,
            orchestration_instance: OrchestrationInstance {
                instance_id: "other".to_string(),
                execution_id: "e".to_string(),
            },
            parent_instance: None,
            scheduled_start_time: None,
            parent_trace_context: None,
            tags: Default::default(),
        },
    );
    let opened =
        HistoryEvent::message(chrono::DateTime::UNIX_EPOCH, EventKind::OrchestratorStarted);
    let error = execute(&registry(), ID, &[], &[opened, started]).expect_err("wrong instance");
    assert!(
        matches!(error, ExecuteError::InstanceMismatch { .. }),
        "{error:?}"
    );
}

/// What users write by mistake: a durable timer raced against a tokio sleep. The runtime runs
/// orchestrators inside tokio, so the sleep really arms a timer that would wake the code from
/// outside the history; it is reported at once, not left to hang or to race on replay.
#[test]
fn a_tokio_sleep_raced_against_a_durable_timer_is_a_foreign_await() {
    let registry = Registry::builder()
        .orchestrator(
            "RaceTheTimer",
            |ctx: OrchestrationContext, (): ()| async move {
                let durable = ctx.create_timer_after(Duration::from_secs(3600));
                let foreign = Box::pin(tokio::time::sleep(Duration::from_millis(1)));
                match select2(durable, foreign).await {
                    Either::Left(_) => Ok::<_, OrchestrationError>("the durable timer".to_string()),
                    Either::Right(_) => Ok("the tokio sleep".to_string()),
                }
            },
        )
        .build()
        .unwrap();
    let mut runtime = InMemoryRuntime::new(registry);
    runtime.start("RaceTheTimer", "race-1", &()).expect("start");
    runtime.run_until_idle().expect("run");
    let state = runtime.state("race-1").expect("instance");
    assert_eq!(state.status, OrchestrationStatus::Failed, "{state:?}");
    let details = state.failure.expect("failure details");
    assert_failure(&details, "ForeignAwait", &["'RaceTheTimer'", "select2"]);
}
