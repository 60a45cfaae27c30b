//! Entities in the runtime: the requests waiting for one entity run as one batch with one
//! commit (the scheduler, state included, is the instance's input), then what the batch sends;
//! and the client's side: signals, reads and queries of entities.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;

use super::client::Queued;
use super::resident::Known;
use super::storage_requests::commit_counted;
use super::{Disposition, Runtime, RuntimeError};
use durable_engine::entity::{
    EntityRequest, EntityScheduler, Incoming, OperationOutcome, Outgoing, RequestKind,
    OPERATION_EVENT,
};
use durable_engine::{
    EntityId, EventKind, HistoryEvent, OrchestrationInstance, OrchestrationStatus,
};
use durable_store::backend::Backend;
use durable_store::model::{
    Commit, Destination, InstanceQuery, InstanceState, InstanceSummary, LoadedInstance, Message,
    Page,
};
use durable_store::names::InstanceId;

/// An entity as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityStatus {
    pub entity: EntityId,
    /// The state as JSON.
    pub state: String,
    /// Operations run so far.
    pub operations: u64,
    pub last_operation_at: Option<DateTime<Utc>>,
    /// The orchestration holding it in a critical section.
    pub lock_owner: Option<String>,
    /// Requests waiting (for the lock, or for an earlier request of their sender).
    pub waiting: usize,
}

impl EntityStatus {
    fn of(entity: EntityId, scheduler: EntityScheduler) -> Option<Self> {
        Some(Self {
            lock_owner: scheduler.lock_owner().map(str::to_string),
            waiting: scheduler.waiting(),
            operations: scheduler.operations,
            last_operation_at: scheduler.last_operation_at,
            state: scheduler.state?,
            entity,
        })
    }
}

/// What a message for an entity instance is to the entity.
enum Received {
    Request(EntityRequest),
    /// Not meant for an entity (a start, a timer, a termination): dropped.
    Stray,
    /// Meant for it but unreadable: parked with the reason.
    Unreadable(String),
}

fn received(message: &Message) -> Received {
    match &message.event.kind {
        EventKind::EventRaised { name, input } if name.eq_ignore_ascii_case(OPERATION_EVENT) => {
            match EntityRequest::from_json(input.as_deref().unwrap_or_default()) {
                Ok(request) => Received::Request(request),
                Err(reason) => Received::Unreadable(reason),
            }
        }
        _ => Received::Stray,
    }
}

impl<B: Backend> Runtime<B> {
    /// Runs the requests of one batch for entity instance `instance_id`; a stale cached copy
    /// fails its commit with a conflict, and the batch is retried over a fresh load.
    pub(crate) async fn entity_batch(
        &self,
        instance_id: &str,
        messages: &[&Message],
    ) -> Result<Vec<Disposition>, RuntimeError> {
        let entity = match EntityId::from_instance_id(instance_id) {
            Ok(entity) => entity,
            Err(error) => {
                let mut dispositions = Vec::with_capacity(messages.len());
                for message in messages {
                    self.park_message(message, &error, 1).await?;
                    dispositions.push(Disposition::Parked);
                }
                return Ok(dispositions);
            }
        };
        let known = match self.resident.take(instance_id) {
            Some(known) => Some(known),
            None => self.load(instance_id).await?,
        };
        let (dispositions, known) = self.run_entity_batch(&entity, known, messages).await?;
        if let Some(known) = known {
            self.keep(known);
        }
        Ok(dispositions)
    }

