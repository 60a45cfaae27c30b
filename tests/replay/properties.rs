//! Property: random scripts of durable steps, run with shuffled and duplicated completions, always
//! complete, verify turn by turn, replay from every prefix and split without nondeterminism, and
//! run in a session opened at any turn exactly as `execute` replays them.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use durable_engine::{
    execute, join_all, verify::verify_history, ActivityContext, ActivityError, HistoryEvent,
    OrchestrationContext, OrchestrationError, OrchestrationStatus, Registry, RetryPolicy,
    TaskError, TurnOutcome, NONDETERMINISM_ERROR_TYPE,
};
use durable_runtime::testkit::InMemoryRuntime;

use crate::session::check_session;

const ROOT: &str = "scripted-1";
const TIME_LIMIT: Duration = Duration::from_secs(24 * 60 * 60);

/// One step of a script, interpreted by the "Scripted" orchestrator.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Step {
    Activity(u8),
    /// An activity that always fails; the script catches the error.
    CaughtFailure,
    FanOut(u8),
    TimerSeconds(u16),
    /// Waits for `event-{step index}`; the test raises it `raise_after` seconds into its turn
    /// of raising, or never.
    WaitEvent {
        timeout_seconds: Option<u16>,
        raise_after: Option<u16>,
    },
    SubScript(Vec<Step>),
    /// An activity that succeeds on exactly one of three retried attempts, chosen by `salt`.
    Retry(u8),
    CustomStatus(u16),
    NewGuid,
}

async fn run_script(
    ctx: OrchestrationContext,
    script: Vec<Step>,
) -> Result<Vec<Value>, OrchestrationError> {
    let mut results = Vec::new();
    for (index, step) in script.into_iter().enumerate() {
        let result = match step {
            Step::Activity(n) => json!(ctx.call_activity::<u32>("Double", &n).await?),
            Step::CaughtFailure => match ctx.call_activity::<u32>("Fail", &index).await {
                Ok(value) => return Err(OrchestrationError::new(format!("Fail returned {value}"))),
                Err(error) => json!(error.to_string()),
            },
            Step::FanOut(count) => {
                let calls = (0..count).map(|n| ctx.call_activity::<u32>("Double", &n));
                let doubled: Result<Vec<u32>, TaskError> =
                    join_all(calls).await.into_iter().collect();
                json!(doubled?)
            }
            Step::TimerSeconds(seconds) => {
                ctx.create_timer_after(Duration::from_secs(seconds.into()))
                    .await;
                json!(ctx.current_utc_datetime())
            }
            Step::WaitEvent {
                timeout_seconds, ..
            } => {
                let name = format!("event-{index}");
                match timeout_seconds {
                    None => json!(ctx.wait_for_external_event::<u32>(&name).await?),
                    Some(seconds) => {
                        let timeout = Duration::from_secs(seconds.into());
                        match ctx
                            .wait_for_external_event_with_timeout::<u32>(&name, timeout)
                            .await
                        {
                            Ok(value) => json!(value),
                            Err(TaskError::Timeout { .. }) => json!("timeout"),
                            Err(error) => return Err(error.into()),
                        }
                    }
                }
            }
            Step::SubScript(steps) => json!(
                ctx.call_sub_orchestrator::<Vec<Value>>("Scripted", None, &steps)
                    .await?
            ),
            Step::Retry(salt) => {
                let policy = RetryPolicy::new(3, Duration::from_secs(1));
                json!(
                    ctx.call_activity_with_retry::<i32>("Flaky", &salt, &policy)
                        .await?
                )
            }
            Step::CustomStatus(status) => {
                ctx.set_custom_status(&status)?;
                json!(status)
            }
            Step::NewGuid => json!(ctx.new_guid()),
        };
        results.push(result);
    }
    Ok(results)
}

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("Scripted", run_script)
        .activity("Double", |_: ActivityContext, n: u32| async move {
            Ok::<_, ActivityError>(n * 2)
        })
        .activity("Fail", |_: ActivityContext, step: usize| async move {
            Err::<u32, _>(ActivityError::new(format!("step {step} always fails")))
        })
        .activity("Flaky", |ctx: ActivityContext, salt: u8| async move {
            // Attempts are two sequence numbers apart (a backoff timer in between), so of three
            // attempts exactly one has `(task_id + salt) % 3 == 0`.
            if (ctx.task_id + i32::from(salt)) % 3 == 0 {
                Ok(ctx.task_id)
            } else {
                Err(ActivityError::new(format!(
                    "task {} is unlucky",
                    ctx.task_id
                )))
            }
        })
        .build()
        .expect("valid registry")
}

