//! Retry policies: transient failures retried, exhaustion, backoff delays as durable timers,
//! retry timeout, non-retriable failures, invalid policies and retried sub-orchestrations.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use durable_engine::verify::verify_history;
use durable_engine::{
    ActivityContext, ActivityError, EventType, OrchestrationContext, OrchestrationError,
    OrchestrationStatus, Registry, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use durable_runtime::testkit::InMemoryRuntime;

use crate::common::{
    at, child_id, events_of, history, run, scheduled_activities, timer_delays, Outcome, ID,
};

const SECOND: Duration = Duration::from_secs(1);

/// An activity "Flaky" that fails its first `failures` calls, counting every call.
fn flaky_registry(failures: u32, policy: RetryPolicy, calls: &Arc<AtomicU32>) -> Registry {
    let counter = calls.clone();
    Registry::builder()
        .activity("Flaky", move |_: ActivityContext, (): ()| {
            let call = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if call <= failures {
                    Err(ActivityError::new(format!("transient failure #{call}")))
                } else {
                    Ok(call)
                }
            }
        })
        .orchestrator("CallFlaky", move |ctx: OrchestrationContext, (): ()| {
            let attempt = ctx.call_activity_with_retry::<u32>("Flaky", &(), &policy);
            async move { Ok::<Outcome<u32>, OrchestrationError>(attempt.await.into()) }
        })
        .build()
        .unwrap()
}

#[test]
fn succeeds_after_transient_failures() {
    let calls = Arc::new(AtomicU32::new(0));
    let registry = flaky_registry(2, RetryPolicy::new(5, 10 * SECOND), &calls);
    let (rt, state) = run(registry, "CallFlaky", &());

    assert_eq!(state.output_as::<Outcome<u32>>().unwrap(), Outcome::Ok(3));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let history = history(&rt, ID);
    assert_eq!(scheduled_activities(&history), vec!["Flaky"; 3]);
    assert_eq!(events_of(&history, EventType::TaskFailed).len(), 2);
    assert_eq!(timer_delays(&history), vec![10 * SECOND; 2]);
}

