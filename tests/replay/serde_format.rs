//! The stored JSON shape of history events: DurableTask.Core's PascalCase field names, an
//! `EventType` tag, RFC 3339 timestamps, exact snapshots, and DurableTask.Core's enum numbering.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use durable_engine::{
    EventKind, EventType, FailureDetails, HistoryEvent, OrchestrationInstance, OrchestrationStatus,
    ParentInstance, TraceContext,
};

fn at(seconds: i64, millis: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
        + chrono::Duration::seconds(seconds)
        + chrono::Duration::milliseconds(i64::from(millis))
}

fn text(value: &str) -> Option<String> {
    Some(value.to_string())
}

fn nested_failure() -> FailureDetails {
    FailureDetails {
        error_type: "TaskFailed".to_string(),
        error_message: "activity 'ChargeCard' failed: card declined".to_string(),
        stack_trace: text("at charge_card"),
        inner_failure: Some(Box::new(FailureDetails::new(
            "CardDeclined",
            "card declined",
        ))),
        is_non_retriable: true,
    }
}

/// One event of every kind, with every optional field filled in.
fn one_of_each() -> Vec<HistoryEvent> {
    let instance = OrchestrationInstance {
        instance_id: "order-1".to_string(),
        execution_id: "exec-1".to_string(),
    };
    let kinds = vec![
        (-1, EventKind::OrchestratorStarted),
        (
            -1,
            EventKind::ExecutionStarted {
                name: "Order".to_string(),
                version: text("2"),
                input: text("{\"id\":7}"),
                orchestration_instance: instance.clone(),
                parent_instance: Some(ParentInstance {
                    name: "Parent".to_string(),
                    version: text("1"),
                    orchestration_instance: OrchestrationInstance {
                        instance_id: "parent-1".to_string(),
                        execution_id: "exec-p".to_string(),
                    },
                    task_schedule_id: 3,
                }),
                scheduled_start_time: Some(at(30, 0)),
                parent_trace_context: Some(TraceContext {
                    trace_parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                        .to_string(),
                    trace_state: text("congo=t61rcWkgMzE"),
                }),
                tags: [("team".to_string(), "data".to_string())].into(),
            },
        ),
        (
            0,
            EventKind::TaskScheduled {
                name: "Charge".to_string(),
                version: text("1"),
                input: text("42"),
            },
        ),
        (
            -1,
            EventKind::TaskCompleted {
                task_scheduled_id: 0,
                result: text("\"ok\""),
            },
        ),
        (
            -1,
            EventKind::TaskFailed {
                task_scheduled_id: 0,
                reason: text("declined"),
                details: text("stack"),
                failure_details: Some(nested_failure()),
            },
        ),
        (
            1,
            EventKind::SubOrchestrationInstanceCreated {
                name: "Child".to_string(),
                version: text("1"),
                instance_id: "order-1:0001".to_string(),
                input: text("null"),
            },
        ),
        (
            -1,
            EventKind::SubOrchestrationInstanceCompleted {
                task_scheduled_id: 1,
                result: text("[1,2]"),
            },
        ),
        (
            -1,
            EventKind::SubOrchestrationInstanceFailed {
                task_scheduled_id: 1,
                reason: text("child failed"),
                details: text("stack"),
                failure_details: Some(FailureDetails::new("OrchestrationError", "child failed")),
            },
        ),
        (
            2,
            EventKind::TimerCreated {
                fire_at: at(3600, 0),
            },
        ),
        (
            -1,
            EventKind::TimerFired {
                timer_id: 2,
                fire_at: at(3600, 0),
            },
        ),
        (
            3,
            EventKind::EventSent {
                instance_id: "other-1".to_string(),
                name: "Ping".to_string(),
                input: text("true"),
            },
        ),
        (
            -1,
            EventKind::EventRaised {
                name: "Approval".to_string(),
                input: text("\"yes\""),
            },
        ),
        (
            -1,
            EventKind::ExecutionSuspended {
                reason: text("pause"),
            },
        ),
        (-1, EventKind::ExecutionResumed { reason: text("go") }),
        (-1, EventKind::GenericEvent { data: text("poke") }),
        (
            -1,
            EventKind::ExecutionTerminated {
                input: text("\"stop\""),
                recurse: true,
            },
        ),
        (4, EventKind::ContinueAsNew { result: text("8") }),
        (
            5,
            EventKind::ExecutionCompleted {
                orchestration_status: OrchestrationStatus::Failed,
                result: text("null"),
                failure_details: Some(nested_failure()),
            },
        ),
        (-1, EventKind::OrchestratorCompleted),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(n, (id, kind))| HistoryEvent::new(id, at(i64::try_from(n).unwrap(), 125), kind))
        .collect()
}

