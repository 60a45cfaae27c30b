//! The registry of orchestrators, activities and entity functions by name (case-insensitive, as
//! Functions names are), wrapping typed user functions into JSON-in/JSON-out handlers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client_json::decode_client_json;
use super::context::OrchestrationContext;
use super::entity::{EntityContext, EntityError};
use super::error::{ActivityError, OrchestrationError};

pub(crate) type OrchestratorFuture =
    Pin<Box<dyn Future<Output = Result<Option<String>, OrchestrationError>>>>;
type OrchestratorFn =
    dyn Fn(OrchestrationContext, Option<String>) -> OrchestratorFuture + Send + Sync;

/// The future of a running activity: JSON output text or the failure.
pub type ActivityFuture =
    Pin<Box<dyn Future<Output = Result<Option<String>, ActivityError>> + Send>>;
type ActivityFn = dyn Fn(ActivityContext, Option<String>) -> ActivityFuture + Send + Sync;
/// An entity function: handles one operation against its entity's state.
pub(crate) type EntityFn = dyn Fn(&mut EntityContext<'_>) -> Result<(), EntityError> + Send + Sync;

/// What an activity knows about the call it is serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityContext {
    pub instance_id: String,
    pub execution_id: String,
    /// The sequence number of the TaskScheduled event this call serves.
    pub task_id: i32,
    pub name: String,
}

impl ActivityContext {
    /// Stable across redeliveries of the same call, so an activity can make its side effects
    /// effectively-once. The execution id is part of it because continue-as-new restarts
    /// sequence numbers within the same instance id.
    pub fn idempotency_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.instance_id, self.execution_id, self.task_id
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("a function name must not be empty")]
    EmptyName,
    #[error("'{0}' is registered twice (names are case-insensitive)")]
    Duplicate(String),
    #[error("an entity name must not contain '@' (got '{0}')")]
    AtInEntityName(String),
}

/// Orchestrators and activities by name. Cheap to clone and shareable across threads.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    orchestrators: HashMap<String, Arc<OrchestratorFn>>,
    activities: HashMap<String, Arc<ActivityFn>>,
    entities: HashMap<String, Arc<EntityFn>>,
}

impl Registry {
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    pub fn has_orchestrator(&self, name: &str) -> bool {
        self.inner
            .orchestrators
            .contains_key(&name.to_ascii_lowercase())
    }

    pub fn has_activity(&self, name: &str) -> bool {
        self.inner
            .activities
            .contains_key(&name.to_ascii_lowercase())
    }

    pub fn has_entity(&self, name: &str) -> bool {
        self.inner.entities.contains_key(&name.to_ascii_lowercase())
    }

    pub(crate) fn entity_function(&self, name: &str) -> Option<&Arc<EntityFn>> {
        self.inner.entities.get(&name.to_ascii_lowercase())
    }

    pub(crate) fn start_orchestrator(
        &self,
        name: &str,
        ctx: OrchestrationContext,
        input: Option<String>,
    ) -> Option<OrchestratorFuture> {
        let handler = self.inner.orchestrators.get(&name.to_ascii_lowercase())?;
        Some(handler(ctx, input))
    }

    /// Starts the activity `ctx.name` with its JSON input; `None` if no such activity exists.
    pub fn start_activity(
        &self,
        ctx: ActivityContext,
        input: Option<String>,
    ) -> Option<ActivityFuture> {
        let handler = self.inner.activities.get(&ctx.name.to_ascii_lowercase())?;
        Some(handler(ctx, input))
    }
}

#[derive(Default)]
pub struct RegistryBuilder {
    registry: Inner,
    error: Option<RegistryError>,
}

