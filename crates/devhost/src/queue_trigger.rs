//! Queue triggers with the Functions host's semantics: polling with back-off, batches refilled
//! at a threshold, each message kept invisible while its invocation runs, base64 text, the
//! dequeue count, and the `<queue>-poison` queue after `maxDequeueCount` failed attempts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_storage_queues::prelude::PopReceipt;
use azure_storage_queues::QueueClient;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::QueueOptions;
use super::invoker::{dotnet_string, host_string, sys, Invoker};
use super::output_bindings::OutputBindings;

/// How long a received message is hidden before its lease is renewed; the host renews while the
/// invocation runs, so a slow invocation never lets the message reappear. Also how long the
/// messages of a dev host that crashed stay hidden from the others.
const LEASE: Duration = Duration::from_secs(30);
/// The host's polling starts fast and doubles while the queue stays empty.
const MIN_POLLING_INTERVAL: Duration = Duration::from_millis(100);
/// One queue-triggered function.
pub struct QueueTrigger {
    pub function: String,
    pub binding: String,
    pub queue: QueueClient,
    pub poison: QueueClient,
    pub options: QueueOptions,
    /// Written after each successful invocation; failing to write them fails the invocation.
    pub outputs: Arc<OutputBindings>,
}

/// What the host knows of a received message, for the invocation's metadata.
struct Received {
    id: String,
    pop_receipt: Arc<Mutex<String>>,
    text: String,
    dequeue_count: u64,
    insertion_time: DateTime<Utc>,
    expiration_time: DateTime<Utc>,
    next_visible_time: DateTime<Utc>,
}

