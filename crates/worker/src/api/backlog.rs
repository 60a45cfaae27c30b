//! `GET /api/queues`: the backlog of each control queue and of the work-item queue (Azure's
//! approximate message counts), which neither Durable Functions' API nor its monitors show.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::extract::Params;
use super::{ApiError, ApiState};
use durable_store::backend::Backend;
use durable_store::model::QueueKind;

pub async fn queues<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    _: Params,
) -> Result<Json<Value>, ApiError> {
    let backlog = state.runtime.backlog().await?;
    let queues: Vec<Value> = backlog
        .iter()
        .map(|b| match b.queue {
            QueueKind::Control(partition) => json!({
                "queue": b.queue.label(),
                "partition": partition,
                "messages": b.messages,
            }),
            QueueKind::WorkItems => json!({"queue": b.queue.label(), "messages": b.messages}),
        })
        .collect();
    Ok(Json(json!({ "taskHub": state.task_hub, "queues": queues })))
}