#[test]
fn exhausted_retries_report_the_attempts_and_the_activity() {
    let calls = Arc::new(AtomicU32::new(0));
    let registry = flaky_registry(u32::MAX, RetryPolicy::new(3, SECOND), &calls);
    let (_, state) = run(registry, "CallFlaky", &());

    let Outcome::ActivityFailed {
        name,
        attempts,
        details,
        message,
    } = state.output_as::<Outcome<u32>>().unwrap()
    else {
        panic!("expected ActivityFailed, got {:?}", state.output);
    };
    assert_eq!(name, "Flaky");
    assert_eq!(attempts, 3);
    assert_eq!(details.error_message, "transient failure #3");
    assert_eq!(
        message,
        "activity 'Flaky' failed after 3 attempts: transient failure #3"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn exhausted_retries_propagated_with_question_mark_fail_the_instance() {
    let registry = Registry::builder()
        .activity("Broken", |_: ActivityContext, (): ()| async {
            Err::<(), _>(ActivityError::new("still broken"))
        })
        .orchestrator(
            "CallBroken",
            |ctx: OrchestrationContext, (): ()| async move {
                let policy = RetryPolicy::new(3, SECOND);
                ctx.call_activity_with_retry::<()>("Broken", &(), &policy)
                    .await?;
                Ok::<(), OrchestrationError>(())
            },
        )
        .build()
        .unwrap();
    let (_, state) = run(registry, "CallBroken", &());

    assert_eq!(state.status, OrchestrationStatus::Failed);
    let failure = state.failure.unwrap();
    assert_eq!(
        failure.error_message,
        "activity 'Broken' failed after 3 attempts: still broken"
    );
    assert_eq!(failure.inner_failure.unwrap().error_message, "still broken");
}

#[test]
fn backoff_delays_grow_by_the_coefficient_up_to_the_cap() {
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy::new(6, 10 * SECOND)
        .with_backoff_coefficient(2.0)
        .with_max_retry_interval(50 * SECOND);
    let registry = flaky_registry(u32::MAX, policy, &calls);
    let (rt, state) = run(registry.clone(), "CallFlaky", &());

    assert!(matches!(
        state.output_as::<Outcome<u32>>().unwrap(),
        Outcome::ActivityFailed { attempts: 6, .. }
    ));
    // 10 * 2^(n-1) seconds: 10, 20, 40, then capped at 50.
    let expected: Vec<Duration> = [10, 20, 40, 50, 50].iter().map(|s| *s * SECOND).collect();
    assert_eq!(timer_delays(&history(&rt, ID)), expected);
    // The retries consumed exactly that much orchestration time.
    assert_eq!(rt.now(), at(170 * SECOND));
    // Replaying the recorded turns reproduces every attempt and every backoff timer.
    assert_eq!(verify_history(&registry, ID, &history(&rt, ID)), Ok(12));
}

#[test]
fn delay_after_matches_the_documented_formula() {
    let policy = RetryPolicy::new(10, Duration::from_millis(1500))
        .with_backoff_coefficient(3.0)
        .with_max_retry_interval(60 * SECOND);
    assert_eq!(policy.delay_after(1), Duration::from_millis(1500));
    assert_eq!(policy.delay_after(2), Duration::from_millis(4500));
    assert_eq!(policy.delay_after(3), Duration::from_millis(13_500));
    assert_eq!(policy.delay_after(4), Duration::from_millis(40_500));
    assert_eq!(policy.delay_after(5), 60 * SECOND);
    assert_eq!(policy.delay_after(1000), 60 * SECOND);
}

#[test]
fn retry_timeout_stops_before_max_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    // Attempts start at 0 s, 10 s and 20 s; the next would start at 30 s, past the 25 s timeout.
    let policy = RetryPolicy::new(10, 10 * SECOND).with_retry_timeout(25 * SECOND);
    let registry = flaky_registry(u32::MAX, policy, &calls);
    let (rt, state) = run(registry, "CallFlaky", &());

    let Outcome::ActivityFailed {
        attempts, message, ..
    } = state.output_as::<Outcome<u32>>().unwrap()
    else {
        panic!("expected ActivityFailed, got {:?}", state.output);
    };
    assert_eq!(attempts, 3);
    assert!(message.contains("after 3 attempts"), "{message}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(timer_delays(&history(&rt, ID)).len(), 2);
}

#[test]
fn non_retriable_failure_stops_after_one_attempt() {
    let registry = Registry::builder()
        .activity("Validate", |_: ActivityContext, (): ()| async {
            Err::<(), _>(ActivityError::non_retriable("order is malformed"))
        })
        .orchestrator(
            "CallValidate",
            |ctx: OrchestrationContext, (): ()| async move {
                let policy = RetryPolicy::new(5, SECOND);
                let result = ctx
                    .call_activity_with_retry::<()>("Validate", &(), &policy)
                    .await;
                Ok::<Outcome<()>, OrchestrationError>(result.into())
            },
        )
        .build()
        .unwrap();
    let (rt, state) = run(registry, "CallValidate", &());

    let Outcome::ActivityFailed {
        attempts,
        details,
        message,
        ..
    } = state.output_as::<Outcome<()>>().unwrap()
    else {
        panic!("expected ActivityFailed, got {:?}", state.output);
    };
    assert_eq!(attempts, 1);
    assert!(details.is_non_retriable);
    assert_eq!(message, "activity 'Validate' failed: order is malformed");
    let history = history(&rt, ID);
    assert_eq!(scheduled_activities(&history).len(), 1);
    assert!(events_of(&history, EventType::TimerCreated).is_empty());
}

#[derive(Serialize, Deserialize)]
enum BadPolicy {
    ZeroAttempts,
    ZeroInterval,
    CoefficientBelowOne,
    CoefficientNotFinite,
}

impl BadPolicy {
    fn policy(&self) -> RetryPolicy {
        match self {
            Self::ZeroAttempts => RetryPolicy::new(0, SECOND),
            Self::ZeroInterval => RetryPolicy::new(3, Duration::ZERO),
            Self::CoefficientBelowOne => RetryPolicy::new(3, SECOND).with_backoff_coefficient(0.5),
            Self::CoefficientNotFinite => {
                RetryPolicy::new(3, SECOND).with_backoff_coefficient(f64::NAN)
            }
        }
    }
}

#[test]
fn invalid_policies_are_rejected_before_any_attempt() {
    let cases = [
        (BadPolicy::ZeroAttempts, "max_attempts must be at least 1"),
        (
            BadPolicy::ZeroInterval,
            "first_retry_interval must be greater than zero",
        ),
        (
            BadPolicy::CoefficientBelowOne,
            "backoff_coefficient must be a finite number >= 1",
        ),
        (
            BadPolicy::CoefficientNotFinite,
            "backoff_coefficient must be a finite number >= 1",
        ),
    ];
    for (bad, reason) in cases {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let registry = Registry::builder()
            .activity("Counted", move |_: ActivityContext, (): ()| {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok::<(), ActivityError>(()) }
            })
            .orchestrator(
                "BadRetry",
                |ctx: OrchestrationContext, bad: BadPolicy| async move {
                    let result = ctx
                        .call_activity_with_retry::<()>("Counted", &(), &bad.policy())
                        .await;
                    Ok::<Outcome<()>, OrchestrationError>(result.into())
                },
            )
            .build()
            .unwrap();
        let (_, state) = run(registry, "BadRetry", &bad);

        assert_eq!(
            state.output_as::<Outcome<()>>().unwrap(),
            Outcome::InvalidRetryPolicy {
                name: "Counted".to_string(),
                message: format!("invalid retry policy for 'Counted': {reason}"),
            }
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0, "{reason}");
    }
}

/// A child that fails until its activity has been called `succeed_on` times in total.
fn flaky_child_registry(succeed_on: u32, max_attempts: u32) -> Registry {
    let calls = Arc::new(AtomicU32::new(0));
    Registry::builder()
        .activity("CountCall", move |_: ActivityContext, (): ()| {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<u32, ActivityError>(call) }
        })
        .orchestrator(
            "FlakyChild",
            move |ctx: OrchestrationContext, (): ()| async move {
                let call: u32 = ctx.call_activity("CountCall", &()).await?;
                if call < succeed_on {
                    return Err(OrchestrationError::new(format!(
                        "child attempt {call} failed"
                    )));
                }
                Ok(format!("child succeeded on call {call}"))
            },
        )
        .orchestrator("Parent", move |ctx: OrchestrationContext, (): ()| {
            let policy = RetryPolicy::new(max_attempts, 5 * SECOND);
            let child =
                ctx.call_sub_orchestrator_with_retry::<String>("FlakyChild", None, &(), &policy);
            async move { Ok::<Outcome<String>, OrchestrationError>(child.await.into()) }
        })
        .build()
        .unwrap()
}

