//! Client operations: start or restart an instance, raise an event, terminate, suspend, resume,
//! read status and history. Each sends a message to the instance's control queue; the turn that
//! processes it does the rest.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use serde::Serialize;

use super::outbox::timer_hop;
use super::storage_requests::counted;
use super::{spans, Runtime, RuntimeError};
use durable_engine::{EventKind, HistoryEvent, OrchestrationInstance, OrchestrationStatus};
use durable_store::backend::Backend;
use durable_store::model::{Destination, InstanceSummary, LoadedInstance, Message, Receipt};
use durable_store::names::InstanceId;

/// Where a client's start message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDelivery {
    /// To the instance's control queue, for whichever worker receives it.
    Queue,
    /// Nowhere yet: the caller processes it at once with [`Runtime::process_started`].
    Here,
}

/// How a start runs, beyond its orchestrator, id and input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// The execution's version; the worker's default version (see
    /// [`RuntimeOptions::versioning`](crate::RuntimeOptions::versioning)) when `None`.
    pub version: Option<String>,
    /// At most [`MAX_TAGS_BYTES`] as JSON; keys are not empty.
    pub tags: BTreeMap<String, String>,
    /// The execution runs no earlier than this.
    pub scheduled_start: Option<DateTime<Utc>>,
}

/// The most a start's tags may take as JSON, as Durable Task Scheduler allows.
pub const MAX_TAGS_BYTES: usize = 1000;
/// The longest version a start may name.
pub const MAX_VERSION_CHARS: usize = 100;

impl StartOptions {
    fn validate(&self) -> Result<(), RuntimeError> {
        let tags = serde_json::to_string(&self.tags).unwrap_or_default();
        if tags.len() > MAX_TAGS_BYTES {
            return Err(RuntimeError::Invalid(format!(
                "the tags take {} bytes as JSON; at most {MAX_TAGS_BYTES} are allowed",
                tags.len()
            )));
        }
        if self.tags.keys().any(String::is_empty) {
            return Err(RuntimeError::Invalid(
                "a tag's key must not be empty".to_string(),
            ));
        }
        if let Some(version) = &self.version {
            if version.chars().count() > MAX_VERSION_CHARS || version.chars().any(char::is_control)
            {
                return Err(RuntimeError::Invalid(format!(
                    "a version is at most {MAX_VERSION_CHARS} characters, none of them control \
                     characters"
                )));
            }
        }
        Ok(())
    }
}

