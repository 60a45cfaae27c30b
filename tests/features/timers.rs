//! Durable timers on the runtime's manual clock: they fire exactly at their FireAt and not
//! before, long timers work, the clock seen after a timer, and timers already due.

use std::time::Duration;

use chrono::{DateTime, Utc};
use durable_engine::{
    select2, Either, EventKind, EventType, OrchestrationContext, OrchestrationError,
    OrchestrationStatus, Registry,
};

use crate::common::{at, epoch, events_of, history, run, start, state, turn_times, DAY, HOUR, ID};

const MINUTE: Duration = Duration::from_secs(60);

async fn sleep_for(
    ctx: OrchestrationContext,
    delay: Duration,
) -> Result<DateTime<Utc>, OrchestrationError> {
    ctx.create_timer_after(delay).await;
    Ok(ctx.current_utc_datetime())
}

async fn sleep_until(
    ctx: OrchestrationContext,
    fire_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, OrchestrationError> {
    ctx.create_timer(fire_at).await;
    Ok(ctx.current_utc_datetime())
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("SleepFor", sleep_for)
        .orchestrator("SleepUntil", sleep_until)
        .orchestrator("FirstTimer", first_timer)
        .build()
        .unwrap()
}

#[test]
fn relative_timer_does_not_fire_before_its_time() {
    let mut rt = start(registry(), "SleepFor", &HOUR);
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Running);
    assert_eq!(rt.next_timer(), Some(at(HOUR)));

    rt.advance(59 * MINUTE).unwrap();
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Running);
    assert!(events_of(&history(&rt, ID), EventType::TimerFired).is_empty());

    rt.advance(MINUTE).unwrap();
    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(done.output_as::<DateTime<Utc>>().unwrap(), at(HOUR));
}

#[test]
fn absolute_timer_records_its_fire_time_and_fires_then() {
    let fire_at = at(90 * MINUTE);
    let mut rt = start(registry(), "SleepUntil", &fire_at);
    let created = events_of(&history(&rt, ID), EventType::TimerCreated)
        .into_iter()
        .map(|e| e.kind.clone())
        .collect::<Vec<_>>();
    assert_eq!(created, vec![EventKind::TimerCreated { fire_at }]);

    rt.advance(89 * MINUTE).unwrap();
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Running);
    rt.advance(2 * MINUTE).unwrap();
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Completed);
    let history = history(&rt, ID);
    let fired = events_of(&history, EventType::TimerFired);
    assert_eq!(fired.len(), 1);
    assert_eq!(
        fired[0].kind,
        EventKind::TimerFired {
            timer_id: 0,
            fire_at
        }
    );
}

#[test]
fn thirty_day_timer_is_representable_and_fires() {
    let mut rt = start(registry(), "SleepFor", &(30 * DAY));
    // Queues cannot hide a message that long: the timer travels in hops of at most six days.
    assert_eq!(rt.next_timer(), Some(at(6 * DAY)));

    rt.advance(29 * DAY).unwrap();
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Running);
    assert_eq!(rt.next_timer(), Some(at(30 * DAY)));
    rt.run_to_completion(2 * DAY).unwrap();

    let done = state(&rt, ID);
    assert_eq!(done.status, OrchestrationStatus::Completed);
    assert_eq!(done.output_as::<DateTime<Utc>>().unwrap(), at(30 * DAY));
    // However many hops, history records the timer once.
    assert_eq!(events_of(&history(&rt, ID), EventType::TimerFired).len(), 1);
}

#[test]
fn current_time_after_a_timer_is_the_start_of_the_turn_it_fired_in() {
    let (rt, state) = run(registry(), "SleepFor", &(3 * HOUR));
    let history = history(&rt, ID);
    let times = turn_times(&history);

    assert_eq!(times, vec![epoch(), at(3 * HOUR)]);
    assert_eq!(state.output_as::<DateTime<Utc>>().unwrap(), times[1]);
}

#[test]
fn timer_in_the_past_fires_on_the_next_run_without_advancing_the_clock() {
    let fire_at = epoch() - chrono::Duration::hours(5);
    let (rt, state) = run(registry(), "SleepUntil", &fire_at);

    assert_eq!(state.status, OrchestrationStatus::Completed);
    assert_eq!(rt.now(), epoch());
    assert_eq!(state.output_as::<DateTime<Utc>>().unwrap(), epoch());
}

async fn first_timer(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    let late = ctx.create_timer_after(2 * HOUR);
    let early = ctx.create_timer_after(HOUR);
    Ok(match select2(late, early).await {
        Either::Left(((), _)) => "late".to_string(),
        Either::Right(((), _)) => format!("early at {}", ctx.current_utc_datetime()),
    })
}

#[test]
fn timers_fire_in_fire_time_order_not_creation_order() {
    let (_, state) = run(registry(), "FirstTimer", &());
    assert_eq!(
        state.output_as::<String>().unwrap(),
        format!("early at {}", at(HOUR))
    );
}

#[test]
fn run_to_completion_accepts_an_unbounded_limit() {
    let mut rt = start(registry(), "SleepFor", &(30 * DAY));
    rt.run_to_completion(Duration::MAX).unwrap();
    assert_eq!(state(&rt, ID).status, OrchestrationStatus::Completed);
    assert_eq!(rt.now(), at(30 * DAY));
}