impl RegistryBuilder {
    /// Registers `async fn(OrchestrationContext, Input) -> Result<Output, OrchestrationError>`.
    /// A missing input decodes as JSON `null`, so `()` and `Option<T>` inputs accept it; a JSON
    /// string holding JSON (Durable Functions' Python client) decodes as that JSON when `I` does
    /// not take a string.
    pub fn orchestrator<I, O, F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(OrchestrationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, OrchestrationError>> + 'static,
    {
        let function_name = name.to_string();
        let wrapped =
            move |ctx: OrchestrationContext, input: Option<String>| -> OrchestratorFuture {
                let decoded = decode_client_json::<I>(input.as_deref()).map_err(|e| {
                    format!("the input of orchestrator '{function_name}' is not valid: {e}")
                });
                match decoded {
                    Ok(value) => {
                        let running = handler(ctx, value);
                        Box::pin(async move { encode_output(running.await?) })
                    }
                    Err(message) => Box::pin(std::future::ready(Err(
                        OrchestrationError::with_type("InvalidInput", message),
                    ))),
                }
            };
        if self.check_name(
            name,
            self.registry
                .orchestrators
                .contains_key(&name.to_ascii_lowercase()),
        ) {
            self.registry
                .orchestrators
                .insert(name.to_ascii_lowercase(), Arc::new(wrapped));
        }
        self
    }

    /// Registers `async fn(ActivityContext, Input) -> Result<Output, ActivityError>`.
    pub fn activity<I, O, F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ActivityError>> + Send + 'static,
    {
        let function_name = name.to_string();
        let wrapped = move |ctx: ActivityContext, input: Option<String>| -> ActivityFuture {
            match decode_input::<I>(&function_name, input.as_deref()) {
                Ok(value) => {
                    let running = handler(ctx, value);
                    Box::pin(async move {
                        let output = running.await?;
                        serde_json::to_string(&output).map(Some).map_err(|e| {
                            ActivityError::with_type(
                                "OutputSerialization",
                                format!("could not serialize the activity's output: {e}"),
                            )
                        })
                    })
                }
                Err(message) => Box::pin(std::future::ready(Err(ActivityError::with_type(
                    "InvalidInput",
                    message,
                )))),
            }
        };
        if self.check_name(
            name,
            self.registry
                .activities
                .contains_key(&name.to_ascii_lowercase()),
        ) {
            self.registry
                .activities
                .insert(name.to_ascii_lowercase(), Arc::new(wrapped));
        }
        self
    }

    /// Registers an entity function, `fn(&mut EntityContext) -> Result<(), EntityError>`: it
    /// handles one operation (`ctx.operation()`) against the entity's state at a time.
    pub fn entity<F>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(&mut EntityContext<'_>) -> Result<(), EntityError> + Send + Sync + 'static,
    {
        let key = name.to_ascii_lowercase();
        let taken = self.registry.entities.contains_key(&key);
        let problem = name
            .contains('@')
            .then(|| RegistryError::AtInEntityName(name.to_string()));
        if let Some(problem) = problem {
            self.error.get_or_insert(problem);
        } else if self.check_name(name, taken) {
            self.registry.entities.insert(key, Arc::new(handler));
        }
        self
    }

    fn check_name(&mut self, name: &str, taken: bool) -> bool {
        let problem = if name.trim().is_empty() {
            Some(RegistryError::EmptyName)
        } else if taken {
            Some(RegistryError::Duplicate(name.to_string()))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error.get_or_insert(problem);
            return false;
        }
        true
    }

    /// The registry, or the first registration mistake.
    pub fn build(self) -> Result<Registry, RegistryError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(Registry {
                inner: Arc::new(self.registry),
            }),
        }
    }
}

/// An activity's input: what its orchestrator serialized, so it is decoded exactly once (unlike
/// an orchestrator's, which a client may have sent).
fn decode_input<I: DeserializeOwned>(name: &str, input: Option<&str>) -> Result<I, String> {
    serde_json::from_str(input.unwrap_or("null"))
        .map_err(|e| format!("the input of activity '{name}' is not valid: {e}"))
}

fn encode_output<O: Serialize>(output: O) -> Result<Option<String>, OrchestrationError> {
    serde_json::to_string(&output).map(Some).map_err(|e| {
        OrchestrationError::with_type(
            "OutputSerialization",
            format!("could not serialize the orchestration's output: {e}"),
        )
    })
}
