//! Continue-as-new: eternal orchestrations restart with a new execution id and a fresh history,
//! and external events they had not consumed carry over to the next execution.

use chrono::{DateTime, Utc};
use durable_engine::{
    select2, ActivityContext, ActivityError, Either, EventKind, EventType, OrchestrationContext,
    OrchestrationError, OrchestrationStatus, Registry,
};
use durable_runtime::testkit::InMemoryRuntime;
use serde::{Deserialize, Serialize};

use crate::common::{at, events_of, history, run, start, state, unserializable, HOUR, ID};
use crate::failure_details::assert_failure;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Generation {
    count: u32,
    execution_ids: Vec<String>,
    activity_keys: Vec<String>,
}

async fn key(ctx: ActivityContext, (): ()) -> Result<String, ActivityError> {
    Ok(ctx.idempotency_key())
}

/// Counts to five, one execution per step, recording each execution's id and activity key.
async fn counter(
    ctx: OrchestrationContext,
    mut gen: Generation,
) -> Result<Generation, OrchestrationError> {
    gen.execution_ids.push(ctx.execution_id().to_string());
    gen.activity_keys.push(ctx.call_activity("Key", &()).await?);
    if gen.count == 5 {
        return Ok(gen);
    }
    gen.count += 1;
    ctx.continue_as_new(&gen).await
}

/// Wakes every hour forever, continuing as new after each wake-up.
async fn hourly(ctx: OrchestrationContext, wakeups: u32) -> Result<(), OrchestrationError> {
    ctx.create_timer_after(HOUR).await;
    ctx.continue_as_new(&(wakeups + 1)).await
}

/// Takes one "Ping" per execution; after the second it returns everything received.
async fn ping_collector(
    ctx: OrchestrationContext,
    mut received: Vec<String>,
) -> Result<Vec<String>, OrchestrationError> {
    received.push(ctx.wait_for_external_event("Ping").await?);
    if received.len() == 2 {
        return Ok(received);
    }
    ctx.continue_as_new(&received).await
}

/// First execution: a one-hour timer raced against "Restart"; second: a three-hour timer.
async fn restart_on_event(
    ctx: OrchestrationContext,
    generation: u32,
) -> Result<DateTime<Utc>, OrchestrationError> {
    if generation == 0 {
        let timer = ctx.create_timer_after(HOUR);
        let restart = ctx.wait_for_external_event::<()>("Restart");
        if let Either::Right(_) = select2(timer, restart).await {
            return ctx.continue_as_new(&1).await;
        }
    } else {
        ctx.create_timer_after(3 * HOUR).await;
    }
    Ok(ctx.current_utc_datetime())
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("Counter", counter)
        .orchestrator("Hourly", hourly)
        .orchestrator("PingCollector", ping_collector)
        .orchestrator("RestartOnEvent", restart_on_event)
        .activity("Key", key)
        .build()
        .unwrap()
}

fn first_generation() -> Generation {
    Generation {
        count: 0,
        execution_ids: Vec::new(),
        activity_keys: Vec::new(),
    }
}

#[test]
fn eternal_counter_continues_as_new_until_done() {
    let (rt, state) = run(registry(), "Counter", &first_generation());

    assert_eq!(state.status, OrchestrationStatus::Completed);
    let gen: Generation = state.output_as().unwrap();
    assert_eq!(gen.count, 5);
    assert_eq!(gen.execution_ids.len(), 6);
    let mut distinct = gen.execution_ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "every execution has its own id");
    assert_eq!(gen.execution_ids.last(), Some(&state.execution_id));
    // The instance's input is the last execution's input.
    let input: Generation = serde_json::from_str(state.input.as_deref().unwrap()).unwrap();
    assert_eq!(input.count, 5);
    assert_eq!(rt.instance_ids(), vec![ID]);
}

#[test]
fn sequence_numbers_restart_but_idempotency_keys_stay_unique() {
    let (_, state) = run(registry(), "Counter", &first_generation());
    let gen: Generation = state.output_as().unwrap();

    for (key, execution) in gen.activity_keys.iter().zip(&gen.execution_ids) {
        assert_eq!(*key, format!("{ID}:{execution}:0"));
    }
    let mut distinct = gen.activity_keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), gen.activity_keys.len());
}

