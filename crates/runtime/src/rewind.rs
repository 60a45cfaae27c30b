//! What a rewind makes of a failed execution's history: the history as it was before the
//! failures that ended it arrived, and the work that history still waits for. Pure.

use durable_engine::{Action, EventKind, HistoryEvent};
use durable_store::model::{MessageId, MessageIds, StoredEvent};

/// A failed execution's history with its ending undone.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rewound {
    /// The events kept, with the ids of the messages that delivered them.
    pub events: Vec<StoredEvent>,
    /// Ids of the messages whose events were dropped: consumed all the same, so a late
    /// redelivery of one stays a duplicate.
    pub forgotten: Vec<MessageId>,
}

/// Decisions that open a task the code may wait on, and `EventSent`: after the last of them the
/// code made no decision, so it cannot have reacted to a later failure except by ending.
fn is_decision(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::TaskScheduled { .. }
            | EventKind::TimerCreated { .. }
            | EventKind::SubOrchestrationInstanceCreated { .. }
            | EventKind::EventSent { .. }
    )
}

/// Drops the execution's end and the failed activity and sub-orchestration results that came
/// after its last decision: the failures it did not survive. Failures followed by a decision
/// were handled (a retry's timer, a compensation) and stay, so replaying the result makes
/// exactly the recorded decisions. Turns left empty are dropped too.
pub(super) fn rewind(history: &[HistoryEvent], ids: &MessageIds) -> Rewound {
    let last_decision = history.iter().rposition(|event| is_decision(&event.kind));
    let mut events: Vec<StoredEvent> = Vec::with_capacity(history.len());
    let mut forgotten = Vec::new();
    for (index, event) in history.iter().enumerate() {
        let unsurvived = match event.kind {
            EventKind::ExecutionCompleted { .. } => true,
            EventKind::TaskFailed { .. } | EventKind::SubOrchestrationInstanceFailed { .. } => {
                last_decision.is_none_or(|decision| index > decision)
            }
            _ => false,
        };
        let message_id = ids.of_event(index).cloned();
        if unsurvived {
            forgotten.extend(message_id);
            continue;
        }
        let empty_turn = matches!(event.kind, EventKind::OrchestratorCompleted)
            && events
                .last()
                .is_some_and(|last| matches!(last.event.kind, EventKind::OrchestratorStarted));
        if empty_turn {
            events.pop();
            continue;
        }
        events.push(StoredEvent {
            event: event.clone(),
            message_id,
        });
    }
    Rewound { events, forgotten }
}