fn chrono_time(time: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(time.unix_timestamp(), 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `DateTimeOffset` after the host's ToString/Parse round-trip: no fraction, `+00:00`.
fn offset_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// The invocation payload the host sends for a queue message: `Data[binding]` is the message text
/// as the JSON of a .NET string (double-encoded); `Metadata` holds `DequeueCount`,
/// `ExpirationTime`, `Id`, `InsertionTime`, `NextVisibleTime`, `PopReceipt` and `sys` (numbers as
/// strings, strings double-encoded, times without their fraction), then a JSON object message's
/// top-level properties.
pub fn queue_payload(
    function: &str,
    binding: &str,
    text: &str,
    id: &str,
    pop_receipt: &str,
    dequeue_count: u64,
    times: [DateTime<Utc>; 3],
) -> Value {
    let [insertion, expiration, next_visible] = times;
    let mut metadata = Map::new();
    metadata.insert(
        "DequeueCount".into(),
        Value::String(dequeue_count.to_string()),
    );
    metadata.insert(
        "ExpirationTime".into(),
        Value::String(offset_time(expiration)),
    );
    metadata.insert("Id".into(), host_string(id));
    metadata.insert(
        "InsertionTime".into(),
        Value::String(offset_time(insertion)),
    );
    metadata.insert(
        "NextVisibleTime".into(),
        Value::String(offset_time(next_visible)),
    );
    metadata.insert("PopReceipt".into(), host_string(pop_receipt));
    metadata.insert(
        "sys".into(),
        sys(function, Utc::now(), uuid::Uuid::new_v4()),
    );
    // A JSON object message also contributes its top-level properties as binding data
    // (Utility.ApplyBindingData): objects as objects, other values as .NET strings.
    if let Ok(Value::Object(properties)) = serde_json::from_str::<Value>(text) {
        for (key, value) in properties {
            let converted = match value {
                Value::Object(_) => value,
                Value::Array(_) | Value::Null => continue,
                scalar => host_string(&dotnet_string(&scalar).unwrap_or_default()),
            };
            metadata.insert(key, converted);
        }
    }
    let mut data = Map::new();
    data.insert(binding.to_string(), host_string(text));
    json!({ "Data": data, "Metadata": metadata })
}

impl QueueTrigger {
    /// Polls and dispatches until `shutdown` turns true.
    pub async fn run(self, invoker: Arc<Invoker>, mut shutdown: watch::Receiver<bool>) {
        let trigger = Arc::new(self);
        let mut running = JoinSet::new();
        let mut interval = MIN_POLLING_INTERVAL;
        let batch = trigger.options.batch_size.clamp(1, 32);
        loop {
            if *shutdown.borrow() {
                break;
            }
            while running.try_join_next().is_some() {}
            // Fetch a new batch only once in-flight work drops to the threshold.
            if running.len() > trigger.options.new_batch_threshold as usize {
                tokio::select! {
                    _ = running.join_next() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let receive = trigger
                .queue
                .get_messages()
                .number_of_messages(u8::try_from(batch).unwrap_or(32))
                .visibility_timeout(LEASE)
                .into_future();
            // The SDK retries a storage that does not answer for up to a minute; a stop must
            // not wait for that.
            let received = tokio::select! {
                received = receive => received,
                _ = shutdown.changed() => continue,
            };
            let messages = match received {
                Ok(response) => response.messages,
                Err(error) => {
                    tracing::warn!("{}: cannot read the queue: {error}", trigger.function);
                    Vec::new()
                }
            };
            if messages.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.changed() => {}
                }
                interval = (interval * 2).min(trigger.options.max_polling_interval);
                continue;
            }
            interval = MIN_POLLING_INTERVAL;
            for message in messages {
                let received = Received {
                    id: message.message_id,
                    pop_receipt: Arc::new(Mutex::new(message.pop_receipt)),
                    text: message.message_text,
                    dequeue_count: message.dequeue_count,
                    insertion_time: chrono_time(message.insertion_time),
                    expiration_time: chrono_time(message.expiration_time),
                    next_visible_time: chrono_time(message.time_next_visible),
                };
                running.spawn(trigger.clone().handle(invoker.clone(), received));
            }
        }
        running.shutdown().await;
    }

    /// The invocation and its queue outputs; either failing fails the message's attempt.
    async fn invoke(&self, invoker: &Invoker, payload: &Value) -> bool {
        let result = match invoker.invoke(&self.function, payload).await {
            Ok(result) => result,
            Err(error) => {
                tracing::warn!("{}: {error}", self.function);
                return false;
            }
        };
        match self.outputs.apply(&result).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!("{}: {error}", self.function);
                false
            }
        }
    }

    fn receipt(&self, received: &Received) -> PopReceipt {
        let pop_receipt = received
            .pop_receipt
            .lock()
            .map(|guard| guard.clone())
            .unwrap_or_default();
        PopReceipt::new(received.id.clone(), pop_receipt)
    }

    /// One message: invoke while renewing its lease, then delete it, release it, or poison it.
    async fn handle(self: Arc<Self>, invoker: Arc<Invoker>, received: Received) {
        let text = if self.options.base64 {
            match BASE64
                .decode(received.text.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(text) => text,
                None => {
                    // As the host does: a message that is not base64 goes straight to poison.
                    tracing::warn!("{}: message {} is not base64", self.function, received.id);
                    self.poison(&received).await;
                    return;
                }
            }
        } else {
            received.text.clone()
        };
        let payload = queue_payload(
            &self.function,
            &self.binding,
            &text,
            &received.id,
            &received
                .pop_receipt
                .lock()
                .map(|g| g.clone())
                .unwrap_or_default(),
            received.dequeue_count,
            [
                received.insertion_time,
                received.expiration_time,
                received.next_visible_time,
            ],
        );
        let renewal = tokio::spawn(self.clone().renew(
            received.id.clone(),
            received.pop_receipt.clone(),
            received.text.clone(),
        ));
        let succeeded = self.invoke(&invoker, &payload).await;
        renewal.abort();
        let _ = renewal.await;
        if succeeded {
            if let Err(error) = self
                .queue
                .pop_receipt_client(self.receipt(&received))
                .delete()
                .await
            {
                tracing::warn!(
                    "{}: cannot delete message {}: {error}",
                    self.function,
                    received.id
                );
            }
        } else if received.dequeue_count >= u64::from(self.options.max_dequeue_count) {
            tracing::warn!(
                "{}: message {} has reached MaxDequeueCount of {}; moving it to the poison queue",
                self.function,
                received.id,
                self.options.max_dequeue_count
            );
            self.poison(&received).await;
        } else {
            let released = self
                .queue
                .pop_receipt_client(self.receipt(&received))
                .update(received.text.clone(), self.options.visibility_timeout)
                .await;
            if let Err(error) = released {
                tracing::warn!(
                    "{}: cannot release message {}: {error}",
                    self.function,
                    received.id
                );
            }
        }
    }

    /// Keeps the message hidden while its invocation runs.
    async fn renew(self: Arc<Self>, id: String, pop_receipt: Arc<Mutex<String>>, text: String) {
        loop {
            tokio::time::sleep(LEASE / 2).await;
            let current = pop_receipt.lock().map(|g| g.clone()).unwrap_or_default();
            match self
                .queue
                .pop_receipt_client(PopReceipt::new(id.clone(), current))
                .update(text.clone(), LEASE)
                .await
            {
                Ok(response) => {
                    if let Ok(mut guard) = pop_receipt.lock() {
                        *guard = response.pop_receipt;
                    }
                }
                Err(error) => {
                    tracing::warn!("{}: cannot renew message {id}: {error}", self.function);
                    return;
                }
            }
        }
    }

    /// Copies the message's original text to `<queue>-poison`, then deletes it.
    async fn poison(&self, received: &Received) {
        if let Err(error) = self.poison.put_message(received.text.clone()).await {
            tracing::warn!(
                "{}: cannot poison message {}: {error}",
                self.function,
                received.id
            );
            return;
        }
        if let Err(error) = self
            .queue
            .pop_receipt_client(self.receipt(received))
            .delete()
            .await
        {
            tracing::warn!(
                "{}: cannot delete poisoned message {}: {error}",
                self.function,
                received.id
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_protocol::invocation::InvocationRequest;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_payload_has_the_hosts_shape_and_the_worker_reads_it_back() {
        let payload = queue_payload(
            "queue",
            "queue",
            "hello!!",
            "52d53c5f-e212-487e-998b-abbe3b9d51e4",
            "MThGZWIyMDI1MDM6MDY6MjA3NjM1",
            1,
            [
                at("2025-02-18T03:06:19.123Z"),
                at("2025-02-25T03:06:19Z"),
                at("2025-02-18T03:16:20Z"),
            ],
        );
        let text = payload.to_string();
        assert!(text.starts_with(r#"{"Data":{"queue":"\"hello!!\""},"Metadata":{"DequeueCount":"1","ExpirationTime":"2025-02-25T03:06:19+00:00","Id":"\"52d53c5f-e212-487e-998b-abbe3b9d51e4\"","InsertionTime":"2025-02-18T03:06:19+00:00","NextVisibleTime":"2025-02-18T03:16:20+00:00","PopReceipt":"\"MThGZWIyMDI1MDM6MDY6MjA3NjM1\"","sys":{"MethodName":"queue","#), "{text}");
        let request: InvocationRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(request.queue_message("queue").unwrap(), "hello!!");
        assert_eq!(request.dequeue_count(), Some(1));
    }

    #[test]
    fn a_json_message_adds_its_properties_as_binding_data() {
        let now = at("2025-02-18T03:06:19Z");
        let payload = queue_payload(
            "q",
            "myQueueItem",
            r#"{"orderId":7,"note":"x","ok":true,"inner":{"a":1},"list":[1]}"#,
            "1",
            "p",
            2,
            [now, now, now],
        );
        let metadata = &payload["Metadata"];
        assert_eq!(metadata["orderId"], "\"7\"");
        assert_eq!(metadata["note"], "\"x\"");
        assert_eq!(metadata["ok"], "\"True\"");
        assert_eq!(metadata["inner"], json!({"a": 1}));
        assert!(metadata.get("list").is_none());
        assert_eq!(metadata["DequeueCount"], "2");
    }
}
