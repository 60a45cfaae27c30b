//! Engine benchmarks: replay cost per history event on 10,000-event histories, and throughput of
//! two-activity orchestrations through the runtime over the in-memory backend on one thread.
//! Prints `key=value` lines (median of several runs, with min and max).

use std::hint::black_box;
use std::time::{Duration, Instant};

use durable_engine::HistoryBuilder;
use durable_engine::{
    execute, join_all, ActivityContext, ActivityError, EventKind, HistoryEvent,
    OrchestrationContext, OrchestrationError, OrchestrationStatus, Registry,
};
use durable_runtime::testkit::InMemoryRuntime;
use durable_runtime::RuntimeOptions;

const HISTORY_EVENTS: usize = 10_000;
const RUNS: usize = 5;
const THROUGHPUT_INSTANCES: usize = 20_000;

async fn sequence(ctx: OrchestrationContext, count: u32) -> Result<u32, OrchestrationError> {
    let mut total = 0;
    for i in 0..count {
        total += ctx.call_activity::<u32>("Echo", &i).await?;
    }
    Ok(total)
}

async fn fan_out(ctx: OrchestrationContext, count: u32) -> Result<u32, OrchestrationError> {
    let results = join_all((0..count).map(|i| ctx.call_activity::<u32>("Echo", &i))).await;
    let mut total = 0;
    for result in results {
        total += result?;
    }
    Ok(total)
}

async fn two_activities(ctx: OrchestrationContext, input: u32) -> Result<u32, OrchestrationError> {
    let first: u32 = ctx.call_activity("Echo", &input).await?;
    let second: u32 = ctx.call_activity("Echo", &(first + 1)).await?;
    Ok(second)
}

async fn echo(_ctx: ActivityContext, value: u32) -> Result<u32, ActivityError> {
    Ok(value)
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("Sequence", sequence)
        .orchestrator("FanOut", fan_out)
        .orchestrator("TwoActivities", two_activities)
        .activity("Echo", echo)
        .build()
        .expect("bench registry is valid")
}

/// A sequence history: one turn per activity (OrchestratorStarted, TaskCompleted, TaskScheduled,
/// OrchestratorCompleted), ending with the last activity still open.
fn sequence_history(events: usize) -> (Vec<HistoryEvent>, u32) {
    let completions = (events - 4) / 4;
    let count = u32::try_from(completions + 1).expect("fits");
    let mut builder = HistoryBuilder::new("bench")
        .orchestrator_started()
        .execution_started("Sequence", &count)
        .task_scheduled(0, "Echo", &0)
        .orchestrator_completed();
    for i in 0..completions {
        let id = i32::try_from(i).expect("fits");
        builder = builder
            .advance(Duration::from_millis(10))
            .orchestrator_started()
            .task_completed(id, &i)
            .task_scheduled(id + 1, "Echo", &(i + 1))
            .orchestrator_completed();
    }
    (builder.build(), count)
}

/// A fan-out history: one turn schedules every activity, then one turn per completion.
fn fan_out_history(events: usize) -> Vec<HistoryEvent> {
    let count = (events - 3) / 4;
    let mut builder = HistoryBuilder::new("bench")
        .orchestrator_started()
        .execution_started("FanOut", &(u32::try_from(count).expect("fits") + 1));
    for i in 0..=count {
        builder = builder.task_scheduled(i32::try_from(i).expect("fits"), "Echo", &i);
    }
    builder = builder.orchestrator_completed();
    for i in 0..count {
        builder = builder
            .advance(Duration::from_millis(1))
            .orchestrator_started()
            .task_completed(i32::try_from(i).expect("fits"), &i)
            .orchestrator_completed();
    }
    builder.build()
}

/// Nanoseconds per replayed event: the whole history is past, and one OrchestratorStarted is new.
fn replay_ns_per_event(registry: &Registry, history: &[HistoryEvent]) -> f64 {
    let next = [HistoryEvent::message(
        history.last().expect("non-empty").timestamp,
        EventKind::OrchestratorStarted,
    )];
    let iterations = 20;
    let started = Instant::now();
    for _ in 0..iterations {
        let turn = execute(registry, "bench", black_box(history), &next).expect("valid history");
        assert!(turn.actions.is_empty(), "replay must not produce new work");
        black_box(turn);
    }
    started.elapsed().as_nanos() as f64 / (iterations * history.len()) as f64
}

/// Instances started before the runtime runs them: the in-memory backend scans a queue's
/// messages on every receive, so thousands of queued starts would measure that scan instead.
const THROUGHPUT_WAVE: usize = 100;

fn throughput(registry: &Registry, instances: usize) -> f64 {
    // The production runtime's defaults: activities run in the turn.
    let mut runtime = InMemoryRuntime::with_options(registry.clone(), RuntimeOptions::default());
    let ids: Vec<String> = (0..instances).map(|i| format!("bench-{i}")).collect();
    let started = Instant::now();
    for (wave, wave_ids) in ids.chunks(THROUGHPUT_WAVE).enumerate() {
        for (i, id) in wave_ids.iter().enumerate() {
            let input = u32::try_from(wave * THROUGHPUT_WAVE + i).expect("fits");
            runtime
                .start("TwoActivities", id, &input)
                .expect("start succeeds");
        }
        runtime.run_until_idle().expect("runs");
    }
    let elapsed = started.elapsed();
    for id in &ids {
        let state = runtime.state(id).expect("instance exists");
        assert_eq!(state.status, OrchestrationStatus::Completed);
    }
    instances as f64 / elapsed.as_secs_f64()
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    Stats {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

fn report(key: &str, unit: &str, decimals: usize, samples: Vec<f64>) {
    let s = stats(samples);
    println!("{key}_{unit}={:.decimals$}", s.median);
    println!("{key}_{unit}_min={:.decimals$}", s.min);
    println!("{key}_{unit}_max={:.decimals$}", s.max);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run a tiny smoke pass.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let registry = registry();
    let events = if quick { 200 } else { HISTORY_EVENTS };
    let runs = if quick { 1 } else { RUNS };

    let (sequence, count) = sequence_history(events);
    let fan_out = fan_out_history(events);
    println!("history_events_sequence={}", sequence.len());
    println!("history_events_fan_out={}", fan_out.len());
    println!("sequence_activities={count}");
    replay_ns_per_event(&registry, &sequence);
    report(
        "replay_sequence",
        "ns_per_event",
        1,
        (0..runs)
            .map(|_| replay_ns_per_event(&registry, &sequence))
            .collect(),
    );
    report(
        "replay_fan_out",
        "ns_per_event",
        1,
        (0..runs)
            .map(|_| replay_ns_per_event(&registry, &fan_out))
            .collect(),
    );

    let instances = if quick { 100 } else { THROUGHPUT_INSTANCES };
    throughput(&registry, instances.min(1_000));
    println!("throughput_instances={instances}");
    report(
        "two_activity_orchestrations",
        "per_sec",
        0,
        (0..runs)
            .map(|_| throughput(&registry, instances))
            .collect(),
    );
}
