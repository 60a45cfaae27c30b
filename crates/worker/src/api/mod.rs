//! The Durable Functions HTTP API the worker serves under the route prefix (described at
//! `GET /api/openapi.json`): starting, reading, querying, steering and purging instances;
//! signalling, reading and listing entities. Errors
//! are JSON `{"error": …}`, 4xx for requests that cannot be served as asked, 5xx only for storage.

mod backlog;
mod dashboard;
pub mod eager;
mod entities;
mod extract;
mod history;
mod instances;
mod openapi;
mod poison;
mod purge;
pub(crate) mod query;
mod start;
mod status;
mod stuck;
pub(crate) mod trace;
mod urls;

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde_json::json;

use durable_engine::EntityId;
use durable_runtime::management::ManageError;
use durable_runtime::{Runtime, RuntimeError};
use durable_store::backend::Backend;
use durable_store::names::InstanceId;
use eager::EagerTurns;

/// The route prefix of `host.json` (`extensions.http.routePrefix`) the API is served under.
pub const ROUTE_PREFIX: &str = "/api";

/// What every API handler needs.
pub struct ApiState<B: Backend> {
    pub runtime: Arc<Runtime<B>>,
    /// Put in management URLs as `taskHub=`, as Durable Functions does.
    pub task_hub: String,
    pub eager: EagerTurns,
    /// Whether the task hub (queues, containers) exists yet: the worker creates it in the
    /// background, and a start processed here needs none of the queues, so it would otherwise
    /// run before its activities' containers exist.
    pub hub_ready: tokio::sync::watch::Receiver<bool>,
}

/// How long a start waits for the task hub before answering 503.
const HUB_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl<B: Backend> ApiState<B> {
    /// Waits (bounded) until the task hub exists; 503 if it does not in time, before anything
    /// was written.
    pub async fn hub_ready(&self) -> Result<(), ApiError> {
        let mut ready = self.hub_ready.clone();
        let waited = tokio::time::timeout(HUB_READY_WAIT, async {
            ready.wait_for(|ready| *ready).await.is_ok()
        })
        .await;
        match waited {
            Ok(true) => Ok(()),
            _ => Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "the task hub is not ready yet; retry shortly".to_string(),
            }),
        }
    }
}

/// The API routes, prefix included, built from [`route_table`].
pub fn routes<B: Backend>(state: Arc<ApiState<B>>) -> Router {
    route_table::<B>()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .method_not_allowed_fallback(extract::wrong_method)
        .fallback(extract::no_route)
        .with_state(state)
}

/// One API route: a method on a path (axum's template, whose `{name}` parameters OpenAPI's
/// templates share).
struct ApiRoute<S> {
    /// Built into `handler`; kept for the check of the description against the routes.
    #[cfg_attr(not(test), expect(dead_code))]
    method: Method,
    path: &'static str,
    handler: MethodRouter<S>,
}

