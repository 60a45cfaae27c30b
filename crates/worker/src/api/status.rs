//! The status payload of an instance in the Durable Functions shape (`name`, `instanceId`,
//! `runtimeStatus`, JSON `input`/`customStatus`/`output`, second-precision UTC times) and the
//! status code the extension answers it with.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use durable_engine::OrchestrationStatus;
use durable_store::model::InstanceSummary;

/// `ToString("s") + "Z"`, as the extension formats times.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn status_name(status: OrchestrationStatus) -> &'static str {
    match status {
        OrchestrationStatus::Running => "Running",
        OrchestrationStatus::Completed => "Completed",
        OrchestrationStatus::ContinuedAsNew => "ContinuedAsNew",
        OrchestrationStatus::Failed => "Failed",
        OrchestrationStatus::Canceled => "Canceled",
        OrchestrationStatus::Terminated => "Terminated",
        OrchestrationStatus::Pending => "Pending",
        OrchestrationStatus::Suspended => "Suspended",
    }
}

/// Stored payloads are JSON text; one that is not (never written by this runtime) is shown as
/// a string rather than failing the whole status.
pub fn json_value(text: Option<&str>) -> Value {
    match text {
        None => Value::Null,
        Some(text) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
    }
}

/// The status object. A failed instance's `output` is its error message, as in Durable
/// Functions; `failureDetails` carries the type and the whole message chain as well.
pub fn payload(summary: &InstanceSummary, show_input: bool) -> Value {
    let mut body = json!({
        "name": summary.name,
        "instanceId": summary.instance_id,
        "runtimeStatus": status_name(summary.status),
        "input": if show_input { json_value(summary.input.as_deref()) } else { Value::Null },
        "customStatus": json_value(summary.custom_status.as_deref()),
        "output": json_value(summary.output.as_deref()),
        "createdTime": format_time(summary.created_at),
        "lastUpdatedTime": format_time(summary.updated_at),
    });
    // Not in Durable Functions' shape, so only there when they say something.
    if let Some(version) = &summary.version {
        body["version"] = json!(version);
    }
    if !summary.tags.is_empty() {
        body["tags"] = json!(summary.tags);
    }
    if summary.poison_messages > 0 {
        body["poisonMessages"] = json!(summary.poison_messages);
    }
    if summary.storage_requests > 0 {
        body["storageRequests"] = json!(summary.storage_requests);
    }
    if let Some(failure) = &summary.failure {
        body["output"] = Value::String(failure.error_message.clone());
        body["failureDetails"] = serde_json::to_value(failure).unwrap_or(Value::Null);
    }
    body
}

/// 202 while the instance can still change, 200 once it has ended (500 for a failure when the
/// caller asked for `returnInternalServerErrorOnFailure`).
pub fn status_code(status: OrchestrationStatus, error_on_failure: bool) -> StatusCode {
    match status {
        OrchestrationStatus::Failed if error_on_failure => StatusCode::INTERNAL_SERVER_ERROR,
        s if s.is_terminal() => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use durable_engine::FailureDetails;

    fn summary(status: OrchestrationStatus) -> InstanceSummary {
        InstanceSummary {
            instance_id: "i1".into(),
            name: "HelloSequence5".into(),
            version: None,
            tags: Default::default(),
            scheduled_start_time: None,
            execution_id: "e".into(),
            status,
            input: Some(r#"{"a":1}"#.into()),
            output: Some(r#"["Hello Tokyo!"]"#.into()),
            failure: None,
            custom_status: Some(r#"{"Stage":"AwaitingApproval"}"#.into()),
            created_at: Utc.with_ymd_and_hms(2018, 2, 28, 5, 18, 49).unwrap()
                + chrono::Duration::milliseconds(734),
            updated_at: Utc.with_ymd_and_hms(2018, 2, 28, 5, 18, 54).unwrap(),
            completed_at: None,
            revision: 1,
            client_start_id: None,
            trace_context: None,
            poison_messages: 0,
            storage_requests: 0,
        }
    }

    #[test]
    fn the_payload_has_the_extensions_shape() {
        let body = payload(&summary(OrchestrationStatus::Completed), true);
        assert_eq!(
            body.to_string(),
            r#"{"name":"HelloSequence5","instanceId":"i1","runtimeStatus":"Completed","input":{"a":1},"customStatus":{"Stage":"AwaitingApproval"},"output":["Hello Tokyo!"],"createdTime":"2018-02-28T05:18:49Z","lastUpdatedTime":"2018-02-28T05:18:54Z"}"#
        );
        assert_eq!(
            payload(&summary(OrchestrationStatus::Completed), false)["input"],
            Value::Null
        );
    }

    #[test]
    fn a_version_and_tags_are_shown_when_there_are_any() {
        let mut tagged = summary(OrchestrationStatus::Running);
        tagged.version = Some("2.0".into());
        tagged.tags = [("team".to_string(), "data".to_string())].into();
        let body = payload(&tagged, false);
        assert_eq!(body["version"], "2.0");
        assert_eq!(body["tags"], serde_json::json!({"team": "data"}));
    }

    #[test]
    fn a_failure_shows_its_message_as_output() {
        let mut failed = summary(OrchestrationStatus::Failed);
        failed.output = None;
        failed.failure = Some(FailureDetails::new(
            "TaskFailed",
            "WorkflowItem1 failed after 3 attempts",
        ));
        let body = payload(&failed, true);
        assert_eq!(body["output"], "WorkflowItem1 failed after 3 attempts");
        assert_eq!(body["failureDetails"]["ErrorType"], "TaskFailed");
    }

    #[test]
    fn storage_requests_show_once_counted() {
        let mut counted = summary(OrchestrationStatus::Running);
        assert!(payload(&counted, true).get("storageRequests").is_none());
        counted.storage_requests = 3;
        assert_eq!(payload(&counted, true)["storageRequests"], 3);
    }

    #[test]
    fn codes_follow_the_extension() {
        assert_eq!(
            status_code(OrchestrationStatus::Running, false),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            status_code(OrchestrationStatus::Pending, true),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            status_code(OrchestrationStatus::Suspended, false),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            status_code(OrchestrationStatus::Completed, true),
            StatusCode::OK
        );
        assert_eq!(
            status_code(OrchestrationStatus::Terminated, false),
            StatusCode::OK
        );
        assert_eq!(
            status_code(OrchestrationStatus::Failed, false),
            StatusCode::OK
        );
        assert_eq!(
            status_code(OrchestrationStatus::Failed, true),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
