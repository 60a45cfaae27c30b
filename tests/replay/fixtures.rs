//! Recorded histories stored as JSON fixtures: each must verify turn by turn, replay to its recorded
//! outcome, re-serialize byte for byte, and still equal a fresh recording (`UPDATE_FIXTURES=1` rewrites).

use std::path::PathBuf;
use std::time::Duration;

use durable_engine::{
    execute, join_all, verify::verify_history, ActivityContext, ActivityError, EventKind,
    HistoryEvent, OrchestrationContext, OrchestrationError, OrchestrationStatus, Registry,
    RetryPolicy, TurnOutcome,
};
use durable_runtime::testkit::{InMemoryRuntime, InstanceState};

/// Orchestration time an instance may run for before a recording gives up.
const TIME_LIMIT: Duration = Duration::from_secs(30 * 24 * 60 * 60);

pub(crate) fn registry() -> Registry {
    Registry::builder()
        .activity("SayHello", |_: ActivityContext, city: String| async move {
            Ok::<_, ActivityError>(format!("Hello {city}!"))
        })
        .activity("Square", |_: ActivityContext, n: i64| async move {
            Ok::<_, ActivityError>(n * n)
        })
        .activity("Flaky", |ctx: ActivityContext, failures: i32| async move {
            // Attempts and their backoff timers alternate, so attempt `n` runs as task `2 * (n - 1)`.
            if ctx.task_id < 2 * failures {
                Err(ActivityError::new(format!(
                    "transient failure of task {}",
                    ctx.task_id
                )))
            } else {
                Ok(format!("succeeded as task {}", ctx.task_id))
            }
        })
        .activity("ChargeCard", |_: ActivityContext, amount: u32| async move {
            Err::<u32, _>(ActivityError::with_type(
                "CardDeclined",
                format!("card declined for {amount}"),
            ))
        })
        .orchestrator(
            "HelloWorld",
            |ctx: OrchestrationContext, city: String| async move {
                Ok::<String, OrchestrationError>(ctx.call_activity("SayHello", &city).await?)
            },
        )
        .orchestrator(
            "HelloSequence",
            |ctx: OrchestrationContext, (): ()| async move {
                let mut greetings = Vec::new();
                for city in ["Tokyo", "Seattle", "London"] {
                    greetings.push(ctx.call_activity::<String>("SayHello", city).await?);
                }
                Ok::<_, OrchestrationError>(greetings)
            },
        )
        .orchestrator(
            "FanOutFanIn",
            |ctx: OrchestrationContext, count: i64| async move {
                let squares = (1..=count).map(|n| ctx.call_activity::<i64>("Square", &n));
                let mut sum = 0;
                for square in join_all(squares).await {
                    sum += square?;
                }
                Ok::<_, OrchestrationError>(sum)
            },
        )
        .orchestrator(
            "RetryWithBackoff",
            |ctx: OrchestrationContext, failures: i32| async move {
                let policy =
                    RetryPolicy::new(5, Duration::from_secs(5)).with_backoff_coefficient(2.0);
                Ok::<String, OrchestrationError>(
                    ctx.call_activity_with_retry("Flaky", &failures, &policy)
                        .await?,
                )
            },
        )
        .orchestrator(
            "ApprovalWorkflow",
            |ctx: OrchestrationContext, (): ()| async move {
                let hour = Duration::from_secs(3600);
                let approval = ctx
                    .wait_for_external_event_with_timeout::<String>("Approval", hour)
                    .await;
                let reminder = ctx
                    .wait_for_external_event_with_timeout::<String>("Reminder", hour / 2)
                    .await;
                let describe =
                    |result: Result<String, _>| result.unwrap_or_else(|error| format!("{error}"));
                Ok::<_, OrchestrationError>(vec![describe(approval), describe(reminder)])
            },
        )
        .orchestrator(
            "Parent",
            |ctx: OrchestrationContext, city: String| async move {
                let greeting: String = ctx
                    .call_sub_orchestrator("Child", Some("child-1"), &city)
                    .await?;
                Ok::<_, OrchestrationError>(format!("child said: {greeting}"))
            },
        )
        .orchestrator(
            "Child",
            |ctx: OrchestrationContext, city: String| async move {
                Ok::<String, OrchestrationError>(ctx.call_activity("SayHello", &city).await?)
            },
        )
        .orchestrator(
            "Countdown",
            |ctx: OrchestrationContext, remaining: u32| async move {
                let greeting: String = ctx
                    .call_activity("SayHello", &format!("round {remaining}"))
                    .await?;
                if remaining == 0 {
                    return Ok::<_, OrchestrationError>(greeting);
                }
                ctx.continue_as_new(&(remaining - 1)).await
            },
        )
        .orchestrator(
            "ChargeOrder",
            |ctx: OrchestrationContext, amount: u32| async move {
                let charged: u32 = ctx.call_activity("ChargeCard", &amount).await?;
                Ok::<_, OrchestrationError>(charged)
            },
        )
        .orchestrator(
            "WaitForever",
            |ctx: OrchestrationContext, (): ()| async move {
                let greeting: String = ctx.call_activity("SayHello", "before the wait").await?;
                let never: String = ctx.wait_for_external_event("NeverRaised").await?;
                Ok::<_, OrchestrationError>(format!("{greeting} {never}"))
            },
        )
        .build()
        .expect("fixture registry is valid")
}

