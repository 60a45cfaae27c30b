//! Instance lifecycle: terminate, suspend and resume, operations on ended instances, starting
//! instances (unknown names, bad input, id reuse) and registry validation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use durable_engine::HistoryBuilder;
use durable_engine::{
    execute, ActivityContext, ActivityError, EventType, OrchestrationContext, OrchestrationError,
    OrchestrationStatus, Registry, RegistryError, Turn, TurnOutcome,
};
use durable_runtime::testkit::InMemoryRuntime;
use durable_runtime::RuntimeError;

use crate::common::{
    assert_terminated, events_of, history, run, start, state, unserializable, HOUR, ID,
};
use crate::failure_details::assert_failure;

async fn wait_forever(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    Ok(ctx.wait_for_external_event("Never").await?)
}

async fn nap(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    ctx.create_timer_after(HOUR).await;
    Ok("woke up".to_string())
}

async fn add(_: OrchestrationContext, (a, b): (i64, i64)) -> Result<i64, OrchestrationError> {
    Ok(a + b)
}

async fn one_step(ctx: OrchestrationContext, (): ()) -> Result<u64, OrchestrationError> {
    Ok(ctx.call_activity("Step", &()).await?)
}

/// Activity "Step" counts its calls; "TwoSteps" calls it twice and reports progress in its
/// custom status; "EventThenStep" waits for "First" before calling it.
fn counting_registry(calls: &Arc<AtomicU32>) -> Registry {
    let calls = calls.clone();
    Registry::builder()
        .activity("Step", move |_: ActivityContext, (): ()| {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<u32, ActivityError>(call) }
        })
        .orchestrator("TwoSteps", |ctx: OrchestrationContext, (): ()| async move {
            let first: u32 = ctx.call_activity("Step", &()).await?;
            ctx.set_custom_status(&format!("step {first} done"))?;
            let second: u32 = ctx.call_activity("Step", &()).await?;
            Ok::<_, OrchestrationError>(vec![first, second])
        })
        .orchestrator(
            "EventThenStep",
            |ctx: OrchestrationContext, (): ()| async move {
                let event: String = ctx.wait_for_external_event("First").await?;
                ctx.set_custom_status(&event)?;
                let step: u32 = ctx.call_activity("Step", &()).await?;
                Ok::<_, OrchestrationError>((event, step))
            },
        )
        .build()
        .unwrap()
}

/// Starts TwoSteps and suspends it in the same turn, then runs until idle: the first step runs,
/// and its completion is held.
fn suspended_two_steps(calls: &Arc<AtomicU32>) -> InMemoryRuntime {
    let mut rt = InMemoryRuntime::new(counting_registry(calls));
    rt.start("TwoSteps", ID, &()).unwrap();
    rt.suspend(ID, "hold on").unwrap();
    rt.run_until_idle().unwrap();
    rt
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("WaitForever", wait_forever)
        .orchestrator("Nap", nap)
        .orchestrator("Add", add)
        .orchestrator("OneStep", one_step)
        .build()
        .unwrap()
}

#[test]
fn terminate_ends_a_running_instance_with_the_reason_as_output() {
    let mut rt = start(registry(), "WaitForever", &());
    rt.terminate(ID, "operator gave up").unwrap();
    rt.run_until_idle().unwrap();

    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Terminated);
    assert_eq!(done.output_as::<String>().unwrap(), "operator gave up");
    assert_eq!(done.failure, None);
    let history = history(&rt, ID);
    assert_eq!(events_of(&history, EventType::ExecutionTerminated).len(), 1);
    assert_eq!(events_of(&history, EventType::ExecutionCompleted).len(), 1);
}

#[test]
fn pending_timer_does_not_revive_a_terminated_instance() {
    let mut rt = start(registry(), "Nap", &());
    rt.terminate(ID, "stop").unwrap();
    rt.run_until_idle().unwrap();
    let events_at_termination = history(&rt, ID).len();

    rt.advance(2 * HOUR).unwrap();
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Terminated);
    assert_eq!(done.output_as::<String>().unwrap(), "stop");
    assert_eq!(history(&rt, ID).len(), events_at_termination);
}