#[test]
fn sub_orchestrator_with_retry_retries_a_failing_child() {
    let (rt, state) = run(flaky_child_registry(3, 5), "Parent", &());

    assert_eq!(
        state.output_as::<Outcome<String>>().unwrap(),
        Outcome::Ok("child succeeded on call 3".to_string())
    );
    // Each attempt is a new child instance: sequence numbers 0, 2 and 4 (timers in between).
    let children: Vec<String> = [0, 2, 4]
        .iter()
        .map(|&seq| child_id(&rt, ID, seq))
        .collect();
    let mut expected_ids = children.clone();
    expected_ids.push(ID.to_string());
    expected_ids.sort();
    assert_eq!(rt.instance_ids(), expected_ids);
    let failed: Vec<OrchestrationStatus> = children
        .iter()
        .map(|id| rt.state(id).unwrap().status)
        .collect();
    use OrchestrationStatus::{Completed, Failed};
    assert_eq!(failed, vec![Failed, Failed, Completed]);
    assert_eq!(timer_delays(&history(&rt, ID)), vec![5 * SECOND; 2]);
}

#[test]
fn sub_orchestrator_with_retry_reports_exhaustion() {
    let (rt, state) = run(flaky_child_registry(10, 2), "Parent", &());
    let second_child = child_id(&rt, ID, 2);

    let Outcome::SubOrchestrationFailed {
        name,
        instance_id,
        attempts,
        details,
        message,
    } = state.output_as::<Outcome<String>>().unwrap()
    else {
        panic!("expected SubOrchestrationFailed, got {:?}", state.output);
    };
    assert_eq!(name, "FlakyChild");
    assert_eq!(instance_id, second_child);
    assert_eq!(attempts, 2);
    assert_eq!(details.error_message, "child attempt 2 failed");
    assert_eq!(
        message,
        format!(
            "sub-orchestration 'FlakyChild' (instance '{second_child}') failed after 2 attempts: \
             child attempt 2 failed"
        )
    );
}

// Retry handles: which failures a policy retries.

/// Calls "Fail", which always fails with `failure`, under `policy`; returns how many calls
/// were made and the final error's text.
fn calls_until_given_up(policy: RetryPolicy, failure: ActivityError) -> (u32, String) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let registry = Registry::builder()
        .activity("Fail", move |_: ActivityContext, (): ()| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err::<(), _>(failure.clone()))
        })
        .orchestrator("Call", move |ctx: OrchestrationContext, (): ()| {
            let call = ctx.call_activity_with_retry::<()>("Fail", &(), &policy);
            async move {
                let error = call.await.expect_err("the activity always fails");
                Ok::<_, OrchestrationError>(error.to_string())
            }
        })
        .build()
        .unwrap();
    let mut rt = InMemoryRuntime::new(registry);
    rt.start("Call", "i", &()).unwrap();
    rt.run_to_completion(Duration::from_secs(3600)).unwrap();
    let output = rt.state("i").unwrap().output_as::<String>().unwrap();
    (calls.load(Ordering::SeqCst), output)
}

fn handled_policy() -> RetryPolicy {
    RetryPolicy::new(4, Duration::from_secs(1))
        .with_handle(|failure| failure.error_type != "Declined")
}

#[test]
fn the_handle_decides_which_failures_are_retried() {
    assert_eq!(
        calls_until_given_up(handled_policy(), ActivityError::with_type("Declined", "no")),
        (1, "activity 'Fail' failed: no".to_string())
    );
    assert_eq!(
        calls_until_given_up(
            handled_policy(),
            ActivityError::with_type("Outage", "later")
        ),
        (
            4,
            "activity 'Fail' failed after 4 attempts: later".to_string()
        )
    );
}

#[test]
fn non_retriable_failures_stop_whatever_the_handle_says() {
    let policy = RetryPolicy::new(4, Duration::from_secs(1)).with_handle(|_| true);
    assert_eq!(
        calls_until_given_up(policy, ActivityError::non_retriable("bad input")),
        (1, "activity 'Fail' failed: bad input".to_string())
    );
}

#[test]
fn debug_shows_whether_a_handle_is_set() {
    let plain = format!("{:?}", RetryPolicy::new(2, Duration::from_secs(1)));
    assert!(plain.contains("handle: None"), "{plain}");
    assert!(format!("{:?}", handled_policy()).contains("handle: Some(\"<predicate>\")"));
}
