//! Poison messages over HTTP: list them (by instance, paged like instances), read one, requeue
//! it (sent again to its queue) or discard it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::extract::{Params, Segments};
use super::query::{continuation, page_size, paged};
use super::{instance_id, ApiError, ApiState};
use durable_runtime::PoisonError;
use durable_store::backend::Backend;
use durable_store::model::PoisonQuery;

/// Page size when the caller names no `top`.
const DEFAULT_TOP: usize = 100;

impl From<PoisonError> for ApiError {
    fn from(error: PoisonError) -> Self {
        match error {
            PoisonError::NotFound(_) => ApiError::not_found(error.to_string()),
            PoisonError::Unreadable(_) => ApiError {
                status: StatusCode::CONFLICT,
                message: error.to_string(),
            },
            PoisonError::Runtime(error) => error.into(),
        }
    }
}

pub async fn list<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let instance = params
        .get("instanceId")
        .filter(|id| !id.is_empty())
        .map(|id| instance_id(&id))
        .transpose()?;
    let query = PoisonQuery {
        instance_id: instance.map(|id| id.as_str().to_string()),
        page_size: page_size(&params)?.unwrap_or(DEFAULT_TOP),
        continuation: continuation(&headers)?,
    };
    let page = state.runtime.poison_messages(&query).await?;
    let items = page.items.iter().map(to_json).collect();
    Ok(paged(items, page.continuation))
}

pub async fn one<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments(id): Segments<String>,
    _: Params,
) -> Result<Response, ApiError> {
    let id = poison_id(&id)?;
    let poison = state.runtime.poison_message(&id).await?;
    Ok(Json(to_json(&poison)).into_response())
}

pub async fn requeue<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments(id): Segments<String>,
    _: Params,
) -> Result<Response, ApiError> {
    let id = poison_id(&id)?;
    let message = state.runtime.requeue_poison(&id).await?;
    let instance_id = message.destination.instance_id();
    Ok(Json(json!({ "id": id, "requeued": true, "instanceId": instance_id })).into_response())
}

pub async fn discard<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments(id): Segments<String>,
    _: Params,
) -> Result<Response, ApiError> {
    let id = poison_id(&id)?;
    state.runtime.discard_poison(&id).await?;
    Ok(Json(json!({ "id": id, "discarded": true })).into_response())
}

/// A poison message's id: a message id or a queue message id, so the rules of instance ids
/// (which storage keys can hold) hold for it; anything else is no id this API handed out.
fn poison_id(text: &str) -> Result<String, ApiError> {
    instance_id(text).map(|id| id.as_str().to_string())
}

fn to_json(poison: &durable_store::model::PoisonMessage) -> Value {
    serde_json::to_value(poison).unwrap_or(Value::Null)
}
