//! Two worker processes on one task hub, each with its own instance cache: a process whose
//! cached copy another one moved on must neither commit over it nor drop a message by it, even
//! with a fault at any storage call.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use durable_engine::{
    ActivityContext, ActivityError, OrchestrationContext, OrchestrationStatus, Registry,
};
use durable_runtime::RuntimeOptions;

use crate::harness::{FaultMode, Harness};

type Fault = Option<(usize, FaultMode)>;

/// Runs `scenario` clean, which returns how many storage calls it made after its fault point,
/// then once with a fault before and once after each of those calls.
async fn at_every_call<F, Run>(scenario: F)
where
    F: Fn(Fault) -> Run,
    Run: Future<Output = usize>,
{
    let total = scenario(None).await;
    assert!(
        total > 10,
        "the scenario makes many storage calls ({total})"
    );
    for call in 1..=total {
        for mode in [FaultMode::Before, FaultMode::After] {
            scenario(Some((call, mode))).await;
        }
    }
}

fn fail(h: &Harness, fault: Fault) -> usize {
    if let Some((call, mode)) = fault {
        h.backend.fail_call(call, mode);
    }
    h.backend.calls()
}

fn cache_on(h: &Harness) -> bool {
    h.runtime.options().instance_cache.max_instances > 0
}

async fn harness(queued: bool) -> Harness {
    if queued {
        Harness::queued().await
    } else {
        Harness::new().await
    }
}

/// Process A runs `Gather`'s start, then B, A and B take one part each: every turn after the
/// second starts in a process whose copy the other process has moved on from.
async fn take_turns(queued: bool, fault: Fault) -> usize {
    let h = harness(queued).await;
    let (a, b) = (h.runtime.clone(), h.another_process());
    a.start("Gather", Some("shared"), &3u32).await.unwrap();
    let from = fail(&h, fault);
    h.drive_on(&a, 30).await;
    for (part, process) in [(1u32, &b), (2, &a), (3, &b)] {
        if fault.is_none() && cache_on(&h) && part > 1 {
            assert_eq!(process.cached_instances(), 1, "part {part}: a stale copy");
        }
        h.raise_unfaulted("shared", "Part", &part).await;
        h.drive_on(process, 30).await;
    }
    let calls = h.backend.calls() - from;
    if fault.is_none() && cache_on(&h) {
        // Parts 2 and 3 each start from a stale copy: counted as conflicts, and, where the
        // turn ran to its commit before finding out (activities on the queue), as redone turns.
        let (a, b) = (a.counters(), b.counters());
        assert!(a.conflicts + b.conflicts >= 2, "{a:?} {b:?}");
        if queued {
            assert!(a.redone_turns + b.redone_turns >= 2, "{a:?} {b:?}");
        }
        assert!(a.turns + b.turns >= 4, "{a:?} {b:?}");
    }
    let summary = h.summary("shared").await;
    assert_eq!(
        summary.output.as_deref(),
        Some("\"6 from 3 parts, 3 greetings\""),
        "{fault:?}: {summary:?}"
    );
    h.assert_settled("shared", &format!("{fault:?}")).await;
    calls
}

#[tokio::test]
async fn turns_taken_in_turn_by_two_processes_conflict_reload_and_apply_everything() {
    at_every_call(|fault| take_turns(false, fault)).await;
}

#[tokio::test]
async fn with_queued_activities_two_processes_taking_turns_lose_nothing() {
    at_every_call(|fault| take_turns(true, fault)).await;
}

/// A completes `Sleeper`, B starts it again, then A gets the new execution's event: by A's copy
/// the instance has ended and the event is to be dropped.
async fn event_after_a_restart_elsewhere(fault: Fault) -> usize {
    let h = Harness::new().await;
    let (a, b) = (h.runtime.clone(), h.another_process());
    a.start("Sleeper", Some("s"), &()).await.unwrap();
    h.drive_on(&a, 10).await;
    h.raise_unfaulted("s", "Wake", "one").await;
    h.drive_on(&a, 10).await;
    h.completed("s").await;
    if cache_on(&h) {
        assert_eq!(a.cached_instances(), 1, "A keeps the ended instance");
    }
    b.start("Sleeper", Some("s"), &()).await.unwrap();
    let from = fail(&h, fault);
    h.drive_on(&b, 10).await;
    h.raise_unfaulted("s", "Wake", "two").await;
    h.drive_on(&a, 10).await;
    let calls = h.backend.calls() - from;
    let summary = h.summary("s").await;
    assert_eq!(
        (summary.status, summary.output.as_deref()),
        (OrchestrationStatus::Completed, Some("\"two\"")),
        "{fault:?}: the restarted execution heard its event"
    );
    h.assert_settled("s", &format!("{fault:?}")).await;
    calls
}

#[tokio::test]
async fn an_event_for_an_instance_another_process_restarted_is_not_dropped_by_a_stale_copy() {
    at_every_call(event_after_a_restart_elsewhere).await;
}

