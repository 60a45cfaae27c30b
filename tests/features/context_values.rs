//! Values the context gives orchestrator code: custom status, deterministic GUIDs, the turn's
//! time, `is_replaying` for replay-safe side effects, and the instance's identity.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use durable_engine::verify::verify_history;
use durable_engine::{
    execute, ActivityContext, ActivityError, OrchestrationContext, OrchestrationError,
    OrchestrationStatus, Registry, TurnOutcome,
};
use durable_runtime::testkit::InMemoryRuntime;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::common::{
    at, epoch, history, run, start, state, turn_times, unserializable, Outcome, HOUR, ID,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stage {
    stage: String,
    by: String,
}

async fn approval_stages(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    ctx.set_custom_status("waiting for approval")?;
    let by: String = ctx.wait_for_external_event("Approve").await?;
    for stage in ["approving", "approved"] {
        ctx.set_custom_status(&Stage {
            stage: stage.to_string(),
            by: by.clone(),
        })?;
    }
    Ok(())
}

async fn busy_then_clear(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    ctx.set_custom_status("busy")?;
    ctx.create_timer_after(HOUR).await;
    ctx.clear_custom_status();
    Ok(())
}

async fn unserializable_status(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Outcome<()>, OrchestrationError> {
    ctx.set_custom_status("kept")?;
    Ok(ctx.set_custom_status(&unserializable()).into())
}

async fn guids(ctx: OrchestrationContext, (): ()) -> Result<Vec<Uuid>, OrchestrationError> {
    let mut ids = vec![ctx.new_guid(), ctx.new_guid()];
    ctx.create_timer_after(HOUR).await;
    ids.push(ctx.new_guid());
    Ok(ids)
}

async fn clock(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Vec<DateTime<Utc>>, OrchestrationError> {
    let mut times = vec![ctx.current_utc_datetime()];
    ctx.create_timer_after(HOUR).await;
    times.push(ctx.current_utc_datetime());
    ctx.wait_for_external_event::<()>("Tick").await?;
    times.push(ctx.current_utc_datetime());
    Ok(times)
}

async fn who_am_i(
    ctx: OrchestrationContext,
    (): (),
) -> Result<(String, String, String), OrchestrationError> {
    Ok((
        ctx.instance_id().to_string(),
        ctx.name().to_string(),
        ctx.execution_id().to_string(),
    ))
}

async fn square(_: ActivityContext, n: u64) -> Result<u64, ActivityError> {
    Ok(n * n)
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("ApprovalStages", approval_stages)
        .orchestrator("BusyThenClear", busy_then_clear)
        .orchestrator("UnserializableStatus", unserializable_status)
        .orchestrator("Guids", guids)
        .orchestrator("Clock", clock)
        .orchestrator("WhoAmI", who_am_i)
        .build()
        .unwrap()
}

#[test]
fn custom_status_is_visible_while_running_and_the_last_value_wins() {
    let mut rt = start(registry(), "ApprovalStages", &());
    let waiting = state(&rt, ID);
    assert_eq!(waiting.status, OrchestrationStatus::Running);
    assert_eq!(
        waiting.custom_status_as::<String>().unwrap(),
        "waiting for approval"
    );

    rt.raise_event(ID, "Approve", "grace").unwrap();
    rt.run_until_idle().unwrap();
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(
        done.custom_status_as::<Stage>().unwrap(),
        Stage {
            stage: "approved".to_string(),
            by: "grace".to_string()
        }
    );
}

#[test]
fn clear_custom_status_removes_it() {
    let mut rt = start(registry(), "BusyThenClear", &());
    assert_eq!(state(&rt, ID).custom_status.as_deref(), Some("\"busy\""));
    rt.advance(HOUR).unwrap();
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(done.custom_status, None);
}

#[test]
fn unserializable_custom_status_is_an_error_and_keeps_the_previous_value() {
    let (_, state) = run(registry(), "UnserializableStatus", &());

    let Outcome::InputSerialization { name, message } = state.output_as::<Outcome<()>>().unwrap()
    else {
        panic!("expected InputSerialization, got {:?}", state.output);
    };
    assert_eq!(name, "custom status");
    assert!(message.contains("key must be a string"), "{message}");
    assert_eq!(state.custom_status_as::<String>().unwrap(), "kept");
}

#[test]
fn new_guid_is_distinct_within_an_execution_and_identical_on_replay() {
    let registry = registry();
    let (rt, state) = run(registry.clone(), "Guids", &());
    let ids: Vec<Uuid> = state.output_as().unwrap();
    assert_eq!(ids.len(), 3);
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[2]);

    // Re-running the code over the recorded history yields the same GUIDs...
    let history = history(&rt, ID);
    let replayed = execute(&registry, ID, &history, &[]).unwrap();
    assert_eq!(
        replayed.outcome,
        TurnOutcome::Completed {
            output: state.output.clone()
        }
    );
    // ...and every recorded turn, output included, is reproduced exactly.
    assert_eq!(verify_history(&registry, ID, &history), Ok(2));
}

#[test]
fn new_guid_differs_between_instances() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("Guids", "first", &()).unwrap();
    rt.start("Guids", "second", &()).unwrap();
    rt.run_to_completion(HOUR).unwrap();

    let first: Vec<Uuid> = rt.state("first").unwrap().output_as().unwrap();
    let second: Vec<Uuid> = rt.state("second").unwrap().output_as().unwrap();
    assert!(first.iter().all(|id| !second.contains(id)));
}

#[test]
fn current_utc_datetime_is_the_start_time_of_each_turn() {
    let mut rt = start(registry(), "Clock", &());
    rt.advance(HOUR).unwrap();
    rt.advance(HOUR / 2).unwrap();
    rt.raise_event(ID, "Tick", &()).unwrap();
    rt.run_until_idle().unwrap();

    let times: Vec<DateTime<Utc>> = state(&rt, ID).output_as().unwrap();
    assert_eq!(times, vec![epoch(), at(HOUR), at(HOUR + HOUR / 2)]);
    assert_eq!(times, turn_times(&history(&rt, ID)));
}

/// Logs each step only when not replaying, and counts the steps it skipped as replays.
fn logging_registry(log: &Arc<Mutex<Vec<String>>>, replayed: &Arc<AtomicU32>) -> Registry {
    let log = log.clone();
    let replayed = replayed.clone();
    Registry::builder()
        .activity("Square", square)
        .orchestrator("Logged", move |ctx: OrchestrationContext, (): ()| {
            let log = log.clone();
            let replayed = replayed.clone();
            async move {
                let step = |name: &str| {
                    if ctx.is_replaying() {
                        replayed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        log.lock().unwrap().push(name.to_string());
                    }
                };
                step("started");
                ctx.call_activity::<u64>("Square", &2).await?;
                step("activity done");
                ctx.create_timer_after(HOUR).await;
                step("timer fired");
                ctx.wait_for_external_event::<()>("Go").await?;
                step("finished");
                Ok::<(), OrchestrationError>(())
            }
        })
        .build()
        .unwrap()
}

#[test]
fn is_replaying_lets_each_logical_step_log_exactly_once() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let replayed = Arc::new(AtomicU32::new(0));
    let mut rt = start(logging_registry(&log, &replayed), "Logged", &());
    rt.advance(HOUR).unwrap();
    rt.raise_event(ID, "Go", &()).unwrap();
    rt.run_until_idle().unwrap();

    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Completed);
    assert_eq!(rt.turns_executed(), 4);
    assert_eq!(
        *log.lock().unwrap(),
        vec!["started", "activity done", "timer fired", "finished"]
    );
    // With the instance cache the orchestration stays live between turns and never replays;
    // without it, turns 2, 3 and 4 re-ran 1, 2 and 3 earlier steps while replaying.
    let expected = if rt.options().instance_cache.max_instances > 0 {
        0
    } else {
        6
    };
    assert_eq!(replayed.load(Ordering::SeqCst), expected);
}

#[test]
fn instance_identity_is_visible_to_the_code() {
    let (_, state) = run(registry(), "WhoAmI", &());
    let (instance_id, name, execution_id): (String, String, String) = state.output_as().unwrap();
    assert_eq!(instance_id, ID);
    assert_eq!(name, "WhoAmI");
    assert_eq!(execution_id, state.execution_id);
}
