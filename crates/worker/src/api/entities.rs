//! `/api/entities/…`, Durable Functions' entity webhooks: signal an operation to an entity, read
//! its state, and list the entities of an entity function a page at a time; and the current
//! state an entity instance's status shows.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::eager::Reservation;
use super::extract::{check_name, Body, Params, Segments};
use super::query::{continuation, page_size, paged};
use super::status::{format_time, json_value};
use super::{ApiError, ApiState};
use durable_engine::EntityId;
use durable_runtime::{EntityStatus, Runtime, RuntimeError};
use durable_store::backend::Backend;

/// Page size when the caller names no `top`, as for instances.
const DEFAULT_TOP: usize = 100;

fn entity_id(name: &str, key: &str) -> Result<EntityId, ApiError> {
    EntityId::new(name, key).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `POST /api/entities/{name}/{key}?op=<operation>`, the body the operation's input (JSON; none
/// when empty): 202 with the entity's instance id once the signal is queued. The worker applies
/// it at once in the background; its queued copy, held meanwhile, is there if the worker dies.
pub async fn signal<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments((name, key)): Segments<(String, String)>,
    params: Params,
    body: Body,
) -> Result<Response, ApiError> {
    let entity = entity_id(&name, &key)?;
    let operation = params
        .get("op")
        .ok_or_else(|| ApiError::bad_request("name the operation to signal: '?op=<operation>'"))?;
    check_name("operation name", &operation)?;
    let input = body.optional_json("operation's input")?;
    state.hub_ready().await?;
    let eager = state.eager.reserve();
    let queued = state
        .runtime
        .signal_entity(&entity, &operation, input, Reservation::hold(&eager))
        .await?;
    if let Some(eager) = eager {
        eager.run(&state.runtime, queued);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": entity.instance_id() })),
    )
        .into_response())
}

/// `GET /api/entities/{name}/{key}`: 200 with the entity's state as the body, 404 when it has
/// none (never set, or deleted) or no entity function has that name.
pub async fn read<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments((name, key)): Segments<(String, String)>,
    _: Params,
) -> Result<Response, ApiError> {
    let entity = entity_id(&name, &key)?;
    let status = state
        .runtime
        .entity(&entity)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("entity '{entity}' has no state")))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        status.state,
    )
        .into_response())
}

/// `GET /api/entities/{name}?top=`: a page of the entities of that function that have state, in
/// key order, the next page's token in `x-ms-continuation-token` as for instances.
pub async fn list<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments(name): Segments<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let top = page_size(&params)?.unwrap_or(DEFAULT_TOP);
    let page = state
        .runtime
        .entities(&name, top, continuation(&headers)?)
        .await?;
    Ok(paged(
        page.items.iter().map(metadata).collect(),
        page.continuation,
    ))
}

/// An entity in the shape of Durable Functions' `DurableEntityStatus`, with what the scheduler
/// knows besides.
fn metadata(status: &EntityStatus) -> Value {
    let mut item = json!({
        "entityId": { "name": status.entity.name(), "key": status.entity.key() },
        "state": json_value(Some(&status.state)),
        "operations": status.operations,
        "waiting": status.waiting,
    });
    if let Some(at) = status.last_operation_at {
        item["lastOperationTime"] = json!(format_time(at));
    }
    if let Some(owner) = &status.lock_owner {
        item["lockedBy"] = json!(owner);
    }
    item
}

/// An entity instance's status shows the entity as it is now: its summary is written only when
/// the entity appears or its state comes or goes. `input` becomes the current state (when
/// shown) and `lastUpdatedTime` its last operation's time. An entity no function of this app
/// handles keeps its summary.
pub(super) async fn show_current<B: Backend>(
    runtime: &Runtime<B>,
    entity: &EntityId,
    show_input: bool,
    body: &mut Value,
) -> Result<(), ApiError> {
    let status = match runtime.entity(entity).await {
        Ok(status) => status,
        Err(RuntimeError::UnknownEntity(_)) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    if show_input {
        body["input"] = status
            .as_ref()
            .map_or(Value::Null, |s| json_value(Some(&s.state)));
    }
    if let Some(at) = status.and_then(|s| s.last_operation_at) {
        body["lastUpdatedTime"] = json!(format_time(at));
    }
    Ok(())
}
