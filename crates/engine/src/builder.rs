//! A builder for hand-written histories, so tests read as the event sequence they replay.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::{EventKind, FailureDetails, HistoryEvent, OrchestrationInstance, OrchestrationStatus};

pub struct HistoryBuilder {
    instance: OrchestrationInstance,
    time: DateTime<Utc>,
    events: Vec<HistoryEvent>,
}

fn json(value: &(impl Serialize + ?Sized)) -> Option<String> {
    Some(serde_json::to_string(value).expect("test payloads serialize"))
}

impl HistoryBuilder {
    /// Starts at 2026-01-01T00:00:00Z with execution id `exec-1`.
    pub fn new(instance_id: &str) -> Self {
        Self {
            instance: OrchestrationInstance {
                instance_id: instance_id.to_string(),
                execution_id: "exec-1".to_string(),
            },
            time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            events: Vec::new(),
        }
    }

    /// The current time of the builder; events are stamped with it.
    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }

    pub fn advance(mut self, by: Duration) -> Self {
        self.time += chrono::Duration::from_std(by).expect("test durations fit");
        self
    }

    pub fn push(mut self, event_id: i32, kind: EventKind) -> Self {
        self.events
            .push(HistoryEvent::new(event_id, self.time, kind));
        self
    }

    pub fn orchestrator_started(self) -> Self {
        self.push(-1, EventKind::OrchestratorStarted)
    }

    pub fn orchestrator_completed(self) -> Self {
        self.push(-1, EventKind::OrchestratorCompleted)
    }

    pub fn execution_started(self, name: &str, input: &(impl Serialize + ?Sized)) -> Self {
        let instance = self.instance.clone();
        self.push(
            -1,
            EventKind::ExecutionStarted {
                name: name.to_string(),
                version: None,
                input: json(input),
                orchestration_instance: instance,
                parent_instance: None,
                scheduled_start_time: None,
                parent_trace_context: None,
                tags: Default::default(),
            },
        )
    }

    pub fn task_scheduled(self, id: i32, name: &str, input: &(impl Serialize + ?Sized)) -> Self {
        self.push(
            id,
            EventKind::TaskScheduled {
                name: name.to_string(),
                version: None,
                input: json(input),
            },
        )
    }

    pub fn task_completed(self, id: i32, result: &(impl Serialize + ?Sized)) -> Self {
        self.push(
            -1,
            EventKind::TaskCompleted {
                task_scheduled_id: id,
                result: json(result),
            },
        )
    }

    pub fn task_failed(self, id: i32, message: &str) -> Self {
        self.push(
            -1,
            EventKind::TaskFailed {
                task_scheduled_id: id,
                reason: Some(message.to_string()),
                details: None,
                failure_details: Some(FailureDetails::new("ActivityError", message)),
            },
        )
    }

    pub fn timer_created(self, id: i32, fire_at: DateTime<Utc>) -> Self {
        self.push(id, EventKind::TimerCreated { fire_at })
    }

    pub fn timer_fired(self, id: i32, fire_at: DateTime<Utc>) -> Self {
        self.push(
            -1,
            EventKind::TimerFired {
                timer_id: id,
                fire_at,
            },
        )
    }

    pub fn sub_orchestration_created(
        self,
        id: i32,
        name: &str,
        instance_id: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Self {
        self.push(
            id,
            EventKind::SubOrchestrationInstanceCreated {
                name: name.to_string(),
                version: None,
                instance_id: instance_id.to_string(),
                input: json(input),
            },
        )
    }

    pub fn sub_orchestration_completed(self, id: i32, result: &(impl Serialize + ?Sized)) -> Self {
        self.push(
            -1,
            EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id: id,
                result: json(result),
            },
        )
    }

    pub fn sub_orchestration_failed(self, id: i32, message: &str) -> Self {
        self.push(
            -1,
            EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id: id,
                reason: Some(message.to_string()),
                details: None,
                failure_details: Some(FailureDetails::new("OrchestrationError", message)),
            },
        )
    }

    pub fn event_raised(self, name: &str, input: &(impl Serialize + ?Sized)) -> Self {
        self.push(
            -1,
            EventKind::EventRaised {
                name: name.to_string(),
                input: json(input),
            },
        )
    }

    pub fn execution_completed(self, id: i32, result: &(impl Serialize + ?Sized)) -> Self {
        self.push(
            id,
            EventKind::ExecutionCompleted {
                orchestration_status: OrchestrationStatus::Completed,
                result: json(result),
                failure_details: None,
            },
        )
    }

    pub fn terminated(self, reason: &str) -> Self {
        self.push(
            -1,
            EventKind::ExecutionTerminated {
                input: json(reason),
                recurse: false,
            },
        )
    }

    pub fn suspended(self) -> Self {
        self.push(-1, EventKind::ExecutionSuspended { reason: None })
    }

    pub fn resumed(self) -> Self {
        self.push(-1, EventKind::ExecutionResumed { reason: None })
    }

    pub fn build(self) -> Vec<HistoryEvent> {
        self.events
    }
}