/// Every object key below `value` (recursively).
fn keys(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, nested) in map {
                out.push(key.clone());
                // Tags are the user's keys, not the format's.
                if key != "Tags" {
                    keys(nested, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| keys(item, out)),
        _ => {}
    }
}

#[test]
fn samples_cover_every_event_kind() {
    let mut types: Vec<i32> = one_of_each()
        .iter()
        .map(|event| event.event_type() as i32)
        .collect();
    types.sort_unstable();
    types.dedup();
    // Every EventType except the three this engine never writes: ExecutionFailed = 2,
    // HistoryState = 18 and ExecutionRewound = 21.
    let expected: Vec<i32> = (0..=20).filter(|n| ![2, 18].contains(n)).collect();
    assert_eq!(types, expected);
}

#[test]
fn every_event_kind_round_trips_through_json() {
    for event in one_of_each() {
        let text = serde_json::to_string(&event).expect("serialize");
        let parsed: HistoryEvent = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(parsed, event, "{text}");
    }
}

#[test]
fn every_event_has_the_durable_task_core_envelope() {
    for event in one_of_each() {
        let value = serde_json::to_value(&event).expect("serialize");
        assert_eq!(value["EventId"], json!(event.event_id));
        assert_eq!(
            value["EventType"],
            json!(format!("{:?}", event.event_type()))
        );
        let timestamp = value["Timestamp"].as_str().expect("Timestamp is a string");
        let parsed = DateTime::parse_from_rfc3339(timestamp).expect("Timestamp is RFC 3339");
        assert_eq!(parsed, event.timestamp);
        assert!(
            timestamp.ends_with('Z'),
            "UTC timestamps end in Z: {timestamp}"
        );
    }
}

#[test]
fn every_field_name_is_pascal_case() {
    let mut names = Vec::new();
    for event in one_of_each() {
        keys(
            &serde_json::to_value(&event).expect("serialize"),
            &mut names,
        );
    }
    for name in &names {
        let first = name.chars().next().expect("non-empty key");
        assert!(
            first.is_ascii_uppercase() && !name.contains('_'),
            "not PascalCase: {name}"
        );
    }
    for expected in [
        "TaskScheduledId",
        "OrchestrationInstance",
        "ParentInstance",
        "TaskScheduleId",
        "FireAt",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing"
        );
    }
}

#[test]
fn absent_optional_fields_are_omitted() {
    let event = HistoryEvent::message(
        at(0, 0),
        EventKind::TaskCompleted {
            task_scheduled_id: 0,
            result: None,
        },
    );
    let text = serde_json::to_string(&event).expect("serialize");
    assert_eq!(
        text,
        r#"{"EventId":-1,"Timestamp":"2026-01-01T00:00:00Z","EventType":"TaskCompleted","TaskScheduledId":0}"#
    );
}

#[test]
fn task_scheduled_snapshot() {
    let event = HistoryEvent::new(
        3,
        at(5, 250),
        EventKind::TaskScheduled {
            name: "SayHello".to_string(),
            version: None,
            input: text("\"Tokyo\""),
        },
    );
    assert_eq!(
        serde_json::to_string(&event).expect("serialize"),
        r#"{"EventId":3,"Timestamp":"2026-01-01T00:00:05.250Z","EventType":"TaskScheduled","Name":"SayHello","Input":"\"Tokyo\""}"#
    );
}

#[test]
fn task_failed_with_failure_details_snapshot() {
    let event = HistoryEvent::message(
        at(61, 0),
        EventKind::TaskFailed {
            task_scheduled_id: 3,
            reason: text("card declined"),
            details: None,
            failure_details: Some(nested_failure()),
        },
    );
    let expected = json!({
        "EventId": -1,
        "Timestamp": "2026-01-01T00:01:01Z",
        "EventType": "TaskFailed",
        "TaskScheduledId": 3,
        "Reason": "card declined",
        "FailureDetails": {
            "ErrorType": "TaskFailed",
            "ErrorMessage": "activity 'ChargeCard' failed: card declined",
            "StackTrace": "at charge_card",
            "InnerFailure": {"ErrorType": "CardDeclined", "ErrorMessage": "card declined"},
            "IsNonRetriable": true
        }
    });
    assert_eq!(serde_json::to_value(&event).expect("serialize"), expected);
    let text = serde_json::to_string(&event).expect("serialize");
    assert!(
        text.starts_with(
            r#"{"EventId":-1,"Timestamp":"2026-01-01T00:01:01Z","EventType":"TaskFailed","#
        ),
        "envelope fields come first: {text}"
    );
}