#[test]
fn history_holds_only_the_last_execution() {
    let (rt, state) = run(registry(), "Counter", &first_generation());
    let history = history(&rt, ID);

    assert_eq!(history[0].event_type(), EventType::OrchestratorStarted);
    let started = events_of(&history, EventType::ExecutionStarted);
    assert_eq!(started.len(), 1);
    let EventKind::ExecutionStarted {
        orchestration_instance,
        input,
        ..
    } = &started[0].kind
    else {
        unreachable!()
    };
    assert_eq!(orchestration_instance.execution_id, state.execution_id);
    let input: Generation = serde_json::from_str(input.as_deref().unwrap()).unwrap();
    assert_eq!(input.count, 5);
    assert_eq!(events_of(&history, EventType::TaskScheduled).len(), 1);
    assert!(events_of(&history, EventType::ContinueAsNew).is_empty());
}

#[test]
fn running_eternal_orchestration_keeps_a_short_history() {
    let mut rt = start(registry(), "Hourly", &0);
    let first_execution = state(&rt, ID).execution_id;
    rt.advance(10 * HOUR).unwrap();

    let now = state(&rt, ID);
    assert_eq!(now.status, OrchestrationStatus::Running);
    assert_eq!(now.input.as_deref(), Some("10"));
    assert_ne!(now.execution_id, first_execution);
    // Started, with its timer created; nothing from the ten earlier executions.
    let history = history(&rt, ID);
    let types: Vec<EventType> = history.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        vec![
            EventType::OrchestratorStarted,
            EventType::ExecutionStarted,
            EventType::TimerCreated,
            EventType::OrchestratorCompleted,
        ]
    );
}

#[test]
fn timer_of_an_earlier_execution_does_not_reach_the_new_one() {
    let mut rt = start(registry(), "RestartOnEvent", &0);
    rt.raise_event(ID, "Restart", &()).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(state(&rt, ID).input.as_deref(), Some("1"));

    // The first execution's one-hour timer (also sequence #0) fires into the void.
    rt.advance(2 * HOUR).unwrap();
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Running);
    rt.advance(HOUR).unwrap();
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(done.output_as::<DateTime<Utc>>().unwrap(), at(3 * HOUR));
}

#[test]
fn unconsumed_events_carry_over_to_the_next_execution() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("PingCollector", ID, &Vec::<String>::new())
        .unwrap();
    rt.raise_event(ID, "Ping", "first").unwrap();
    rt.raise_event(ID, "Ping", "second").unwrap();
    rt.run_until_idle().unwrap();

    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(
        done.output_as::<Vec<String>>().unwrap(),
        vec!["first", "second"]
    );
    // The second execution received the carried-over event in its own history.
    let history = history(&rt, ID);
    let raised = events_of(&history, EventType::EventRaised);
    assert_eq!(raised.len(), 1);
    assert_eq!(
        raised[0].kind,
        EventKind::EventRaised {
            name: "Ping".to_string(),
            input: Some("\"second\"".to_string()),
        }
    );
}

#[test]
fn without_a_second_event_the_next_execution_keeps_waiting() {
    let mut rt = start(registry(), "PingCollector", &Vec::<String>::new());
    let first_execution = state(&rt, ID).execution_id;
    rt.raise_event(ID, "Ping", "only").unwrap();
    rt.run_until_idle().unwrap();

    let now = state(&rt, ID);
    assert_eq!(now.status, OrchestrationStatus::Running);
    assert_ne!(now.execution_id, first_execution);
    assert_eq!(now.input.as_deref(), Some("[\"only\"]"));
}

#[test]
fn continue_as_new_with_unserializable_input_fails_the_instance() {
    let registry = Registry::builder()
        .orchestrator(
            "BadRestart",
            |ctx: OrchestrationContext, (): ()| async move {
                ctx.continue_as_new::<Result<(), OrchestrationError>>(&unserializable())
                    .await
            },
        )
        .build()
        .unwrap();
    let (_, done) = run(registry, "BadRestart", &());

    assert_eq!(done.status, OrchestrationStatus::Failed);
    let failure = done.failure.unwrap();
    assert_failure(&failure, "InputSerialization", &["continue-as-new input"]);
}