fn route<H, T, S>(method: Method, path: &'static str, handler: H) -> ApiRoute<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    let filter = MethodFilter::try_from(method.clone())
        .unwrap_or_else(|_| panic!("{method} {path}: axum routes no such method"));
    ApiRoute {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every API route, in one table so the OpenAPI description can be checked against it
/// (`openapi.rs`). `/api/instances/` (trailing slash) is the list too: the Durable Functions
/// client libraries call it so. `{operation}` is matched case-insensitively by its handler, as
/// the extension does, so it is one route rather than one per operation.
fn route_table<B: Backend>() -> Vec<ApiRoute<Arc<ApiState<B>>>> {
    vec![
        route(
            Method::POST,
            "/api/orchestrators/{functionName}",
            start::start::<B>,
        ),
        route(
            Method::POST,
            "/api/orchestrators/{functionName}/{instanceId}",
            start::start_with_id::<B>,
        ),
        route(Method::GET, "/api/instances", query::list::<B>),
        route(Method::DELETE, "/api/instances", purge::purge_matching::<B>),
        route(Method::GET, "/api/instances/", query::list::<B>),
        route(
            Method::DELETE,
            "/api/instances/",
            purge::purge_matching::<B>,
        ),
        route(
            Method::GET,
            "/api/instances/{instanceId}",
            instances::status::<B>,
        ),
        route(
            Method::DELETE,
            "/api/instances/{instanceId}",
            purge::purge_one::<B>,
        ),
        route(
            Method::POST,
            "/api/instances/{instanceId}/{operation}",
            instances::operation::<B>,
        ),
        route(
            Method::POST,
            "/api/instances/{instanceId}/{operation}/{eventName}",
            instances::raise_event::<B>,
        ),
        route(
            Method::GET,
            "/api/entities/{entityName}",
            entities::list::<B>,
        ),
        route(
            Method::GET,
            "/api/entities/{entityName}/{entityKey}",
            entities::read::<B>,
        ),
        route(
            Method::POST,
            "/api/entities/{entityName}/{entityKey}",
            entities::signal::<B>,
        ),
        route(Method::GET, "/api/poisonMessages", poison::list::<B>),
        route(Method::GET, "/api/poisonMessages/{id}", poison::one::<B>),
        route(
            Method::DELETE,
            "/api/poisonMessages/{id}",
            poison::discard::<B>,
        ),
        route(
            Method::POST,
            "/api/poisonMessages/{id}/requeue",
            poison::requeue::<B>,
        ),
        route(Method::GET, "/api/openapi.json", openapi::document),
        route(Method::GET, "/api/queues", backlog::queues::<B>),
        route(Method::GET, "/api/stuck", stuck::list::<B>),
        route(Method::GET, "/api/dashboard", dashboard::page),
        route(
            Method::GET,
            "/api/dashboard/assets/{name}",
            dashboard::asset,
        ),
    ]
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

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
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
            RuntimeError::NotFound(_) | RuntimeError::UnknownEntity(_) => StatusCode::NOT_FOUND,
            RuntimeError::AlreadyExists { .. } | RuntimeError::NotStarted { .. } => {
                StatusCode::CONFLICT
            }
            RuntimeError::Ended { .. } => StatusCode::GONE,
            RuntimeError::Store(_)
            | RuntimeError::Execute(_)
            | RuntimeError::Contention(_)
            | RuntimeError::RunawayContinueAsNew(_)
            | RuntimeError::Abandoned
            | RuntimeError::Batch(_)
            | RuntimeError::SessionLost
            | RuntimeError::Engine(_)
            | RuntimeError::NoTurn(_) => StatusCode::INTERNAL_SERVER_ERROR,
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

impl From<ManageError> for ApiError {
    fn from(error: ManageError) -> Self {
        match error {
            ManageError::Runtime(error) => error.into(),
            // The extension's answer for a purge or rewind of an instance in the wrong state.
            error @ (ManageError::NotEnded { .. } | ManageError::NotFailed { .. }) => Self {
                status: StatusCode::PRECONDITION_FAILED,
                message: error.to_string(),
            },
        }
    }
}

/// An instance id from the path, refused with 400 when no instance could have it.
pub(crate) fn instance_id(text: &str) -> Result<InstanceId, ApiError> {
    InstanceId::parse(text)
        .map_err(|e| ApiError::bad_request(format!("'{}': {e}", text.escape_debug())))
}

/// The id of an instance to read: an orchestration's, or an entity's `@name@key`.
pub(crate) struct ReadableId {
    pub id: String,
    /// The entity, for an entity's id.
    pub entity: Option<EntityId>,
}

/// An instance id from the path that may also name an entity, refused with 400 when no
/// orchestration or entity could have it.
pub(crate) fn readable_instance_id(text: &str) -> Result<ReadableId, ApiError> {
    if !EntityId::is_entity_instance(text) {
        let id = instance_id(text)?;
        return Ok(ReadableId {
            id: id.into_string(),
            entity: None,
        });
    }
    let entity = EntityId::from_instance_id(text)
        .map_err(|e| ApiError::bad_request(format!("'{}': {e}", text.escape_debug())))?;
    // An entity's key has an instance id's characters, past the leading '@'.
    instance_id(&text[1..])?;
    Ok(ReadableId {
        id: text.to_string(),
        entity: Some(entity),
    })
}
