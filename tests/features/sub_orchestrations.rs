//! Sub-orchestrations: outputs and failures routed to the parent, explicit and default child
//! instance ids, children that cannot start, the parent link, and nesting.

use durable_engine::{
    join_all, ActivityContext, ActivityError, EventKind, EventType, OrchestrationContext,
    OrchestrationError, OrchestrationStatus, Registry,
};
use durable_runtime::testkit::{InMemoryRuntime, InstanceState};

use crate::common::{child_id, events_of, history, run, state, unserializable, Outcome, ID};
use crate::failure_details::assert_failure;

async fn double(_: OrchestrationContext, n: i64) -> Result<i64, OrchestrationError> {
    Ok(n * 2)
}

async fn reject(_: OrchestrationContext, reason: String) -> Result<(), OrchestrationError> {
    Err(OrchestrationError::with_type("Rejected", reason))
}

async fn wait_forever(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    Ok(ctx.wait_for_external_event("Never").await?)
}

async fn parent_name(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Option<String>, OrchestrationError> {
    Ok(ctx.parent().map(|parent| parent.name.clone()))
}

async fn call_double(ctx: OrchestrationContext, n: i64) -> Result<i64, OrchestrationError> {
    Ok(ctx.call_sub_orchestrator("Double", None, &n).await?)
}

async fn try_reject(ctx: OrchestrationContext, (): ()) -> Result<Outcome<()>, OrchestrationError> {
    Ok(ctx
        .call_sub_orchestrator::<()>("Reject", None, "out of stock")
        .await
        .into())
}

async fn reject_or_fail(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    ctx.call_sub_orchestrator::<()>("Reject", None, "out of stock")
        .await?;
    Ok(())
}

/// Calls "Double" as the child instance named by the input.
async fn call_named(
    ctx: OrchestrationContext,
    child_id: String,
) -> Result<Outcome<i64>, OrchestrationError> {
    Ok(ctx
        .call_sub_orchestrator::<i64>("Double", Some(&child_id), &4)
        .await
        .into())
}

async fn call_unknown(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Outcome<()>, OrchestrationError> {
    Ok(ctx
        .call_sub_orchestrator::<()>("NoSuchOrchestrator", None, &())
        .await
        .into())
}

async fn noop(_: ActivityContext, (): ()) -> Result<(), ActivityError> {
    Ok(())
}

/// Uses up sequence numbers 0..=10 on activities, then starts children at 11 and 12.
async fn children_after_activities(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Vec<i64>, OrchestrationError> {
    let activities: Vec<_> = (0..11)
        .map(|_| ctx.call_activity::<()>("Noop", &()))
        .collect();
    for result in join_all(activities).await {
        result?;
    }
    let first = ctx.call_sub_orchestrator("Double", None, &1).await?;
    let second = ctx.call_sub_orchestrator("Double", None, &2).await?;
    Ok(vec![first, second])
}

async fn ask_parent_name(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Option<String>, OrchestrationError> {
    Ok(ctx.call_sub_orchestrator("ParentName", None, &()).await?)
}

async fn grandparent(ctx: OrchestrationContext, n: i64) -> Result<i64, OrchestrationError> {
    let from_child: i64 = ctx.call_sub_orchestrator("CallDouble", None, &n).await?;
    Ok(from_child + 1)
}

async fn call_waiter(ctx: OrchestrationContext, (): ()) -> Result<Outcome<()>, OrchestrationError> {
    Ok(ctx
        .call_sub_orchestrator::<()>("WaitForever", Some("kid"), &())
        .await
        .into())
}

/// Continues as new until the count reaches three, then returns it.
async fn count_to_three(
    ctx: OrchestrationContext,
    count: u32,
) -> Result<String, OrchestrationError> {
    if count < 3 {
        return ctx.continue_as_new(&(count + 1)).await;
    }
    Ok(format!("counted to {count}"))
}

async fn call_counter(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    Ok(ctx.call_sub_orchestrator("CountToThree", None, &0).await?)
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("Double", double)
        .orchestrator("Reject", reject)
        .orchestrator("WaitForever", wait_forever)
        .orchestrator("ParentName", parent_name)
        .orchestrator("CallDouble", call_double)
        .orchestrator("TryReject", try_reject)
        .orchestrator("RejectOrFail", reject_or_fail)
        .orchestrator("CallNamed", call_named)
        .orchestrator("CallUnknown", call_unknown)
        .orchestrator("ChildrenAfterActivities", children_after_activities)
        .orchestrator("AskParentName", ask_parent_name)
        .orchestrator("Grandparent", grandparent)
        .orchestrator("CallWaiter", call_waiter)
        .orchestrator("CountToThree", count_to_three)
        .orchestrator("CallCounter", call_counter)
        .activity("Noop", noop)
        .build()
        .unwrap()
}

#[test]
fn child_output_is_returned_to_the_parent() {
    let (rt, state) = run(registry(), "CallDouble", &21);

    assert_eq!(state.status, OrchestrationStatus::Completed);
    assert_eq!(state.output_as::<i64>().unwrap(), 42);
    let child = rt
        .state(&child_id(&rt, ID, 0))
        .expect("child instance exists");
    assert_eq!(child.name, "Double");
    assert_eq!(child.status, OrchestrationStatus::Completed);
    assert_eq!(child.output_as::<i64>().unwrap(), 42);
}

#[test]
fn child_failure_is_sub_orchestration_failed_with_the_childs_message() {
    let (rt, state) = run(registry(), "TryReject", &());
    let child = child_id(&rt, ID, 0);

    let Outcome::SubOrchestrationFailed {
        name,
        instance_id,
        attempts,
        details,
        message,
    } = state.output_as::<Outcome<()>>().unwrap()
    else {
        panic!("expected SubOrchestrationFailed, got {:?}", state.output);
    };
    assert_eq!(name, "Reject");
    assert_eq!(instance_id, child);
    assert_eq!(attempts, 1);
    assert_eq!(details.error_type, "Rejected");
    assert_eq!(details.error_message, "out of stock");
    assert_eq!(
        message,
        format!("sub-orchestration 'Reject' (instance '{child}') failed: out of stock")
    );
}

#[test]
fn child_failure_propagated_with_question_mark_fails_the_parent() {
    let (rt, state) = run(registry(), "RejectOrFail", &());

    assert_eq!(state.status, OrchestrationStatus::Failed);
    let failure = state.failure.unwrap();
    assert_eq!(failure.error_type, "SubOrchestrationFailed");
    assert_eq!(failure.inner_failure.unwrap().error_message, "out of stock");
    assert_eq!(state_of_child(&rt).status, OrchestrationStatus::Failed);
}

#[test]
fn explicit_child_instance_id_is_used() {
    let (rt, state) = run(registry(), "CallNamed", "shipment-17");

    assert_eq!(state.output_as::<Outcome<i64>>().unwrap(), Outcome::Ok(8));
    assert_eq!(rt.instance_ids(), vec!["shipment-17", "test"]);
    let history = history(&rt, ID);
    let created = events_of(&history, EventType::SubOrchestrationInstanceCreated);
    let EventKind::SubOrchestrationInstanceCreated { instance_id, .. } = &created[0].kind else {
        unreachable!()
    };
    assert_eq!(instance_id, "shipment-17");
}

#[test]
fn default_child_ids_are_parent_id_execution_id_and_sequence_number_in_four_hex_digits() {
    let (rt, state) = run(registry(), "ChildrenAfterActivities", &());

    assert_eq!(state.output_as::<Vec<i64>>().unwrap(), vec![2, 4]);
    let execution = state.execution_id;
    assert_eq!(
        rt.instance_ids(),
        vec![
            "test".to_string(),
            format!("test:{execution}:000b"),
            format!("test:{execution}:000c")
        ]
    );
}

#[test]
fn explicit_id_of_a_running_instance_fails_the_child_task() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("WaitForever", "busy", &()).unwrap();
    rt.start("CallNamed", ID, "busy").unwrap();
    rt.run_until_idle().unwrap();

    let parent = state(&rt, ID);
    let Outcome::SubOrchestrationFailed {
        instance_id,
        details,
        ..
    } = parent.output_as::<Outcome<i64>>().unwrap()
    else {
        panic!("expected SubOrchestrationFailed, got {:?}", parent.output);
    };
    assert_eq!(instance_id, "busy");
    assert_failure(
        &details,
        "SubOrchestrationNotStarted",
        &["'busy' already exists"],
    );
    // The running instance is left alone.
    let busy = state(&rt, "busy");
    assert_eq!(busy.name, "WaitForever");
    assert_eq!(busy.status, OrchestrationStatus::Running);
}

#[test]
fn explicit_id_of_an_ended_instance_can_be_reused_for_a_child() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("Double", "done-before", &1).unwrap();
    rt.run_until_idle().unwrap();
    rt.start("CallNamed", ID, "done-before").unwrap();
    rt.run_until_idle().unwrap();

    assert_eq!(
        state(&rt, ID).output_as::<Outcome<i64>>().unwrap(),
        Outcome::Ok(8)
    );
}

#[test]
fn unknown_child_orchestrator_fails_the_child_task() {
    let (_, state) = run(registry(), "CallUnknown", &());

    let Outcome::SubOrchestrationFailed { name, details, .. } =
        state.output_as::<Outcome<()>>().unwrap()
    else {
        panic!("expected SubOrchestrationFailed, got {:?}", state.output);
    };
    assert_eq!(name, "NoSuchOrchestrator");
    assert!(
        details.error_message.contains("'NoSuchOrchestrator'"),
        "{}",
        details.error_message
    );
}

#[test]
fn child_knows_its_parent() {
    let (_, state) = run(registry(), "AskParentName", &());

    assert_eq!(
        state.output_as::<Option<String>>().unwrap(),
        Some("AskParentName".to_string())
    );
    // Started on its own, the same orchestrator has no parent.
    let mut alone = InMemoryRuntime::new(registry());
    alone.start("ParentName", "alone", &()).unwrap();
    alone.run_until_idle().unwrap();
    assert_eq!(
        alone
            .state("alone")
            .unwrap()
            .output_as::<Option<String>>()
            .unwrap(),
        None
    );
}

#[test]
fn grandchild_output_flows_back_through_every_level() {
    let (rt, state) = run(registry(), "Grandparent", &10);

    assert_eq!(state.output_as::<i64>().unwrap(), 21);
    let child = child_id(&rt, ID, 0);
    let grandchild = child_id(&rt, &child, 0);
    assert_eq!(rt.instance_ids(), vec![ID.to_string(), child, grandchild]);
    for id in rt.instance_ids() {
        assert_eq!(
            rt.state(&id).unwrap().status,
            OrchestrationStatus::Completed,
            "{id}"
        );
    }
}

#[test]
fn terminated_child_fails_the_parents_task() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("CallWaiter", ID, &()).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(state(&rt, "kid").status, OrchestrationStatus::Running);

    rt.terminate("kid", "not needed").unwrap();
    rt.run_until_idle().unwrap();
    let parent = state(&rt, ID);
    assert_eq!(parent.status, OrchestrationStatus::Completed);
    let Outcome::SubOrchestrationFailed {
        instance_id,
        details,
        ..
    } = parent.output_as::<Outcome<()>>().unwrap()
    else {
        panic!("expected SubOrchestrationFailed, got {:?}", parent.output);
    };
    assert_eq!(instance_id, "kid");
    assert_failure(&details, "Terminated", &["not needed"]);
}

#[test]
fn terminated_parent_ignores_its_childs_later_completion() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("CallWaiter", ID, &()).unwrap();
    rt.run_until_idle().unwrap();
    rt.terminate(ID, "parent cancelled").unwrap();
    rt.run_until_idle().unwrap();
    let events_at_termination = history(&rt, ID).len();

    // Terminating the parent leaves the child running; its completion later goes nowhere.
    assert_eq!(state(&rt, "kid").status, OrchestrationStatus::Running);
    rt.raise_event("kid", "Never", &()).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(state(&rt, "kid").status, OrchestrationStatus::Completed);
    let parent = state(&rt, ID);
    assert_eq!(parent.status, OrchestrationStatus::Terminated);
    assert_eq!(parent.output_as::<String>().unwrap(), "parent cancelled");
    assert_eq!(history(&rt, ID).len(), events_at_termination);
}

