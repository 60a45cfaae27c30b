//! Actions: the work an orchestrator turn asks the runtime to dispatch, each tagged with the
//! sequence number that its decision event carries in history.

use chrono::{DateTime, Utc};

use super::history::{EventKind, HistoryEvent};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    ScheduleTask {
        id: i32,
        name: String,
        input: Option<String>,
    },
    CreateSubOrchestration {
        id: i32,
        name: String,
        instance_id: String,
        input: Option<String>,
    },
    CreateTimer {
        id: i32,
        fire_at: DateTime<Utc>,
    },
    SendEvent {
        id: i32,
        instance_id: String,
        name: String,
        input: Option<String>,
    },
}

impl Action {
    pub fn id(&self) -> i32 {
        match self {
            Self::ScheduleTask { id, .. }
            | Self::CreateSubOrchestration { id, .. }
            | Self::CreateTimer { id, .. }
            | Self::SendEvent { id, .. } => *id,
        }
    }

    /// The decision event that records this action in history.
    pub fn to_history_event(&self, timestamp: DateTime<Utc>) -> HistoryEvent {
        let kind = match self.clone() {
            Self::ScheduleTask { name, input, .. } => EventKind::TaskScheduled {
                name,
                version: None,
                input,
            },
            Self::CreateSubOrchestration {
                name,
                instance_id,
                input,
                ..
            } => EventKind::SubOrchestrationInstanceCreated {
                name,
                version: None,
                instance_id,
                input,
            },
            Self::CreateTimer { fire_at, .. } => EventKind::TimerCreated { fire_at },
            Self::SendEvent {
                instance_id,
                name,
                input,
                ..
            } => EventKind::EventSent {
                instance_id,
                name,
                input,
            },
        };
        HistoryEvent::new(self.id(), timestamp, kind)
    }

    /// Whether a decision event in history records this action: same kind and, as in
    /// DurableTask.Core, the same name compared case-insensitively. Inputs and fire times are
    /// deliberately not compared.
    pub(crate) fn matches_decision(&self, kind: &EventKind) -> bool {
        match (self, kind) {
            (Self::ScheduleTask { name: a, .. }, EventKind::TaskScheduled { name: b, .. })
            | (
                Self::CreateSubOrchestration { name: a, .. },
                EventKind::SubOrchestrationInstanceCreated { name: b, .. },
            )
            | (Self::SendEvent { name: a, .. }, EventKind::EventSent { name: b, .. }) => {
                a.eq_ignore_ascii_case(b)
            }
            (Self::CreateTimer { .. }, EventKind::TimerCreated { .. }) => true,
            _ => false,
        }
    }

    /// Whether a completion event can complete this action.
    pub(crate) fn accepts_completion(&self, kind: &EventKind) -> bool {
        matches!(
            (self, kind),
            (
                Self::ScheduleTask { .. },
                EventKind::TaskCompleted { .. } | EventKind::TaskFailed { .. }
            ) | (
                Self::CreateSubOrchestration { .. },
                EventKind::SubOrchestrationInstanceCompleted { .. }
                    | EventKind::SubOrchestrationInstanceFailed { .. }
            ) | (Self::CreateTimer { .. }, EventKind::TimerFired { .. })
        )
    }

    /// Human-readable form for nondeterminism reports.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::ScheduleTask { name, .. } => format!("activity '{name}'"),
            Self::CreateSubOrchestration { name, .. } => format!("sub-orchestration '{name}'"),
            Self::CreateTimer { .. } => "a timer".to_string(),
            Self::SendEvent {
                name, instance_id, ..
            } => format!("event '{name}' sent to '{instance_id}'"),
        }
    }
}
