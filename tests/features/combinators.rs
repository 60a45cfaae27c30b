//! Fan-out/fan-in: join_all keeps argument order under shuffled completions, join2/select2 over
//! different task kinds, select_first draining loops, and history order deciding select winners.

use durable_engine::verify::verify_history;
use durable_engine::HistoryBuilder;
use durable_engine::{
    execute, join2, join_all, select2, select_first, ActivityContext, ActivityError, DurableFuture,
    Either, EventKind, EventType, HistoryEvent, OrchestrationContext, OrchestrationError,
    OrchestrationStatus, Registry, TurnOutcome,
};
use durable_runtime::testkit::InMemoryRuntime;

use crate::common::{at, events_of, history, run, start, state, HOUR, ID};
use crate::failure_details::assert_failure;

async fn square(_: ActivityContext, n: u64) -> Result<u64, ActivityError> {
    Ok(n * n)
}

async fn fan_out(ctx: OrchestrationContext, count: u64) -> Result<Vec<u64>, OrchestrationError> {
    let tasks: Vec<_> = (0..count)
        .map(|n| ctx.call_activity::<u64>("Square", &n))
        .collect();
    join_all(tasks).await.into_iter().map(|r| Ok(r?)).collect()
}

async fn activity_and_timer(
    ctx: OrchestrationContext,
    (): (),
) -> Result<(u64, String), OrchestrationError> {
    let (squared, ()) = join2(
        ctx.call_activity::<u64>("Square", &7),
        ctx.create_timer_after(HOUR),
    )
    .await;
    Ok((squared?, ctx.current_utc_datetime().to_rfc3339()))
}

async fn activity_or_timer(
    ctx: OrchestrationContext,
    (): (),
) -> Result<String, OrchestrationError> {
    Ok(
        match select2(
            ctx.call_activity::<u64>("Square", &3),
            ctx.create_timer_after(HOUR),
        )
        .await
        {
            Either::Left((squared, _timer)) => format!("activity: {}", squared?),
            Either::Right(((), _activity)) => "timer".to_string(),
        },
    )
}

async fn event_or_timer(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    Ok(
        match select2(
            ctx.wait_for_external_event::<bool>("Decision"),
            ctx.create_timer_after(HOUR),
        )
        .await
        {
            Either::Left((decision, _timer)) => format!("decision: {}", decision?),
            Either::Right(((), _event)) => "timer".to_string(),
        },
    )
}

