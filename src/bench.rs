//! The benchmark orchestrations: `HelloSequence5` (five activities in sequence) and `FanOut10`
//! (ten in parallel), both over `SayHello`, which does no work so storage cost is what is measured.

use serde::de::IgnoredAny;

use durable_engine::{
    join_all, ActivityContext, ActivityError, OrchestrationContext, OrchestrationError,
    RegistryBuilder,
};

const SAY_HELLO: &str = "SayHello";
const CITIES: [&str; 5] = ["Tokyo", "Seattle", "London", "Cairo", "Lima"];
const FAN_OUT: usize = 10;

pub(super) fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .orchestrator("HelloSequence5", hello_sequence_5)
        .orchestrator("FanOut10", fan_out_10)
        .activity(SAY_HELLO, say_hello)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
}
