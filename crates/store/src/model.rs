//! What the store keeps and moves: instance state with its outbox, history events with the ids
//! of the messages that delivered them, message envelopes, and instance summaries for queries.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use durable_engine::{
    FailureDetails, HistoryEvent, OrchestrationStatus, ParentInstance, TraceContext,
};

/// Unique id of a message; the key duplicates are recognised by.
pub type MessageId = String;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum Destination {
    /// An orchestration instance's control queue; `execution_id` pins completions to the
    /// execution that scheduled them, `None` goes to whatever execution is current.
    Instance {
        instance_id: String,
        execution_id: Option<String>,
    },
    /// The work-item queue: an activity call on behalf of an instance's execution.
    WorkItem {
        instance_id: String,
        execution_id: String,
    },
}

impl Destination {
    pub fn instance_id(&self) -> &str {
        match self {
            Self::Instance { instance_id, .. } | Self::WorkItem { instance_id, .. } => instance_id,
        }
    }
}

/// A message envelope: one history event on its way to an instance (or to an activity worker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Message {
    pub id: MessageId,
    pub destination: Destination,
    pub event: HistoryEvent,
    /// Not deliverable before this time (durable timers); `None` means at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<DateTime<Utc>>,
    /// On a client's start: the revision of the Pending summary the client wrote, which the new
    /// execution's commits must exceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Further activity calls of the same execution that a work item carries after `event`, so
    /// a large fan-out travels in fewer messages; empty for every other message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_calls: Vec<HistoryEvent>,
    /// The span this message was sent from: on a work item, its orchestration's span (the
    /// activities' parent); on a raised event, the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<TraceContext>,
    /// Set on the copy a deferral re-sends once the message is recorded as a
    /// [`DeferredMessage`], so later deferrals write nothing and whoever finally applies, drops
    /// or parks it knows to remove the record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferral_recorded: bool,
}

/// The state of an instance: the source of truth every write is guarded on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceState {
    pub instance_id: String,
    pub name: String,
    /// The execution's orchestration version (see `durable_engine::Versioning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The instance's tags, from its start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    pub execution_id: String,
    pub status: OrchestrationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentInstance>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Incremented by every commit, across executions: orders summary writes.
    pub revision: u64,
    /// Messages a committed turn decided to send that may not have been sent yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Message>,
    /// Ids of messages consumed by earlier executions (most recent last, bounded): history no
    /// longer holds them after continue-as-new, but their redeliveries must still be dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_message_ids: Vec<MessageId>,
    /// Earlier execution ids of this instance (most recent last, bounded), so a redelivered start
    /// of one of them is recognised as a duplicate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_execution_ids: Vec<String>,
    /// The current execution's parent span, from its ExecutionStarted: a turn parents what it
    /// schedules without reading the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<TraceContext>,
    /// How many times the current execution was rewound: each run after a rewind is a span of
    /// its own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rewinds: u32,
    /// Storage requests spent on the instance (a continue-as-new goes on counting, a new start
    /// of the id starts over), as the runtime records them at each commit: each commit adds
    /// the requests made since the last one, its own included. Absent (0) in what a build
    /// before the count wrote.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub storage_requests: u64,
}

fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl InstanceState {
    /// The query-model view of this state.
    pub fn summary(&self) -> InstanceSummary {
        InstanceSummary {
            instance_id: self.instance_id.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            tags: self.tags.clone(),
            scheduled_start_time: None,
            execution_id: self.execution_id.clone(),
            status: self.status,
            input: self.input.clone(),
            output: self.output.clone(),
            failure: self.failure.clone(),
            custom_status: self.custom_status.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            completed_at: self.completed_at,
            revision: self.revision,
            client_start_id: None,
            trace_context: None,
            poison_messages: 0,
            storage_requests: self.storage_requests,
        }
    }
}

/// A history event as stored: with the id of the message that delivered it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: HistoryEvent,
    pub message_id: Option<MessageId>,
}

/// An opaque optimistic-concurrency token (an ETag on Azure).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(pub String);

/// An instance as loaded for a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedInstance {
    pub state: InstanceState,
    /// The current execution's history, in order.
    pub history: Vec<HistoryEvent>,
    /// Ids of the messages whose events are in `history`.
    pub message_ids: MessageIds,
    pub version: Version,
}

/// The ids of the messages that delivered each history event, in history order: a set for
/// de-duplication, and per event so a rewritten history (a rewind) keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageIds {
    by_event: Vec<Option<MessageId>>,
    set: HashSet<MessageId>,
}

impl MessageIds {
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// The id of the message that delivered event `index`, if a message did.
    pub fn of_event(&self, index: usize) -> Option<&MessageId> {
        self.by_event.get(index).and_then(Option::as_ref)
    }

    /// Every id, in history order.
    pub fn iter(&self) -> impl Iterator<Item = &MessageId> {
        self.by_event.iter().flatten()
    }

    /// Records the message id (if any) of the event appended next.
    pub fn push(&mut self, id: Option<MessageId>) {
        if let Some(id) = &id {
            self.set.insert(id.clone());
        }
        self.by_event.push(id);
    }
}

