//! Orchestration versions, tags and scheduled starts through the runtime: the version a start
//! gets and what inherits or keeps it, the Reject and Fail strategies with workers of other
//! versions on one task hub, queries by version and tag, and starts that wait for their time.

use std::sync::Arc;

use chrono::{Duration as TimeDelta, TimeZone, Utc};
use durable_engine::{
    OrchestrationContext, OrchestrationError, OrchestrationStatus, Registry, VersionFailure,
    VersionMatch, Versioning,
};
use durable_runtime::{
    Disposition, Runtime, RuntimeError, RuntimeOptions, StartDelivery, StartOptions,
    UNSTARTED_GRACE, VERSION_MISMATCH_ERROR_TYPE,
};
use durable_store::backend::{Backend, Clock};
use durable_store::model::{InstanceQuery, TagFilter};

use crate::harness::{Harness, TestRuntime};

/// `Report`: its version and its child's, after one continue-as-new; `Waiting`: its version once
/// "Go" arrives.
fn registry() -> Registry {
    Registry::builder()
        .orchestrator(
            "Report",
            |ctx: OrchestrationContext, generation: u32| async move {
                if generation == 0 {
                    return ctx.continue_as_new(&1).await;
                }
                let child: Option<String> = ctx.call_sub_orchestrator("Child", None, &()).await?;
                Ok::<_, OrchestrationError>((ctx.version().map(str::to_string), child))
            },
        )
        .orchestrator("Child", |ctx: OrchestrationContext, (): ()| async move {
            Ok::<_, OrchestrationError>(ctx.version().map(str::to_string))
        })
        .orchestrator("Waiting", |ctx: OrchestrationContext, (): ()| async move {
            ctx.wait_for_external_event::<()>("Go").await?;
            Ok::<_, OrchestrationError>(ctx.version().map(str::to_string))
        })
        .build()
        .unwrap()
}

fn worker(version: &str, match_strategy: VersionMatch, failure: VersionFailure) -> RuntimeOptions {
    RuntimeOptions {
        versioning: Versioning {
            default_version: Some(version.to_string()),
            match_strategy,
            failure_strategy: failure,
        },
        ..RuntimeOptions::default()
    }
}

async fn harness(options: RuntimeOptions) -> Harness {
    Harness::build(options, |_| registry()).await
}

fn versioned(version: &str) -> StartOptions {
    StartOptions {
        version: Some(version.to_string()),
        ..StartOptions::default()
    }
}

