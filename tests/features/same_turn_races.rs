//! Messages that race the code's own decisions inside one turn: terminate, suspend and external
//! events arriving after a continue-as-new request, self-sent events, child ids across
//! generations, eager retries, incremental fan-in, and panics while an orchestrator is dropped.

use std::time::Duration;

use durable_engine::HistoryBuilder;
use durable_engine::{
    completions, execute, select2, Action, ActivityContext, ActivityError, Either, EventKind,
    OrchestrationContext, OrchestrationError, OrchestrationStatus, Registry, RetryPolicy,
    TurnOutcome,
};
use durable_runtime::testkit::InMemoryRuntime;

use crate::common::{assert_terminated, run, state, HOUR, ID};
use crate::failure_details::assert_failure;

async fn work(_ctx: ActivityContext, n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

/// Does one unit of work per execution, forever.
async fn eternal(ctx: OrchestrationContext, n: u32) -> Result<(), OrchestrationError> {
    ctx.call_activity::<u32>("Work", &n).await?;
    ctx.continue_as_new(&(n + 1)).await
}

/// Races "Go" against an hour; on timeout continues as new while the losing wait stays alive.
async fn go_or_restart(ctx: OrchestrationContext, round: u32) -> Result<u32, OrchestrationError> {
    let go = ctx.wait_for_external_event::<u32>("Go");
    let hour = ctx.create_timer_after(HOUR);
    match select2(go, hour).await {
        Either::Left((value, _hour)) => Ok(value?),
        Either::Right(((), _still_waiting)) => ctx.continue_as_new(&(round + 1)).await,
    }
}

/// First execution sends itself "Ping" and continues as new; the second waits for it.
async fn ping_myself(ctx: OrchestrationContext, round: u32) -> Result<String, OrchestrationError> {
    if round == 0 {
        ctx.send_event(ctx.instance_id(), "Ping", "hello")?;
        return ctx.continue_as_new(&1).await;
    }
    Ok(ctx.wait_for_external_event::<String>("Ping").await?)
}

/// Starts a default-id child that outlives an hour, then continues as new and starts another.
async fn child_per_generation(
    ctx: OrchestrationContext,
    round: u32,
) -> Result<String, OrchestrationError> {
    let child = ctx.call_sub_orchestrator::<String>("WaitForever", None, &());
    if round == 0 {
        let hour = ctx.create_timer_after(HOUR);
        if let Either::Right(_) = select2(child, hour).await {
            return ctx.continue_as_new(&1).await;
        }
        return Err(OrchestrationError::new("the first child cannot finish"));
    }
    drop(child);
    Ok(ctx.instance_id().to_string())
}

async fn wait_forever(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    Ok(ctx.wait_for_external_event::<String>("Never").await?)
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("Eternal", eternal)
        .orchestrator("GoOrRestart", go_or_restart)
        .orchestrator("PingMyself", ping_myself)
        .orchestrator("ChildPerGeneration", child_per_generation)
        .orchestrator("WaitForever", wait_forever)
        .activity("Work", work)
        .build()
        .unwrap()
}

/// The eternal orchestration's first turn, waiting for Work #0.
fn eternal_first_turn() -> HistoryBuilder {
    HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("Eternal", &0)
        .task_scheduled(0, "Work", &0)
        .orchestrator_completed()
        .advance(Duration::from_secs(1))
        .orchestrator_started()
}

#[test]
fn terminate_in_the_same_turn_as_continue_as_new_stops_the_instance() {
    let past = eternal_first_turn().build();
    let (past, new) = past.split_at(past.len() - 1);
    let new = [
        new.to_vec(),
        HistoryBuilder::new(ID)
            .task_completed(0, &0)
            .terminated("stop")
            .build(),
    ]
    .concat();

    let turn = execute(&registry(), ID, past, &new).unwrap();

    assert_terminated(&turn, "\"stop\"");
}

#[test]
fn suspend_after_continue_as_new_carries_over_with_the_events_it_held() {
    let history = eternal_first_turn().build();
    let (past, started) = history.split_at(history.len() - 1);
    let new = [
        started.to_vec(),
        HistoryBuilder::new(ID)
            .task_completed(0, &0)
            .suspended()
            .event_raised("Go", &7)
            .build(),
    ]
    .concat();

    let turn = execute(&registry(), ID, past, &new).unwrap();

    let TurnOutcome::ContinuedAsNew {
        input,
        carryover_events,
    } = turn.outcome
    else {
        panic!("expected ContinuedAsNew, got {:?}", turn.outcome);
    };
    assert_eq!(input.as_deref(), Some("1"));
    let kinds: Vec<&EventKind> = carryover_events.iter().map(|e| &e.kind).collect();
    assert!(
        matches!(kinds[..], [EventKind::ExecutionSuspended { .. }, EventKind::EventRaised { name, .. }] if name == "Go"),
        "{kinds:?}"
    );
}

#[test]
fn event_after_continue_as_new_carries_over_even_with_a_live_waiter() {
    let history = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("GoOrRestart", &0)
        .timer_created(0, crate::common::at(HOUR))
        .orchestrator_completed()
        .advance(HOUR)
        .orchestrator_started()
        .timer_fired(0, crate::common::at(HOUR))
        .event_raised("Go", &7)
        .build();
    let (past, new) = history.split_at(4);

    let turn = execute(&registry(), ID, past, new).unwrap();

    let TurnOutcome::ContinuedAsNew {
        carryover_events, ..
    } = turn.outcome
    else {
        panic!("expected ContinuedAsNew, got {:?}", turn.outcome);
    };
    assert_eq!(carryover_events.len(), 1);
    assert!(
        matches!(&carryover_events[0].kind, EventKind::EventRaised { name, input } if name == "Go" && input.as_deref() == Some("7"))
    );
}

#[test]
fn an_event_an_instance_sends_itself_before_continue_as_new_reaches_the_next_execution() {
    let (_, state) = run(registry(), "PingMyself", &0);

    assert_eq!(state.status, OrchestrationStatus::Completed);
    assert_eq!(state.output_as::<String>().unwrap(), "hello");
}

#[test]
fn default_child_ids_do_not_collide_across_continue_as_new_generations() {
    let mut rt = InMemoryRuntime::new(registry());
    rt.start("ChildPerGeneration", ID, &0).unwrap();
    rt.advance(2 * HOUR).unwrap();

    let parent = state(&rt, ID);
    assert_eq!(
        parent.status,
        OrchestrationStatus::Completed,
        "{:?}",
        parent.failure
    );
    // The parent plus one running child per generation.
    let children: Vec<String> = rt
        .instance_ids()
        .into_iter()
        .filter(|id| id != ID)
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
    for child in &children {
        assert_eq!(state(&rt, child).status, OrchestrationStatus::Running);
    }
}

async fn fire_and_forget_retry(
    ctx: OrchestrationContext,
    (): (),
) -> Result<(), OrchestrationError> {
    let policy = RetryPolicy::new(3, Duration::from_secs(1));
    let _never_awaited = ctx.call_activity_with_retry::<u32>("Work", &1, &policy);
    let awaited: u32 = ctx.call_activity("Work", &2).await?;
    assert_eq!(awaited, 2);
    Ok(())
}

#[test]
fn a_retried_call_schedules_its_first_attempt_at_the_call_like_a_plain_call() {
    let registry = Registry::builder()
        .orchestrator("FireAndForgetRetry", fire_and_forget_retry)
        .activity("Work", work)
        .build()
        .unwrap();
    let new = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("FireAndForgetRetry", &())
        .build();

    let turn = execute(&registry, ID, &[], &new).unwrap();

    let scheduled: Vec<(i32, Option<&str>)> = turn
        .actions
        .iter()
        .map(|action| match action {
            Action::ScheduleTask { id, input, .. } => (*id, input.as_deref()),
            other => panic!("unexpected action {other:?}"),
        })
        .collect();
    assert_eq!(scheduled, vec![(0, Some("1")), (1, Some("2"))]);
}

async fn tally_as_completed(
    ctx: OrchestrationContext,
    n: u32,
) -> Result<Vec<usize>, OrchestrationError> {
    let mut done = completions((0..n).map(|i| ctx.call_activity::<u32>("Work", &i)));
    let mut order = Vec::new();
    while let Some((index, result)) = done.next_completed().await {
        result?;
        order.push(index);
    }
    assert_eq!(done.remaining(), 0);
    Ok(order)
}

#[test]
fn completions_yields_each_task_as_it_finishes_in_history_order() {
    let registry = Registry::builder()
        .orchestrator("Tally", tally_as_completed)
        .activity("Work", work)
        .build()
        .unwrap();
    let mut builder = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("Tally", &3);
    for i in 0..3 {
        builder = builder.task_scheduled(i, "Work", &i);
    }
    let history = builder
        .orchestrator_completed()
        .orchestrator_started()
        .task_completed(2, &2)
        .task_completed(0, &0)
        .task_completed(1, &1)
        .build();
    let (past, new) = history.split_at(6);

    let turn = execute(&registry, ID, past, new).unwrap();

    assert_eq!(
        turn.outcome,
        TurnOutcome::Completed {
            output: Some("[2,0,1]".to_string())
        }
    );
}

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("drop exploded");
    }
}

async fn drops_badly(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    let _guard = PanicsOnDrop;
    ctx.wait_for_external_event::<()>("Never").await?;
    Ok(())
}

#[test]
fn a_panic_while_the_orchestrator_is_dropped_fails_the_instance_instead_of_escaping() {
    let registry = Registry::builder()
        .orchestrator("DropsBadly", drops_badly)
        .build()
        .unwrap();
    let new = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("DropsBadly", &())
        .build();

    let turn = execute(&registry, ID, &[], &new).unwrap();

    let TurnOutcome::Failed { details } = turn.outcome else {
        panic!("expected Failed, got {:?}", turn.outcome);
    };
    assert_failure(&details, "Panic", &["drop exploded"]);
}
