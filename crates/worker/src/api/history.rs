//! `showHistory`: an execution's history in the shape the extension's status query gives it
//! (DurableClient's transformation): event types by name, turn markers dropped, each scheduling
//! event folded into its result as `FunctionName` and `ScheduledTime`, inputs left out, results
//! only with `showHistoryOutput`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::status::json_value;
use durable_engine::{EventKind, HistoryEvent};

/// .NET's round-trip format ("o"), which the extension's history times are written in.
fn format_time(time: DateTime<Utc>) -> String {
    // Seven fractional digits (ticks of 100 ns), which chrono has no specifier for.
    format!(
        "{}.{:07}Z",
        time.format("%Y-%m-%dT%H:%M:%S"),
        time.timestamp_subsec_nanos() / 100
    )
}

/// Where a scheduling event sits and what its result row takes from it.
struct Scheduled {
    index: usize,
    name: String,
    time: DateTime<Utc>,
    /// A sub-orchestration's instance id, kept on its result row so the child can be found.
    child: Option<String>,
}

pub fn history_payload(history: &[HistoryEvent], show_output: bool) -> Vec<Value> {
    // Keyed by (is a sub-orchestration, sequence number), as results name their start.
    let mut scheduled: HashMap<(bool, i32), Scheduled> = HashMap::new();
    let mut dropped: HashSet<usize> = HashSet::new();
    let mut rows: Vec<Value> = Vec::with_capacity(history.len());
    for (index, event) in history.iter().enumerate() {
        let mut row = Map::new();
        row.insert(
            "EventType".to_string(),
            Value::String(format!("{:?}", event.event_type())),
        );
        if let Ok(Value::Object(fields)) = serde_json::to_value(&event.kind) {
            row.extend(fields.into_iter().filter(|(key, _)| key != "EventType"));
        }
        match &event.kind {
            EventKind::OrchestratorStarted | EventKind::OrchestratorCompleted => {
                dropped.insert(index);
            }
            EventKind::ExecutionStarted {
                name,
                parent_instance,
                ..
            } => {
                drop_keys(
                    &mut row,
                    &[
                        "Name",
                        "OrchestrationInstance",
                        "ParentInstance",
                        "Version",
                        "Input",
                    ],
                );
                row.insert("FunctionName".to_string(), Value::String(name.clone()));
                // Beyond the extension's row: where a sub-orchestration's parent is.
                if let Some(parent) = parent_instance {
                    row.insert(
                        "ParentInstanceId".to_string(),
                        Value::String(parent.orchestration_instance.instance_id.clone()),
                    );
                }
            }
            EventKind::TaskScheduled { name, .. }
            | EventKind::SubOrchestrationInstanceCreated { name, .. } => {
                let child = match &event.kind {
                    EventKind::SubOrchestrationInstanceCreated { instance_id, .. } => {
                        Some(instance_id.clone())
                    }
                    _ => None,
                };
                scheduled.insert(
                    (child.is_some(), event.event_id),
                    Scheduled {
                        index,
                        name: name.clone(),
                        time: event.timestamp,
                        child,
                    },
                );
                drop_keys(&mut row, &["Version", "Input"]);
            }
            EventKind::TaskCompleted {
                task_scheduled_id,
                result,
            }
            | EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id,
                result,
            } => {
                let sub = matches!(
                    event.kind,
                    EventKind::SubOrchestrationInstanceCompleted { .. }
                );
                if let Some(start) = scheduled.get(&(sub, *task_scheduled_id)) {
                    fold(start, &mut row);
                    dropped.insert(start.index);
                }
                drop_keys(&mut row, &["TaskScheduledId"]);
                show_result(&mut row, result.as_deref(), show_output);
            }
            EventKind::TaskFailed {
                task_scheduled_id, ..
            }
            | EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id, ..
            } => {
                let sub = matches!(event.kind, EventKind::SubOrchestrationInstanceFailed { .. });
                if let Some(start) = scheduled.get(&(sub, *task_scheduled_id)) {
                    fold(start, &mut row);
                    dropped.insert(start.index);
                }
                drop_keys(&mut row, &["TaskScheduledId"]);
            }
            EventKind::ExecutionCompleted { result, .. } => {
                show_result(&mut row, result.as_deref(), show_output);
            }
            EventKind::ExecutionTerminated { .. } | EventKind::EventRaised { .. } => {
                drop_keys(&mut row, &["Input"]);
            }
            EventKind::TimerFired { .. } => {
                drop_keys(&mut row, &["TimerId"]);
            }
            EventKind::TimerCreated { .. }
            | EventKind::EventSent { .. }
            | EventKind::ContinueAsNew { .. }
            | EventKind::ExecutionSuspended { .. }
            | EventKind::ExecutionResumed { .. }
            | EventKind::GenericEvent { .. } => {}
        }
        for key in ["FireAt", "ScheduledStartTime"] {
            if let Some(time) = row
                .get(key)
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            {
                row.insert(
                    key.to_string(),
                    Value::String(format_time(time.with_timezone(&Utc))),
                );
            }
        }
        row.insert(
            "Timestamp".to_string(),
            Value::String(format_time(event.timestamp)),
        );
        rows.push(Value::Object(row));
    }
    rows.into_iter()
        .enumerate()
        .filter(|(index, _)| !dropped.contains(index))
        .map(|(_, row)| row)
        .collect()
}