#[test]
fn execution_completed_writes_the_status_by_name() {
    let event = HistoryEvent::new(
        1,
        at(2, 0),
        EventKind::ExecutionCompleted {
            orchestration_status: OrchestrationStatus::Completed,
            result: text("\"done\""),
            failure_details: None,
        },
    );
    assert_eq!(
        serde_json::to_string(&event).expect("serialize"),
        r#"{"EventId":1,"Timestamp":"2026-01-01T00:00:02Z","EventType":"ExecutionCompleted","OrchestrationStatus":"Completed","Result":"\"done\""}"#
    );
}

/// `ParentTraceContext` as DurableTask.Core names it; a start stored before it existed reads back
/// the same.
#[test]
fn a_start_keeps_its_trace_context_as_durable_task_core_and_reads_one_stored_without() {
    let traced = &one_of_each()[1];
    let value = serde_json::to_value(traced).unwrap();
    assert_eq!(
        value["ParentTraceContext"],
        json!({
            "TraceParent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "TraceState": "congo=t61rcWkgMzE"
        })
    );
    let stored_before = json!({
        "EventId": -1, "Timestamp": "2026-01-01T00:00:00Z", "EventType": "ExecutionStarted",
        "Name": "Order", "OrchestrationInstance": {"InstanceId": "i", "ExecutionId": "e"}
    });
    let read: HistoryEvent = serde_json::from_value(stored_before.clone()).unwrap();
    let EventKind::ExecutionStarted {
        parent_trace_context,
        ..
    } = &read.kind
    else {
        panic!("{read:?}");
    };
    assert_eq!(parent_trace_context, &None);
    assert_eq!(serde_json::to_value(&read).unwrap(), stored_before);
}

/// Rows written by DurableTask.Core carry fields this engine does not model (`IsPlayed`, `Tags`).
#[test]
fn unknown_durable_task_core_fields_are_tolerated() {
    let row = json!({
        "EventId": 0,
        "IsPlayed": true,
        "Timestamp": "2026-01-01T00:00:00.1234567Z",
        "EventType": "TaskScheduled",
        "Name": "SayHello",
        "Input": "\"Tokyo\"",
        "Tags": {"team": "a"}
    });
    let event: HistoryEvent = serde_json::from_value(row).expect("deserialize");
    assert_eq!(event.event_type(), EventType::TaskScheduled);
    assert_eq!(event.timestamp.timestamp_subsec_nanos(), 123_456_700);
}

#[test]
fn unknown_event_type_is_rejected() {
    let row = json!({"EventId": -1, "Timestamp": "2026-01-01T00:00:00Z", "EventType": "EntityOperationCalled"});
    assert!(serde_json::from_value::<HistoryEvent>(row).is_err());
}

#[test]
fn event_type_numbers_match_durable_task_core() {
    let numbering = [
        (EventType::ExecutionStarted, 0),
        (EventType::ExecutionCompleted, 1),
        (EventType::ExecutionFailed, 2),
        (EventType::ExecutionTerminated, 3),
        (EventType::TaskScheduled, 4),
        (EventType::TaskCompleted, 5),
        (EventType::TaskFailed, 6),
        (EventType::SubOrchestrationInstanceCreated, 7),
        (EventType::SubOrchestrationInstanceCompleted, 8),
        (EventType::SubOrchestrationInstanceFailed, 9),
        (EventType::TimerCreated, 10),
        (EventType::TimerFired, 11),
        (EventType::OrchestratorStarted, 12),
        (EventType::OrchestratorCompleted, 13),
        (EventType::EventSent, 14),
        (EventType::EventRaised, 15),
        (EventType::ContinueAsNew, 16),
        (EventType::GenericEvent, 17),
        (EventType::HistoryState, 18),
        (EventType::ExecutionSuspended, 19),
        (EventType::ExecutionResumed, 20),
        (EventType::ExecutionRewound, 21),
    ];
    for (event_type, number) in numbering {
        assert_eq!(event_type as i32, number, "{event_type:?}");
    }
}

#[test]
fn orchestration_status_numbers_match_durable_task_core() {
    let numbering = [
        (OrchestrationStatus::Running, 0),
        (OrchestrationStatus::Completed, 1),
        (OrchestrationStatus::ContinuedAsNew, 2),
        (OrchestrationStatus::Failed, 3),
        (OrchestrationStatus::Canceled, 4),
        (OrchestrationStatus::Terminated, 5),
        (OrchestrationStatus::Pending, 6),
        (OrchestrationStatus::Suspended, 7),
    ];
    for (status, number) in numbering {
        assert_eq!(status as i32, number, "{status:?}");
    }
}
