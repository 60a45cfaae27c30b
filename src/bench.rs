//! The benchmark orchestrations: `HelloSequence5` (five activities in sequence), `FanOut10` (ten
//! in parallel) and `FanOutFanIn` (up to 10,000 in parallel, summed), over activities that do no
//! work unless asked, so what is measured is the runtime's and storage's cost.

use std::time::Duration;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use durable_engine::{
    completions, join_all, ActivityContext, ActivityError, OrchestrationContext,
    OrchestrationError, RegistryBuilder,
};

const SAY_HELLO: &str = "SayHello";
const ECHO: &str = "Echo";
const CITIES: [&str; 5] = ["Tokyo", "Seattle", "London", "Cairo", "Lima"];
const FAN_OUT: usize = 10;
/// The largest fan-out `FanOutFanIn` accepts: the size the host-path benchmark goes up to.
const MAX_FAN_IN_COUNT: i64 = 10_000;

pub(super) fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .orchestrator("HelloSequence5", hello_sequence_5)
        .orchestrator("FanOut10", fan_out_10)
        .orchestrator("FanOutFanIn", fan_out_fan_in)
        .activity(SAY_HELLO, say_hello)
        .activity(ECHO, echo)
}

async fn say_hello(_ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
    Ok(format!("Hello {name}!"))
}

/// Benchmark clients may post any input (or none); it is ignored.
async fn hello_sequence_5(
    ctx: OrchestrationContext,
    _: IgnoredAny,
) -> Result<Vec<String>, OrchestrationError> {
    let mut greetings = Vec::with_capacity(CITIES.len());
    for city in CITIES {
        greetings.push(ctx.call_activity(SAY_HELLO, city).await?);
    }
    Ok(greetings)
}

async fn fan_out_10(
    ctx: OrchestrationContext,
    _: IgnoredAny,
) -> Result<Vec<String>, OrchestrationError> {
    let calls = (0..FAN_OUT).map(|i| ctx.call_activity::<String>(SAY_HELLO, &format!("#{i}")));
    Ok(join_all(calls)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?)
}

/// `FanOutFanIn`'s input. `Count` is signed so a negative one is rejected with a message of
/// ours rather than a decoding error.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FanInInput {
    count: i64,
    #[serde(default)]
    work_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FanInOutput {
    count: u64,
    sum: u64,
}

/// `Echo`'s input. A zero `WorkMs` is left out so the history of a large fan-out stays small.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EchoInput {
    value: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    work_ms: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Returns its input after `WorkMs` of simulated work.
async fn echo(_ctx: ActivityContext, input: EchoInput) -> Result<u64, ActivityError> {
    super::simulate_work(Duration::from_millis(input.work_ms)).await;
    Ok(input.value)
}

/// Calls `Echo` with 0…Count-1 all at once and sums the results as they arrive: `completions`
/// costs O(1) per completion, so the fan-in itself stays linear in `Count`.
async fn fan_out_fan_in(
    ctx: OrchestrationContext,
    input: FanInInput,
) -> Result<FanInOutput, OrchestrationError> {
    if !(0..=MAX_FAN_IN_COUNT).contains(&input.count) {
        return Err(OrchestrationError::with_type(
            "InvalidInput",
            format!(
                "Count must be between 0 and {MAX_FAN_IN_COUNT}, not {}",
                input.count
            ),
        ));
    }
    let count = input.count as u64;
    let mut done = completions((0..count).map(|value| {
        ctx.call_activity::<u64>(
            ECHO,
            &EchoInput {
                value,
                work_ms: input.work_ms,
            },
        )
    }));
    let mut sum = 0;
    while let Some((_, value)) = done.next_completed().await {
        sum += value?;
    }
    Ok(FanInOutput { count, sum })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::testing::{runtime, scheduled};
    use durable_engine::{EventKind, OrchestrationStatus};

    #[test]
    fn hello_sequence_5_greets_five_cities_in_order() {
        let (mut rt, _) = runtime();
        rt.start("HelloSequence5", "h", &()).unwrap();
        rt.run_to_completion(Duration::from_secs(60)).unwrap();
        let state = rt.state("h").unwrap();
        assert_eq!(state.status, OrchestrationStatus::Completed);
        assert_eq!(
            state.output_as::<Vec<String>>().unwrap(),
            [
                "Hello Tokyo!",
                "Hello Seattle!",
                "Hello London!",
                "Hello Cairo!",
                "Hello Lima!"
            ]
        );
        // In sequence: one turn per activity, plus the start.
        assert_eq!(rt.turns_executed(), 6);
    }

    #[test]
    fn fan_out_10_joins_ten_parallel_greetings_in_call_order() {
        let (mut rt, _) = runtime();
        rt.set_activity_shuffle(Some(7));
        rt.start("FanOut10", "f", &serde_json::json!({"any": "input"}))
            .unwrap();
        rt.run_to_completion(Duration::from_secs(60)).unwrap();
        let state = rt.state("f").unwrap();
        assert_eq!(state.status, OrchestrationStatus::Completed);
        let expected: Vec<String> = (0..10).map(|i| format!("Hello #{i}!")).collect();
        assert_eq!(state.output_as::<Vec<String>>().unwrap(), expected);
        assert_eq!(scheduled(&rt, "f"), ["SayHello"; 10]);
        // In parallel: all ten were scheduled before any completed.
        let history = rt.history("f").unwrap();
        let last_scheduled = history
            .iter()
            .rposition(|event| matches!(event.kind, EventKind::TaskScheduled { .. }));
        let first_completed = history
            .iter()
            .position(|event| matches!(event.kind, EventKind::TaskCompleted { .. }));
        assert!(last_scheduled < first_completed, "{history:?}");
    }

    #[test]
    fn fan_out_fan_in_sums_every_echo() {
        let (mut rt, _) = runtime();
        rt.set_activity_shuffle(Some(11));
        rt.start("FanOutFanIn", "ff", &json!({"Count": 50, "WorkMs": 0}))
            .unwrap();
        rt.run_to_completion(Duration::from_secs(60)).unwrap();
        let state = rt.state("ff").unwrap();
        assert_eq!(state.status, OrchestrationStatus::Completed, "{state:?}");
        assert_eq!(
            state.output_as::<serde_json::Value>().unwrap(),
            json!({"Count": 50, "Sum": 50 * 49 / 2})
        );
        assert_eq!(scheduled(&rt, "ff"), ["Echo"; 50]);
    }

    #[test]
    fn fan_out_fan_in_rejects_counts_out_of_range() {
        for count in [-1, 10_001] {
            let (mut rt, _) = runtime();
            rt.start("FanOutFanIn", "ff", &json!({"Count": count}))
                .unwrap();
            rt.run_to_completion(Duration::from_secs(60)).unwrap();
            let state = rt.state("ff").unwrap();
            assert_eq!(state.status, OrchestrationStatus::Failed);
            let failure = state.failure.unwrap();
            assert_eq!(failure.error_type, "InvalidInput");
            assert_eq!(
                failure.error_message,
                format!("Count must be between 0 and 10000, not {count}")
            );
            // Rejected before anything was scheduled.
            assert!(scheduled(&rt, "ff").is_empty());
        }
    }
}
