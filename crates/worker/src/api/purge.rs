//! `DELETE /api/instances/{id}` and `DELETE /api/instances?createdTimeFrom=…`: purging one
//! instance that has ended (with `?recursive=true`, the ended sub-orchestrations below it too),
//! or every ended instance a filter matches, as the extension answers: 200 with
//! `{"instancesDeleted": n}`, 404 when there was nothing to purge, 412 for an instance that has
//! not ended.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use super::extract::{Params, Segments};
use super::query::instance_filter;
use super::{instance_id, ApiError, ApiState};
use durable_store::backend::Backend;

fn deleted(count: usize) -> Response {
    (StatusCode::OK, Json(json!({ "instancesDeleted": count }))).into_response()
}

pub async fn purge_one<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments(id): Segments<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let id = instance_id(&id)?;
    if params.flag("recursive", false)? {
        return Ok(deleted(state.runtime.purge_recursive(id.as_str()).await?));
    }
    state.runtime.purge(id.as_str()).await?;
    Ok(deleted(1))
}

/// `createdTimeFrom` is required and `createdTimeTo` defaults to now, as in the extension;
/// `runtimeStatus` may name ended statuses only, and `instanceIdPrefix` narrows it further.
pub async fn purge_matching<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    params: Params,
) -> Result<Response, ApiError> {
    // The list's `name` narrows pages after the query; a purge has no such step, so rather
    // than purge instances of every name, it refuses the filter.
    if params.get("name").is_some() {
        return Err(ApiError::bad_request(
            "a purge by filter does not take 'name'; purge by 'instanceIdPrefix' or one id at a time",
        ));
    }
    // Sub-orchestrations are instances of their own, which the filter matches or not.
    if params.flag("recursive", false)? {
        return Err(ApiError::bad_request(
            "a purge by filter does not take 'recursive'; purge one id at a time with it",
        ));
    }
    let mut filter = instance_filter(&params)?;
    if filter.created_from.is_none() {
        return Err(ApiError::bad_request(
            "a purge by filter needs 'createdTimeFrom'",
        ));
    }
    filter.created_to.get_or_insert_with(Utc::now);
    let count = state.runtime.purge_matching(&filter).await?;
    if count == 0 {
        return Err(ApiError::not_found("no instance that has ended matches"));
    }
    Ok(deleted(count))
}