/// B applies `Gather`'s first part, which schedules a greeting; A runs that work item, and by
/// A's copy the task was never scheduled, so its result is to be dropped.
async fn result_of_a_task_scheduled_elsewhere(fault: Fault) -> usize {
    let h = Harness::queued().await;
    let (a, b) = (h.runtime.clone(), h.another_process());
    a.start("Gather", Some("g"), &2u32).await.unwrap();
    h.drive_on(&a, 10).await;
    let from = fail(&h, fault);
    h.raise_unfaulted("g", "Part", &1u32).await;
    h.drive_control_on(&b, 10).await;
    h.drive_on(&a, 10).await;
    h.raise_unfaulted("g", "Part", &2u32).await;
    h.drive_on(&a, 10).await;
    let calls = h.backend.calls() - from;
    let summary = h.summary("g").await;
    assert_eq!(
        summary.output.as_deref(),
        Some("\"3 from 2 parts, 2 greetings\""),
        "{fault:?}: {summary:?}"
    );
    h.assert_settled("g", &format!("{fault:?}")).await;
    calls
}

#[tokio::test]
async fn a_result_for_a_task_another_process_scheduled_is_not_dropped_by_a_stale_copy() {
    at_every_call(result_of_a_task_scheduled_elsewhere).await;
}

/// `Flaky` returns what `FailOnce` returns; `FailOnce` fails its first call only.
pub(crate) fn flaky_registry() -> Registry {
    let calls = Arc::new(AtomicUsize::new(0));
    Registry::builder()
        .orchestrator("Flaky", |ctx: OrchestrationContext, (): ()| async move {
            Ok(ctx.call_activity::<String>("FailOnce", &()).await?)
        })
        .activity("FailOnce", move |_ctx: ActivityContext, (): ()| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if call == 0 {
                    Err(ActivityError::new("the first call fails"))
                } else {
                    Ok("fine".to_string())
                }
            }
        })
        .build()
        .unwrap()
}

/// A runs `Flaky` until it fails and keeps the failed instance; B rewinds it and processes the
/// wake-up, which sends the failed activity's work item again; A gets that work item. The
/// rewind kept the execution id and took the failure out of the history, but by A's copy the
/// task has completed (failed), so the work item must not be dropped on A's word.
#[tokio::test]
async fn a_work_item_a_rewind_sent_again_is_not_dropped_by_a_copy_from_before_the_rewind() {
    let options = RuntimeOptions {
        inline_activities: false,
        ..RuntimeOptions::default()
    }
    .with_env()
    .unwrap();
    let h = Harness::build(options, |_| flaky_registry()).await;
    let (a, b) = (h.runtime.clone(), h.another_process());
    a.start("Flaky", Some("f"), &()).await.unwrap();
    h.drive_on(&a, 10).await;
    assert_eq!(h.summary("f").await.status, OrchestrationStatus::Failed);

    b.rewind("f", "try again").await.unwrap();
    h.drive_control_on(&b, 10).await;
    h.drive_on(&a, 10).await;
    h.drive_on(&b, 10).await;

    let summary = h.summary("f").await;
    assert_eq!(
        (summary.status, summary.output.as_deref()),
        (OrchestrationStatus::Completed, Some("\"fine\"")),
        "{summary:?}"
    );
    h.assert_settled("f", "rewound").await;
}

/// Each "Part" event is followed by a greeting run in-process; the registry counts greetings.
fn counting_registry(greetings: Arc<AtomicUsize>) -> Registry {
    Registry::builder()
        .orchestrator("Parts", |ctx: OrchestrationContext, n: u32| async move {
            for _ in 0..n {
                ctx.wait_for_external_event::<u32>("Part").await?;
                ctx.call_activity::<()>("Greet", &()).await?;
            }
            Ok(())
        })
        .activity("Greet", move |_ctx: ActivityContext, (): ()| {
            greetings.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, ActivityError>(()) }
        })
        .build()
        .unwrap()
}

/// A's cached copy is stale once B has applied a part; A's next part schedules a greeting to
/// run in-process. Run from the stale copy, the greeting would run before A's commit failed,
/// and again after the reload: A confirms its copy first, so each part greets once.
#[tokio::test]
async fn a_stale_copy_does_not_run_activities_in_process_before_its_commit_fails() {
    let greetings = Arc::new(AtomicUsize::new(0));
    let options = RuntimeOptions::default().with_env().unwrap();
    let registry = counting_registry(greetings.clone());
    let h = Harness::build(options, move |_| registry.clone()).await;
    let (a, b) = (h.runtime.clone(), h.another_process());
    a.start("Parts", Some("p"), &3u32).await.unwrap();
    h.drive_on(&a, 10).await;
    for (part, process) in [(1u32, &a), (2, &b), (3, &a)] {
        h.raise_unfaulted("p", "Part", &part).await;
        h.drive_on(process, 10).await;
    }
    assert_eq!(h.summary("p").await.status, OrchestrationStatus::Completed);
    assert_eq!(greetings.load(Ordering::SeqCst), 3, "one greeting per part");
    h.assert_settled("p", "parts").await;
}
