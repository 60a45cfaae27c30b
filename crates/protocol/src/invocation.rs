//! The custom-handler invocation protocol as the Functions host really speaks it: the
//! `{"Data":…,"Metadata":…}` request (string values double-encoded, numbers as strings) and the
//! `{"Outputs":…,"Logs":…,"ReturnValue":…}` response.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvocationError {
    #[error("the invocation has no input binding named '{0}'")]
    MissingBinding(String),
    #[error("input binding '{binding}' is not what a {expected} trigger sends: {message}")]
    Malformed {
        binding: String,
        expected: &'static str,
        message: String,
    },
}

/// What the host POSTs to `/{FunctionName}` for a non-HTTP trigger.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationRequest {
    #[serde(default)]
    pub data: Map<String, Value>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl InvocationRequest {
    /// The text of the queue message bound to `binding`. The host sends a .NET string through
    /// `JsonConvert.SerializeObject`, so `Data[binding]` is a JSON string holding a JSON string
    /// literal: decode twice.
    pub fn queue_message(&self, binding: &str) -> Result<String, InvocationError> {
        let value = self
            .data
            .get(binding)
            .ok_or_else(|| InvocationError::MissingBinding(binding.to_string()))?;
        let malformed = |message: String| InvocationError::Malformed {
            binding: binding.to_string(),
            expected: "queue",
            message,
        };
        let encoded = value
            .as_str()
            .ok_or_else(|| malformed(format!("expected a JSON string, got {value}")))?;
        serde_json::from_str::<String>(encoded)
            .map_err(|e| malformed(format!("not a double-encoded string: {e}")))
    }

    /// `DequeueCount`, which the host sends as a string (`"1"`).
    pub fn dequeue_count(&self) -> Option<u32> {
        match self.metadata.get("DequeueCount")? {
            Value::String(text) => text.parse().ok(),
            Value::Number(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        }
    }

    /// A string metadata value without the literal quotes the host leaves on strings (`Id`,
    /// `PopReceipt`).
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        let text = self.metadata.get(key)?.as_str()?;
        Some(serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_string()))
    }

    /// The timer bound to `binding`: `Data[binding]` is a `TimerInfo` object.
    pub fn timer(&self, binding: &str) -> Result<TimerInfo, InvocationError> {
        let value = self
            .data
            .get(binding)
            .ok_or_else(|| InvocationError::MissingBinding(binding.to_string()))?;
        serde_json::from_value(value.clone()).map_err(|e| InvocationError::Malformed {
            binding: binding.to_string(),
            expected: "timer",
            message: e.to_string(),
        })
    }
}

/// The timer trigger's value (.NET `TimerInfo`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimerInfo {
    #[serde(default)]
    pub schedule_status: Option<ScheduleStatus>,
    #[serde(default)]
    pub is_past_due: bool,
}

/// Present only when the schedule is monitored; times carry the host machine's offset.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleStatus {
    pub last: DateTime<FixedOffset>,
    pub next: DateTime<FixedOffset>,
    pub last_updated: DateTime<FixedOffset>,
}

/// The worker's answer. Always a JSON object with `application/json`: an empty body would leave
/// the invocation hanging until the function timeout.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Option<Value>,
}

