//! The seed app's worker after a careless change, for `tests/verify.rs` to check stored
//! histories with: `HelloSequence5` greets London with another activity, and
//! `ClaimApprovalWorkflow` is gone.

use std::process::ExitCode;

use serde::de::IgnoredAny;

use durable_engine::{
    ActivityContext, ActivityError, OrchestrationContext, OrchestrationError, Registry,
};
use durable_worker::functions::TriggerFunctions;
use durable_worker::serve::{self, App};

const CITIES: [&str; 5] = ["Tokyo", "Seattle", "London", "Cairo", "Lima"];

fn main() -> ExitCode {
    serve::run(|_| {
        let registry = Registry::builder()
            .orchestrator("HelloSequence5", hello_sequence_5)
            .activity("SayHello", greet)
            .activity("SayGoodbye", greet)
            .build()?;
        Ok(App::new(registry, TriggerFunctions::new()))
    })
}

async fn greet(_: ActivityContext, name: String) -> Result<String, ActivityError> {
    Ok(format!("Hello {name}!"))
}

async fn hello_sequence_5(
    ctx: OrchestrationContext,
    _: IgnoredAny,
) -> Result<Vec<String>, OrchestrationError> {
    let mut greetings = Vec::with_capacity(CITIES.len());
    for city in CITIES {
        let activity = if city == "London" {
            "SayGoodbye"
        } else {
            "SayHello"
        };
        greetings.push(ctx.call_activity(activity, city).await?);
    }
    Ok(greetings)
}
