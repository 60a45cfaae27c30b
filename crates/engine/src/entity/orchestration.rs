//! What an orchestration does with entities: signal them, call them and wait for the result,
//! and hold several in a critical section. Requests travel as sent events numbered by the
//! orchestration, so each entity applies one orchestration's requests once and in order.

use std::collections::BTreeMap;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::messages::{
    EntityRequest, EntityResponse, Predecessor, RequestKind, Sender, OPERATION_EVENT,
};
use super::EntityId;
use crate::action::Action;
use crate::client_json::decode_client_json;
use crate::history::EventKind;
use crate::{OrchestrationContext, TaskError};

/// The entities an orchestration holds, from [`OrchestrationContext::lock_entities`] until
/// [`LockGuard::release`], until the guard is dropped, or until the execution fails or is
/// terminated: each of these lets go of them.
#[must_use = "the entities stay locked until the guard is released or dropped"]
pub struct LockGuard {
    ctx: OrchestrationContext,
    lock_id: String,
    entities: Vec<EntityId>,
    released: bool,
}

impl LockGuard {
    pub fn entities(&self) -> &[EntityId] {
        &self.entities
    }

    /// Ends the critical section: every locked entity goes back to taking others' operations.
    pub fn release(mut self) {
        self.release_all();
    }

    fn release_all(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        self.ctx
            .shared()
            .state
            .borrow_mut()
            .locks
            .remove(&self.lock_id);
        for entity in &self.entities {
            let kind = RequestKind::Release {
                lock_id: self.lock_id.clone(),
            };
            self.ctx
                .send_entity_request(entity, release_id(&self.lock_id), kind);
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Dropped where the code drops it (the end of a scope, the code's return), the same on
        // every replay. Dropped with the code by the engine, it decides nothing: a live session
        // keeps the code between turns, and a replay rebuilds the guard.
        let code_dropped = self
            .ctx
            .shared()
            .state
            .try_borrow()
            .map_or(true, |state| state.code_dropped);
        if !code_dropped {
            self.release_all();
        }
    }
}

impl OrchestrationContext {
    /// Sends operation `operation` to `entity` without waiting for it (fire and forget).
    pub fn signal_entity(
        &self,
        entity: &EntityId,
        operation: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<(), TaskError> {
        let input = entity_input(operation, input)?;
        let id = self.new_guid().to_string();
        let kind = RequestKind::Operation {
            op: operation.to_string(),
            input,
            signal: true,
        };
        self.send_entity_request(entity, id, kind);
        Ok(())
    }

    /// Runs operation `operation` on `entity` and waits for its result. The operation's own
    /// failure comes back as [`TaskError::EntityOperationFailed`].
    pub fn call_entity<T: DeserializeOwned + 'static>(
        &self,
        entity: &EntityId,
        operation: &str,
        input: &(impl Serialize + ?Sized),
    ) -> impl Future<Output = Result<T, TaskError>> + 'static {
        let input = entity_input(operation, input);
        let id = self.new_guid().to_string();
        let sent = input.map(|input| {
            let kind = RequestKind::Operation {
                op: operation.to_string(),
                input,
                signal: false,
            };
            self.send_entity_request(entity, id.clone(), kind);
            self.wait_for_external_event::<EntityResponse>(&id)
        });
        let entity = entity.to_string();
        let operation = operation.to_string();
        async move {
            let response = sent?.await?;
            if let Some(details) = response.failure {
                return Err(TaskError::EntityOperationFailed {
                    entity,
                    operation,
                    details: Box::new(details),
                });
            }
            decode_client_json::<T>(response.result.as_deref()).map_err(|message| {
                TaskError::ResultDeserialization {
                    name: format!("{entity} {operation}"),
                    message,
                }
            })
        }
    }

    /// Locks `entities` (in a fixed order, so two orchestrations locking overlapping sets never
    /// deadlock) and resolves once all are held: until the guard is released, each entity runs
    /// only this orchestration's operations, and others' wait. Critical sections do not nest.
    /// Dropping the returned future before it resolves (a select that a timer won) withdraws
    /// the lock request.
    pub fn lock_entities(
        &self,
        entities: &[EntityId],
    ) -> impl Future<Output = Result<LockGuard, TaskError>> + 'static {
        let mut sorted: Vec<EntityId> = entities.to_vec();
        sorted.sort_by_key(EntityId::instance_id);
        sorted.dedup();
        let lock_id = self.new_guid().to_string();
        let nested = !self.shared().state.borrow().locks.is_empty();
        let asked = match (sorted.first(), nested) {
            (_, true) => Err(TaskError::LockMisuse {
                message: "this orchestration already holds, or is acquiring, a critical section"
                    .to_string(),
            }),
            (None, false) => Err(TaskError::LockMisuse {
                message: "lock_entities needs at least one entity".to_string(),
            }),
            (Some(first), false) => {
                let kind = RequestKind::Lock {
                    lockset: sorted.iter().map(EntityId::instance_id).collect(),
                    position: 0,
                };
                self.send_entity_request(first, lock_id.clone(), kind);
                self.shared()
                    .state
                    .borrow_mut()
                    .locks
                    .insert(lock_id.clone());
                // The guard exists as soon as the request is sent: dropped before the lock is
                // acquired (the future raced and lost, or never awaited), it still lets go.
                let guard = LockGuard {
                    ctx: self.clone(),
                    lock_id: lock_id.clone(),
                    entities: sorted,
                    released: false,
                };
                Ok((
                    guard,
                    self.wait_for_external_event::<EntityResponse>(&lock_id),
                ))
            }
        };
        async move {
            let (guard, acquired) = asked?;
            acquired.await?;
            Ok(guard)
        }
    }