/// Starts `name` with the input its code takes: `Report` a generation, `Waiting` nothing.
async fn start(runtime: &TestRuntime, name: &str, id: &str, options: &StartOptions) {
    let input = if name == "Report" { "0" } else { "null" };
    runtime
        .start_message(
            name,
            Some(id),
            input.to_string(),
            options,
            StartDelivery::Queue,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_start_takes_the_default_version_which_children_inherit_and_continue_as_new_keeps() {
    let h = harness(worker("1.0", VersionMatch::None, VersionFailure::Reject)).await;
    let tags = StartOptions {
        tags: [("team".to_string(), "data".to_string())].into(),
        ..StartOptions::default()
    };
    start(&h.runtime, "Report", "default", &tags).await;
    start(&h.runtime, "Report", "named", &versioned("0.9")).await;
    h.drive(20).await;

    let default = h.completed("default").await;
    assert_eq!(default.version.as_deref(), Some("1.0"));
    assert_eq!(default.output.as_deref(), Some(r#"["1.0","1.0"]"#));
    assert_eq!(default.tags, tags.tags, "kept across continue-as-new");
    let named = h.completed("named").await;
    assert_eq!(named.output.as_deref(), Some(r#"["0.9","0.9"]"#));

    let query = |version: Option<&str>, tags: Vec<TagFilter>| InstanceQuery {
        version: version.map(str::to_string),
        tags,
        page_size: 100,
        ..InstanceQuery::default()
    };
    let ids = |page: durable_store::model::Page<durable_store::model::InstanceSummary>| {
        let mut ids: Vec<String> = page.items.into_iter().map(|s| s.instance_id).collect();
        ids.sort();
        ids
    };
    let of_version = h.backend.query(&query(Some("0.9"), vec![])).await.unwrap();
    // The child of "named" inherited 0.9 too.
    assert_eq!(ids(of_version).len(), 2);
    let tagged = |key: &str, value: Option<&str>| TagFilter {
        key: key.to_string(),
        value: value.map(str::to_string),
    };
    for (filter, expected) in [
        (tagged("team", None), vec!["default"]),
        (tagged("team", Some("data")), vec!["default"]),
        (tagged("team", Some("ops")), vec![]),
        (tagged("env", None), vec![]),
    ] {
        let found = h
            .backend
            .query(&query(None, vec![filter.clone()]))
            .await
            .unwrap();
        assert_eq!(ids(found), expected, "{filter:?}");
    }
}

/// With Reject, a worker leaves a newer execution's messages for a worker that may run it: the
/// start, and later an event to a running instance.
#[tokio::test]
async fn a_worker_that_may_not_run_a_version_leaves_its_messages_for_one_that_may() {
    let h = harness(worker(
        "1.0",
        VersionMatch::CurrentOrOlder,
        VersionFailure::Reject,
    ))
    .await;
    let old = h.runtime.clone();
    let new: Arc<TestRuntime> = Arc::new(Runtime::with_options(
        h.backend.clone(),
        registry(),
        h.clock.clone(),
        worker("2.0", VersionMatch::CurrentOrOlder, VersionFailure::Reject),
    ));
    start(&old, "Waiting", "newer", &versioned("2.0")).await;
    h.drive_on(&old, 3).await;
    assert_eq!(
        h.summary("newer").await.status,
        OrchestrationStatus::Pending
    );
    assert!(
        h.backend.load("newer").await.unwrap().is_none(),
        "nothing ran"
    );

    h.drive_on(&new, 3).await;
    let running = h.summary("newer").await;
    assert_eq!(running.status, OrchestrationStatus::Running, "{running:?}");
    old.raise_event("newer", "Go", &()).await.unwrap();
    h.drive_on(&old, 3).await;
    assert_eq!(
        h.summary("newer").await.status,
        OrchestrationStatus::Running
    );
    h.drive_on(&new, 3).await;
    assert_eq!(
        h.completed("newer").await.output.as_deref(),
        Some(r#""2.0""#)
    );

    // An older version is the old worker's to run.
    start(&old, "Waiting", "older", &versioned("0.5")).await;
    old.raise_event("older", "Go", &()).await.unwrap();
    h.drive_on(&old, 5).await;
    assert_eq!(
        h.completed("older").await.output.as_deref(),
        Some(r#""0.5""#)
    );
}

/// A rejected start is re-sent, not lost: a worker that admits its version runs it. Meanwhile
/// the sweep of a worker that rejects it sends no more copies.
#[tokio::test]
async fn a_rejected_message_is_re_sent_for_later() {
    let h = harness(worker("1.0", VersionMatch::Strict, VersionFailure::Reject)).await;
    let queued = h
        .runtime
        .start_message(
            "Waiting",
            Some("strict"),
            "null".to_string(),
            &versioned("1.1"),
            StartDelivery::Here,
        )
        .await
        .unwrap();
    let disposition = h.runtime.process_started(&queued).await.unwrap();
    assert_eq!(disposition, Disposition::Rejected);
    assert!(h.backend.load("strict").await.unwrap().is_none());
    h.clock.advance(UNSTARTED_GRACE * 2);
    assert_eq!(h.runtime.sweep_unstarted(UNSTARTED_GRACE).await.unwrap(), 0);

    let admits: Arc<TestRuntime> = Arc::new(Runtime::with_options(
        h.backend.clone(),
        registry(),
        h.clock.clone(),
        worker("1.1", VersionMatch::Strict, VersionFailure::Reject),
    ));
    h.drive_on(&admits, 3).await;
    assert_eq!(
        h.summary("strict").await.status,
        OrchestrationStatus::Running
    );
    admits.raise_event("strict", "Go", &()).await.unwrap();
    h.drive_on(&admits, 3).await;
    assert_eq!(
        h.completed("strict").await.output.as_deref(),
        Some(r#""1.1""#)
    );
    h.assert_settled("strict", "rejected, then run").await;
}

/// With Fail, an execution this worker may not run fails with VersionMismatch, its code not
/// run: at its start, and when a message reaches it later.
#[tokio::test]
async fn with_fail_the_execution_fails_with_a_version_mismatch() {
    let h = harness(worker("2.0", VersionMatch::Strict, VersionFailure::Fail)).await;
    start(&h.runtime, "Report", "at-start", &versioned("1.0")).await;
    h.drive(10).await;
    let failed = h.summary("at-start").await;
    assert_eq!(failed.status, OrchestrationStatus::Failed);
    let failure = failed.failure.expect("failure details");
    assert_eq!(failure.error_type, VERSION_MISMATCH_ERROR_TYPE);
    assert!(
        failure
            .error_message
            .contains("'1.0' does not match the worker version '2.0'"),
        "{failure:?}"
    );
    assert!(
        h.backend
            .query(&InstanceQuery {
                version: Some("1.0".to_string()),
                page_size: 10,
                ..InstanceQuery::default()
            })
            .await
            .unwrap()
            .items
            .len()
            == 1,
        "no child was started"
    );

    // Started by a worker of its own version, the event reaches a stricter one.
    let own: Arc<TestRuntime> = Arc::new(Runtime::with_options(
        h.backend.clone(),
        registry(),
        h.clock.clone(),
        worker("1.0", VersionMatch::Strict, VersionFailure::Fail),
    ));
    start(&own, "Waiting", "later", &versioned("1.0")).await;
    h.drive_on(&own, 3).await;
    assert_eq!(
        h.summary("later").await.status,
        OrchestrationStatus::Running
    );
    own.raise_event("later", "Go", &()).await.unwrap();
    h.drive(3).await;
    let failed = h.summary("later").await;
    assert_eq!(failed.status, OrchestrationStatus::Failed, "{failed:?}");
    assert_eq!(
        failed.failure.unwrap().error_type,
        VERSION_MISMATCH_ERROR_TYPE
    );
    h.assert_settled("later", "failed by version").await;
}

/// A scheduled start runs no earlier than its time, however it was taken, and the sweep does
/// not take it for a lost one meanwhile.
#[tokio::test]
async fn a_scheduled_start_runs_no_earlier_than_its_time() {
    let h = harness(RuntimeOptions::default()).await;
    let at = h.clock.now() + TimeDelta::days(9);
    let scheduled = StartOptions {
        scheduled_start: Some(at),
        ..StartOptions::default()
    };
    let queued = h
        .runtime
        .start_message(
            "Waiting",
            Some("later"),
            "null".to_string(),
            &scheduled,
            StartDelivery::Here,
        )
        .await
        .unwrap();
    assert!(queued.message.deliver_at.is_some(), "queued for later");
    // Nothing can reach it before it runs: a client is told so.
    assert!(matches!(
        h.runtime.raise_event("later", "Go", &()).await,
        Err(RuntimeError::NotStarted { at: when, .. }) if when == at
    ));
    h.clock.advance(UNSTARTED_GRACE * 2);
    assert_eq!(h.runtime.sweep_unstarted(UNSTARTED_GRACE).await.unwrap(), 0);
    assert_eq!(
        h.summary("later").await.status,
        OrchestrationStatus::Pending
    );

    // Nine days is past a queue's longest delay: it hops, and runs at its time.
    h.drive(10).await;
    let state = h.backend.load("later").await.unwrap().expect("started");
    assert_eq!(state.state.status, OrchestrationStatus::Running);
    let first_turn = state.history.first().expect("history").timestamp;
    assert!(first_turn >= at, "ran at {first_turn}, scheduled for {at}");
    assert!(first_turn < Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
}
