//! The custom-handler HTTP surface the Functions host talks to: the readiness probe `GET /`,
//! `POST /{FunctionName}` invocations (engine queue functions and the retention timer, the app's
//! trigger functions, HTTP functions in payload mode) and the HTTP API under `/api`; [`serve`]
//! runs it as a process, and [`verify`] checks stored histories against the app's registry
//! before a deploy.

pub mod api;
pub mod functions;
pub mod host_json;
pub mod http_payload;
pub mod retention;
pub mod serve;
pub mod verify;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower::ServiceExt;
use tracing::Instrument;

use api::eager::{EagerTurns, DEFAULT_EAGER_TURNS};
use api::ApiState;
use durable_protocol::invocation::{InvocationRequest, InvocationResponse};
use durable_runtime::{Delivered, Delivery, Runtime};
use durable_store::backend::Backend;
use durable_store::model::QueueKind;
use functions::{FunctionError, TriggerFunctions};
use http_payload::{response_binding, HttpRequestData};

/// Name of the input binding the engine's queue functions receive their message under (the
/// `name` in their `function.json`).
pub const ENGINE_MESSAGE_BINDING: &str = "message";
/// The work-item queue's function; control queue `NN` is served by `DurableControlNN`.
pub const WORK_ITEMS_FUNCTION: &str = "DurableWorkItems";
pub const CONTROL_FUNCTION_PREFIX: &str = "DurableControl";
/// The trigger and output binding names of the app's HTTP functions.
pub const HTTP_REQUEST_BINDING: &str = "req";
pub const HTTP_RESPONSE_BINDING: &str = "res";

struct Worker<B: Backend> {
    runtime: Arc<Runtime<B>>,
    functions: TriggerFunctions<B>,
    api: Router,
}

/// The whole worker. `task_hub` names the hub in the management URLs the API hands out;
/// `functions` are the app's own trigger functions.
pub fn app<B: Backend>(
    runtime: Arc<Runtime<B>>,
    task_hub: String,
    functions: TriggerFunctions<B>,
) -> Router {
    let (_, ready) = tokio::sync::watch::channel(true);
    app_once_ready(runtime, task_hub, functions, ready)
}

/// [`app`] over a task hub still being created: starts wait until `hub_ready` turns true.
pub fn app_once_ready<B: Backend>(
    runtime: Arc<Runtime<B>>,
    task_hub: String,
    functions: TriggerFunctions<B>,
    hub_ready: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let api = api::routes(Arc::new(ApiState {
        runtime: runtime.clone(),
        task_hub,
        eager: EagerTurns::new(DEFAULT_EAGER_TURNS),
        hub_ready,
    }));
    let worker = Arc::new(Worker {
        runtime,
        functions,
        api: api.clone(),
    });
    Router::new()
        .route("/", get(ready))
        .route("/admin/counters", get(counters::<B>))
        .route("/{function}", post(invoke::<B>))
        .with_state(worker)
        .merge(api)
}

async fn ready() -> &'static str {
    "ready"
}

/// The runtime's counters, on the worker's own port only: no function routes the host's HTTP
/// front here, so they are for benchmarks and local diagnostics.
async fn counters<B: Backend>(State(worker): State<Arc<Worker<B>>>) -> Response {
    Json(worker.runtime.counters()).into_response()
}

/// One of the engine's own functions.
enum EngineFunction {
    /// The function of a queue: runs its messages.
    Queue(QueueKind),
    /// The retention timer.
    Retention,
}

fn engine_function(name: &str) -> Option<EngineFunction> {
    match name {
        WORK_ITEMS_FUNCTION => Some(EngineFunction::Queue(QueueKind::WorkItems)),
        retention::RETENTION_FUNCTION => Some(EngineFunction::Retention),
        _ => name
            .strip_prefix(CONTROL_FUNCTION_PREFIX)
            .filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .map(|index| EngineFunction::Queue(QueueKind::Control(index))),
    }
}

