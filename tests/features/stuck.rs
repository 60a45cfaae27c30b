//! Stuck instances as an operator's view finds them: a start never processed, and a Running
//! instance with nothing open; one waiting on a timer or an activity is not stuck, nor one
//! that has not been idle long enough.

use std::time::Duration;

use durable_engine::{OrchestrationContext, OrchestrationError, Registry};
use durable_runtime::stuck::StuckReason;
use durable_runtime::testkit::InMemoryRuntime;

use crate::common::HOUR;

async fn waits_for_an_event(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    ctx.wait_for_external_event::<()>("Go").await?;
    Ok(())
}

async fn sleeps(ctx: OrchestrationContext, (): ()) -> Result<(), OrchestrationError> {
    ctx.create_timer_after(HOUR * 24).await;
    Ok(())
}

#[test]
fn idle_instances_with_nothing_open_or_no_state_are_listed() {
    let registry = Registry::builder()
        .orchestrator("Waits", waits_for_an_event)
        .orchestrator("Sleeps", sleeps)
        .build()
        .unwrap();
    let mut rt = InMemoryRuntime::new(registry);
    rt.start("Waits", "waiting", &()).unwrap();
    rt.start("Sleeps", "sleeping", &()).unwrap();
    rt.run_until_idle().unwrap();
    assert!(
        rt.stuck(Duration::from_secs(60)).unwrap().is_empty(),
        "nothing has been idle a minute yet"
    );

    rt.advance(Duration::from_secs(120)).unwrap();
    // Queued but never processed.
    rt.start("Waits", "never-started", &()).unwrap();
    let mut stuck = rt.stuck(Duration::ZERO).unwrap();
    stuck.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        stuck,
        vec![
            ("never-started".to_string(), StuckReason::NoState),
            ("waiting".to_string(), StuckReason::NothingPending),
        ]
    );

    rt.raise_event("waiting", "Go", &()).unwrap();
    rt.run_until_idle().unwrap();
    let stuck = rt.stuck(Duration::ZERO).unwrap();
    assert!(
        stuck.iter().all(|(id, _)| id != "waiting"),
        "an instance that ended is not stuck: {stuck:?}"
    );
}
