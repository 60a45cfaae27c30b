//! Retention: a run purges the instances that ended longer ago than their status keeps them,
//! measured from their end, never one still running, at most `max_per_run` per status.

use std::time::Duration;

use durable_engine::{OrchestrationContext, OrchestrationError, OrchestrationStatus, Registry};
use durable_runtime::retention::Expired;
use durable_runtime::testkit::InMemoryRuntime;
use durable_runtime::{Retention, RuntimeOptions};

use crate::common::{at, HOUR};

const MINUTE: Duration = Duration::from_secs(60);

async fn succeed(_: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    Ok(())
}

async fn fail(_: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    Err(OrchestrationError::with_type("Broken", "as intended"))
}

async fn wait_for_go(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    Ok(ctx.wait_for_external_event("Go").await?)
}

fn runtime(retention: Retention) -> InMemoryRuntime {
    let registry = Registry::builder()
        .orchestrator("Succeed", succeed)
        .orchestrator("Fail", fail)
        .orchestrator("Wait", wait_for_go)
        .build()
        .unwrap();
    InMemoryRuntime::with_options(
        registry,
        RuntimeOptions {
            retention,
            ..RuntimeOptions::default()
        },
    )
}

fn run(rt: &mut InMemoryRuntime, name: &str, id: &str) {
    rt.start(name, id, &()).unwrap();
    rt.run_until_idle().unwrap();
}

/// How many Completed and Failed instances a run purged, the only statuses it looked at.
fn completed_and_failed(expired: &[Expired]) -> (usize, usize) {
    match expired {
        [completed, failed]
            if completed.status == OrchestrationStatus::Completed
                && failed.status == OrchestrationStatus::Failed =>
        {
            (completed.purged.count, failed.purged.count)
        }
        _ => panic!("not a run over Completed and Failed: {expired:?}"),
    }
}

#[test]
fn each_status_is_kept_its_own_time_and_running_instances_are_never_purged() {
    let mut rt = runtime(Retention {
        completed: Some(HOUR),
        failed: Some(2 * HOUR),
        ..Retention::default()
    });
    run(&mut rt, "Succeed", "completed-early");
    run(&mut rt, "Fail", "failed");
    run(&mut rt, "Wait", "terminated");
    rt.terminate("terminated", "stop").unwrap();
    run(&mut rt, "Wait", "running");
    rt.run_until_idle().unwrap();
    rt.advance(30 * MINUTE).unwrap();
    run(&mut rt, "Succeed", "completed-later");

    // Terminated has no retention, so no run looks at it.
    assert_eq!(completed_and_failed(&rt.purge_expired().unwrap()), (0, 0));

    rt.advance(31 * MINUTE).unwrap();
    let first = rt.purge_expired().unwrap();
    assert_eq!(completed_and_failed(&first), (1, 0));
    assert_eq!(first[0].ended_by, at(61 * MINUTE - HOUR));
    assert_eq!(first[0].purged.sample, vec!["completed-early"]);
    assert!(!first[0].purged.more);
    assert!(rt.state("completed-early").is_none());
    assert!(rt.history("completed-early").is_none());

    rt.advance(HOUR).unwrap();
    assert_eq!(completed_and_failed(&rt.purge_expired().unwrap()), (1, 1));
    assert_eq!(rt.instance_ids(), vec!["running", "terminated"]);

    rt.advance(365 * 24 * HOUR).unwrap();
    rt.purge_expired().unwrap();
    assert_eq!(
        rt.instance_ids(),
        vec!["running", "terminated"],
        "a running instance and a status without retention stay, however old"
    );
}

#[test]
fn age_counts_from_the_end_not_the_start() {
    let mut rt = runtime(Retention {
        completed: Some(HOUR),
        ..Retention::default()
    });
    run(&mut rt, "Wait", "long-runner");
    rt.advance(3 * HOUR).unwrap();
    rt.raise_event("long-runner", "Go", &()).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(
        rt.state("long-runner").unwrap().status,
        OrchestrationStatus::Completed
    );
    rt.advance(30 * MINUTE).unwrap();
    rt.purge_expired().unwrap();
    assert!(
        rt.state("long-runner").is_some(),
        "created 3.5 h ago, but ended only 30 min ago"
    );
    rt.advance(31 * MINUTE).unwrap();
    let expired = rt.purge_expired().unwrap();
    assert_eq!(
        (expired[0].status, expired[0].purged.count),
        (OrchestrationStatus::Completed, 1)
    );
    assert!(rt.state("long-runner").is_none());
}

#[test]
fn a_run_looks_at_no_more_than_its_limit_and_the_next_run_goes_on() {
    let mut rt = runtime(Retention {
        terminated: Some(Duration::from_secs(5)),
        max_per_run: 2,
        ..Retention::default()
    });
    for i in 0..5 {
        run(&mut rt, "Wait", &format!("t-{i}"));
        rt.terminate(&format!("t-{i}"), "stop").unwrap();
    }
    rt.run_until_idle().unwrap();
    rt.advance(Duration::from_secs(6)).unwrap();
    let mut runs = Vec::new();
    loop {
        let expired = rt.purge_expired().unwrap();
        let [terminated] = &expired[..] else {
            panic!("one status has retention: {expired:?}");
        };
        runs.push((terminated.purged.count, terminated.purged.more));
        if !terminated.purged.more {
            break;
        }
    }
    assert_eq!(runs, vec![(2, true), (2, true), (1, false)]);
    assert!(rt.instance_ids().is_empty());
}

#[test]
fn retention_off_purges_nothing() {
    let mut rt = runtime(Retention::default());
    run(&mut rt, "Succeed", "done");
    rt.advance(10_000 * 24 * HOUR).unwrap();
    assert!(rt.purge_expired().unwrap().is_empty());
    assert!(rt.state("done").is_some());
}
