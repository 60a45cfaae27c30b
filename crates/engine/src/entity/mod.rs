//! Durable entities: small addressable state (an [`EntityId`], name and key) whose operations
//! run one at a time. Entity functions, the scheduler that batches an entity's operations, and
//! the messages orchestrations and clients exchange with entities.

mod function;
mod messages;
mod orchestration;
mod scheduler;

pub use function::{EntityAction, EntityContext, EntityError};
pub use messages::{
    EntityRequest, EntityResponse, Predecessor, RequestKind, Sender, LOCK_ACQUIRED, OPERATION_EVENT,
};
pub use orchestration::LockGuard;
pub(crate) use orchestration::RecordedLocks;
pub use scheduler::{
    BatchOutcome, EntityScheduler, Incoming, OperationOutcome, Outgoing, DEDUPLICATION_WINDOW,
};

use std::fmt;

use serde::{Deserialize, Serialize};

/// An entity's identity: its entity function's name (case-insensitive, kept lower-cased) and a
/// key. Stored as the instance id `@name@key`, as Durable Functions stores entities.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityId {
    name: String,
    key: String,
}

/// Why a name and key make no entity id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityIdError {
    #[error("an entity name must not be empty")]
    EmptyName,
    #[error("an entity name must not contain '@' (got '{0}')")]
    AtInName(String),
    #[error("an entity key must not be empty")]
    EmptyKey,
    #[error("'{0}' is not an entity instance id (expected '@name@key')")]
    NotAnEntity(String),
}

impl EntityId {
    pub fn new(name: &str, key: &str) -> Result<Self, EntityIdError> {
        if name.trim().is_empty() {
            return Err(EntityIdError::EmptyName);
        }
        if name.contains('@') {
            return Err(EntityIdError::AtInName(name.to_string()));
        }
        if key.is_empty() {
            return Err(EntityIdError::EmptyKey);
        }
        Ok(Self {
            name: name.to_ascii_lowercase(),
            key: key.to_string(),
        })
    }

    /// The entity an instance id `@name@key` stands for.
    pub fn from_instance_id(instance_id: &str) -> Result<Self, EntityIdError> {
        let not_entity = || EntityIdError::NotAnEntity(instance_id.to_string());
        let rest = instance_id.strip_prefix('@').ok_or_else(not_entity)?;
        let (name, key) = rest.split_once('@').ok_or_else(not_entity)?;
        Self::new(name, key).map_err(|_| not_entity())
    }

    /// Whether an instance id names an entity rather than an orchestration.
    pub fn is_entity_instance(instance_id: &str) -> bool {
        instance_id.starts_with('@')
    }

    /// The entity function's name, lower-cased.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn instance_id(&self) -> String {
        format!("@{}@{}", self.name, self.key)
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}@{}", self.name, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entity_id_is_stored_as_an_instance_id_with_its_name_lower_cased() {
        let id = EntityId::new("CardActivity", "Card-7@x").unwrap();
        assert_eq!(id.instance_id(), "@cardactivity@Card-7@x");
        assert_eq!(
            EntityId::from_instance_id("@cardactivity@Card-7@x").unwrap(),
            id
        );
        assert!(EntityId::is_entity_instance(&id.instance_id()));
        assert!(!EntityId::is_entity_instance("order-1"));
    }

    #[test]
    fn bad_names_keys_and_instance_ids_are_refused() {
        assert_eq!(EntityId::new(" ", "k"), Err(EntityIdError::EmptyName));
        assert_eq!(
            EntityId::new("a@b", "k"),
            Err(EntityIdError::AtInName("a@b".into()))
        );
        assert_eq!(EntityId::new("a", ""), Err(EntityIdError::EmptyKey));
        for bad in ["order-1", "@counter", "@@k", "@counter@"] {
            assert!(EntityId::from_instance_id(bad).is_err(), "{bad}");
        }
    }
}
