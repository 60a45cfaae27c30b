//! The hello app's workflows: `Greetings` greets each name of its input in turn through the
//! `Greet` activity, and `GreetingRequests`, a queue-triggered function, starts it.

use std::sync::Arc;

use durable_engine::{
    ActivityContext, ActivityError, OrchestrationContext, OrchestrationError, Registry,
    RegistryError,
};
use durable_protocol::invocation::{InvocationRequest, InvocationResponse};
use durable_runtime::Runtime;
use durable_store::backend::Backend;
use durable_store::names::InstanceId;
use durable_worker::functions::{start_once, FunctionError, RegisterError, TriggerFunctions};
use serde::Deserialize;

pub const GREETINGS: &str = "Greetings";
pub const GREET: &str = "Greet";
/// The queue-triggered function: its folder under `functions/`, and its input binding there.
pub const GREETING_REQUESTS: &str = "GreetingRequests";
const REQUEST_BINDING: &str = "request";

/// A message on the `greeting-requests` queue: `{"Id":"team-1","Names":["Ada","Grace"]}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GreetingRequest {
    /// The instance id the greetings run under.
    pub id: String,
    pub names: Vec<String>,
}

/// The app's orchestrators and activities.
pub fn registry() -> Result<Registry, RegistryError> {
    Registry::builder()
        .orchestrator(GREETINGS, greetings)
        .activity(GREET, greet)
        .build()
}

/// The app's trigger functions besides the engine's.
pub fn functions<B: Backend>() -> Result<TriggerFunctions<B>, RegisterError> {
    TriggerFunctions::new().function(GREETING_REQUESTS, |runtime, request| async move {
        greeting_requests(runtime, &request).await
    })
}

/// One greeting per name, in the order of the names.
async fn greetings(
    ctx: OrchestrationContext,
    names: Vec<String>,
) -> Result<Vec<String>, OrchestrationError> {
    let mut greetings = Vec::with_capacity(names.len());
    for name in &names {
        greetings.push(ctx.call_activity(GREET, name).await?);
    }
    Ok(greetings)
}

async fn greet(_: ActivityContext, name: String) -> Result<String, ActivityError> {
    if name.trim().is_empty() {
        return Err(ActivityError::non_retriable("there is no one to greet"));
    }
    Ok(format!("Hello, {name}!"))
}

/// Starts `Greetings` under the request's id unless that instance already exists: the host
/// delivers a queue message at least once, and a redelivery must not greet everyone again.
async fn greeting_requests<B: Backend>(
    runtime: Arc<Runtime<B>>,
    request: &InvocationRequest,
) -> Result<InvocationResponse, FunctionError> {
    let text = request.queue_message(REQUEST_BINDING)?;
    let greeting: GreetingRequest = serde_json::from_str(&text)
        .map_err(|e| FunctionError::Rejected(format!("not a greeting request: {e}")))?;
    let id = InstanceId::parse(&greeting.id)
        .map_err(|e| FunctionError::Rejected(e.to_string()))?
        .into_string();
    start_once(&runtime, GREETINGS, &id, &greeting.names).await
}