    /// Sends one numbered request to `entity` as an `EventSent` decision.
    pub(crate) fn send_entity_request(&self, entity: &EntityId, id: String, kind: RequestKind) {
        let target = entity.instance_id();
        let mut state = self.shared().state.borrow_mut();
        let sequence = state.next_sequence();
        let sent_at = state.current_time;
        let predecessor = state
            .entity_requests
            .insert(target.clone(), Predecessor { sequence, sent_at });
        let request = EntityRequest {
            id,
            kind,
            sender: Some(Sender {
                instance_id: self.instance_id().to_string(),
                execution_id: Some(self.execution_id().to_string()),
                sequence: Some(sequence),
                predecessor,
            }),
        };
        state.push_action(
            Action::SendEvent {
                id: sequence,
                instance_id: target,
                name: OPERATION_EVENT.to_string(),
                input: Some(request.to_json()),
            },
            None,
        );
    }
}

/// The request id of the releases of lock request `lock_id`.
fn release_id(lock_id: &str) -> String {
    format!("{lock_id}:release")
}

/// The critical sections a history asked for and has not let go of, from its `EventSent`
/// events: lock request id → the entities of its lock set (instance ids).
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordedLocks(BTreeMap<String, Vec<String>>);

impl RecordedLocks {
    pub(crate) fn record(&mut self, event: &EventKind) {
        let EventKind::EventSent {
            name,
            input: Some(input),
            ..
        } = event
        else {
            return;
        };
        if name != OPERATION_EVENT {
            return;
        }
        match EntityRequest::from_json(input).map(|request| (request.id, request.kind)) {
            Ok((id, RequestKind::Lock { lockset, .. })) => {
                self.0.insert(id, lockset);
            }
            Ok((_, RequestKind::Release { lock_id })) => {
                self.0.remove(&lock_id);
            }
            _ => {}
        }
    }

    /// What an ending execution sends to let go of what its history still holds (or is still
    /// acquiring): the code may not have released it (continue-as-new, a termination, a failure
    /// of the engine's), or released it in a failing turn, whose decisions are never sent.
    /// Unnumbered, because they are not recorded in the history: a rewind replays that history
    /// and numbers its next requests from the same point, and the entities must not take those
    /// for duplicates.
    pub(crate) fn releases(&self, me: &Sender) -> Vec<Action> {
        self.0
            .iter()
            .flat_map(|(lock_id, lockset)| {
                lockset.iter().map(move |target| {
                    let request = EntityRequest {
                        id: release_id(lock_id),
                        kind: RequestKind::Release {
                            lock_id: lock_id.clone(),
                        },
                        sender: Some(Sender {
                            sequence: None,
                            predecessor: None,
                            ..me.clone()
                        }),
                    };
                    Action::SendEvent {
                        // Never recorded, so it needs no place in the sequence.
                        id: -1,
                        instance_id: target.clone(),
                        name: OPERATION_EVENT.to_string(),
                        input: Some(request.to_json()),
                    }
                })
            })
            .collect()
    }
}

fn entity_input(
    operation: &str,
    input: &(impl Serialize + ?Sized),
) -> Result<Option<String>, TaskError> {
    serde_json::to_string(input)
        .map(Some)
        .map_err(|e| TaskError::InputSerialization {
            name: operation.to_string(),
            message: e.to_string(),
        })
}
