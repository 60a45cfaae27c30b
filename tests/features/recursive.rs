//! Recursive terminate and purge (Durable Functions' `recursive` flag): a termination passed
//! down to the open sub-orchestrations, grandchildren included, and a purge that deletes the
//! ended sub-orchestrations below an instance with it.

use durable_engine::{
    EventKind, EventType, OrchestrationContext, OrchestrationError, OrchestrationStatus, Registry,
};
use durable_runtime::management::ManageError;
use durable_runtime::testkit::InMemoryRuntime;
use durable_runtime::RuntimeError;

use crate::common::{child_id, events_of, history, state};

async fn quick(_: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    Ok("quick".to_string())
}

async fn wait_forever(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    Ok(ctx.wait_for_external_event("Never").await?)
}

/// Calls `Leaf`, which never ends.
async fn middle(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    ctx.call_sub_orchestrator::<()>("Leaf", None, &()).await?;
    Ok(())
}

/// Calls `Quick` (which completes), then `Middle`; reports a child's failure as its output, so
/// a parent that heard of its child's termination would complete rather than stay terminated.
async fn top(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    let quick: String = ctx.call_sub_orchestrator("Quick", None, &()).await?;
    match ctx.call_sub_orchestrator::<()>("Middle", None, &()).await {
        Ok(()) => Ok(quick),
        Err(error) => Ok(format!("middle failed: {error}")),
    }
}

/// Starts `Leaf` without waiting for it, and completes.
async fn launcher(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    drop(ctx.call_sub_orchestrator::<()>("Leaf", None, &()));
    Ok(())
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("Quick", quick)
        .orchestrator("Leaf", wait_forever)
        .orchestrator("Middle", middle)
        .orchestrator("Top", top)
        .orchestrator("Launcher", launcher)
        .build()
        .unwrap()
}

/// The ids of `top`'s tree: (quick child, middle child, leaf grandchild).
fn tree(rt: &InMemoryRuntime, top: &str) -> (String, String, String) {
    let middle = child_id(rt, top, 1);
    let leaf = child_id(rt, &middle, 0);
    (child_id(rt, top, 0), middle, leaf)
}

fn status(rt: &InMemoryRuntime, id: &str) -> OrchestrationStatus {
    state(rt, id).status
}

/// A tree running down to its leaf: `Top` → (`Quick` done, `Middle` → `Leaf` waiting).
fn running_tree(id: &str) -> (InMemoryRuntime, (String, String, String)) {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("Top", id, &()).unwrap();
    rt.run_until_idle().unwrap();
    let ids = tree(&rt, id);
    assert_eq!(status(&rt, &ids.0), OrchestrationStatus::Completed);
    assert_eq!(status(&rt, &ids.1), OrchestrationStatus::Running);
    assert_eq!(status(&rt, &ids.2), OrchestrationStatus::Running);
    (rt, ids)
}

#[test]
fn a_recursive_terminate_reaches_the_grandchildren_and_leaves_ended_children_alone() {
    let (mut rt, (quick, middle, leaf)) = running_tree("top");
    rt.terminate_recursive("top", "shutting down").unwrap();
    rt.run_until_idle().unwrap();
    for id in ["top", middle.as_str(), leaf.as_str()] {
        let terminated = state(&rt, id);
        assert_eq!(terminated.status, OrchestrationStatus::Terminated, "{id}");
        assert_eq!(
            terminated.output.as_deref(),
            Some("\"shutting down\""),
            "{id} carries the reason"
        );
    }
    assert_eq!(status(&rt, &quick), OrchestrationStatus::Completed);
    // The parent ended before it could hear of its child's termination.
    let top_history = history(&rt, "top");
    assert!(events_of(&top_history, EventType::SubOrchestrationInstanceFailed).is_empty());
    assert!(top_history.iter().any(|event| matches!(
        event.kind,
        EventKind::ExecutionTerminated { recurse: true, .. }
    )));
    // The leaf was told by its parent, recursively in its turn.
    assert!(history(&rt, &leaf).iter().any(|event| matches!(
        event.kind,
        EventKind::ExecutionTerminated { recurse: true, .. }
    )));
    assert!(matches!(
        rt.terminate_recursive("top", "again"),
        Err(RuntimeError::Ended { .. })
    ));
}

#[test]
fn a_plain_terminate_leaves_the_children_running() {
    let (mut rt, (_, middle, leaf)) = running_tree("top");
    rt.terminate("top", "only me").unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(status(&rt, "top"), OrchestrationStatus::Terminated);
    assert_eq!(status(&rt, &middle), OrchestrationStatus::Running);
    assert_eq!(status(&rt, &leaf), OrchestrationStatus::Running);
}

#[test]
fn a_recursive_purge_deletes_the_whole_ended_tree() {
    let (mut rt, (quick, middle, leaf)) = running_tree("top");
    assert!(matches!(
        rt.purge_recursive("top"),
        Err(ManageError::NotEnded {
            status: OrchestrationStatus::Running,
            ..
        })
    ));
    assert_eq!(
        rt.instance_ids().len(),
        4,
        "a refused purge deletes nothing"
    );

    rt.terminate_recursive("top", "done").unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(rt.purge_recursive("top").unwrap(), 4);
    for id in ["top", quick.as_str(), middle.as_str(), leaf.as_str()] {
        assert!(rt.state(id).is_none(), "{id} is purged");
        assert!(rt.history(id).is_none(), "{id} has no history left");
    }
    assert!(rt.instance_ids().is_empty());
    assert!(matches!(
        rt.purge_recursive("top"),
        Err(ManageError::Runtime(RuntimeError::NotFound(_)))
    ));
}

#[test]
fn a_plain_purge_leaves_the_children() {
    let (mut rt, (quick, middle, leaf)) = running_tree("top");
    rt.terminate_recursive("top", "done").unwrap();
    rt.run_until_idle().unwrap();
    rt.purge("top").unwrap();
    assert_eq!(rt.instance_ids(), {
        let mut ids = vec![quick, middle, leaf];
        ids.sort();
        ids
    });
}

#[test]
fn a_recursive_purge_leaves_a_child_that_is_still_running() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("Launcher", "launcher", &()).unwrap();
    rt.run_until_idle().unwrap();
    let leaf = child_id(&rt, "launcher", 0);
    assert_eq!(status(&rt, "launcher"), OrchestrationStatus::Completed);
    assert_eq!(status(&rt, &leaf), OrchestrationStatus::Running);
    assert_eq!(rt.purge_recursive("launcher").unwrap(), 1);
    assert!(rt.state("launcher").is_none());
    assert_eq!(status(&rt, &leaf), OrchestrationStatus::Running);
}
