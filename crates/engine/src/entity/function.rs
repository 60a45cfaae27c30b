//! What an entity function sees of one operation: its name and input, the entity's state to
//! read, set or delete, a result for a caller, and what it may set off (signals to other
//! entities, orchestration starts), which take effect only if the operation succeeds.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::EntityId;
use crate::client_json::decode_client_json;
use crate::FailureDetails;

/// Why an operation failed. Its changes to the state and what it set off are undone; a caller
/// gets the failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .details.error_message)]
pub struct EntityError {
    details: FailureDetails,
}

impl EntityError {
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_type("EntityOperationFailed", message)
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

/// Something an operation set off, sent once the batch that ran it commits.
#[derive(Debug, Clone, PartialEq)]
pub enum EntityAction {
    /// A one-way operation on another entity (or this one).
    Signal {
        entity: EntityId,
        operation: String,
        input: Option<String>,
    },
    /// Starts orchestrator `name` as `instance_id` unless an instance of that id ever existed.
    StartOrchestration {
        name: String,
        instance_id: String,
        input: Option<String>,
    },
}

/// One operation as its entity function handles it.
pub struct EntityContext<'a> {
    entity: &'a EntityId,
    operation: &'a str,
    input: Option<&'a str>,
    state: Option<String>,
    result: Option<String>,
    actions: Vec<EntityAction>,
    now: DateTime<Utc>,
}

impl<'a> EntityContext<'a> {
    pub(crate) fn new(
        entity: &'a EntityId,
        operation: &'a str,
        input: Option<&'a str>,
        state: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            entity,
            operation,
            input,
            state,
            result: None,
            actions: Vec::new(),
            now,
        }
    }

    pub fn entity_id(&self) -> &EntityId {
        self.entity
    }

    /// The operation's name, as the caller wrote it.
    pub fn operation(&self) -> &str {
        self.operation
    }

    /// The operation's input; a missing input decodes as JSON `null`.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, EntityError> {
        decode_client_json::<T>(self.input).map_err(|e| {
            EntityError::with_type(
                "InvalidInput",
                format!(
                    "the input of operation '{}' is not valid: {e}",
                    self.operation
                ),
            )
        })
    }

    /// The input as the caller sent it (JSON text).
    pub fn raw_input(&self) -> Option<&str> {
        self.input
    }

    /// When the batch running this operation started.
    pub fn current_utc_datetime(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// The state, `None` if the entity has none.
    pub fn state<T: DeserializeOwned>(&self) -> Result<Option<T>, EntityError> {
        self.state
            .as_deref()
            .map(|text| {
                serde_json::from_str(text).map_err(|e| {
                    EntityError::with_type(
                        "StateDeserialization",
                        format!("the state of entity '{}' is not valid: {e}", self.entity),
                    )
                })
            })
            .transpose()
    }

    /// The state, or `T::default()` if the entity has none.
    pub fn state_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, EntityError> {
        Ok(self.state()?.unwrap_or_default())
    }

    /// The state as JSON text.
    pub fn raw_state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    pub fn set_state<T: Serialize + ?Sized>(&mut self, state: &T) -> Result<(), EntityError> {
        self.state = Some(to_json("state", state)?);
        Ok(())
    }

    /// Sets the state to JSON text as it is (it must be JSON).
    pub fn set_raw_state(&mut self, state: String) -> Result<(), EntityError> {
        serde_json::from_str::<serde::de::IgnoredAny>(&state).map_err(|e| {
            EntityError::with_type("InvalidInput", format!("the state is not JSON: {e}"))
        })?;
        self.state = Some(state);
        Ok(())
    }

    /// Deletes the entity's state: reads find no entity until an operation sets it again.
    pub fn delete_state(&mut self) {
        self.state = None;
    }

    /// What a caller of this operation gets back.
    pub fn set_result<T: Serialize + ?Sized>(&mut self, result: &T) -> Result<(), EntityError> {
        self.result = Some(to_json("result", result)?);
        Ok(())
    }

    pub fn signal_entity<T: Serialize + ?Sized>(
        &mut self,
        entity: &EntityId,
        operation: &str,
        input: &T,
    ) -> Result<(), EntityError> {
        self.actions.push(EntityAction::Signal {
            entity: entity.clone(),
            operation: operation.to_string(),
            input: Some(to_json("signal input", input)?),
        });
        Ok(())
    }

    /// Starts orchestrator `name` as `instance_id` once: if an instance of that id ever existed,
    /// nothing happens, so an operation run again (or a repeated trigger) starts it only once.
    pub fn start_orchestration<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        instance_id: &str,
        input: &T,
    ) -> Result<(), EntityError> {
        self.actions.push(EntityAction::StartOrchestration {
            name: name.to_string(),
            instance_id: instance_id.to_string(),
            input: Some(to_json("orchestration input", input)?),
        });
        Ok(())
    }

    pub(crate) fn finish(self) -> (Option<String>, Option<String>, Vec<EntityAction>) {
        (self.state, self.result, self.actions)
    }
}

fn to_json<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<String, EntityError> {
    serde_json::to_string(value).map_err(|e| {
        EntityError::with_type(
            "Serialization",
            format!("could not serialize the {what}: {e}"),
        )
    })
}