/// Executes OneStep's second turn, an hour after its first scheduled Step; `events` adds what
/// the second turn brings after its OrchestratorStarted.
fn one_step_second_turn(events: impl FnOnce(HistoryBuilder) -> HistoryBuilder) -> Turn {
    let past = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("OneStep", &())
        .task_scheduled(0, "Step", &())
        .orchestrator_completed()
        .build();
    let new = events(HistoryBuilder::new(ID).advance(HOUR).orchestrator_started()).build();
    execute(&registry(), ID, &past, &new).unwrap()
}

#[test]
fn activity_completion_after_terminate_is_ignored() {
    let turn = one_step_second_turn(|new| new.terminated("stop").task_completed(0, &7));

    assert_terminated(&turn, "\"stop\"");
}

#[test]
fn terminate_after_the_code_completed_in_the_same_turn_changes_nothing() {
    let turn = one_step_second_turn(|new| new.task_completed(0, &7).terminated("too late"));

    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: Some("7".to_string())
        }
    );
}

#[test]
fn terminate_while_suspended_with_a_held_completion_ends_the_instance() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut rt = suspended_two_steps(&calls);
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Suspended);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the first step ran");

    rt.terminate(ID, "cancelled").unwrap();
    rt.run_until_idle().unwrap();
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Terminated);
    assert_eq!(done.output_as::<String>().unwrap(), "cancelled");
    assert_eq!(
        done.custom_status, None,
        "the held completion never reached the code"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn operations_on_an_ended_instance_are_rejected() {
    let (mut rt, done) = run(registry(), "Add", &(2, 3));
    assert_eq!(done.status, OrchestrationStatus::Completed);
    let ended = |result: Result<(), RuntimeError>| {
        matches!(
            result,
            Err(RuntimeError::Ended { instance_id, status: OrchestrationStatus::Completed })
                if instance_id == ID
        )
    };

    assert!(ended(rt.terminate(ID, "late")));
    assert!(ended(rt.raise_event(ID, "Any", &1)));
    assert!(ended(rt.suspend(ID, "late")));
    assert!(ended(rt.resume(ID, "late")));
    assert_eq!(state(&rt, ID).output_as::<i64>().unwrap(), 5);
}

#[test]
fn operations_on_an_unknown_instance_are_rejected() {
    let mut rt = InMemoryRuntime::new(registry());
    let missing = |result: Result<(), RuntimeError>| matches!(result, Err(RuntimeError::NotFound(id)) if id == "ghost");
    assert!(missing(rt.terminate("ghost", "x")));
    assert!(missing(rt.raise_event("ghost", "Any", &1)));
}

#[test]
fn suspended_instance_holds_events_until_resumed() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut rt = start(counting_registry(&calls), "EventThenStep", &());
    rt.suspend(ID, "maintenance").unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Suspended);

    rt.raise_event(ID, "First", "hello").unwrap();
    rt.run_until_idle().unwrap();
    let held = state(&rt, ID);
    assert_eq!(held.status, OrchestrationStatus::Suspended);
    assert_eq!(held.custom_status, None);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no progress while suspended"
    );

    rt.resume(ID, "maintenance over").unwrap();
    rt.run_until_idle().unwrap();
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(
        done.output_as::<(String, u32)>().unwrap(),
        ("hello".to_string(), 1)
    );
}

#[test]
fn suspended_instance_holds_activity_completions_until_resumed() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut rt = suspended_two_steps(&calls);

    // The first step was already dispatched and completed, but the code has not seen it.
    let held = state(&rt, ID);
    assert_eq!(held.status, OrchestrationStatus::Suspended);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(held.custom_status, None);
    assert_eq!(
        events_of(&history(&rt, ID), EventType::TaskCompleted).len(),
        1
    );

    rt.resume(ID, "go on").unwrap();
    rt.run_until_idle().unwrap();
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(done.output_as::<Vec<u32>>().unwrap(), vec![1, 2]);
    assert_eq!(done.custom_status_as::<String>().unwrap(), "step 1 done");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn timer_that_fires_while_suspended_takes_effect_on_resume() {
    let mut rt = start(registry(), "Nap", &());
    rt.suspend(ID, "pause").unwrap();
    rt.advance(2 * HOUR).unwrap();
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Suspended);

    rt.resume(ID, "unpause").unwrap();
    rt.run_until_idle().unwrap();
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(done.output_as::<String>().unwrap(), "woke up");
}

