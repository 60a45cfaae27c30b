//! `FraudTransactions`: the queue-triggered function on the `transactions` queue. A transaction
//! goes to its card's `CardActivity` entity; a malformed one is recorded with the reason on the
//! `transactions-malformed` queue, and the stream goes on.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::entity::{ENTITY, RECORD};
use super::stream::parse_transaction;
use durable_engine::EntityId;
use durable_protocol::invocation::{InvocationRequest, InvocationResponse};
use durable_runtime::Runtime;
use durable_store::backend::Backend;
use durable_worker::functions::{FunctionError, RegisterError, TriggerFunctions};

pub const FRAUD_TRANSACTIONS: &str = "FraudTransactions";
pub const TRANSACTION_BINDING: &str = "transaction";
/// The queue output binding of `FraudTransactions` in its function.json.
pub const MALFORMED_BINDING: &str = "malformed";

/// What the `transactions-malformed` queue keeps of a message that is no transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MalformedRecord {
    pub reason: String,
    /// The message as it arrived.
    pub message: String,
}

pub fn register<B: Backend>(
    functions: TriggerFunctions<B>,
) -> Result<TriggerFunctions<B>, RegisterError> {
    functions.function(FRAUD_TRANSACTIONS, |runtime, request| async move {
        fraud_transactions(runtime, &request).await
    })
}

/// Signals the card's entity here, with an id made from the transaction's: the host redelivers
/// the message until this succeeds, and the entity applies the signal once however often it
/// comes. The signal is applied before the function answers, so the transaction is counted
/// when the host deletes its message.
pub async fn fraud_transactions<B: Backend>(
    runtime: Arc<Runtime<B>>,
    request: &InvocationRequest,
) -> Result<InvocationResponse, FunctionError> {
    let text = request.queue_message(TRANSACTION_BINDING)?;
    let transaction = match parse_transaction(&text) {
        Ok(transaction) => transaction,
        Err(reason) => return Ok(malformed(&text, &reason.to_string())),
    };
    let entity = EntityId::new(ENTITY, &transaction.card_id)
        .map_err(|e| FunctionError::Rejected(e.to_string()))?;
    let input = serde_json::to_string(&transaction)
        .map_err(|e| FunctionError::Rejected(format!("the transaction cannot be sent: {e}")))?;
    let signal_id = format!("transaction:{}", transaction.transaction_id);
    runtime
        .signal_entity_here(&entity, RECORD, Some(input), &signal_id)
        .await?;
    Ok(InvocationResponse::default())
}

fn malformed(text: &str, reason: &str) -> InvocationResponse {
    let record = MalformedRecord {
        reason: reason.to_string(),
        message: text.to_string(),
    };
    let mut response =
        InvocationResponse::default().log(format!("malformed transaction recorded: {reason}"));
    response.outputs.insert(
        MALFORMED_BINDING.to_string(),
        Value::String(serde_json::to_string(&record).unwrap_or_default()),
    );
    response
}