impl InvocationResponse {
    pub fn log(mut self, line: impl Into<String>) -> Self {
        self.logs.push(line.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue payload observed from Core Tools 4.0.6610 (runtime 4.1036.1.23224, message text
    /// `hello!!`), verbatim; the publisher printed `sys` with its keys sorted.
    const OBSERVED_QUEUE: &str = r#"{
    "Data": {
      "queue": "\"hello!!\""
    },
    "Metadata": {
      "DequeueCount": "1",
      "ExpirationTime": "2025-02-25T03:06:19+00:00",
      "Id": "\"52d53c5f-e212-487e-998b-abbe3b9d51e4\"",
      "InsertionTime": "2025-02-18T03:06:19+00:00",
      "NextVisibleTime": "2025-02-18T03:16:20+00:00",
      "PopReceipt": "\"MThGZWIyMDI1MDM6MDY6MjA3NjM1\"",
      "sys": {
        "MethodName": "queue",
        "RandGuid": "e59556b5-892a-4465-a19d-4396f0978dab",
        "UtcNow": "2025-02-18T03:06:20.7562691Z"
      }
    }
}"#;

    /// The same wire in host order (`sys` as MethodName, UtcNow, RandGuid), compact.
    const COMPACT_QUEUE: &str = r#"{"Data":{"queue":"\"hello!!\""},"Metadata":{"DequeueCount":"1","ExpirationTime":"2025-02-25T03:06:19+00:00","Id":"\"52d53c5f-e212-487e-998b-abbe3b9d51e4\"","InsertionTime":"2025-02-18T03:06:19+00:00","NextVisibleTime":"2025-02-18T03:16:20+00:00","PopReceipt":"\"MThGZWIyMDI1MDM6MDY6MjA3NjM1\"","sys":{"MethodName":"queue","UtcNow":"2025-02-18T03:06:20.7562691Z","RandGuid":"e59556b5-892a-4465-a19d-4396f0978dab"}}}"#;

    /// A JSON message body, with the binding data the host adds from its top-level properties.
    const JSON_QUEUE: &str = r#"{"Data":{"myQueueItem":"\"{\\\"orderId\\\":7,\\\"note\\\":\\\"x\\\"}\""},"Metadata":{"DequeueCount":"1","ExpirationTime":"9999-12-31T23:59:59+00:00","Id":"\"1\"","InsertionTime":"2025-02-18T03:06:19+00:00","NextVisibleTime":"2025-02-18T03:16:20+00:00","PopReceipt":"\"p\"","sys":{"MethodName":"q","UtcNow":"2025-02-18T03:06:20.7562691Z","RandGuid":"r"},"orderId":"\"7\"","note":"\"x\""}}"#;

    /// A timer payload in the host's shape: the `TimerInfo` of a monitored schedule, and `sys`.
    const TIMER: &str = r#"{"Data":{"myTimer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-09-24T13:08:00.0096035+00:00","Next":"2026-09-24T13:09:00+00:00","LastUpdated":"2026-09-24T13:08:00.0096035+00:00"},"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"MyTimerFn","UtcNow":"2026-09-24T13:09:00.0123456Z","RandGuid":"..."}}}"#;

    /// TimerInfo as another worker received it, with a local offset.
    const TIMER_OFFSET: &str = r#"{"Data":{"t":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2022-10-11T10:52:00.003967+02:00","Next":"2022-10-11T10:53:00+02:00","LastUpdated":"2022-10-11T10:52:00.003967+02:00"},"IsPastDue":false}},"Metadata":{}}"#;

    fn parse(text: &str) -> InvocationRequest {
        serde_json::from_str(text).expect("the captured payload parses")
    }

    #[test]
    fn queue_payloads_decode_to_the_message_text() {
        for payload in [OBSERVED_QUEUE, COMPACT_QUEUE] {
            let request = parse(payload);
            assert_eq!(request.queue_message("queue").unwrap(), "hello!!");
            assert_eq!(request.dequeue_count(), Some(1));
            assert_eq!(
                request.metadata_text("Id").as_deref(),
                Some("52d53c5f-e212-487e-998b-abbe3b9d51e4")
            );
            assert_eq!(
                request.metadata_text("PopReceipt").as_deref(),
                Some("MThGZWIyMDI1MDM6MDY6MjA3NjM1")
            );
        }
    }

    #[test]
    fn a_json_queue_message_comes_back_as_its_text() {
        let request = parse(JSON_QUEUE);
        assert_eq!(
            request.queue_message("myQueueItem").unwrap(),
            r#"{"orderId":7,"note":"x"}"#
        );
        assert_eq!(request.metadata_text("orderId").as_deref(), Some("7"));
    }

    #[test]
    fn timer_payloads_parse() {
        let timer = parse(TIMER).timer("myTimer").unwrap();
        assert!(!timer.is_past_due);
        let status = timer.schedule_status.unwrap();
        assert_eq!(status.next.to_rfc3339(), "2026-09-24T13:09:00+00:00");
        let offset = parse(TIMER_OFFSET).timer("t").unwrap();
        assert_eq!(
            offset
                .schedule_status
                .unwrap()
                .next
                .offset()
                .local_minus_utc(),
            7200
        );
        let unmonitored: InvocationRequest =
            serde_json::from_str(r#"{"Data":{"t":{"ScheduleStatus":null,"IsPastDue":true}}}"#)
                .unwrap();
        let timer = unmonitored.timer("t").unwrap();
        assert!(timer.is_past_due);
        assert_eq!(timer.schedule_status, None);
    }

    #[test]
    fn wrong_shapes_are_clear_errors() {
        let request = parse(COMPACT_QUEUE);
        assert_eq!(
            request.queue_message("other"),
            Err(InvocationError::MissingBinding("other".to_string()))
        );
        let single: InvocationRequest =
            serde_json::from_str(r#"{"Data":{"queue":"hello"}}"#).unwrap();
        let error = single.queue_message("queue").unwrap_err().to_string();
        assert!(error.contains("double-encoded"), "{error}");
        let number: InvocationRequest = serde_json::from_str(r#"{"Data":{"queue":1}}"#).unwrap();
        assert!(number.queue_message("queue").is_err());
        assert!(parse(COMPACT_QUEUE).timer("queue").is_err());
    }

    #[test]
    fn responses_have_the_hosts_property_names() {
        let response = InvocationResponse::default().log("processed");
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"Outputs":{},"Logs":["processed"],"ReturnValue":null}"#
        );
    }
}