pub(crate) fn is_engine_function(name: &str) -> bool {
    engine_function(name).is_some()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn done(response: InvocationResponse) -> Response {
    (StatusCode::OK, Json(response)).into_response()
}

/// Runs in a span naming the function invoked, so every line logged on its behalf says which
/// (a turn or an activity it runs adds the instance and execution).
#[tracing::instrument(name = "invocation", skip_all, fields(function = %function))]
async fn invoke<B: Backend>(
    State(worker): State<Arc<Worker<B>>>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: InvocationRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the invocation body is not a Functions host payload: {e}"),
            )
        }
    };
    match engine_function(&function) {
        Some(EngineFunction::Queue(queue)) => {
            return engine_message(&worker.runtime, &function, queue, &request).await
        }
        Some(EngineFunction::Retention) => {
            return match retention::run(&worker.runtime).await {
                Ok(response) => done(response),
                Err(e) => {
                    tracing::warn!("{function}: retention stopped; the next run goes on: {e}");
                    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                }
            }
        }
        None => {}
    }
    if let Some(handler) = worker.functions.get(&function) {
        let result = handler(worker.runtime.clone(), request)
            .instrument(api::trace::function(&headers, &function))
            .await;
        return function_result(&function, result);
    }
    if request.data.contains_key(HTTP_REQUEST_BINDING) {
        return http_function(&worker.api, &request).await;
    }
    error(
        StatusCode::NOT_FOUND,
        format!("no function named '{function}' is served by this worker"),
    )
}

/// Failures a retry may cure answer 500 so the host retries the message. Bad input answers 400
/// too: the host retries it `maxDequeueCount` times and then parks it in `<queue>-poison`,
/// where an operator can see it, rather than losing it.
fn function_result(function: &str, result: Result<InvocationResponse, FunctionError>) -> Response {
    match result {
        Ok(response) => done(response),
        Err(e) if e.is_retryable() => {
            tracing::warn!("{function}: will be retried: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => {
            tracing::warn!("{function}: rejected an input that can never be processed: {e}");
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

/// An HTTP function in payload mode: the request the host describes is served by the same
/// routes the forwarding mode reaches, and the response goes back as the `res` binding.
async fn http_function(api: &Router, request: &InvocationRequest) -> Response {
    let http = match HttpRequestData::from_data(&request.data, HTTP_REQUEST_BINDING)
        .and_then(|data| data.to_request())
    {
        Ok(http) => http,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let response = match api.clone().oneshot(http).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let mut answer = InvocationResponse::default();
    let binding: Value = response_binding(response).await;
    answer
        .outputs
        .insert(HTTP_RESPONSE_BINDING.to_string(), binding);
    done(answer)
}

/// Processes one engine message. Only failures a retry can cure answer non-2xx, so the host
/// retries them; a message that can never be processed, or whose last delivery failed, is
/// parked as a poison message (see `durable_runtime::Delivery`) and acknowledged.
async fn engine_message<B: Backend>(
    runtime: &Runtime<B>,
    function: &str,
    queue: QueueKind,
    request: &InvocationRequest,
) -> Response {
    let text = match request.queue_message(ENGINE_MESSAGE_BINDING) {
        Ok(text) => text,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let queue_message_id = request.metadata_text("Id");
    let delivery = Delivery {
        queue,
        text: &text,
        queue_message_id: queue_message_id.as_deref(),
        attempt: request.dequeue_count().unwrap_or(1),
    };
    // The host's id names the message in these lines; the runtime's own lines name its id.
    let named = queue_message_id.as_deref().unwrap_or("(no id)");
    match runtime.deliver(delivery).await {
        Ok(Delivered::Processed(disposition)) => done(
            InvocationResponse::default()
                .log(format!("queue message {named} processed: {disposition:?}")),
        ),
        Ok(Delivered::Parked(id)) => done(InvocationResponse::default().log(format!(
            "queue message {named} parked as poison message {id}"
        ))),
        Err(e) => {
            tracing::warn!("{function}: queue message {named} will be retried: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}