fn leaf_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<u8>().prop_map(Step::Activity),
        Just(Step::CaughtFailure),
        (0u8..6).prop_map(Step::FanOut),
        (1u16..600).prop_map(Step::TimerSeconds),
        any::<u8>().prop_map(Step::Retry),
        any::<u16>().prop_map(Step::CustomStatus),
        Just(Step::NewGuid),
    ]
}

fn wait_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u16..600).prop_map(|delay| Step::WaitEvent {
            timeout_seconds: None,
            raise_after: Some(delay),
        }),
        (1u16..600, proptest::option::of(0u16..600)).prop_map(|(timeout, raise_after)| {
            Step::WaitEvent {
                timeout_seconds: Some(timeout),
                raise_after,
            }
        }),
    ]
}

/// Root scripts may wait for events and start sub-scripts; sub-scripts use leaf steps only, so
/// every event the test raises goes to the root instance.
fn script() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        5 => leaf_step(),
        2 => wait_step(),
        1 => prop::collection::vec(leaf_step(), 0..4).prop_map(Step::SubScript),
    ];
    prop::collection::vec(step, 1..11)
}

/// Runs `script` to the end, raising each awaited event after its delay.
fn run(script: &[Step], shuffle: Option<u64>, duplicates: bool) -> InMemoryRuntime {
    let mut runtime = InMemoryRuntime::new(registry());
    runtime.set_activity_shuffle(shuffle);
    runtime.set_duplicate_completions(duplicates);
    runtime.start("Scripted", ROOT, script).expect("start");
    runtime.run_until_idle().expect("run");
    for (index, step) in script.iter().enumerate() {
        let Step::WaitEvent {
            raise_after: Some(delay),
            ..
        } = step
        else {
            continue;
        };
        runtime
            .advance(Duration::from_secs((*delay).into()))
            .expect("advance");
        if !runtime.state(ROOT).expect("root").status.is_terminal() {
            let payload = u32::try_from(index).expect("small index");
            runtime
                .raise_event(ROOT, &format!("event-{index}"), &payload)
                .expect("raise");
            runtime.run_until_idle().expect("run");
        }
    }
    runtime.run_to_completion(TIME_LIMIT).expect("run");
    runtime
}

/// Replays every prefix `history[..k]` (k >= 2), split at a few points into past and new events.
fn check_every_prefix(
    registry: &Registry,
    instance_id: &str,
    history: &[HistoryEvent],
    output: &Option<String>,
) -> Result<(), TestCaseError> {
    for k in 2..=history.len() {
        let mut splits = vec![0, 1, k / 2, k - 1, k];
        splits.dedup();
        for j in splits {
            let turn =
                execute(registry, instance_id, &history[..j], &history[j..k]).map_err(|error| {
                    TestCaseError::fail(format!("{instance_id} prefix {k} split {j}: {error}"))
                })?;
            if let TurnOutcome::Failed { details } = &turn.outcome {
                prop_assert_ne!(
                    &details.error_type,
                    NONDETERMINISM_ERROR_TYPE,
                    "{} prefix {} split {}: {}",
                    instance_id,
                    k,
                    j,
                    details.error_message
                );
            }
            if k == history.len() {
                prop_assert_eq!(
                    &turn.outcome,
                    &TurnOutcome::Completed {
                        output: output.clone()
                    }
                );
                prop_assert!(turn.actions.is_empty());
            }
        }
    }
    Ok(())
}

proptest! {
    // No failure persistence: a failing case prints its minimal script, and no file is written
    // outside tests/replay.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_scripts_complete_and_replay_deterministically_from_every_prefix(
        script in script(),
        shuffle in proptest::option::of(any::<u64>()),
        duplicates in any::<bool>(),
    ) {
        let runtime = run(&script, shuffle, duplicates);
        let registry = registry();
        for instance_id in runtime.instance_ids() {
            let state = runtime.state(&instance_id).expect("instance");
            prop_assert_eq!(state.status, OrchestrationStatus::Completed, "{}: {:?}", instance_id, state.failure);
            let history = runtime.history(&instance_id).expect("history");
            verify_history(&registry, &instance_id, &history)
                .map_err(|error| TestCaseError::fail(format!("{instance_id}: {error}")))?;
            check_every_prefix(&registry, &instance_id, &history, &state.output)?;
            check_session(&registry, &instance_id, &history).map_err(TestCaseError::fail)?;
        }
        let root = runtime.state(ROOT).expect("root").output_as::<Vec<Value>>().expect("root output");
        prop_assert_eq!(root.len(), script.len());
    }
}
