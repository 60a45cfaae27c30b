//! What travels to and from entities inside `EventRaised` events: requests (operations, lock
//! requests, releases) under the event name [`OPERATION_EVENT`], and responses to a caller under
//! the name of its request id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::FailureDetails;

/// The event name every request to an entity travels under, as in Durable Functions.
pub const OPERATION_EVENT: &str = "op";
/// The result of a lock request once every entity of its lock set is held.
pub const LOCK_ACQUIRED: &str = "\"Lock Acquisition Completed\"";

/// One request to an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRequest {
    /// The request's id: a caller waits for its response under this event name.
    pub id: String,
    #[serde(flatten)]
    pub kind: RequestKind,
    /// Who sent it; `None` for a client's signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Sender>,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RequestKind {
    /// Run an operation; a signal expects no response.
    #[serde(rename_all = "camelCase")]
    Operation {
        op: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
        #[serde(default)]
        signal: bool,
    },
    /// Hold this entity for the sender, then pass the request on to the next entity of the lock
    /// set (entity instance ids, sorted); the last one tells the sender.
    #[serde(rename_all = "camelCase")]
    Lock {
        lockset: Vec<String>,
        position: usize,
    },
    /// Let go of the lock taken by lock request `lock_id`.
    #[serde(rename_all = "camelCase")]
    Release { lock_id: String },
}

/// The instance that sent a request, and where it stands in that sender's sequence of requests
/// to this entity (orchestrations number theirs, so the entity applies them in order, once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// The request's number within the sender's execution (its `EventSent` id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i32>,
    /// The number of the sender's previous request to this entity and when it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor: Option<Predecessor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predecessor {
    pub sequence: i32,
    pub sent_at: DateTime<Utc>,
}

/// What a caller gets back: the operation's result (JSON text), or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureDetails>,
}

impl EntityRequest {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an entity request always serializes")
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not an entity request: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json() {
        let request = EntityRequest {
            id: "r1".into(),
            kind: RequestKind::Operation {
                op: "add".into(),
                input: Some("5".into()),
                signal: true,
            },
            sender: Some(Sender {
                instance_id: "o".into(),
                execution_id: Some("e".into()),
                sequence: Some(3),
                predecessor: None,
            }),
        };
        let text = request.to_json();
        assert!(text.contains("\"type\":\"operation\""), "{text}");
        assert_eq!(EntityRequest::from_json(&text).unwrap(), request);
        assert!(EntityRequest::from_json("{\"id\":\"x\"}").is_err());
    }
}
