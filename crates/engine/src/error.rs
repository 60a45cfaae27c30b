//! Errors of the engine's boundaries: what an awaited durable task can fail with, what an
//! orchestrator or activity returns on failure, and misuse of the executor by its caller.

use std::any::Any;
use std::fmt;

use super::history::FailureDetails;

/// Why an awaited durable task (activity, sub-orchestration, external event) did not produce a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    #[error("activity '{name}' failed{}: {}", attempts_suffix(*.attempts), .details.error_message)]
    ActivityFailed {
        name: String,
        attempts: u32,
        details: Box<FailureDetails>,
    },
    #[error("sub-orchestration '{name}' (instance '{instance_id}') failed{}: {}", attempts_suffix(*.attempts), .details.error_message)]
    SubOrchestrationFailed {
        name: String,
        instance_id: String,
        attempts: u32,
        details: Box<FailureDetails>,
    },
    #[error("operation '{operation}' of entity '{entity}' failed: {}", .details.error_message)]
    EntityOperationFailed {
        entity: String,
        operation: String,
        details: Box<FailureDetails>,
    },
    #[error("entity lock misused: {message}")]
    LockMisuse { message: String },
    #[error("timed out waiting for external event '{name}'")]
    Timeout { name: String },
    #[error("could not serialize the input of '{name}': {message}")]
    InputSerialization { name: String, message: String },
    #[error("the result of '{name}' is not of the expected type: {message}")]
    ResultDeserialization { name: String, message: String },
    #[error("invalid retry policy for '{name}': {message}")]
    InvalidRetryPolicy { name: String, message: String },
}

fn attempts_suffix(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

impl TaskError {
    /// The failure reported by the remote side, when there was one.
    pub fn failure_details(&self) -> Option<&FailureDetails> {
        match self {
            Self::ActivityFailed { details, .. }
            | Self::SubOrchestrationFailed { details, .. }
            | Self::EntityOperationFailed { details, .. } => Some(details.as_ref()),
            _ => None,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            Self::ActivityFailed { .. } => "TaskFailed",
            Self::SubOrchestrationFailed { .. } => "SubOrchestrationFailed",
            Self::EntityOperationFailed { .. } => "EntityOperationFailed",
            Self::LockMisuse { .. } => "LockMisuse",
            Self::Timeout { .. } => "Timeout",
            Self::InputSerialization { .. } => "InputSerialization",
            Self::ResultDeserialization { .. } => "ResultDeserialization",
            Self::InvalidRetryPolicy { .. } => "InvalidRetryPolicy",
        }
    }
}

/// Error type of a failure converted from an error that is not a [`TaskError`]. Error types are
/// stored in history and shown to clients, so they are fixed names, never Rust type names
/// (`std::any::type_name` may change between compiler versions).
const ORCHESTRATION_ERROR_TYPE: &str = "OrchestrationError";
const ACTIVITY_ERROR_TYPE: &str = "ActivityError";

/// Builds failure details from any error; a [`TaskError`] keeps its own error type and the remote
/// failure as the inner one, any other error gets `error_type`.
fn details_from_error<E: std::error::Error + 'static>(
    error: E,
    error_type: &str,
) -> FailureDetails {
    if let Some(task) = (&error as &dyn Any).downcast_ref::<TaskError>() {
        let mut details = FailureDetails::new(task.error_type(), task.to_string());
        details.inner_failure = task.failure_details().cloned().map(Box::new);
        return details;
    }
    FailureDetails::new(error_type, error.to_string())
}

/// The failure an orchestrator returns; it becomes the instance's failure details.
///
/// Like `anyhow::Error`, it converts from any error type with `?` and so deliberately does not
/// implement `std::error::Error` itself. A converted [`TaskError`] keeps its error type; any other
/// error is recorded as `OrchestrationError` with its message: use [`with_type`](Self::with_type)
/// to record a name of your own.
#[derive(Debug, Clone, PartialEq)]
pub struct OrchestrationError {
    details: FailureDetails,
}

impl OrchestrationError {
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_type(ORCHESTRATION_ERROR_TYPE, message)
    }

    pub fn with_type(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            details: FailureDetails::new(error_type, message),
        }
    }

    pub fn details(&self) -> &FailureDetails {
        &self.details
    }

    pub fn into_details(self) -> FailureDetails {
        self.details
    }
}

impl<E: std::error::Error + 'static> From<E> for OrchestrationError {
    fn from(error: E) -> Self {
        Self {
            details: details_from_error(error, ORCHESTRATION_ERROR_TYPE),
        }
    }
}

impl fmt::Display for OrchestrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.details.error_message)
    }
}

/// The failure an activity returns. Mark it non-retriable to stop retry policies early. Converted
/// from another error with `?`, it is recorded as `ActivityError` (a [`TaskError`] keeps its own
/// type); use [`with_type`](Self::with_type) to record a name of your own.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityError {
    details: FailureDetails,
}

impl ActivityError {
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_type(ACTIVITY_ERROR_TYPE, message)
    }

    pub fn with_type(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            details: FailureDetails::new(error_type, message),
        }
    }

    /// A failure that retrying cannot fix (bad input, a business rule): retry policies give up.
    pub fn non_retriable(message: impl Into<String>) -> Self {
        let mut error = Self::new(message);
        error.details.is_non_retriable = true;
        error
    }

    pub fn details(&self) -> &FailureDetails {
        &self.details
    }

    pub fn into_details(self) -> FailureDetails {
        self.details
    }
}

impl<E: std::error::Error + 'static> From<E> for ActivityError {
    fn from(error: E) -> Self {
        Self {
            details: details_from_error(error, ACTIVITY_ERROR_TYPE),
        }
    }
}

impl fmt::Display for ActivityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.details.error_message)
    }
}

/// The caller handed the executor something that is not an instance history, or asked a closed
/// session for another turn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecuteError {
    #[error("history of instance '{0}' has no ExecutionStarted event")]
    MissingExecutionStarted(String),
    #[error("history of instance '{0}' has no OrchestratorStarted event before its first message")]
    MissingOrchestratorStarted(String),
    #[error("history of instance '{instance_id}' is corrupt: {message}")]
    CorruptHistory {
        instance_id: String,
        message: String,
    },
    #[error(
        "executor was asked to run instance '{requested}' but the history belongs to '{found}'"
    )]
    InstanceMismatch { requested: String, found: String },
    #[error("the session of instance '{0}' is closed: its execution ended or a turn failed")]
    SessionClosed(String),
}

/// Text of a panic payload, for failure messages.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
