//! Turns a turn's decisions into message envelopes: activities to the work-item queue, timers and
//! sub-orchestration starts and sent events to control queues, completions to the parent, and a
//! recursive termination to the open sub-orchestrations.

use chrono::{DateTime, Utc};

use durable_engine::{
    Action, EventKind, FailureDetails, HistoryEvent, OrchestrationInstance, ParentInstance,
    TurnOutcome,
};
use durable_store::model::{Destination, Message};

use super::ids::IdSource;

/// Azure queues cannot delay a message by more than 7 days; timers hop in shorter steps.
pub const MAX_TIMER_HOP: chrono::TimeDelta = chrono::TimeDelta::days(6);

/// When a timer message for `fire_at` should next become visible.
pub fn timer_hop(fire_at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    fire_at.min(now + MAX_TIMER_HOP)
}

/// A fan-out is cut into at least this many work items (while it has that many calls), so it
/// still spreads across workers...
const SPREAD_ACROSS: usize = 64;
/// ...and a work item carries at most this many calls, so a queue holds a fan-out of thousands
/// in hundreds of messages: fewer puts, dequeues and deletes, and a shorter queue to scan.
const MAX_CALLS_PER_WORK_ITEM: usize = 32;

/// Merges activity calls (one work item each, as [`action_message`] makes them) into work items
/// of several calls, each keeping the first call's message id.
pub fn work_items(calls: Vec<Message>) -> Vec<Message> {
    let per_item = calls
        .len()
        .div_ceil(SPREAD_ACROSS)
        .clamp(1, MAX_CALLS_PER_WORK_ITEM);
    let mut items: Vec<Message> = Vec::with_capacity(calls.len().div_ceil(per_item));
    for (index, call) in calls.into_iter().enumerate() {
        match items.last_mut() {
            Some(item) if index % per_item != 0 => item.more_calls.push(call.event),
            _ => items.push(call),
        }
    }
    items
}

/// The message an action sends, on behalf of `me` (running orchestrator `name` at `version`,
/// which a sub-orchestration inherits).
pub fn action_message(
    me: &OrchestrationInstance,
    name: &str,
    version: Option<&str>,
    action: &Action,
    now: DateTime<Utc>,
    ids: &IdSource,
) -> Message {
    let (destination, event, deliver_at) = match action.clone() {
        Action::ScheduleTask { id, name, input } => (
            Destination::WorkItem {
                instance_id: me.instance_id.clone(),
                execution_id: me.execution_id.clone(),
            },
            HistoryEvent::new(
                id,
                now,
                EventKind::TaskScheduled {
                    name,
                    version: None,
                    input,
                },
            ),
            None,
        ),
        Action::CreateTimer { id, fire_at } => (
            Destination::Instance {
                instance_id: me.instance_id.clone(),
                execution_id: Some(me.execution_id.clone()),
            },
            HistoryEvent::message(
                now,
                EventKind::TimerFired {
                    timer_id: id,
                    fire_at,
                },
            ),
            Some(timer_hop(fire_at, now)),
        ),
        Action::CreateSubOrchestration {
            id,
            name: child_name,
            instance_id,
            input,
        } => (
            Destination::Instance {
                instance_id: instance_id.clone(),
                execution_id: None,
            },
            HistoryEvent::message(
                now,
                EventKind::ExecutionStarted {
                    name: child_name,
                    version: version.map(str::to_string),
                    input,
                    orchestration_instance: OrchestrationInstance {
                        instance_id,
                        execution_id: ids.next_id(),
                    },
                    parent_instance: Some(ParentInstance {
                        name: name.to_string(),
                        version: version.map(str::to_string),
                        orchestration_instance: me.clone(),
                        task_schedule_id: id,
                    }),
                    scheduled_start_time: None,
                    parent_trace_context: None,
                    tags: Default::default(),
                },
            ),
            None,
        ),
        Action::SendEvent {
            instance_id,
            name,
            input,
            ..
        } => (
            Destination::Instance {
                instance_id,
                execution_id: None,
            },
            HistoryEvent::message(now, EventKind::EventRaised { name, input }),
            None,
        ),
    };
    Message {
        more_calls: Vec::new(),
        trace_context: None,
        deferral_recorded: false,
        id: ids.next_id(),
        destination,
        event,
        deliver_at,
        revision: None,
    }
}

