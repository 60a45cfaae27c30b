//! The app's own trigger functions (timer, queue, or HTTP functions in payload form) that the
//! worker serves at `POST /{name}` beside the engine's queue functions, registered by name.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use durable_engine::OrchestrationStatus;
use durable_protocol::invocation::{InvocationError, InvocationRequest, InvocationResponse};
use durable_runtime::{Runtime, RuntimeError};
use durable_store::backend::Backend;
use serde::Serialize;
use tracing::Instrument;

use crate::is_engine_function;

/// Why a trigger function could not serve an invocation; decides the status the host sees.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The input can never be processed. Answered 400: the host retries it `maxDequeueCount`
    /// times and then parks it in `<queue>-poison`, where an operator can see it.
    #[error("{0}")]
    Rejected(String),
    /// The invocation payload lacks what the function reads. Answered 400, as `Rejected`.
    #[error(transparent)]
    Invocation(#[from] InvocationError),
    /// The runtime failed (storage trouble, contention). Answered 500, so the host retries.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Another failure a retry may cure. Answered 500.
    #[error("{0}")]
    Retry(String),
}

impl FunctionError {
    /// Whether the host should retry the invocation as it is (a 5xx answer) rather than treat
    /// the input as bad (a 4xx answer).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Runtime(_) | Self::Retry(_))
    }
}

/// Starts orchestrator `name` as `instance_id` unless an instance of that id exists, in any
/// state: the host delivers a trigger at least once, and a redelivery must not start a second
/// run. Answers with a log line saying which happened.
pub async fn start_once<B: Backend, I: Serialize + ?Sized>(
    runtime: &Runtime<B>,
    name: &str,
    instance_id: &str,
    input: &I,
) -> Result<InvocationResponse, FunctionError> {
    let exists = |status: OrchestrationStatus| {
        InvocationResponse::default().log(format!(
            "'{instance_id}' already exists ({status:?}); not starting it again"
        ))
    };
    if let Some(existing) = runtime.status(instance_id).await? {
        return Ok(exists(existing.status));
    }
    let started = runtime
        .start(name, Some(instance_id), input)
        .instrument(crate::api::trace::create_orchestration_here(name))
        .await;
    match started {
        Ok(_) => Ok(InvocationResponse::default().log(format!("started {name} '{instance_id}'"))),
        // A concurrent delivery of the same trigger got there first.
        Err(RuntimeError::AlreadyExists { status, .. }) => Ok(exists(status)),
        Err(e) => Err(e.into()),
    }
}

/// Why a function could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("a function named '{0}' is already registered")]
    Duplicate(String),
    #[error("'{0}' is the name of one of the engine's own functions")]
    Reserved(String),
    #[error("a function name must not be empty or contain '/'")]
    InvalidName,
}

/// What a trigger function returns.
pub type FunctionFuture =
    Pin<Box<dyn Future<Output = Result<InvocationResponse, FunctionError>> + Send>>;

type Handler<B> = Arc<dyn Fn(Arc<Runtime<B>>, InvocationRequest) -> FunctionFuture + Send + Sync>;

/// The app's trigger functions, by name (the folder name of their `function.json`).
pub struct TriggerFunctions<B> {
    handlers: HashMap<String, Handler<B>>,
}

impl<B> Default for TriggerFunctions<B> {
    fn default() -> Self {
        Self {
            handlers: HashMap::new(),
        }
    }
}

impl<B: Backend> TriggerFunctions<B> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` as function `name`. It receives the runtime (to start instances, raise
    /// events, read status) and the host's invocation payload, and answers with the outputs.
    pub fn function<F, Fut>(mut self, name: &str, handler: F) -> Result<Self, RegisterError>
    where
        F: Fn(Arc<Runtime<B>>, InvocationRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<InvocationResponse, FunctionError>> + Send + 'static,
    {
        if name.is_empty() || name.contains('/') {
            return Err(RegisterError::InvalidName);
        }
        if is_engine_function(name) {
            return Err(RegisterError::Reserved(name.to_string()));
        }
        if self.handlers.contains_key(name) {
            return Err(RegisterError::Duplicate(name.to_string()));
        }
        let handler: Handler<B> =
            Arc::new(move |runtime, request| Box::pin(handler(runtime, request)));
        self.handlers.insert(name.to_string(), handler);
        Ok(self)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Handler<B>> {
        self.handlers.get(name)
    }
}

#[cfg(test)]
mod tests {
    use durable_store::memory::MemoryBackend;

    use super::*;

    async fn answer(
        _: Arc<Runtime<MemoryBackend>>,
        _: InvocationRequest,
    ) -> Result<InvocationResponse, FunctionError> {
        Ok(InvocationResponse::default())
    }

    fn register(names: &[&str]) -> Result<TriggerFunctions<MemoryBackend>, RegisterError> {
        names
            .iter()
            .try_fold(TriggerFunctions::new(), |functions, name| {
                functions.function(name, answer)
            })
    }

    #[test]
    fn names_are_unique_and_leave_the_engines_functions_alone() {
        let functions = register(&["Timer", "Queue"]).unwrap();
        assert!(functions.get("Timer").is_some() && functions.get("Queue").is_some());
        assert!(functions.get("Other").is_none());
        assert_eq!(
            register(&["Timer", "Timer"]).err(),
            Some(RegisterError::Duplicate("Timer".to_string()))
        );
        for reserved in [
            "DurableWorkItems",
            "DurableControl00",
            "DurableControl15",
            "DurableRetention",
        ] {
            assert_eq!(
                register(&[reserved]).err(),
                Some(RegisterError::Reserved(reserved.to_string()))
            );
        }
        assert_eq!(
            register(&["DurableControl"]).map(|f| f.get("DurableControl").is_some()),
            Ok(true),
            "only DurableControlNN is the engine's"
        );
        for invalid in ["", "a/b"] {
            assert_eq!(register(&[invalid]).err(), Some(RegisterError::InvalidName));
        }
    }

    #[test]
    fn bad_input_is_not_retried_and_runtime_trouble_is() {
        assert!(!FunctionError::Rejected("bad".into()).is_retryable());
        assert!(
            !FunctionError::Invocation(InvocationError::MissingBinding("x".into())).is_retryable()
        );
        assert!(FunctionError::Retry("later".into()).is_retryable());
        assert!(FunctionError::Runtime(RuntimeError::Contention("i".into())).is_retryable());
    }
}
