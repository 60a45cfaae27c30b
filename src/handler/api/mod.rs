//! The Durable Functions HTTP API the worker serves under the route prefix: starting instances
//! and reading and steering them. Errors are JSON `{"error": …}` with a 4xx status for bad
//! requests; 5xx only for storage failures.

mod instances;
mod query;
mod start;
mod status;
mod urls;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::runtime::{Runtime, RuntimeError};
use crate::store::backend::Backend;

/// The route prefix of `host.json` (`extensions.http.routePrefix`) the API is served under.
pub const ROUTE_PREFIX: &str = "/api";

/// What every API handler needs.
pub struct ApiState<B: Backend> {
    pub runtime: Arc<Runtime<B>>,
    /// Put in management URLs as `taskHub=`, as Durable Functions does.
    pub task_hub: String,
}

/// The API routes, prefix included.
pub fn routes<B: Backend>(state: Arc<ApiState<B>>) -> Router {
    Router::new()
        .route(
            "/api/orchestrators/{function_name}",
            post(start::start::<B>),
        )
        .route(
            "/api/orchestrators/{function_name}/{instance_id}",
            post(start::start_with_id::<B>),
        )
        .route("/api/instances", get(query::list::<B>))
        .route("/api/instances/{instance_id}", get(instances::status::<B>))
        .route(
            "/api/instances/{instance_id}/raiseEvent/{event_name}",
            post(instances::raise_event::<B>),
        )
        .with_state(state)
}

/// A request the API refuses or cannot serve, with the status it answers.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> Self {
        let status = match &error {
            RuntimeError::InvalidInstanceId(_)
            | RuntimeError::UnknownOrchestrator(_)
            | RuntimeError::Invalid(_) => StatusCode::BAD_REQUEST,
            RuntimeError::NotFound(_) => StatusCode::NOT_FOUND,
            RuntimeError::AlreadyExists { .. } => StatusCode::CONFLICT,
            RuntimeError::Ended { .. } => StatusCode::GONE,
            RuntimeError::Store(_)
            | RuntimeError::Execute(_)
            | RuntimeError::Contention(_)
            | RuntimeError::RunawayContinueAsNew(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!("API request failed: {error}");
        }
        Self {
            status,
            message: error.to_string(),
        }
    }
}

/// A boolean query flag; absent means `default`.
pub(crate) fn flag(
    query: &HashMap<String, String>,
    name: &str,
    default: bool,
) -> Result<bool, ApiError> {
    match query.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "'{name}' must be true or false, got '{v}'"
        ))),
    }
}