/// The message that tells a parent how its sub-orchestration ended, if the outcome is an end.
pub fn parent_notification(
    parent: &ParentInstance,
    outcome: &TurnOutcome,
    now: DateTime<Utc>,
    ids: &IdSource,
) -> Option<Message> {
    let task_scheduled_id = parent.task_schedule_id;
    let kind = match outcome {
        TurnOutcome::Completed { output } => EventKind::SubOrchestrationInstanceCompleted {
            task_scheduled_id,
            result: output.clone(),
        },
        TurnOutcome::Failed { details } => child_failed(task_scheduled_id, details.clone()),
        TurnOutcome::Terminated { reason } => {
            let reason = reason.clone().unwrap_or_default();
            // The reason is stored as JSON text; show a plain string without its quotes.
            let reason = serde_json::from_str::<String>(&reason).unwrap_or(reason);
            let details = FailureDetails::new(
                "Terminated",
                format!("the sub-orchestration was terminated: {reason}"),
            );
            child_failed(task_scheduled_id, details)
        }
        TurnOutcome::Running | TurnOutcome::Suspended | TurnOutcome::ContinuedAsNew { .. } => {
            return None
        }
    };
    Some(to_parent(parent, kind, now, ids))
}

/// Passes a recursive termination on to an open sub-orchestration, recursive in its turn, so it
/// reaches the whole tree below the instance first terminated.
pub fn child_termination(
    child: &str,
    reason: Option<String>,
    now: DateTime<Utc>,
    ids: &IdSource,
) -> Message {
    let kind = EventKind::ExecutionTerminated {
        input: reason,
        recurse: true,
    };
    to_instance(child.to_string(), None, kind, now, ids)
}

/// Tells a parent that its child could not be started.
pub fn child_not_started(
    parent: &ParentInstance,
    reason: String,
    now: DateTime<Utc>,
    ids: &IdSource,
) -> Message {
    let details = FailureDetails::new("SubOrchestrationNotStarted", reason);
    to_parent(
        parent,
        child_failed(parent.task_schedule_id, details),
        now,
        ids,
    )
}

fn child_failed(task_scheduled_id: i32, details: FailureDetails) -> EventKind {
    EventKind::SubOrchestrationInstanceFailed {
        task_scheduled_id,
        reason: Some(details.error_message.clone()),
        details: None,
        failure_details: Some(details),
    }
}

fn to_parent(
    parent: &ParentInstance,
    kind: EventKind,
    now: DateTime<Utc>,
    ids: &IdSource,
) -> Message {
    let parent = &parent.orchestration_instance;
    let execution_id = Some(parent.execution_id.clone());
    to_instance(parent.instance_id.clone(), execution_id, kind, now, ids)
}

/// A message for an instance (for its execution `execution_id`, if given) to deliver at once.
fn to_instance(
    instance_id: String,
    execution_id: Option<String>,
    kind: EventKind,
    now: DateTime<Utc>,
    ids: &IdSource,
) -> Message {
    Message {
        more_calls: Vec::new(),
        trace_context: None,
        deferral_recorded: false,
        id: ids.next_id(),
        destination: Destination::Instance {
            instance_id,
            execution_id,
        },
        event: HistoryEvent::message(now, kind),
        deliver_at: None,
        revision: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(count: i32) -> Vec<Message> {
        let me = OrchestrationInstance {
            instance_id: "i".to_string(),
            execution_id: "e".to_string(),
        };
        let ids = IdSource::sequence();
        (0..count)
            .map(|id| {
                let action = Action::ScheduleTask {
                    id,
                    name: "Echo".to_string(),
                    input: Some(id.to_string()),
                };
                action_message(&me, "F", None, &action, Utc::now(), &ids)
            })
            .collect()
    }

    fn task_ids(item: &Message) -> Vec<i32> {
        std::iter::once(&item.event)
            .chain(&item.more_calls)
            .map(|event| event.event_id)
            .collect()
    }

    #[test]
    fn a_fan_out_travels_in_work_items_of_several_calls_each_call_once_in_order() {
        for (count, expected_items) in [(1, 1), (64, 64), (100, 50), (1000, 63), (10_000, 313)] {
            let items = work_items(calls(count));
            assert_eq!(items.len(), expected_items, "{count} calls");
            let all: Vec<i32> = items.iter().flat_map(task_ids).collect();
            assert_eq!(all, (0..count).collect::<Vec<_>>(), "{count} calls");
            assert!(items
                .iter()
                .all(|item| task_ids(item).len() <= MAX_CALLS_PER_WORK_ITEM));
        }
    }
}
