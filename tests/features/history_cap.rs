//! The history cap: an execution whose history would pass `max_history_events` fails as
//! `HistoryTooLarge`, pointing at continue-as-new; one that continues as new in time completes.

use durable_engine::{
    ActivityContext, ActivityError, EventType, OrchestrationContext, OrchestrationError,
    OrchestrationStatus, Registry,
};
use durable_runtime::testkit::InMemoryRuntime;
use durable_runtime::{RuntimeOptions, HISTORY_TOO_LARGE_ERROR_TYPE};

use crate::common::{events_of, history, state, DAY, ID};
use crate::failure_details::assert_failure;

const CAP: usize = 30;
const STEPS: u32 = 20;
const PER_EXECUTION: u32 = 5;

async fn echo(_: ActivityContext, step: u32) -> Result<u32, ActivityError> {
    Ok(step)
}

/// Calls `Echo` for each step in sequence, all in one execution; returns how many ran.
async fn long(ctx: OrchestrationContext, (): ()) -> Result<u32, OrchestrationError> {
    for step in 0..STEPS {
        ctx.call_activity::<u32>("Echo", &step).await?;
    }
    Ok(STEPS)
}

/// The same steps, five per execution: `done` have run in earlier executions.
async fn chunked(ctx: OrchestrationContext, done: u32) -> Result<u32, OrchestrationError> {
    for step in done..done + PER_EXECUTION {
        ctx.call_activity::<u32>("Echo", &step).await?;
    }
    let done = done + PER_EXECUTION;
    if done >= STEPS {
        return Ok(done);
    }
    ctx.continue_as_new(&done).await
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("Long", long)
        .orchestrator("Chunked", chunked)
        .activity("Echo", echo)
        .build()
        .unwrap()
}

/// Runs `name` to its end under the cap, with activities in the turn or through the queue.
fn run_capped<I: serde::Serialize>(name: &str, input: &I, inline: bool) -> InMemoryRuntime {
    let options = RuntimeOptions {
        inline_activities: inline,
        max_history_events: CAP,
        ..RuntimeOptions::default()
    };
    let mut rt = InMemoryRuntime::with_options(registry(), options);
    rt.start(name, ID, input).unwrap();
    rt.run_to_completion(DAY).unwrap();
    rt
}

#[test]
fn an_execution_whose_history_would_pass_the_cap_fails_as_history_too_large() {
    for inline in [false, true] {
        let rt = run_capped("Long", &(), inline);
        let state = state(&rt, ID);
        assert_eq!(state.status, OrchestrationStatus::Failed, "inline {inline}");
        let details = state.failure.expect("failure details");
        assert_failure(
            &details,
            HISTORY_TOO_LARGE_ERROR_TYPE,
            &["30 events", "continue"],
        );
        let history = history(&rt, ID);
        let scheduled = events_of(&history, EventType::TaskScheduled).len();
        assert!(scheduled < STEPS as usize, "inline {inline}: {scheduled}");
        // Past the cap by at most the failing turn's start, message and end.
        assert!(
            history.len() <= CAP + 4,
            "inline {inline}: {} events",
            history.len()
        );
    }
}

#[test]
fn an_orchestration_that_continues_as_new_in_time_stays_under_the_cap() {
    for inline in [false, true] {
        let rt = run_capped("Chunked", &0u32, inline);
        let state = state(&rt, ID);
        assert_eq!(
            state.status,
            OrchestrationStatus::Completed,
            "inline {inline}"
        );
        assert_eq!(state.output_as::<u32>().unwrap(), STEPS);
        let last = history(&rt, ID);
        assert!(last.len() <= CAP, "inline {inline}: {} events", last.len());
        assert_eq!(
            events_of(&last, EventType::TaskScheduled).len(),
            PER_EXECUTION as usize,
            "the last execution holds its own steps only"
        );
    }
}