/// One instance as the in-memory runtime recorded it.
struct Recording {
    instance_id: String,
    history: Vec<HistoryEvent>,
    state: InstanceState,
}

fn recording(runtime: &InMemoryRuntime, instance_id: &str) -> Recording {
    Recording {
        instance_id: instance_id.to_string(),
        history: runtime
            .history(instance_id)
            .expect("instance exists")
            .to_vec(),
        state: runtime.state(instance_id).expect("instance exists").clone(),
    }
}

fn run_to_end(
    name: &str,
    instance_id: &str,
    input: &(impl serde::Serialize + ?Sized),
) -> InMemoryRuntime {
    let mut runtime = InMemoryRuntime::new(registry());
    runtime.start(name, instance_id, input).expect("start");
    runtime.run_to_completion(TIME_LIMIT).expect("run");
    runtime
}

pub(crate) fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/histories")
}

fn fixture_path(name: &str) -> PathBuf {
    fixtures_dir().join(format!("{name}.json"))
}

fn to_pretty_json(history: &[HistoryEvent]) -> String {
    serde_json::to_string_pretty(history).expect("histories serialize") + "\n"
}

pub(crate) fn load_fixture(name: &str) -> (String, Vec<HistoryEvent>) {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "fixture {} is missing ({error}); record it with `UPDATE_FIXTURES=1 cargo test --test replay`",
            path.display()
        )
    });
    let history =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    (text, history)
}

pub(crate) fn instance_id_of(history: &[HistoryEvent]) -> String {
    history
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::ExecutionStarted {
                orchestration_instance,
                ..
            } => Some(orchestration_instance.instance_id.clone()),
            _ => None,
        })
        .expect("history has an ExecutionStarted event")
}

/// The outcome the runtime reported for a finished instance.
fn expected_outcome(state: &InstanceState) -> TurnOutcome {
    match state.status {
        OrchestrationStatus::Completed => TurnOutcome::Completed {
            output: state.output.clone(),
        },
        OrchestrationStatus::Failed => TurnOutcome::Failed {
            details: state
                .failure
                .clone()
                .expect("a failed instance has failure details"),
        },
        OrchestrationStatus::Terminated => TurnOutcome::Terminated {
            reason: state.output.clone(),
        },
        other => panic!("recorded instance did not finish: {other:?}"),
    }
}

