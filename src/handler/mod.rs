//! The custom-handler HTTP surface the Functions host talks to: the readiness probe it polls
//! with `GET /`, and `POST /{FunctionName}` invocations of the queue-triggered functions that
//! feed the engine.

pub mod invocation;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::runtime::Runtime;
use crate::store::backend::{Backend, StoreError};
use invocation::{InvocationRequest, InvocationResponse};

/// Name of the input binding the engine's queue functions receive their message under (the
/// `name` in their `function.json`).
pub const ENGINE_MESSAGE_BINDING: &str = "message";
/// The work-item queue's function; control queue `NN` is served by `DurableControlNN`.
pub const WORK_ITEMS_FUNCTION: &str = "DurableWorkItems";
pub const CONTROL_FUNCTION_PREFIX: &str = "DurableControl";

/// The whole worker: readiness and the engine's queue functions.
pub fn app<B: Backend>(runtime: Arc<Runtime<B>>) -> Router {
    Router::new()
        .route("/", get(ready))
        .route("/{function}", post(invoke::<B>))
        .with_state(runtime)
}

async fn ready() -> &'static str {
    "ready"
}

fn is_engine_function(name: &str) -> bool {
    name == WORK_ITEMS_FUNCTION
        || name
            .strip_prefix(CONTROL_FUNCTION_PREFIX)
            .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn done(response: InvocationResponse) -> Response {
    (StatusCode::OK, Json(response)).into_response()
}

/// Processes one engine message. Only failures a retry can cure answer non-2xx (the host then
/// retries and, after `maxDequeueCount`, moves the message to the poison queue); a message that
/// can never be processed is acknowledged with a log line so it is not retried.
async fn invoke<B: Backend>(
    State(runtime): State<Arc<Runtime<B>>>,
    Path(function): Path<String>,
    body: Bytes,
) -> Response {
    if !is_engine_function(&function) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no function named '{function}' is served by this worker"),
        );
    }
    let request: InvocationRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the invocation body is not a Functions host payload: {e}"),
            )
        }
    };
    let text = match request.queue_message(ENGINE_MESSAGE_BINDING) {
        Ok(text) => text,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let message = match runtime.backend().decode_message(&text).await {
        Ok(message) => message,
        Err(StoreError::InvalidInput(reason)) => {
            tracing::warn!("{function}: dropped a message that can never be processed: {reason}");
            return done(InvocationResponse::default().log(format!(
                "dropped a message that can never be processed: {reason}"
            )));
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match runtime.process(&message).await {
        Ok(disposition) => done(InvocationResponse::default().log(format!(
            "message {} for '{}': {disposition:?}",
            message.id,
            message.destination.instance_id()
        ))),
        Err(e) => {
            tracing::warn!("{function}: message {} will be retried: {e}", message.id);
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}