/// The activities, timers and sub-orchestrations `history` scheduled that it holds no result
/// for, as the actions that scheduled them.
pub(super) fn pending_work(history: &[HistoryEvent]) -> Vec<Action> {
    let completed: std::collections::HashSet<i32> = history
        .iter()
        .filter_map(|event| event.kind.completed_task_id())
        .collect();
    history
        .iter()
        .filter(|event| !completed.contains(&event.event_id))
        .filter_map(|event| {
            let id = event.event_id;
            match &event.kind {
                EventKind::TaskScheduled { name, input, .. } => Some(Action::ScheduleTask {
                    id,
                    name: name.clone(),
                    input: input.clone(),
                }),
                EventKind::TimerCreated { fire_at } => Some(Action::CreateTimer {
                    id,
                    fire_at: *fire_at,
                }),
                EventKind::SubOrchestrationInstanceCreated {
                    name,
                    instance_id,
                    input,
                    ..
                } => Some(Action::CreateSubOrchestration {
                    id,
                    name: name.clone(),
                    instance_id: instance_id.clone(),
                    input: input.clone(),
                }),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use durable_engine::{
        FailureDetails, OrchestrationInstance, OrchestrationStatus, ParentInstance,
    };

    fn at(second: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second).unwrap()
    }

    fn started() -> Vec<HistoryEvent> {
        vec![
            HistoryEvent::message(at(0), EventKind::OrchestratorStarted),
            HistoryEvent::message(
                at(0),
                EventKind::ExecutionStarted {
                    name: "W".into(),
                    version: None,
                    input: None,
                    orchestration_instance: OrchestrationInstance {
                        instance_id: "i".into(),
                        execution_id: "e".into(),
                    },
                    parent_instance: None::<ParentInstance>,
                    scheduled_start_time: None,
                    parent_trace_context: None,
                    tags: Default::default(),
                },
            ),
        ]
    }

    fn scheduled(id: i32, name: &str) -> HistoryEvent {
        HistoryEvent::new(
            id,
            at(1),
            EventKind::TaskScheduled {
                name: name.into(),
                version: None,
                input: Some("1".into()),
            },
        )
    }

    fn failed(id: i32) -> HistoryEvent {
        HistoryEvent::message(
            at(2),
            EventKind::TaskFailed {
                task_scheduled_id: id,
                reason: Some("boom".into()),
                details: None,
                failure_details: None,
            },
        )
    }

    fn completed(id: i32) -> HistoryEvent {
        HistoryEvent::message(
            at(2),
            EventKind::TaskCompleted {
                task_scheduled_id: id,
                result: Some("\"ok\"".into()),
            },
        )
    }

    fn turn(events: Vec<HistoryEvent>) -> Vec<HistoryEvent> {
        let mut turn = vec![HistoryEvent::message(at(3), EventKind::OrchestratorStarted)];
        turn.extend(events);
        turn.push(HistoryEvent::message(
            at(3),
            EventKind::OrchestratorCompleted,
        ));
        turn
    }

    fn ended(sequence: i32) -> HistoryEvent {
        HistoryEvent::new(
            sequence,
            at(4),
            EventKind::ExecutionCompleted {
                orchestration_status: OrchestrationStatus::Failed,
                result: None,
                failure_details: Some(FailureDetails::new("TaskFailed", "boom")),
            },
        )
    }

    fn kinds(events: &[StoredEvent]) -> Vec<String> {
        events
            .iter()
            .map(|stored| format!("{:?}", stored.event.event_type()))
            .collect()
    }

    /// Ids per event: `m{index}` for the given indices, none for the others.
    fn ids(history: &[HistoryEvent], with: &[usize]) -> MessageIds {
        (0..history.len())
            .map(|i| with.contains(&i).then(|| format!("m{i}")))
            .collect()
    }

    #[test]
    fn the_failure_after_the_last_decision_and_the_end_are_forgotten() {
        // A retried activity: attempt 0 failed, a timer, attempt 2 failed and ended it.
        let mut history = started();
        history.push(scheduled(0, "Pay"));
        history.push(HistoryEvent::message(
            at(1),
            EventKind::OrchestratorCompleted,
        ));
        history.extend(turn(vec![
            failed(0),
            HistoryEvent::new(1, at(3), EventKind::TimerCreated { fire_at: at(5) }),
        ]));
        history.extend(turn(vec![
            HistoryEvent::message(
                at(5),
                EventKind::TimerFired {
                    timer_id: 1,
                    fire_at: at(5),
                },
            ),
            scheduled(2, "Pay"),
        ]));
        history.extend(turn(vec![failed(2), ended(3)]));
        let with_ids = ids(&history, &[5, 9, 13]);
        let rewound = rewind(&history, &with_ids);
        assert_eq!(
            kinds(&rewound.events),
            [
                "OrchestratorStarted",
                "ExecutionStarted",
                "TaskScheduled",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "TaskFailed",
                "TimerCreated",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "TimerFired",
                "TaskScheduled",
                "OrchestratorCompleted",
            ],
            "the handled first failure stays; the last one, the end and its empty turn go"
        );
        assert_eq!(rewound.forgotten, ["m13"]);
        let kept_ids: Vec<Option<&str>> = rewound
            .events
            .iter()
            .map(|e| e.message_id.as_deref())
            .collect();
        assert_eq!(
            kept_ids[5],
            Some("m5"),
            "kept events keep their message ids"
        );
        assert_eq!(kept_ids[9], Some("m9"));
        let events: Vec<HistoryEvent> = rewound.events.into_iter().map(|e| e.event).collect();
        assert_eq!(
            pending_work(&events),
            [Action::ScheduleTask {
                id: 2,
                name: "Pay".into(),
                input: Some("1".into()),
            }]
        );
    }

    #[test]
    fn every_unsurvived_failure_of_a_fan_out_goes_and_completions_stay() {
        let mut history = started();
        history.extend([scheduled(0, "A"), scheduled(1, "B"), scheduled(2, "C")]);
        history.push(HistoryEvent::message(
            at(1),
            EventKind::OrchestratorCompleted,
        ));
        history.extend(turn(vec![failed(1), completed(0), failed(2), ended(3)]));
        let rewound = rewind(&history, &MessageIds::default());
        let events: Vec<HistoryEvent> = rewound.events.into_iter().map(|e| e.event).collect();
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind.completed_task_id().is_some())
                .count(),
            1,
            "only A's completion is left"
        );
        let pending: Vec<i32> = pending_work(&events).iter().map(Action::id).collect();
        assert_eq!(pending, [1, 2]);
    }

    #[test]
    fn a_failure_with_nothing_scheduled_after_it_only_loses_its_end() {
        // The code failed on its own (no task failed): only the end goes, and nothing waits.
        let mut history = started();
        history.push(scheduled(0, "A"));
        history.push(HistoryEvent::message(
            at(1),
            EventKind::OrchestratorCompleted,
        ));
        history.extend(turn(vec![completed(0), ended(1)]));
        let rewound = rewind(&history, &MessageIds::default());
        assert_eq!(rewound.events.len(), history.len() - 1);
        let events: Vec<HistoryEvent> = rewound.events.into_iter().map(|e| e.event).collect();
        assert!(pending_work(&events).is_empty());
    }

    #[test]
    fn pending_work_covers_timers_and_sub_orchestrations() {
        let mut history = started();
        history.push(HistoryEvent::new(
            0,
            at(1),
            EventKind::TimerCreated { fire_at: at(9) },
        ));
        history.push(HistoryEvent::new(
            1,
            at(1),
            EventKind::SubOrchestrationInstanceCreated {
                name: "Child".into(),
                version: None,
                instance_id: "i:e:0001".into(),
                input: None,
            },
        ));
        history.push(HistoryEvent::new(
            2,
            at(1),
            EventKind::EventSent {
                instance_id: "other".into(),
                name: "Go".into(),
                input: None,
            },
        ));
        assert_eq!(
            pending_work(&history),
            [
                Action::CreateTimer {
                    id: 0,
                    fire_at: at(9)
                },
                Action::CreateSubOrchestration {
                    id: 1,
                    name: "Child".into(),
                    instance_id: "i:e:0001".into(),
                    input: None,
                },
            ],
            "a sent event waits for nothing"
        );
    }
}
