//! The sync workflow's two plain Functions: `Function1` (timer) writes two `MySyncItem`
//! messages to `output-queue` through its queue output binding, and `SyncQueueProcessor`
//! (queue trigger on `output-queue`) starts one `MainWorkflow` per item, at most once per id.

use std::sync::Arc;

use durable_protocol::invocation::{InvocationRequest, InvocationResponse};
use durable_runtime::Runtime;
use durable_store::backend::Backend;
use durable_worker::functions::{start_once, FunctionError, RegisterError, TriggerFunctions};
use serde_json::Value;

use super::{instance_id, timer_items, MySyncItem, MAIN_WORKFLOW};

pub const FUNCTION1: &str = "Function1";
pub const TIMER_BINDING: &str = "myTimer";
/// The queue output binding of `Function1` in its function.json.
pub const OUTPUT_BINDING: &str = "outputQueue";
pub const SYNC_QUEUE_PROCESSOR: &str = "SyncQueueProcessor";
pub const ITEM_BINDING: &str = "item";

/// Registers `Function1` and `SyncQueueProcessor`.
pub fn register<B: Backend>(
    functions: TriggerFunctions<B>,
) -> Result<TriggerFunctions<B>, RegisterError> {
    functions
        .function(FUNCTION1, |_, request| async move {
            function1(&request, chrono::Utc::now())
        })?
        .function(SYNC_QUEUE_PROCESSOR, |runtime, request| async move {
            sync_queue_processor(runtime, &request).await
        })
}

/// The timer's two items as JSON object text: an object never reads as base64, so the host
/// writes it to the queue as the text it is.
pub fn function1(
    request: &InvocationRequest,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<InvocationResponse, FunctionError> {
    let timer = request.timer(TIMER_BINDING)?;
    let items = timer_items(now);
    let messages: Vec<Value> = items
        .iter()
        .map(|item| Value::String(serde_json::to_string(item).unwrap_or_default()))
        .collect();
    let mut response = InvocationResponse::default().log(format!(
        "Function1 queued sync items {} and {} (past due: {})",
        items[0].id, items[1].id, timer.is_past_due
    ));
    response
        .outputs
        .insert(OUTPUT_BINDING.to_string(), Value::Array(messages));
    Ok(response)
}

/// Starts `MainWorkflow` under the item's deterministic id unless that instance already exists
/// in any state, so a redelivered message never starts a second run.
pub async fn sync_queue_processor<B: Backend>(
    runtime: Arc<Runtime<B>>,
    request: &InvocationRequest,
) -> Result<InvocationResponse, FunctionError> {
    let text = request.queue_message(ITEM_BINDING)?;
    let item: MySyncItem = serde_json::from_str(&text)
        .map_err(|e| FunctionError::Rejected(format!("the message is not a MySyncItem: {e}")))?;
    start_once(&runtime, MAIN_WORKFLOW, &instance_id(&item), &item).await
}