#[test]
fn resume_of_a_running_instance_changes_nothing() {
    let mut rt = start(registry(), "WaitForever", &());
    rt.resume(ID, "not suspended").unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Running);
}

#[test]
fn unknown_orchestrator_cannot_be_started() {
    let mut rt = InMemoryRuntime::new(registry());
    assert!(matches!(
        rt.start("NoSuchOrchestrator", ID, &()),
        Err(RuntimeError::UnknownOrchestrator(name)) if name == "NoSuchOrchestrator"
    ));
    assert!(rt.state(ID).is_none());
}

#[test]
fn orchestrator_names_are_case_insensitive_at_start() {
    let (_, done) = run(registry(), "add", &(1, 1));
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(done.output_as::<i64>().unwrap(), 2);
}

#[test]
fn input_of_the_wrong_json_type_fails_the_instance_clearly() {
    let (_, done) = run(registry(), "Add", "two and three");

    assert_eq!(done.status, OrchestrationStatus::Failed);
    let failure = done.failure.unwrap();
    assert_eq!(failure.error_type, "InvalidInput");
    assert!(
        failure
            .error_message
            .starts_with("the input of orchestrator 'Add' is not valid:"),
        "{}",
        failure.error_message
    );
}

#[test]
fn orchestrator_output_that_cannot_be_serialized_fails_the_instance() {
    let registry = Registry::builder()
        .orchestrator("BadOutput", |_: OrchestrationContext, (): ()| async {
            Ok::<_, OrchestrationError>(unserializable())
        })
        .build()
        .unwrap();
    let (_, done) = run(registry, "BadOutput", &());

    assert_eq!(done.status, OrchestrationStatus::Failed);
    let failure = done.failure.unwrap();
    assert_failure(&failure, "OutputSerialization", &["key must be a string"]);
}

#[test]
fn running_instance_id_cannot_be_started_again_but_an_ended_one_can() {
    let mut rt = start(registry(), "WaitForever", &());
    assert!(matches!(
        rt.start("Add", ID, &(1, 2)),
        Err(RuntimeError::AlreadyExists { instance_id, status: OrchestrationStatus::Running })
            if instance_id == ID
    ));

    rt.terminate(ID, "make room").unwrap();
    rt.run_until_idle().unwrap();
    let old_execution = state(&rt, ID).execution_id;
    rt.start("Add", ID, &(1, 2)).unwrap();
    rt.run_until_idle().unwrap();
    let reused = state(&rt, ID);
    assert_eq!(reused.name, "Add");
    assert_eq!(reused.output_as::<i64>().unwrap(), 3);
    assert_ne!(reused.execution_id, old_execution);
}

#[test]
fn registry_rejects_duplicate_names_case_insensitively() {
    let orchestrators = Registry::builder()
        .orchestrator("Add", add)
        .orchestrator("ADD", add)
        .build();
    assert_eq!(
        orchestrators.err(),
        Some(RegistryError::Duplicate("ADD".to_string()))
    );

    let activities = Registry::builder()
        .activity("Step", |_: ActivityContext, (): ()| async {
            Ok::<(), ActivityError>(())
        })
        .activity("step", |_: ActivityContext, (): ()| async {
            Ok::<(), ActivityError>(())
        })
        .build();
    assert_eq!(
        activities.err(),
        Some(RegistryError::Duplicate("step".to_string()))
    );
}

#[test]
fn registry_rejects_empty_names() {
    let empty = Registry::builder().orchestrator("", add).build();
    assert_eq!(empty.err(), Some(RegistryError::EmptyName));
    let blank = Registry::builder()
        .activity("  ", |_: ActivityContext, (): ()| async {
            Ok::<(), ActivityError>(())
        })
        .build();
    assert_eq!(blank.err(), Some(RegistryError::EmptyName));
}

#[test]
fn registry_allows_an_orchestrator_and_an_activity_to_share_a_name() {
    let registry = Registry::builder()
        .orchestrator("Add", add)
        .activity("Add", |_: ActivityContext, (a, b): (i64, i64)| async move {
            Ok::<i64, ActivityError>(a + b)
        })
        .build()
        .unwrap();
    assert!(registry.has_orchestrator("add"));
    assert!(registry.has_activity("ADD"));
    assert!(!registry.has_activity("Sub"));
}
