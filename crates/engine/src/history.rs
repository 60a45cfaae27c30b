//! The history event model: the Durable Task event types with their field names, serialized the
//! way DurableTask.Core names them so that stored histories stay readable by its tooling habits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One entry of an execution's append-only history.
///
/// `event_id` is the orchestrator's sequence number for decision events (TaskScheduled,
/// TimerCreated, SubOrchestrationInstanceCreated, EventSent, ExecutionCompleted, ContinueAsNew)
/// and `-1` for every other event, as in DurableTask.Core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryEvent {
    pub event_id: i32,
    pub timestamp: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl HistoryEvent {
    pub fn new(event_id: i32, timestamp: DateTime<Utc>, kind: EventKind) -> Self {
        Self {
            event_id,
            timestamp,
            kind,
        }
    }

    /// An event that is not a decision of the orchestrator (event id `-1`).
    pub fn message(timestamp: DateTime<Utc>, kind: EventKind) -> Self {
        Self::new(-1, timestamp, kind)
    }

    pub fn event_type(&self) -> EventType {
        self.kind.event_type()
    }
}

/// Identity of one execution of an orchestration instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrchestrationInstance {
    pub instance_id: String,
    pub execution_id: String,
}

/// The parent of a sub-orchestration, carried in the child's ExecutionStarted event so the child's
/// completion can be routed back to the parent's waiting task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParentInstance {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub orchestration_instance: OrchestrationInstance,
    pub task_schedule_id: i32,
}

/// A W3C trace context (`traceparent`, `tracestate`), as DurableTask.Core's
/// `DistributedTraceContext`: stored, never interpreted by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TraceContext {
    pub trace_parent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_state: Option<String>,
}

/// Structured description of a failure, as DurableTask.Core's `FailureDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailureDetails {
    pub error_type: String,
    pub error_message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_failure: Option<Box<FailureDetails>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_non_retriable: bool,
}

impl FailureDetails {
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.into(),
            stack_trace: None,
            inner_failure: None,
            is_non_retriable: false,
        }
    }
}

/// Runtime status of an orchestration, with DurableTask.Core's names and numeric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrchestrationStatus {
    Running = 0,
    Completed = 1,
    ContinuedAsNew = 2,
    Failed = 3,
    Canceled = 4,
    Terminated = 5,
    Pending = 6,
    Suspended = 7,
}

impl OrchestrationStatus {
    /// Whether no further history can be written to this execution.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Canceled | Self::Terminated
        )
    }
}

/// DurableTask.Core's `EventType` numbering. The numbers are a wire contract: append, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ExecutionStarted = 0,
    ExecutionCompleted = 1,
    ExecutionFailed = 2,
    ExecutionTerminated = 3,
    TaskScheduled = 4,
    TaskCompleted = 5,
    TaskFailed = 6,
    SubOrchestrationInstanceCreated = 7,
    SubOrchestrationInstanceCompleted = 8,
    SubOrchestrationInstanceFailed = 9,
    TimerCreated = 10,
    TimerFired = 11,
    OrchestratorStarted = 12,
    OrchestratorCompleted = 13,
    EventSent = 14,
    EventRaised = 15,
    ContinueAsNew = 16,
    GenericEvent = 17,
    HistoryState = 18,
    ExecutionSuspended = 19,
    ExecutionResumed = 20,
    ExecutionRewound = 21,
}