/// Checks a stored history (text and parsed) against the engine: serde stability, turn-by-turn
/// verification, and a full replay that reproduces `expected` with nothing left to do.
fn check_stored_history(
    registry: &Registry,
    text: &str,
    history: &[HistoryEvent],
    expected: &TurnOutcome,
) {
    assert_eq!(
        to_pretty_json(history),
        text,
        "re-serializing the fixture changed its bytes"
    );
    let instance_id = instance_id_of(history);
    let turns =
        verify_history(registry, &instance_id, history).expect("every turn replays identically");
    assert!(turns >= 1);
    let replay = execute(registry, &instance_id, history, &[]).expect("full replay");
    assert_eq!(&replay.outcome, expected);
    assert!(
        replay.actions.is_empty(),
        "replay scheduled new work: {:?}",
        replay.actions
    );
    assert!(
        replay.history_delta.is_empty(),
        "replay of an ended history appended events: {:?}",
        replay.history_delta
    );
}

/// Rewrites the fixture under `UPDATE_FIXTURES`, then checks the stored file against `fresh`.
fn check_fixture(name: &str, fresh: &Recording) {
    assert!(
        fresh.state.status.is_terminal(),
        "{name}: instance did not finish"
    );
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(fixture_path(name), to_pretty_json(&fresh.history)).expect("write fixture");
    }
    let (text, stored) = load_fixture(name);
    assert_eq!(instance_id_of(&stored), fresh.instance_id);
    assert_eq!(
        stored, fresh.history,
        "{name}: behaviour drifted from the recorded history; if intended, re-record with UPDATE_FIXTURES=1"
    );
    check_stored_history(&registry(), &text, &stored, &expected_outcome(&fresh.state));
}

fn count(history: &[HistoryEvent], wanted: fn(&EventKind) -> bool) -> usize {
    history.iter().filter(|event| wanted(&event.kind)).count()
}

#[test]
fn activity_sequence_fixture_replays() {
    let runtime = run_to_end("HelloSequence", "sequence-1", &());
    let recorded = recording(&runtime, "sequence-1");
    assert_eq!(
        recorded.state.output_as::<Vec<String>>().unwrap(),
        ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    );
    check_fixture("activity_sequence", &recorded);
}

#[test]
fn fan_out_fan_in_fixture_replays_with_shuffled_completions() {
    let mut runtime = InMemoryRuntime::new(registry());
    runtime.set_activity_shuffle(Some(7));
    runtime
        .start("FanOutFanIn", "fan-out-1", &5)
        .expect("start");
    runtime.run_to_completion(TIME_LIMIT).expect("run");
    let recorded = recording(&runtime, "fan-out-1");
    assert_eq!(recorded.state.output_as::<i64>().unwrap(), 55);
    let completion_order: Vec<i32> = recorded
        .history
        .iter()
        .filter_map(|event| match event.kind {
            EventKind::TaskCompleted {
                task_scheduled_id, ..
            } => Some(task_scheduled_id),
            _ => None,
        })
        .collect();
    assert_ne!(
        completion_order,
        [0, 1, 2, 3, 4],
        "the shuffle should reorder completions"
    );
    check_fixture("fan_out_fan_in", &recorded);
}

#[test]
fn retry_with_backoff_fixture_replays() {
    let recorded = recording(&run_to_end("RetryWithBackoff", "retry-1", &2), "retry-1");
    assert_eq!(
        recorded.state.output_as::<String>().unwrap(),
        "succeeded as task 4"
    );
    let fire_times: Vec<_> = recorded
        .history
        .iter()
        .filter_map(|event| match event.kind {
            EventKind::TimerCreated { fire_at } => Some(fire_at - event.timestamp),
            _ => None,
        })
        .collect();
    assert_eq!(
        fire_times,
        [chrono::Duration::seconds(5), chrono::Duration::seconds(10)]
    );
    check_fixture("retry_with_backoff", &recorded);
}

