//! Client operations: start or restart an instance, raise an event, terminate, suspend, resume,
//! read status and history. Each sends a message to the instance's control queue; the turn that
//! processes it does the rest.

use std::time::Duration;

use serde::Serialize;

use super::{Runtime, RuntimeError};
use durable_engine::{EventKind, HistoryEvent, OrchestrationInstance, OrchestrationStatus};
use durable_store::backend::Backend;
use durable_store::model::{Destination, InstanceSummary, Message, Receipt};
use durable_store::names::InstanceId;

/// A message a client operation queued, for a caller that also processes it at once (see
/// [`Runtime::process_queued`]).
#[derive(Debug, Clone)]
pub struct Queued {
    pub message: Message,
    /// The held copy's receipt, when the message was queued held (see [`Backend::send_held`]).
    pub receipt: Option<Receipt>,
    /// The message starts an id of which nothing existed when it was queued.
    pub new_instance: bool,
}

impl<B: Backend> Runtime<B> {
    /// Starts orchestrator `name` as `instance_id` (a new id when `None`) and returns the id. An
    /// id can be reused once its instance has ended, as Durable Functions allows by default.
    pub async fn start<I: Serialize + ?Sized>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: &I,
    ) -> Result<String, RuntimeError> {
        let input = serde_json::to_string(input)
            .map_err(|e| RuntimeError::Invalid(format!("the input cannot be serialized: {e}")))?;
        self.start_json(name, instance_id, input).await
    }

    /// Starts a new instance with the input of `instance_id`'s current execution, under a new id
    /// or (`new_id == false`) the same one, which must have ended. Returns the started id.
    pub async fn restart(&self, instance_id: &str, new_id: bool) -> Result<String, RuntimeError> {
        let (instance_id, summary) = self.existing_summary(instance_id).await?;
        let input = summary.input.unwrap_or_else(|| "null".to_string());
        let id = (!new_id).then_some(instance_id.as_str());
        self.start_json(&summary.name, id, input).await
    }

    /// `start` with the input already JSON text, kept byte for byte.
    pub async fn start_json(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: String,
    ) -> Result<String, RuntimeError> {
        let started = self.start_message(name, instance_id, input, None).await?;
        Ok(started.message.destination.instance_id().to_string())
    }

    /// `start_json`, returning the start message it queued, so the caller may also process it
    /// at once (see [`Runtime::process_queued`]). With `hold`, the queued copy stays hidden that
    /// long and its receipt comes back, so the caller can delete it once processed instead of
    /// receiving it later as a duplicate.
    pub async fn start_message(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: String,
        hold: Option<Duration>,
    ) -> Result<Queued, RuntimeError> {
        if !self.registry.has_orchestrator(name) {
            return Err(RuntimeError::UnknownOrchestrator(name.to_string()));
        }
        let instance_id = match instance_id {
            Some(id) => InstanceId::parse(id)?.into_string(),
            None => self.options.ids.next_id(),
        };
        if let Some(hold) = hold {
            if let Some(started) = self.start_unseen(name, &instance_id, &input, hold).await? {
                return Ok(started);
            }
        }
        // The state alone (a point read) says whether the id is taken; its history is not needed.
        let state = self.backend.read_state(&instance_id).await?;
        // The start's revision, and whether nothing of this id exists yet.
        let (revision, new_instance) = match state {
            Some(existing) if !existing.status.is_terminal() => {
                return Err(RuntimeError::AlreadyExists {
                    instance_id,
                    status: existing.status,
                })
            }
            Some(existing) => (existing.revision + 1, false),
            // Started but not processed yet: only the Pending summary exists.
            None => match self.backend.read_summary(&instance_id).await? {
                Some(summary) if !summary.status.is_terminal() => {
                    return Err(RuntimeError::AlreadyExists {
                        instance_id,
                        status: summary.status,
                    })
                }
                Some(summary) => (summary.revision + 1, false),
                None => (1, true),
            },
        };
        let (message, summary) = self.start_records(name, &instance_id, input, revision);
        // The message goes first: a crash before the summary leaves a start that writes it when
        // processed, never a Pending summary with nothing to process.
        let receipt = self.queue(&message, hold).await?;
        self.backend.write_summary(&summary).await?;
        Ok(Queued {
            message,
            receipt,
            new_instance,
        })
    }

    /// Starts an id without reading anything first: the held start goes out, then the Pending
    /// summary is created only if the id has none. If it has one (a start not processed yet, an
    /// instance running or ended), the start is taken back and `None` returned, so the caller
    /// decides from the state and summary. An id without a summary has no instance: every start
    /// creates one before its instance's first commit, a client's start here, any other (a
    /// sub-orchestration's, a queued client start whose summary write failed) in that turn.
    async fn start_unseen(
        &self,
        name: &str,
        instance_id: &str,
        input: &str,
        hold: Duration,
    ) -> Result<Option<Queued>, RuntimeError> {
        let (message, summary) = self.start_records(name, instance_id, input.to_string(), 1);
        let receipt = self.backend.send_held(&message, hold).await?;
        let created = match self.backend.create_summary(&summary).await {
            Ok(created) => created,
            Err(error) => {
                // The summary may have been written before the failure, and a Pending summary
                // must always have its start on the way: release the start to be processed now,
                // as a start whose summary write failed on the other path is.
                if let Err(release) = self.backend.abandon(&receipt, Duration::ZERO).await {
                    tracing::warn!("the start of '{instance_id}' stays held: {release}");
                }
                return Err(error.into());
            }
        };
        if !created {
            // Should the delete fail, the start turns up after the hold and, numbered 1, is
            // dropped because the id exists.
            self.backend.delete(&receipt).await?;
            return Ok(None);
        }
        Ok(Some(Queued {
            message,
            receipt: Some(receipt),
            new_instance: true,
        }))
    }

    /// The start message of a new execution of `name` as `instance_id`, and its Pending summary.
    fn start_records(
        &self,
        name: &str,
        instance_id: &str,
        input: String,
        revision: u64,
    ) -> (Message, InstanceSummary) {
        let now = self.clock.now();
        let execution_id = self.options.ids.next_id();
        let message = Message {
            more_calls: Vec::new(),
            id: self.options.ids.next_id(),
            destination: Destination::Instance {
                instance_id: instance_id.to_string(),
                execution_id: None,
            },
            event: HistoryEvent::message(
                now,
                EventKind::ExecutionStarted {
                    name: name.to_string(),
                    version: None,
                    input: Some(input.clone()),
                    orchestration_instance: OrchestrationInstance {
                        instance_id: instance_id.to_string(),
                        execution_id: execution_id.clone(),
                    },
                    parent_instance: None,
                    scheduled_start_time: None,
                },
            ),
            deliver_at: None,
            revision: Some(revision),
        };
        let summary = InstanceSummary {
            instance_id: instance_id.to_string(),
            name: name.to_string(),
            execution_id,
            status: OrchestrationStatus::Pending,
            input: Some(input),
            output: None,
            failure: None,
            custom_status: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            revision,
        };
        (message, summary)
    }

    /// Sends one message, held hidden for `hold` (see [`Backend::send_held`]) if given.
    async fn queue(
        &self,
        message: &Message,
        hold: Option<Duration>,
    ) -> Result<Option<Receipt>, RuntimeError> {
        match hold {
            Some(hold) => Ok(Some(self.backend.send_held(message, hold).await?)),
            None => {
                self.backend.send(std::slice::from_ref(message)).await?;
                Ok(None)
            }
        }
    }

    pub async fn raise_event<T: Serialize + ?Sized>(
        &self,
        instance_id: &str,
        name: &str,
        data: &T,
    ) -> Result<(), RuntimeError> {
        let input = serde_json::to_string(data).map_err(|e| {
            RuntimeError::Invalid(format!("the event data cannot be serialized: {e}"))
        })?;
        self.raise_event_message(instance_id, name, input, None)
            .await
            .map(drop)
    }

    /// Raises an event with its data already JSON text (kept byte for byte), returning the
    /// message it queued and, with `hold`, its receipt (see [`Runtime::start_message`]).
    pub async fn raise_event_message(
        &self,
        instance_id: &str,
        name: &str,
        input: String,
        hold: Option<Duration>,
    ) -> Result<Queued, RuntimeError> {
        let kind = EventKind::EventRaised {
            name: name.to_string(),
            input: Some(input),
        };
        self.send_to_live_instance(instance_id, kind, hold).await
    }

    pub async fn terminate(&self, instance_id: &str, reason: &str) -> Result<(), RuntimeError> {
        let input = serde_json::to_string(reason).ok();
        self.send_to_live_instance(instance_id, EventKind::ExecutionTerminated { input }, None)
            .await
            .map(drop)
    }

    pub async fn suspend(&self, instance_id: &str, reason: &str) -> Result<(), RuntimeError> {
        let reason = Some(reason.to_string());
        self.send_to_live_instance(instance_id, EventKind::ExecutionSuspended { reason }, None)
            .await
            .map(drop)
    }

    pub async fn resume(&self, instance_id: &str, reason: &str) -> Result<(), RuntimeError> {
        let reason = Some(reason.to_string());
        self.send_to_live_instance(instance_id, EventKind::ExecutionResumed { reason }, None)
            .await
            .map(drop)
    }

    pub async fn status(&self, instance_id: &str) -> Result<Option<InstanceSummary>, RuntimeError> {
        Ok(self.backend.read_summary(instance_id).await?)
    }

    /// The current execution's history; `None` if the instance has no state yet.
    pub async fn history(
        &self,
        instance_id: &str,
    ) -> Result<Option<Vec<HistoryEvent>>, RuntimeError> {
        let instance_id = InstanceId::parse(instance_id)?;
        Ok(self
            .backend
            .load(instance_id.as_str())
            .await?
            .map(|loaded| loaded.history))
    }

    /// The validated id and summary of an instance that must exist.
    async fn existing_summary(
        &self,
        instance_id: &str,
    ) -> Result<(String, InstanceSummary), RuntimeError> {
        let instance_id = InstanceId::parse(instance_id)?.into_string();
        let summary = self
            .backend
            .read_summary(&instance_id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(instance_id.clone()))?;
        Ok((instance_id, summary))
    }

    async fn send_to_live_instance(
        &self,
        instance_id: &str,
        kind: EventKind,
        hold: Option<Duration>,
    ) -> Result<Queued, RuntimeError> {
        let (instance_id, summary) = self.existing_summary(instance_id).await?;
        if summary.status.is_terminal() {
            return Err(RuntimeError::Ended {
                instance_id,
                status: summary.status,
            });
        }
        let message = Message {
            more_calls: Vec::new(),
            id: self.options.ids.next_id(),
            destination: Destination::Instance {
                instance_id,
                execution_id: None,
            },
            event: HistoryEvent::message(self.clock.now(), kind),
            deliver_at: None,
            revision: None,
        };
        let receipt = self.queue(&message, hold).await?;
        Ok(Queued {
            message,
            receipt,
            new_instance: false,
        })
    }
}