/// The event-specific part of a [`HistoryEvent`]; the variant name is serialized as `EventType`.
///
/// Payloads (`Input`, `Result`) are JSON text, exactly as the orchestrator or activity serialized
/// them, so that replay never re-encodes a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "EventType", rename_all_fields = "PascalCase")]
pub enum EventKind {
    ExecutionStarted {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
        orchestration_instance: OrchestrationInstance,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_instance: Option<ParentInstance>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduled_start_time: Option<DateTime<Utc>>,
        /// The span the execution's span is a child of: the client's start, or the parent
        /// orchestration's span for a sub-orchestration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_trace_context: Option<TraceContext>,
        /// The instance's tags (string to string, set at start, kept by continue-as-new).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        tags: BTreeMap<String, String>,
    },
    ExecutionCompleted {
        orchestration_status: OrchestrationStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure_details: Option<FailureDetails>,
    },
    ExecutionTerminated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
        /// The execution's open sub-orchestrations are terminated with it, and theirs with them
        /// (the Durable Task protocol's `recurse`). The engine only records it; the runtime
        /// sends the terminations when the execution ends.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        recurse: bool,
    },
    TaskScheduled {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    TaskCompleted {
        task_scheduled_id: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
    },
    TaskFailed {
        task_scheduled_id: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure_details: Option<FailureDetails>,
    },
    SubOrchestrationInstanceCreated {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        instance_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    SubOrchestrationInstanceCompleted {
        task_scheduled_id: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
    },
    SubOrchestrationInstanceFailed {
        task_scheduled_id: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure_details: Option<FailureDetails>,
    },
    TimerCreated {
        fire_at: DateTime<Utc>,
    },
    TimerFired {
        timer_id: i32,
        fire_at: DateTime<Utc>,
    },
    OrchestratorStarted,
    OrchestratorCompleted,
    EventSent {
        instance_id: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    EventRaised {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    ContinueAsNew {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
    },
    ExecutionSuspended {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    ExecutionResumed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    GenericEvent {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
}

impl EventKind {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::ExecutionStarted { .. } => EventType::ExecutionStarted,
            Self::ExecutionCompleted { .. } => EventType::ExecutionCompleted,
            Self::ExecutionTerminated { .. } => EventType::ExecutionTerminated,
            Self::TaskScheduled { .. } => EventType::TaskScheduled,
            Self::TaskCompleted { .. } => EventType::TaskCompleted,
            Self::TaskFailed { .. } => EventType::TaskFailed,
            Self::SubOrchestrationInstanceCreated { .. } => {
                EventType::SubOrchestrationInstanceCreated
            }
            Self::SubOrchestrationInstanceCompleted { .. } => {
                EventType::SubOrchestrationInstanceCompleted
            }
            Self::SubOrchestrationInstanceFailed { .. } => {
                EventType::SubOrchestrationInstanceFailed
            }
            Self::TimerCreated { .. } => EventType::TimerCreated,
            Self::TimerFired { .. } => EventType::TimerFired,
            Self::OrchestratorStarted => EventType::OrchestratorStarted,
            Self::OrchestratorCompleted => EventType::OrchestratorCompleted,
            Self::EventSent { .. } => EventType::EventSent,
            Self::EventRaised { .. } => EventType::EventRaised,
            Self::ContinueAsNew { .. } => EventType::ContinueAsNew,
            Self::ExecutionSuspended { .. } => EventType::ExecutionSuspended,
            Self::ExecutionResumed { .. } => EventType::ExecutionResumed,
            Self::GenericEvent { .. } => EventType::GenericEvent,
        }
    }

    /// The sequence number of the task this event completes (activity, sub-orchestration or
    /// timer), if it is a completion.
    pub fn completed_task_id(&self) -> Option<i32> {
        match self {
            Self::TaskCompleted {
                task_scheduled_id, ..
            }
            | Self::TaskFailed {
                task_scheduled_id, ..
            }
            | Self::SubOrchestrationInstanceCompleted {
                task_scheduled_id, ..
            }
            | Self::SubOrchestrationInstanceFailed {
                task_scheduled_id, ..
            } => Some(*task_scheduled_id),
            Self::TimerFired { timer_id, .. } => Some(*timer_id),
            _ => None,
        }
    }

    /// Events a turn writes after the messages it consumed: the orchestrator's decisions, its
    /// completion and the closing OrchestratorCompleted marker.
    pub fn is_turn_output(&self) -> bool {
        matches!(
            self,
            Self::TaskScheduled { .. }
                | Self::TimerCreated { .. }
                | Self::SubOrchestrationInstanceCreated { .. }
                | Self::EventSent { .. }
                | Self::ExecutionCompleted { .. }
                | Self::ContinueAsNew { .. }
                | Self::OrchestratorCompleted
        )
    }
}