#[test]
fn external_event_with_timeout_fixture_replays() {
    let mut runtime = InMemoryRuntime::new(registry());
    runtime
        .start("ApprovalWorkflow", "approval-1", &())
        .expect("start");
    runtime.advance(Duration::from_secs(600)).expect("advance");
    runtime
        .raise_event("approval-1", "Approval", "approved by ada")
        .expect("raise");
    runtime.run_to_completion(TIME_LIMIT).expect("run");
    let recorded = recording(&runtime, "approval-1");
    assert_eq!(
        recorded.state.output_as::<Vec<String>>().unwrap(),
        [
            "approved by ada",
            "timed out waiting for external event 'Reminder'"
        ]
    );
    check_fixture("external_event_with_timeout", &recorded);
}

#[test]
fn sub_orchestration_parent_and_child_fixtures_replay() {
    let runtime = run_to_end("Parent", "parent-1", "Oslo");
    let parent = recording(&runtime, "parent-1");
    let child = recording(&runtime, "child-1");
    assert_eq!(
        parent.state.output_as::<String>().unwrap(),
        "child said: Hello Oslo!"
    );
    let EventKind::ExecutionStarted {
        parent_instance, ..
    } = &child.history[1].kind
    else {
        panic!("the child's second event is its ExecutionStarted");
    };
    let parent_instance = parent_instance
        .as_ref()
        .expect("the child knows its parent");
    assert_eq!(
        parent_instance.orchestration_instance.instance_id,
        "parent-1"
    );
    check_fixture("sub_orchestration_parent", &parent);
    check_fixture("sub_orchestration_child", &child);
}

#[test]
fn continue_as_new_final_execution_fixture_replays() {
    let recorded = recording(&run_to_end("Countdown", "countdown-1", &2), "countdown-1");
    assert_eq!(
        recorded.state.output_as::<String>().unwrap(),
        "Hello round 0!"
    );
    let EventKind::ExecutionStarted { input, .. } = &recorded.history[1].kind else {
        panic!("second event is ExecutionStarted");
    };
    assert_eq!(
        input.as_deref(),
        Some("0"),
        "only the final execution is kept"
    );
    check_fixture("continue_as_new_final_execution", &recorded);
}

#[test]
fn failed_orchestration_fixture_replays() {
    let recorded = recording(&run_to_end("ChargeOrder", "charge-1", &42), "charge-1");
    let failure = recorded.state.failure.clone().expect("the order failed");
    assert_eq!(failure.error_type, "TaskFailed");
    assert_eq!(
        failure
            .inner_failure
            .expect("activity failure kept")
            .error_type,
        "CardDeclined"
    );
    check_fixture("failed_orchestration", &recorded);
}

#[test]
fn terminated_orchestration_fixture_replays() {
    let mut runtime = run_to_end("WaitForever", "terminated-1", &());
    runtime.advance(Duration::from_secs(60)).expect("advance");
    runtime
        .terminate("terminated-1", "operator gave up")
        .expect("terminate");
    runtime.run_until_idle().expect("run");
    let recorded = recording(&runtime, "terminated-1");
    assert_eq!(recorded.state.status, OrchestrationStatus::Terminated);
    assert_eq!(
        count(&recorded.history, |kind| matches!(
            kind,
            EventKind::ExecutionTerminated { .. }
        )),
        1
    );
    check_fixture("terminated_orchestration", &recorded);
}

/// Hand-written in DurableTask.Core's shape (its event types, `EventId`s and field names, one
/// activity then return): never re-recorded.
#[test]
fn hand_written_durable_task_core_history_replays() {
    let (text, history) = load_fixture("dtfx_one_activity_then_return");
    let kinds: Vec<_> = history
        .iter()
        .map(|event| (event.event_type() as i32, event.event_id))
        .collect();
    assert_eq!(
        kinds,
        [
            (12, -1),
            (0, -1),
            (4, 0),
            (13, -1),
            (12, -1),
            (5, -1),
            (1, 1),
            (13, -1)
        ]
    );
    let expected = TurnOutcome::Completed {
        output: Some("\"Hello Tokyo!\"".to_string()),
    };
    check_stored_history(&registry(), &text, &history, &expected);
}