    async fn run_entity_batch(
        &self,
        entity: &EntityId,
        known: Option<Known>,
        messages: &[&Message],
    ) -> Result<(Vec<Disposition>, Option<Known>), RuntimeError> {
        let now = self.clock.now();
        let mut dispositions = vec![Disposition::Applied; messages.len()];
        let mut incoming = Vec::new();
        let mut positions = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            match received(message) {
                Received::Request(request) => {
                    incoming.push(Incoming {
                        message_id: message.id.clone(),
                        request,
                    });
                    positions.push(index);
                }
                Received::Stray => {
                    dispositions[index] = Disposition::Dropped("not an entity request")
                }
                Received::Unreadable(reason) => {
                    self.park_message(message, &reason, 1).await?;
                    dispositions[index] = Disposition::Parked;
                }
            }
        }
        if incoming.is_empty() {
            return Ok((dispositions, known));
        }
        let (mut state, expected) = match &known {
            Some(known) => (known.state.clone(), Some(known.version.clone())),
            None => (self.new_entity_state(entity, now), None),
        };
        let mut scheduler =
            EntityScheduler::from_json(state.input.as_deref()).map_err(RuntimeError::Engine)?;
        let had_state = scheduler.state.is_some();
        let batch = scheduler.run_batch(&self.registry, entity, incoming, now);
        for (operation, failure) in &batch.failed_signals {
            tracing::warn!(
                entity = %entity,
                "signalled operation '{operation}' failed ({}): {}",
                failure.error_type,
                failure.error_message
            );
        }
        let mut changed = false;
        for (index, outcome) in positions.into_iter().zip(batch.outcomes) {
            dispositions[index] = match outcome {
                OperationOutcome::Duplicate => Disposition::Dropped("duplicate message"),
                OperationOutcome::Applied | OperationOutcome::Waiting => {
                    changed = true;
                    Disposition::Applied
                }
            };
        }
        if !changed {
            // Every request was seen before: perhaps redelivered after a batch that committed
            // and then failed before its summary.
            let mut known = known;
            if let Some(known) = known.as_mut().filter(|known| !known.summary_current) {
                self.write_summary(entity_summary(&known.state, &scheduler))
                    .await?;
                known.summary_current = true;
            }
            return Ok((dispositions, known));
        }
        state.input = Some(scheduler.to_json());
        state.updated_at = now;
        state.revision += 1;
        state.outbox = batch
            .outgoing
            .into_iter()
            .map(|outgoing| self.entity_message(entity, outgoing, now))
            .collect();
        let mut commit = Commit {
            state,
            events: Vec::new(),
            new_execution: expected.is_none(),
        };
        let version = commit_counted(&*self.backend, expected.as_ref(), &mut commit).await?;
        self.counters.turn_committed();
        let (state, version) = self.send_and_clear(commit.state, version).await?;
        // Queries find entities by their summary; their state is read from the entity itself,
        // so the summary changes only when the entity appears or its state comes or goes.
        let summary_current = known.as_ref().is_some_and(|known| known.summary_current);
        let mut known = Known::loaded(LoadedInstance {
            state,
            history: Vec::new(),
            message_ids: Default::default(),
            version,
        });
        if expected.is_none() {
            // A new entity has no summary unless an earlier incarnation's purge stopped half
            // way: try the insert before paying for the read a write starts with.
            let summary = entity_summary(&known.state, &scheduler);
            let counted = crate::storage_requests::counted(summary.clone());
            if !self.backend.create_summary(&counted).await? {
                self.write_summary(summary).await?;
            }
        } else if !summary_current || had_state != scheduler.state.is_some() {
            self.write_summary(entity_summary(&known.state, &scheduler))
                .await?;
        }
        known.summary_current = true;
        Ok((dispositions, Some(known)))
    }

    fn new_entity_state(&self, entity: &EntityId, now: DateTime<Utc>) -> InstanceState {
        InstanceState {
            instance_id: entity.instance_id(),
            name: format!("@{}", entity.name()),
            version: None,
            tags: Default::default(),
            execution_id: self.options.ids.next_id(),
            status: OrchestrationStatus::Running,
            input: None,
            output: None,
            failure: None,
            custom_status: None,
            parent: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            revision: 0,
            outbox: Vec::new(),
            earlier_message_ids: Vec::new(),
            earlier_execution_ids: Vec::new(),
            trace_context: None,
            rewinds: 0,
            storage_requests: 0,
        }
    }

    /// The message that carries what a batch sends.
    fn entity_message(&self, entity: &EntityId, outgoing: Outgoing, now: DateTime<Utc>) -> Message {
        let (destination, kind, revision) = match outgoing {
            Outgoing::Respond {
                instance_id,
                execution_id,
                request_id,
                response,
            } => (
                Destination::Instance {
                    instance_id,
                    execution_id,
                },
                EventKind::EventRaised {
                    name: request_id,
                    input: Some(
                        serde_json::to_string(&response).expect("a response always serializes"),
                    ),
                },
                None,
            ),
            Outgoing::Request {
                entity_instance_id,
                request,
            } => (
                Destination::Instance {
                    instance_id: entity_instance_id,
                    execution_id: None,
                },
                EventKind::EventRaised {
                    name: OPERATION_EVENT.to_string(),
                    input: Some(request.to_json()),
                },
                None,
            ),
            Outgoing::StartOrchestration {
                name,
                instance_id,
                input,
            } => (
                Destination::Instance {
                    instance_id: instance_id.clone(),
                    execution_id: None,
                },
                EventKind::ExecutionStarted {
                    name,
                    version: self.options.versioning.default_version.clone(),
                    input,
                    orchestration_instance: OrchestrationInstance {
                        instance_id,
                        execution_id: self.options.ids.next_id(),
                    },
                    parent_instance: None,
                    scheduled_start_time: None,
                    parent_trace_context: None,
                    tags: [("startedBy".to_string(), entity.instance_id())].into(),
                },
                // Numbered 1: a start that finds the id ever existed is dropped, so an entity
                // starts each id once whatever runs its operation again.
                Some(1),
            ),
        };
        Message {
            id: self.options.ids.next_id(),
            destination,
            event: HistoryEvent::message(now, kind),
            deliver_at: None,
            revision,
            more_calls: Vec::new(),
            trace_context: None,
            deferral_recorded: false,
        }
    }

    /// A client's one-way operation on `entity`, queued (held for `hold`, for a caller that
    /// processes it at once, see [`Runtime::process_queued`]).
    pub async fn signal_entity(
        &self,
        entity: &EntityId,
        operation: &str,
        input: Option<String>,
        hold: Option<Duration>,
    ) -> Result<Queued, RuntimeError> {
        let message = self.signal_message(entity, operation, input, self.options.ids.next_id())?;
        let receipt = match hold {
            Some(hold) => Some(self.backend.send_held(&message, hold).await?),
            None => {
                self.backend.send(std::slice::from_ref(&message)).await?;
                None
            }
        };
        Ok(Queued {
            message,
            receipt,
            new_instance: false,
        })
    }

    /// A signal applied here and now, without a queue: for a trigger function whose own
    /// message the host redelivers until this succeeds. `signal_id` must be the same on every
    /// redelivery (derive it from the trigger's message), so the entity applies it once.
    pub async fn signal_entity_here(
        &self,
        entity: &EntityId,
        operation: &str,
        input: Option<String>,
        signal_id: &str,
    ) -> Result<Disposition, RuntimeError> {
        let message = self.signal_message(entity, operation, input, signal_id.to_string())?;
        self.process(&message).await
    }

    fn signal_message(
        &self,
        entity: &EntityId,
        operation: &str,
        input: Option<String>,
        id: String,
    ) -> Result<Message, RuntimeError> {
        self.check_entity(entity)?;
        if operation.trim().is_empty() {
            return Err(RuntimeError::Invalid(
                "an entity operation needs a name".to_string(),
            ));
        }
        if let Some(input) = &input {
            serde_json::from_str::<serde::de::IgnoredAny>(input).map_err(|e| {
                RuntimeError::Invalid(format!("the operation's input is not JSON: {e}"))
            })?;
        }
        let request = EntityRequest {
            id: id.clone(),
            kind: RequestKind::Operation {
                op: operation.to_string(),
                input,
                signal: true,
            },
            sender: None,
        };
        Ok(Message {
            id,
            destination: Destination::Instance {
                instance_id: entity.instance_id(),
                execution_id: None,
            },
            event: HistoryEvent::message(
                self.clock.now(),
                EventKind::EventRaised {
                    name: OPERATION_EVENT.to_string(),
                    input: Some(request.to_json()),
                },
            ),
            deliver_at: None,
            revision: None,
            more_calls: Vec::new(),
            trace_context: None,
            deferral_recorded: false,
        })
    }

    /// Refuses an entity no function handles, or whose key storage cannot hold.
    fn check_entity(&self, entity: &EntityId) -> Result<(), RuntimeError> {
        if !self.registry.has_entity(entity.name()) {
            return Err(RuntimeError::UnknownEntity(entity.name().to_string()));
        }
        // The same characters as an instance id's, past the leading '@'.
        InstanceId::parse(&entity.instance_id()[1..])?;
        Ok(())
    }

    /// The entity, `None` if it has no state (never set, or deleted).
    pub async fn entity(&self, entity: &EntityId) -> Result<Option<EntityStatus>, RuntimeError> {
        self.check_entity(entity)?;
        let Some(state) = self.backend.read_state(&entity.instance_id()).await? else {
            return Ok(None);
        };
        let scheduler =
            EntityScheduler::from_json(state.input.as_deref()).map_err(RuntimeError::Engine)?;
        Ok(EntityStatus::of(entity.clone(), scheduler))
    }

    /// A page of the entities of entity function `name` that have state, in key order.
    pub async fn entities(
        &self,
        name: &str,
        page_size: usize,
        continuation: Option<String>,
    ) -> Result<Page<EntityStatus>, RuntimeError> {
        let probe = EntityId::new(name, "-").map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        if !self.registry.has_entity(name) {
            return Err(RuntimeError::UnknownEntity(probe.name().to_string()));
        }
        let query = InstanceQuery {
            instance_id_prefix: Some(format!("@{}@", probe.name())),
            page_size,
            continuation,
            ..InstanceQuery::default()
        };
        let page = self.backend.query(&query).await?;
        let read = page.items.iter().map(|summary| async move {
            let Ok(entity) = EntityId::from_instance_id(&summary.instance_id) else {
                return Ok(None);
            };
            self.entity(&entity).await
        });
        let mut items = Vec::new();
        for found in join_all(read).await {
            items.extend(found?);
        }
        Ok(Page {
            items,
            continuation: page.continuation,
        })
    }
}

/// The summary of an entity instance: its input shows the entity's state, not the scheduler.
fn entity_summary(state: &InstanceState, scheduler: &EntityScheduler) -> InstanceSummary {
    let mut summary = state.summary();
    summary.input = scheduler.state.clone();
    summary
}
