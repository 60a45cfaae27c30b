//! A chain of long activities, taken instantly: each step moves a manual clock on, so a turn
//! running them in-process reaches its checkpoint interval at a known step.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_engine::{ActivityContext, ActivityError, OrchestrationContext, Registry};
use durable_store::backend::ManualClock;

/// How many times each step of `Chain` ran.
pub type StepRuns = Arc<Mutex<Vec<usize>>>;

/// How long each `Slow` step takes on the clock it moves.
pub const STEP_TIME: Duration = Duration::from_secs(2);

/// `Chain`: calls `Slow` for each of `steps` steps in sequence and returns them. `Slow` counts
/// its runs in `runs` and moves `clock` on by [`STEP_TIME`]: a long activity, taken instantly.
pub fn chain_registry(clock: Arc<ManualClock>, runs: StepRuns) -> Registry {
    Registry::builder()
        .orchestrator(
            "Chain",
            |ctx: OrchestrationContext, steps: usize| async move {
                let mut done = Vec::new();
                for step in 0..steps {
                    done.push(ctx.call_activity::<usize>("Slow", &step).await?);
                }
                Ok(done)
            },
        )
        .activity("Slow", move |_ctx: ActivityContext, step: usize| {
            runs.lock().unwrap()[step] += 1;
            clock.advance(STEP_TIME);
            async move { Ok::<_, ActivityError>(step) }
        })
        .build()
        .unwrap()
}