/// A client operation's message, for a caller that also processes it at once (see
/// [`Runtime::process_queued`]): queued, queued held, or (a start taken with
/// [`StartDelivery::Here`]) not queued at all.
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
    /// or (`new_id == false`) the same one, which must have ended. Returns the queued start.
    /// The restart keeps the version and tags.
    pub async fn restart(&self, instance_id: &str, new_id: bool) -> Result<Queued, RuntimeError> {
        let (instance_id, summary) = self.existing_summary(instance_id).await?;
        let input = summary.input.unwrap_or_else(|| "null".to_string());
        let id = (!new_id).then_some(instance_id.as_str());
        let options = StartOptions {
            version: summary.version,
            tags: summary.tags,
            scheduled_start: None,
        };
        self.start_message(&summary.name, id, input, &options, StartDelivery::Queue)
            .await
    }

    /// `start` with the input already JSON text, kept byte for byte.
    pub async fn start_json(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: String,
    ) -> Result<String, RuntimeError> {
        let started = self
            .start_message(
                name,
                instance_id,
                input,
                &StartOptions::default(),
                StartDelivery::Queue,
            )
            .await?;
        Ok(started.message.destination.instance_id().to_string())
    }

    /// `start_json`, returning the start message, so the caller may process it at once. With
    /// [`StartDelivery::Here`] the message is not queued: the caller hands it to
    /// [`Runtime::process_started`], which queues it only if processing fails. Either way the
    /// Pending summary is written first and names the start message, so a start lost with its
    /// worker, or whose queueing failed, is re-sent by [`Runtime::sweep_unstarted`]. A start
    /// scheduled for later is queued, for then, whatever `delivery` asks.
    pub async fn start_message(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: String,
        options: &StartOptions,
        delivery: StartDelivery,
    ) -> Result<Queued, RuntimeError> {
        if !self.registry.has_orchestrator(name) {
            return Err(RuntimeError::UnknownOrchestrator(name.to_string()));
        }
        options.validate()?;
        let later = options
            .scheduled_start
            .is_some_and(|at| at > self.clock.now());
        let delivery = if later {
            StartDelivery::Queue
        } else {
            delivery
        };
        let instance_id = match instance_id {
            Some(id) => InstanceId::parse(id)?.into_string(),
            None => self.options.ids.next_id(),
        };
        // An id without a summary has no instance: every start creates the summary before its
        // instance's first commit (a client's start here; any other start, a
        // sub-orchestration's, in that turn). So a new id needs no read: the insert-only
        // create is the check.
        let (mut message, mut summary) = self.start_records(name, &instance_id, input, options);
        let start = async {
            let new_instance = self
                .backend
                .create_summary(&counted(summary.clone()))
                .await?;
            if !new_instance {
                summary.revision = self.start_revision(&instance_id).await?;
                message.revision = Some(summary.revision);
                self.backend
                    .write_summary(&counted(summary.clone()))
                    .await?;
            }
            if delivery == StartDelivery::Queue {
                // Should this fail, the Pending summary stays: a retry finds the id taken, and
                // the sweep sends the start. Deleting the summary instead could race a send that
                // went through after all and a worker that already processed it.
                self.backend.send(std::slice::from_ref(&message)).await?;
            }
            Ok(Queued {
                message,
                receipt: None,
                new_instance,
            })
        };
        self.on_behalf_of(&instance_id, start).await
    }

    /// The revision a start of an id that has a summary takes: above the ended instance's, or
    /// an error if the instance (or a start of it) is still open.
    async fn start_revision(&self, instance_id: &str) -> Result<u64, RuntimeError> {
        // The state alone (a point read) says whether the id is taken; its history is not needed.
        let open = |status: OrchestrationStatus| RuntimeError::AlreadyExists {
            instance_id: instance_id.to_string(),
            status,
        };
        match self.backend.read_state(instance_id).await? {
            Some(existing) if !existing.status.is_terminal() => Err(open(existing.status)),
            Some(existing) => Ok(existing.revision + 1),
            // Started but not processed yet: only the Pending summary exists.
            None => match self.backend.read_summary(instance_id).await? {
                Some(summary) if !summary.status.is_terminal() => Err(open(summary.status)),
                Some(summary) => Ok(summary.revision + 1),
                // Purged between the create and this read: a start of a new id.
                None => Ok(1),
            },
        }
    }

    /// The start message of a new execution of `name` as `instance_id`, and its Pending summary,
    /// at revision 1, a new id's (a reused id's start raises both).
    fn start_records(
        &self,
        name: &str,
        instance_id: &str,
        input: String,
        options: &StartOptions,
    ) -> (Message, InstanceSummary) {
        let now = self.clock.now();
        let version = options
            .version
            .clone()
            .or_else(|| self.options.versioning.default_version.clone());
        let summary = InstanceSummary {
            instance_id: instance_id.to_string(),
            name: name.to_string(),
            version,
            tags: options.tags.clone(),
            scheduled_start_time: options.scheduled_start,
            execution_id: self.options.ids.next_id(),
            status: OrchestrationStatus::Pending,
            input: Some(input),
            output: None,
            failure: None,
            custom_status: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            revision: 1,
            client_start_id: None,
            // The caller's span (the worker's `create_orchestration`) parents the execution,
            // kept on the summary for a start the sweep rebuilds.
            trace_context: spans::current(),
            poison_messages: 0,
            storage_requests: 0,
        };
        let message = client_start(&summary, self.options.ids.next_id());
        let summary = InstanceSummary {
            client_start_id: Some(message.id.clone()),
            ..summary
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
        self.send_terminate(instance_id, reason, false).await
    }

    /// Terminates the instance and, when its termination is applied, its open
    /// sub-orchestrations with the same reason, and theirs with them, all the way down.
    pub async fn terminate_recursive(
        &self,
        instance_id: &str,
        reason: &str,
    ) -> Result<(), RuntimeError> {
        self.send_terminate(instance_id, reason, true).await
    }

    async fn send_terminate(
        &self,
        instance_id: &str,
        reason: &str,
        recurse: bool,
    ) -> Result<(), RuntimeError> {
        let input = serde_json::to_string(reason).ok();
        let kind = EventKind::ExecutionTerminated { input, recurse };
        self.send_to_live_instance(instance_id, kind, None)
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
        Ok(self
            .instance(instance_id)
            .await?
            .map(|loaded| loaded.history))
    }

    /// The instance's state and current execution's history; `None` if it has no state yet.
    pub async fn instance(
        &self,
        instance_id: &str,
    ) -> Result<Option<LoadedInstance>, RuntimeError> {
        let instance_id = InstanceId::parse(instance_id)?;
        Ok(self.backend.load(instance_id.as_str()).await?)
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
        let instance_id = InstanceId::parse(instance_id)?.into_string();
        let sent = self.send_to_live(&instance_id, kind, hold);
        self.on_behalf_of(&instance_id, sent).await
    }

    /// `send_to_live_instance`, unmeasured.
    async fn send_to_live(
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
        if let Some(at) = summary
            .scheduled_start_time
            .filter(|at| summary.status == OrchestrationStatus::Pending && *at > self.clock.now())
        {
            return Err(RuntimeError::NotStarted { instance_id, at });
        }
        let message = Message {
            more_calls: Vec::new(),
            // The client's span, which a raised event's delivery is reported in.
            trace_context: spans::current(),
            deferral_recorded: false,
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

/// The start message `id` of a client's Pending summary: the same message whether built for the
/// start or rebuilt by the sweep, so a re-sent start is a recognised duplicate of the original.
pub(crate) fn client_start(summary: &InstanceSummary, id: String) -> Message {
    Message {
        more_calls: Vec::new(),
        trace_context: None,
        deferral_recorded: false,
        id,
        destination: Destination::Instance {
            instance_id: summary.instance_id.clone(),
            execution_id: None,
        },
        event: HistoryEvent::message(
            summary.created_at,
            EventKind::ExecutionStarted {
                name: summary.name.clone(),
                version: summary.version.clone(),
                input: summary.input.clone(),
                orchestration_instance: OrchestrationInstance {
                    instance_id: summary.instance_id.clone(),
                    execution_id: summary.execution_id.clone(),
                },
                parent_instance: None,
                scheduled_start_time: summary.scheduled_start_time,
                parent_trace_context: summary.trace_context.clone(),
                tags: summary.tags.clone(),
            },
        ),
        // Queues hold a message for a week at most: a later start hops (see `Plan::Rearm`).
        deliver_at: summary
            .scheduled_start_time
            .map(|at| timer_hop(at, summary.created_at)),
        revision: Some(summary.revision),
    }
}