/// Three timers created out of order; reports the order in which they finish.
async fn drain_timers(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Vec<String>, OrchestrationError> {
    let mut labels = vec!["3h", "1h", "2h"];
    let mut pending = vec![
        ctx.create_timer_after(3 * HOUR),
        ctx.create_timer_after(HOUR),
        ctx.create_timer_after(2 * HOUR),
    ];
    let mut finished = Vec::new();
    while !pending.is_empty() {
        let (index, (), rest) = select_first(pending).await;
        let label = labels.remove(index);
        finished.push(format!(
            "{label}@{index}@{}",
            ctx.current_utc_datetime().format("%H:%M")
        ));
        pending = rest;
    }
    Ok(finished)
}

async fn select_nothing(_: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    let nothing: Vec<DurableFuture<()>> = Vec::new();
    select_first(nothing).await;
    Ok(())
}

async fn first_of_two_activities(
    ctx: OrchestrationContext,
    (): (),
) -> Result<String, OrchestrationError> {
    let a = ctx.call_activity::<u64>("Square", &1);
    let b = ctx.call_activity::<u64>("Square", &2);
    Ok(match select2(a, b).await {
        Either::Left(_) => "first".to_string(),
        Either::Right(_) => "second".to_string(),
    })
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("FanOut", fan_out)
        .orchestrator("ActivityAndTimer", activity_and_timer)
        .orchestrator("ActivityOrTimer", activity_or_timer)
        .orchestrator("EventOrTimer", event_or_timer)
        .orchestrator("DrainTimers", drain_timers)
        .orchestrator("SelectNothing", select_nothing)
        .orchestrator("FirstOfTwoActivities", first_of_two_activities)
        .activity("Square", square)
        .build()
        .unwrap()
}

fn completion_order(history: &[HistoryEvent]) -> Vec<i32> {
    events_of(history, EventType::TaskCompleted)
        .iter()
        .map(|e| match &e.kind {
            EventKind::TaskCompleted {
                task_scheduled_id, ..
            } => *task_scheduled_id,
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn join_all_returns_results_in_argument_order() {
    let (rt, state) = run(registry(), "FanOut", &10);

    let expected: Vec<u64> = (0..10).map(|n| n * n).collect();
    assert_eq!(state.output_as::<Vec<u64>>().unwrap(), expected);
    // All ten were scheduled in the first turn, before any completed.
    let history = history(&rt, ID);
    let first_turn_end = history
        .iter()
        .position(|e| e.event_type() == EventType::OrchestratorCompleted)
        .unwrap();
    let scheduled_first_turn = history[..first_turn_end]
        .iter()
        .filter(|e| e.event_type() == EventType::TaskScheduled)
        .count();
    assert_eq!(scheduled_first_turn, 10);
}

#[test]
fn join_all_keeps_argument_order_when_completions_arrive_shuffled() {
    let expected: Vec<u64> = (0..10).map(|n| n * n).collect();
    let mut saw_out_of_order = false;
    for seed in [1, 7, 42, 2026] {
        let mut rt = InMemoryRuntime::new(registry());
        rt.set_activity_shuffle(Some(seed));
        rt.start("FanOut", ID, &10).unwrap();
        rt.run_until_idle().unwrap();

        let done = state(&rt, ID);
        assert_eq!(done.status, OrchestrationStatus::Completed, "seed {seed}");
        assert_eq!(
            done.output_as::<Vec<u64>>().unwrap(),
            expected,
            "seed {seed}"
        );
        let history = history(&rt, ID);
        // One turn schedules all ten; each completion is a message of its own, so a turn each.
        assert_eq!(
            verify_history(&registry(), ID, &history),
            Ok(11),
            "seed {seed}"
        );
        let order = completion_order(&history);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "seed {seed}");
        saw_out_of_order |= order != sorted;
    }
    assert!(saw_out_of_order, "the shuffle never reordered completions");
}

#[test]
fn join2_waits_for_an_activity_and_a_timer() {
    let mut rt = start(registry(), "ActivityAndTimer", &());
    assert_eq!(
        state(&rt, ID).status,
        OrchestrationStatus::Running,
        "the activity is done but the timer is not"
    );
    rt.advance(HOUR).unwrap();

    let (squared, time): (u64, String) = state(&rt, ID).output_as().unwrap();
    assert_eq!(squared, 49);
    assert_eq!(time, at(HOUR).to_rfc3339());
}

#[test]
fn select2_activity_beats_a_later_timer() {
    let mut rt = start(registry(), "ActivityOrTimer", &());
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(done.output_as::<String>().unwrap(), "activity: 9");
    // The losing timer firing later changes nothing.
    rt.advance(2 * HOUR).unwrap();
    assert_eq!(state(&rt, ID).output_as::<String>().unwrap(), "activity: 9");
}

#[test]
fn select2_event_beats_the_timer_when_raised_in_time() {
    let mut rt = start(registry(), "EventOrTimer", &());
    rt.raise_event(ID, "Decision", &true).unwrap();
    rt.run_until_idle().unwrap();
    assert_eq!(
        state(&rt, ID).output_as::<String>().unwrap(),
        "decision: true"
    );
}

#[test]
fn select2_timer_beats_an_event_that_never_comes() {
    let (_, state) = run(registry(), "EventOrTimer", &());
    assert_eq!(state.output_as::<String>().unwrap(), "timer");
}

#[test]
fn select_first_loop_drains_every_task_in_completion_order() {
    let (_, state) = run(registry(), "DrainTimers", &());

    // Indices are positions in the shrinking list of remaining tasks.
    assert_eq!(
        state.output_as::<Vec<String>>().unwrap(),
        vec!["1h@1@01:00", "2h@1@02:00", "3h@0@03:00"]
    );
}

#[test]
fn select_first_of_nothing_fails_the_instance() {
    let (_, state) = run(registry(), "SelectNothing", &());

    assert_eq!(state.status, OrchestrationStatus::Failed);
    let failure = state.failure.unwrap();
    assert_failure(&failure, "Panic", &["select_first needs at least one task"]);
}

/// Replays two scheduled activities whose completions arrive in the given order in one turn.
fn select_winner(completion_order: [i32; 2]) -> String {
    let past = HistoryBuilder::new(ID)
        .orchestrator_started()
        .execution_started("FirstOfTwoActivities", &())
        .task_scheduled(0, "Square", &1)
        .task_scheduled(1, "Square", &2)
        .orchestrator_completed()
        .build();
    let results = [1, 4];
    let mut builder = HistoryBuilder::new(ID).advance(HOUR).orchestrator_started();
    for id in completion_order {
        builder = builder.task_completed(id, &results[usize::try_from(id).unwrap()]);
    }
    let turn = execute(&registry(), ID, &past, &builder.build()).unwrap();
    let TurnOutcome::Completed { output } = turn.outcome else {
        panic!("expected Completed, got {:?}", turn.outcome);
    };
    serde_json::from_str(&output.unwrap()).unwrap()
}

#[test]
fn select_winner_is_the_first_completion_in_history_not_in_argument_order() {
    assert_eq!(select_winner([1, 0]), "second");
    assert_eq!(select_winner([0, 1]), "first");
}