#[test]
fn child_that_continues_as_new_reports_its_final_output() {
    let (rt, state) = run(registry(), "CallCounter", &());

    assert_eq!(state.status, OrchestrationStatus::Completed);
    let child = state_of_child(&rt);
    assert_eq!(child.input.as_deref(), Some("3"));
    assert_eq!(state.output_as::<String>().unwrap(), "counted to 3");
}

#[test]
fn child_input_that_cannot_be_serialized_starts_no_child() {
    let registry = Registry::builder()
        .orchestrator("Double", double)
        .orchestrator(
            "BadChildInput",
            |ctx: OrchestrationContext, (): ()| async move {
                let result = ctx
                    .call_sub_orchestrator::<i64>("Double", None, &unserializable())
                    .await;
                Ok::<Outcome<i64>, OrchestrationError>(result.into())
            },
        )
        .build()
        .unwrap();
    let (rt, state) = run(registry, "BadChildInput", &());

    let Outcome::InputSerialization { name, .. } = state.output_as::<Outcome<i64>>().unwrap()
    else {
        panic!("expected InputSerialization, got {:?}", state.output);
    };
    assert_eq!(name, "Double");
    assert_eq!(rt.instance_ids(), vec![ID]);
}

/// The first (sequence 0) child of the test instance.
fn state_of_child(rt: &InMemoryRuntime) -> InstanceState {
    state(rt, &child_id(rt, ID, 0))
}
