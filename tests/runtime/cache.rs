//! The instance cache: a message for a cached instance is applied without a load or a replay;
//! with the cache off every message loads and replays; the cache keeps to its bounds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use durable_engine::{ActivityContext, ActivityError, OrchestrationContext, Registry};
use durable_runtime::{InstanceCacheOptions, RuntimeOptions};

use crate::harness::Harness;

/// How often `Steps` started running its body (each replay starts it again) and how many of
/// its steps it passed while replaying.
#[derive(Default)]
struct Counters {
    starts: AtomicUsize,
    replayed_steps: AtomicUsize,
}

/// `Steps`: `n` times, waits for "Step" and greets.
fn counting_registry(counters: Arc<Counters>) -> Registry {
    Registry::builder()
        .orchestrator("Steps", move |ctx: OrchestrationContext, n: u32| {
            let counters = counters.clone();
            async move {
                counters.starts.fetch_add(1, Ordering::SeqCst);
                for step in 0..n {
                    let _: u32 = ctx.wait_for_external_event("Step").await?;
                    if ctx.is_replaying() {
                        counters.replayed_steps.fetch_add(1, Ordering::SeqCst);
                    }
                    ctx.call_activity::<String>("Greet", &step.to_string())
                        .await?;
                }
                Ok(n)
            }
        })
        .activity("Greet", |_ctx: ActivityContext, name: String| async move {
            Ok::<_, ActivityError>(format!("Hello {name}!"))
        })
        .build()
        .unwrap()
}

async fn harness(cache: InstanceCacheOptions, counters: &Arc<Counters>) -> Harness {
    let options = RuntimeOptions {
        instance_cache: cache,
        ..RuntimeOptions::default()
    };
    let counters = counters.clone();
    Harness::build(options, move |_| counting_registry(counters)).await
}

fn loads(h: &Harness) -> usize {
    h.backend.counts().get("load").copied().unwrap_or(0)
}

/// Starts `Steps` with three steps, then hands it one step at a time; returns how many loads
/// each step's message took.
async fn three_steps(h: &Harness, id: &str) -> Vec<usize> {
    h.runtime.start("Steps", Some(id), &3u32).await.unwrap();
    h.drive(10).await;
    let mut per_step = Vec::new();
    for step in 0..3u32 {
        let before = loads(h);
        h.raise_unfaulted(id, "Step", &step).await;
        h.drive(10).await;
        per_step.push(loads(h) - before);
    }
    let summary = h.completed(id).await;
    assert_eq!(summary.output.as_deref(), Some("3"));
    h.assert_settled(id, id).await;
    per_step
}

#[tokio::test]
async fn a_message_for_a_cached_instance_is_applied_without_a_load_or_a_replay() {
    let counters = Arc::new(Counters::default());
    let h = harness(InstanceCacheOptions::default(), &counters).await;
    let loads = three_steps(&h, "cached").await;
    assert_eq!(loads, [0, 0, 0], "no step loaded the instance");
    assert_eq!(
        counters.starts.load(Ordering::SeqCst),
        1,
        "the body ran once, live across turns"
    );
    assert_eq!(counters.replayed_steps.load(Ordering::SeqCst), 0);
    assert_eq!(h.runtime.cached_instances(), 1);
}

#[tokio::test]
async fn with_the_cache_off_every_message_loads_and_replays() {
    let counters = Arc::new(Counters::default());
    let h = harness(InstanceCacheOptions::OFF, &counters).await;
    let loads = three_steps(&h, "uncached").await;
    assert_eq!(loads, [1, 1, 1], "each step loaded the instance");
    assert_eq!(
        counters.starts.load(Ordering::SeqCst),
        4,
        "the start's turn, then a replay for each step"
    );
    assert_eq!(
        counters.replayed_steps.load(Ordering::SeqCst),
        1 + 2,
        "step 2 replays step 1, step 3 replays steps 1 and 2"
    );
    assert_eq!(h.runtime.cached_instances(), 0);
}

#[tokio::test]
async fn the_cache_keeps_at_most_its_instance_count_and_evicted_instances_still_complete() {
    let counters = Arc::new(Counters::default());
    let cache = InstanceCacheOptions {
        max_instances: 2,
        ..InstanceCacheOptions::default()
    };
    let h = harness(cache, &counters).await;
    let ids: Vec<String> = (0..5).map(|i| format!("bounded-{i}")).collect();
    for id in &ids {
        h.runtime.start("Steps", Some(id), &1u32).await.unwrap();
    }
    h.drive(10).await;
    assert_eq!(h.runtime.cached_instances(), 2);

    let before = loads(&h);
    for id in &ids {
        h.raise_unfaulted(id, "Step", &0u32).await;
    }
    h.drive(10).await;
    // Those evicted load again, and each load may evict one whose event is still to come.
    let reloads = loads(&h) - before;
    assert!((3..=5).contains(&reloads), "{reloads} loads");
    for id in &ids {
        h.completed(id).await;
        h.assert_settled(id, id).await;
    }
    assert_eq!(h.runtime.cached_instances(), 2);
}

#[tokio::test]
async fn an_instance_whose_history_passes_the_cache_event_budget_is_not_kept() {
    const BUDGET: usize = 12;
    let counters = Arc::new(Counters::default());
    let cache = InstanceCacheOptions {
        max_instances: 100,
        max_events: BUDGET,
    };
    let h = harness(cache, &counters).await;
    h.runtime
        .start("Steps", Some("large"), &4u32)
        .await
        .unwrap();
    h.drive(10).await;
    for step in 0..2u32 {
        h.raise_unfaulted("large", "Step", &step).await;
        h.drive(10).await;
    }
    assert!(h.history("large").await.len() > BUDGET);
    assert_eq!(h.runtime.cached_instances(), 0, "too large to keep");
    h.runtime
        .start("Steps", Some("small"), &4u32)
        .await
        .unwrap();
    h.drive(10).await;
    assert!(h.history("small").await.len() <= BUDGET);
    assert_eq!(h.runtime.cached_instances(), 1, "the small one is kept");

    for (id, expected_loads) in [("small", 0), ("large", 1)] {
        let before = loads(&h);
        h.raise_unfaulted(id, "Step", &9u32).await;
        h.drive(10).await;
        assert_eq!(loads(&h) - before, expected_loads, "{id}");
    }
}