/// Removes fields, keeping the others in order.
fn drop_keys(row: &mut Map<String, Value>, keys: &[&str]) {
    row.retain(|key, _| !keys.contains(&key.as_str()));
}

/// A result row takes its scheduling event's name and time; the scheduling row then goes.
fn fold(start: &Scheduled, row: &mut Map<String, Value>) {
    row.insert(
        "ScheduledTime".to_string(),
        Value::String(format_time(start.time)),
    );
    row.insert(
        "FunctionName".to_string(),
        Value::String(start.name.clone()),
    );
    if let Some(child) = &start.child {
        row.insert("InstanceId".to_string(), Value::String(child.clone()));
    }
}

/// `Result` as a JSON value with `showHistoryOutput`, left out without it.
fn show_result(row: &mut Map<String, Value>, result: Option<&str>, show: bool) {
    if show {
        row.insert("Result".to_string(), json_value(result));
    } else {
        drop_keys(row, &["Result"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use durable_engine::{
        FailureDetails, OrchestrationInstance, OrchestrationStatus, ParentInstance,
    };

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2018, 2, 28, 5, 18, second).unwrap()
            + chrono::Duration::nanoseconds(345_237_200)
    }

    fn hello_sequence() -> Vec<HistoryEvent> {
        vec![
            HistoryEvent::message(at(49), EventKind::OrchestratorStarted),
            HistoryEvent::message(
                at(49),
                EventKind::ExecutionStarted {
                    name: "E1_HelloSequence".into(),
                    version: None,
                    input: Some("{\"secret\":1}".into()),
                    orchestration_instance: OrchestrationInstance {
                        instance_id: "i".into(),
                        execution_id: "e".into(),
                    },
                    parent_instance: None,
                    scheduled_start_time: None,
                    parent_trace_context: None,
                    tags: Default::default(),
                },
            ),
            HistoryEvent::new(
                0,
                at(51),
                EventKind::TaskScheduled {
                    name: "E1_SayHello".into(),
                    version: None,
                    input: Some("\"Tokyo\"".into()),
                },
            ),
            HistoryEvent::message(at(51), EventKind::OrchestratorCompleted),
            HistoryEvent::message(at(52), EventKind::OrchestratorStarted),
            HistoryEvent::message(
                at(52),
                EventKind::TaskCompleted {
                    task_scheduled_id: 0,
                    result: Some("\"Hello Tokyo!\"".into()),
                },
            ),
            HistoryEvent::new(
                1,
                at(52),
                EventKind::TaskScheduled {
                    name: "E1_SayHello".into(),
                    version: None,
                    input: Some("\"Lima\"".into()),
                },
            ),
            HistoryEvent::message(at(52), EventKind::OrchestratorCompleted),
            HistoryEvent::message(at(53), EventKind::OrchestratorStarted),
            HistoryEvent::message(
                at(53),
                EventKind::TaskFailed {
                    task_scheduled_id: 1,
                    reason: Some("boom".into()),
                    details: None,
                    failure_details: Some(FailureDetails::new("Oops", "boom")),
                },
            ),
            HistoryEvent::message(
                at(53),
                EventKind::EventRaised {
                    name: "Approval".into(),
                    input: Some("{\"private\":true}".into()),
                },
            ),
            HistoryEvent::new(
                2,
                at(54),
                EventKind::ExecutionCompleted {
                    orchestration_status: OrchestrationStatus::Completed,
                    result: Some("[\"Hello Tokyo!\"]".into()),
                    failure_details: None,
                },
            ),
            HistoryEvent::message(at(54), EventKind::OrchestratorCompleted),
        ]
    }

    #[test]
    fn the_history_has_the_extensions_shape() {
        let rows = history_payload(&hello_sequence(), false);
        let text: Vec<String> = rows.iter().map(Value::to_string).collect();
        assert_eq!(
            text,
            [
                r#"{"EventType":"ExecutionStarted","FunctionName":"E1_HelloSequence","Timestamp":"2018-02-28T05:18:49.3452372Z"}"#,
                r#"{"EventType":"TaskCompleted","ScheduledTime":"2018-02-28T05:18:51.3452372Z","FunctionName":"E1_SayHello","Timestamp":"2018-02-28T05:18:52.3452372Z"}"#,
                r#"{"EventType":"TaskFailed","Reason":"boom","FailureDetails":{"ErrorType":"Oops","ErrorMessage":"boom"},"ScheduledTime":"2018-02-28T05:18:52.3452372Z","FunctionName":"E1_SayHello","Timestamp":"2018-02-28T05:18:53.3452372Z"}"#,
                r#"{"EventType":"EventRaised","Name":"Approval","Timestamp":"2018-02-28T05:18:53.3452372Z"}"#,
                r#"{"EventType":"ExecutionCompleted","OrchestrationStatus":"Completed","Timestamp":"2018-02-28T05:18:54.3452372Z"}"#,
            ]
        );
    }

    #[test]
    fn results_show_with_show_history_output() {
        let rows = history_payload(&hello_sequence(), true);
        assert_eq!(rows[1]["Result"], "Hello Tokyo!");
        assert_eq!(rows[4]["Result"], serde_json::json!(["Hello Tokyo!"]));
        assert!(rows[3].get("Input").is_none(), "event data never shows");
    }

    #[test]
    fn work_still_running_shows_its_scheduling_event() {
        let mut history = hello_sequence();
        history.truncate(8);
        let rows = history_payload(&history, false);
        let last = rows.last().unwrap();
        assert_eq!(last["EventType"], "TaskScheduled");
        assert_eq!(last["Name"], "E1_SayHello");
        assert!(last.get("Input").is_none() && last.get("EventId").is_none());
    }

    #[test]
    fn rows_name_the_parent_and_the_children() {
        let instance = |id: &str| OrchestrationInstance {
            instance_id: id.into(),
            execution_id: "e".into(),
        };
        let history = vec![
            HistoryEvent::message(
                at(49),
                EventKind::ExecutionStarted {
                    name: "Middle".into(),
                    version: None,
                    input: None,
                    orchestration_instance: instance("middle"),
                    parent_instance: Some(ParentInstance {
                        name: "Top".into(),
                        version: None,
                        orchestration_instance: instance("top"),
                        task_schedule_id: 0,
                    }),
                    scheduled_start_time: None,
                    parent_trace_context: None,
                    tags: Default::default(),
                },
            ),
            HistoryEvent::new(
                0,
                at(50),
                EventKind::SubOrchestrationInstanceCreated {
                    name: "Leaf".into(),
                    version: None,
                    instance_id: "leaf-done".into(),
                    input: None,
                },
            ),
            HistoryEvent::new(
                1,
                at(50),
                EventKind::SubOrchestrationInstanceCreated {
                    name: "Leaf".into(),
                    version: None,
                    instance_id: "leaf-running".into(),
                    input: None,
                },
            ),
            HistoryEvent::message(
                at(51),
                EventKind::SubOrchestrationInstanceCompleted {
                    task_scheduled_id: 0,
                    result: None,
                },
            ),
        ];
        let rows = history_payload(&history, false);
        assert_eq!(rows[0]["ParentInstanceId"], "top");
        assert_eq!(rows[1]["EventType"], "SubOrchestrationInstanceCreated");
        assert_eq!(rows[1]["InstanceId"], "leaf-running");
        assert_eq!(rows[2]["EventType"], "SubOrchestrationInstanceCompleted");
        assert_eq!(rows[2]["InstanceId"], "leaf-done");
        assert_eq!(rows[2]["FunctionName"], "Leaf");
    }
}
