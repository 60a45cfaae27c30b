//! `/api/instances/{id}…`: an instance's status (with its history on request; an entity's too)
//! and the operations that steer it: raise an event, terminate, suspend, resume, rewind, restart.

use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use tracing::Instrument;

use super::eager::Reservation;
use super::extract::{check_name, Body, Params, Segments};
use super::history::history_payload;
use super::start::{check_status_or_wait, Wait};
use super::status::{payload, status_code};
use super::urls::base_url;
use super::{entities, instance_id, readable_instance_id, trace, ApiError, ApiState};
use durable_engine::OrchestrationStatus;
use durable_store::backend::Backend;

/// Longest `reason` accepted: it is stored in the instance's history.
const MAX_REASON_BYTES: usize = 16 * 1024;

/// `GET /api/instances/{id}`: 202 with `Location` while it can still change, 200 once ended
/// (500 for a failure with `returnInternalServerErrorOnFailure`), 404 if unknown. An entity's
/// `@name@key` is read too (dashboards list entities among instances): its current state as
/// the input, and no history.
pub async fn status<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments(id): Segments<String>,
    params: Params,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = readable_instance_id(&id)?;
    let show_input = params.flag("showInput", true)?;
    let show_history = params.flag("showHistory", false)?;
    let show_output = params.flag("showHistoryOutput", false)?;
    let error_on_failure = params.flag("returnInternalServerErrorOnFailure", false)?;
    let summary = state
        .runtime
        .status(&id.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no instance '{}'", id.id)))?;
    let code = status_code(summary.status, error_on_failure);
    let mut body = payload(&summary, show_input);
    if let Some(entity) = &id.entity {
        entities::show_current(&state.runtime, entity, show_input, &mut body).await?;
        // An entity keeps no history.
        if show_history {
            body["historyEvents"] = Value::Array(Vec::new());
        }
    } else if show_history && summary.status != OrchestrationStatus::Pending {
        // As the extension: a Pending instance has no history to show yet.
        let instance = state.runtime.instance(&id.id).await?;
        // Turns that change nothing a query shows write no summary: the state may count more.
        if let Some(instance) = &instance {
            let requests = summary
                .storage_requests
                .max(instance.state.storage_requests);
            body["storageRequests"] = requests.into();
        }
        let history = instance
            .map(|instance| instance.history)
            .unwrap_or_default();
        body["historyEvents"] = Value::Array(history_payload(&history, show_output));
    }
    if code == StatusCode::ACCEPTED {
        let location = format!("{}{}", base_url(&headers), uri);
        return Ok((
            code,
            [
                (header::LOCATION, location),
                (header::RETRY_AFTER, "5".to_string()),
            ],
            Json(body),
        )
            .into_response());
    }
    Ok((code, Json(body)).into_response())
}

/// `POST /api/instances/{id}/{operation}`: `terminate` (`?recursive=true`: its
/// sub-orchestrations too), `suspend`, `resume` and `rewind` (`?reason=`) answer 202, 404 for
/// an unknown instance, 410 for one that has ended (rewind: 412 unless it failed); `restart`
/// answers with the check-status links of the new instance.
pub async fn operation<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments((id, operation)): Segments<(String, String)>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = instance_id(&id)?;
    let id = id.as_str();
    let runtime = &state.runtime;
    let reason = || params.text("reason", MAX_REASON_BYTES);
    match operation.to_ascii_lowercase().as_str() {
        "terminate" if params.flag("recursive", false)? => {
            runtime.terminate_recursive(id, &reason()?).await?
        }
        "terminate" => runtime.terminate(id, &reason()?).await?,
        "suspend" => runtime.suspend(id, &reason()?).await?,
        "resume" => runtime.resume(id, &reason()?).await?,
        "rewind" => runtime.rewind(id, &reason()?).await?,
        "restart" => {
            let new_id = params.flag("restartWithNewInstanceId", true)?;
            let wait = Wait::from_params(&params)?;
            state.hub_ready().await?;
            let started = runtime.restart(id, new_id).await?;
            let watch = wait.watch(runtime, &started);
            let id = started.message.destination.instance_id();
            return check_status_or_wait(&state, &headers, &params, id, wait, watch).await;
        }
        "raiseevent" => {
            return Err(ApiError::not_found(
                "raiseEvent needs an event name: /instances/{id}/raiseEvent/{eventName}",
            ))
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "instances have no operation '{}'",
                operation.escape_debug()
            )))
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /api/instances/{id}/raiseEvent/{eventName}` with a JSON body: 202, 404 for an unknown
/// instance, 410 for one that has ended, 400 for a body that is not JSON.
pub async fn raise_event<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments((id, operation, event_name)): Segments<(String, String, String)>,
    _: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !operation.eq_ignore_ascii_case("raiseEvent") {
        return Err(ApiError::not_found(format!(
            "instances have no operation '{}'",
            operation.escape_debug()
        )));
    }
    let id = instance_id(&id)?;
    check_name("event name", &event_name)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::bad_request(format!(
            "an event body must be sent as application/json, not '{}'",
            content_type.escape_debug()
        )));
    }
    let data = body.json("event body")?;
    let eager = state.eager.reserve();
    let raised = state
        .runtime
        .raise_event_message(id.as_str(), &event_name, data, Reservation::hold(&eager))
        .instrument(trace::raise_event(&headers, &event_name))
        .await?;
    if let Some(eager) = eager {
        eager.run(&state.runtime, raised);
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