impl FromIterator<Option<MessageId>> for MessageIds {
    fn from_iter<T: IntoIterator<Item = Option<MessageId>>>(events: T) -> Self {
        let by_event: Vec<Option<MessageId>> = events.into_iter().collect();
        let set = by_event.iter().flatten().cloned().collect();
        Self { by_event, set }
    }
}

impl IntoIterator for MessageIds {
    type Item = MessageId;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Option<MessageId>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_event.into_iter().flatten()
    }
}

/// One atomic write to an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub state: InstanceState,
    /// Appended to the current history; or, with `new_execution`, the whole history of the
    /// execution named in `state` (a first turn, a restart, or continue-as-new).
    pub events: Vec<StoredEvent>,
    pub new_execution: bool,
}

/// The query model of an instance (the `Instances` table row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceSummary {
    pub instance_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// On the Pending summary of a client's scheduled start: when it may run. The sweep leaves
    /// it alone until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_start_time: Option<DateTime<Utc>>,
    pub execution_id: String,
    pub status: OrchestrationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_status: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    pub revision: u64,
    /// On the Pending summary of a client's start: the id of its start message, which may never
    /// have reached a queue (the worker that took the start runs it in-process and may die
    /// first). A sweep re-sends the start from this summary; the instance's first commit
    /// replaces the summary and the id with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_start_id: Option<String>,
    /// On the Pending summary of a client's start: the span that parents the execution (the
    /// client's `traceparent`), so a start the sweep rebuilds keeps its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<TraceContext>,
    /// How many of the instance's messages are parked as poison messages. The backend keeps
    /// it from the poison records: summary writes neither set nor clear it.
    #[serde(skip)]
    pub poison_messages: u32,
    /// The instance's storage requests when the summary was written: its state's count plus
    /// what was spent since its last commit, this write included (see
    /// [`InstanceState::storage_requests`]); a state committed later may hold more.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub storage_requests: u64,
}

/// A filter over instance summaries; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceQuery {
    pub statuses: Vec<OrchestrationStatus>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// Last changed at or before this time: for an instance that has ended, when it ended.
    pub updated_to: Option<DateTime<Utc>>,
    pub instance_id_prefix: Option<String>,
    /// Only instances of this orchestration version.
    pub version: Option<String>,
    /// Only instances with every one of these tags.
    pub tags: Vec<TagFilter>,
    /// Page size (at most this many results per page).
    pub page_size: usize,
    /// Continuation token from the previous page.
    pub continuation: Option<String>,
}

/// A tag an instance must have: the key, with this value if one is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub value: Option<String>,
}

impl TagFilter {
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match (tags.get(&self.key), &self.value) {
            (Some(found), Some(wanted)) => found == wanted,
            (found, None) => found.is_some(),
            (None, Some(_)) => false,
        }
    }
}

impl InstanceQuery {
    /// Whether `summary` passes the filters a backend applies after reading (the others it
    /// applies in its query).
    pub fn keeps(&self, summary: &InstanceSummary) -> bool {
        self.tags.iter().all(|tag| tag.matches(&summary.tags))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub continuation: Option<String>,
}

/// A message the runtime gave up on (it failed on every attempt, could not be read, or has no
/// instance to go to), parked with why until an operator requeues or discards it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoisonMessage {
    /// The message's own id when it could be read, else its queue message's id.
    pub id: String,
    /// The queue it came from.
    pub queue: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub reason: String,
    /// How many times it was delivered before it was parked.
    pub attempts: u32,
    pub parked_at: DateTime<Utc>,
    /// The message, when it could be read: what a requeue sends again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// The queue message's text, when it could not be read as a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A message deferred while it waits for its instance's start, recorded once it has waited long
/// enough to be worth an operator's look, until it is applied, dropped or parked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeferredMessage {
    /// The message's id.
    pub id: MessageId,
    pub instance_id: String,
    /// The queue it waits on.
    pub queue: String,
    /// The history event it carries: `EventRaised`, `ExecutionTerminated`, …
    pub event_type: String,
    /// The event's name, where it has one (an external event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// When it was sent: its wait runs from here.
    pub sent_at: DateTime<Utc>,
    /// From then on, its next delivery parks it as a poison message if the start has still not
    /// come.
    pub parks_at: DateTime<Utc>,
}

/// A filter over poison messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoisonQuery {
    pub instance_id: Option<String>,
    pub page_size: usize,
    pub continuation: Option<String>,
}

/// The queues of a task hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueKind {
    Control(u32),
    WorkItems,
}

impl QueueKind {
    /// The queue as operators see it named: `control-NN` or `workitems`, the task hub's queue
    /// names without the hub.
    pub fn label(self) -> String {
        match self {
            Self::Control(index) => format!("control-{index:02}"),
            Self::WorkItems => "workitems".to_string(),
        }
    }
}

/// Proof of having received a message, needed to delete it or make it visible again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub queue: QueueKind,
    pub message_key: String,
    pub pop_receipt: String,
}

/// A message taken off a queue, invisible to others until its visibility lapses.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub message: Message,
    pub dequeue_count: u32,
    pub receipt: Receipt,
}
