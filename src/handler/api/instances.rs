//! `/api/instances/{id}…`: an instance's status and the operations that steer it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::status::{payload, status_code};
use super::urls::base_url;
use super::{flag, ApiError, ApiState};
use crate::store::backend::Backend;
use crate::store::names::InstanceId;

fn not_found(instance_id: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no instance '{instance_id}'"),
    }
}

/// `GET /api/instances/{id}`: 202 with `Location` while it can still change, 200 once ended.
pub async fn status<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Path(instance_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let show_input = flag(&query, "showInput", true)?;
    let error_on_failure = flag(&query, "returnInternalServerErrorOnFailure", false)?;
    InstanceId::parse(&instance_id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let summary = state
        .runtime
        .status(&instance_id)
        .await?
        .ok_or_else(|| not_found(&instance_id))?;
    let code = status_code(summary.status, error_on_failure);
    let body = Json(payload(&summary, show_input));
    if code == StatusCode::ACCEPTED {
        let location = format!("{}{}", base_url(&headers), uri);
        return Ok((
            code,
            [
                (header::LOCATION, location),
                (header::RETRY_AFTER, "5".to_string()),
            ],
            body,
        )
            .into_response());
    }
    Ok((code, body).into_response())
}

/// `POST /api/instances/{id}/raiseEvent/{eventName}` with a JSON body: 202, 404 for an unknown
/// instance, 410 for one that has ended, 400 for a body that is not JSON.
pub async fn raise_event<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Path((instance_id, event_name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(ApiError::bad_request(format!(
            "an event body must be sent as application/json, not '{content_type}'"
        )));
    }
    let data: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the event body is not valid JSON: {e}")))?;
    if event_name.trim().is_empty() {
        return Err(ApiError::bad_request("the event name must not be empty"));
    }
    state
        .runtime
        .raise_event(&instance_id, &event_name, &data)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
