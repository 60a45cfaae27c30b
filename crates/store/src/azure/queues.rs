//! The task hub's control and work-item queues: messages travel as base64 of their JSON (what the
//! Functions queue trigger decodes by default), timers as initial visibility, and messages too
//! large for a queue as a `{"BlobName": …}` pointer into the large-messages container.
//!
//! Receipts are self-contained: `message_key` is the queue message id and `pop_receipt` is
//! `"{pop receipt}\n{message text}"`, because the legacy SDK's update (used to abandon) always
//! re-sends the body and the queue gives no other way to read an invisible message's text.

use std::sync::Arc;
use std::time::Duration;

use azure_storage_queues::prelude::{PopReceipt, QueueClient};
use azure_storage_queues::QueueServiceClient;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::blobs::Blobs;
use super::errors::classify_unconditional;
use crate::backend::{Clock, StoreError};
use crate::model::{Destination, Message, QueueKind, Receipt, Received};
use crate::names::{escape_key, partition_of, TaskHub};

/// Azure Queues hand out at most 32 messages per receive.
pub const MAX_RECEIVE: usize = 32;
/// The longest visibility timeout Azure Queues accept.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest initial delay of a sent message; a minute under the limit so clock skew between
/// this machine and the service never pushes it over (long timers hop, ARCHITECTURE.md).
pub const MAX_INITIAL_DELAY: Duration = Duration::from_secs(7 * 24 * 3600 - 60);
/// Time to live of every message. "Never expires" (-1) is not expressible in the legacy SDK (its
/// `MessageTTL` is an unsigned `Duration`) and its default is 7 days; a year outlives any delay
/// (at most 7 days) and any sane backlog.
pub const MESSAGE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// JSON larger than this goes to a blob: base64 makes it 4/3 larger, and the queue's limit is
/// 64 KiB of message text (DurableTask.AzureStorage uses the same 45 KiB threshold).
pub const MAX_INLINE_JSON: usize = 45 * 1024;
/// Puts in flight at once during a send.
const SEND_CONCURRENCY: usize = 8;

/// A decoded message body: the message itself, or the name of the blob holding its JSON.
// Short-lived and almost always the large variant: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum MessageOrBlob {
    Message(Message),
    Blob(String),
}

/// The body sent in place of a message whose JSON is too large for the queue.
#[derive(Debug, Serialize, Deserialize)]
struct BlobPointer {
    #[serde(rename = "BlobName")]
    blob_name: String,
}

/// The queue message text of a message: base64 (standard, padded) of its JSON. No offload:
/// callers that may exceed [`MAX_INLINE_JSON`] send through [`Queues::send`].
pub fn encode_message(message: &Message) -> Result<String, StoreError> {
    Ok(BASE64.encode(message_json(message)?))
}

/// Decodes queue message text as sent by [`Queues::send`] (raw JSON is accepted too, as
/// DurableTask.AzureStorage does). A blob pointer is an error here: resolve it with
/// [`decode_message_json`] and the blob.
pub fn decode_message_text(text: &str) -> Result<Message, String> {
    match decode_text(text)? {
        MessageOrBlob::Message(message) => Ok(message),
        MessageOrBlob::Blob(name) => Err(format!(
            "the message is stored in blob '{name}' of the large-messages container"
        )),
    }
}

/// Decodes a message's JSON (for a caller handed already base64-decoded text, as the
/// Functions host does): the message, or the blob that holds it.
pub fn decode_message_json(json: &str) -> Result<MessageOrBlob, String> {
    match serde_json::from_str::<Message>(json) {
        Ok(message) => Ok(MessageOrBlob::Message(message)),
        Err(message_error) => match serde_json::from_str::<BlobPointer>(json) {
            Ok(pointer) => Ok(MessageOrBlob::Blob(pointer.blob_name)),
            Err(_) => Err(format!("not a message envelope: {message_error}")),
        },
    }
}

/// The blob a large message is offloaded to. The message id is escaped too, so no id can add a
/// path level or break the URL.
pub fn message_blob_name(message: &Message) -> String {
    format!(
        "{}/message-{}.json",
        escape_key(message.destination.instance_id()),
        escape_key(&message.id)
    )
}

fn message_json(message: &Message) -> Result<String, StoreError> {
    serde_json::to_string(message).map_err(|e| {
        StoreError::InvalidInput(format!(
            "message '{}' cannot be serialized: {e}",
            message.id
        ))
    })
}

fn decode_text(text: &str) -> Result<MessageOrBlob, String> {
    let text = text.trim();
    // Base64 never starts with '{', so raw JSON (host.json messageEncoding "none") is unambiguous.
    if text.starts_with('{') {
        return decode_message_json(text);
    }
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("message text is neither JSON nor base64: {e}"))?;
    let json = String::from_utf8(bytes)
        .map_err(|e| format!("base64-decoded message text is not UTF-8: {e}"))?;
    decode_message_json(&json)
}

/// What the queue answered a put with, and the text that went on it (kept for `abandon`).
struct Put {
    message_id: String,
    pop_receipt: String,
    text: String,
}

/// Seconds, rounded up: a timer delivered a fraction early would fire before its time.
fn whole_seconds(duration: Duration) -> Duration {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    Duration::from_secs(seconds)
}

/// How long a message to deliver at `deliver_at` stays invisible after being sent at `now`.
fn initial_delay(deliver_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    let delay = deliver_at
        .and_then(|at| (at - now).to_std().ok())
        .unwrap_or(Duration::ZERO);
    whole_seconds(delay).min(MAX_INITIAL_DELAY)
}

/// The pop receipt and the message text a receipt carries (see the module docs).
fn split_receipt(receipt: &Receipt) -> (&str, Option<&str>) {
    match receipt.pop_receipt.split_once('\n') {
        Some((pop, text)) => (pop, Some(text)),
        None => (&receipt.pop_receipt, None),
    }
}

/// A receipt error names the message, as the in-memory backend's does.
fn receipt_error(operation: &str, receipt: &Receipt, error: azure_core::Error) -> StoreError {
    match classify_unconditional(operation, error) {
        StoreError::LostReceipt(_) => StoreError::LostReceipt(receipt.message_key.clone()),
        other => other,
    }
}

/// The queues of one task hub.
#[derive(Clone)]
pub struct Queues {
    service: QueueServiceClient,
    hub: TaskHub,
    blobs: Blobs,
    clock: Arc<dyn Clock>,
}

impl Queues {
    pub fn new(
        service: QueueServiceClient,
        hub: TaskHub,
        blobs: Blobs,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            service,
            hub,
            blobs,
            clock,
        }
    }

    /// Creates every control queue and the work-item queue if missing.
    pub async fn create(&self) -> Result<(), StoreError> {
        for queue in self.queues() {
            let client = self.client(queue)?;
            match client.create().await {
                Ok(_) => {}
                // Creating an existing queue succeeds unless its metadata differs (409).
                Err(e) if super::errors::status(&e) == Some(409) => {}
                Err(e) => {
                    return Err(classify_unconditional(
                        &format!("create queue '{}'", client.queue_name()),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }

    /// The queue a destination's messages travel on (the same routing as the in-memory
    /// backend).
    pub fn queue_for(&self, destination: &Destination) -> QueueKind {
        match destination {
            Destination::Instance { instance_id, .. } => {
                QueueKind::Control(partition_of(instance_id, self.hub.partitions()))
            }
            Destination::WorkItem { .. } => QueueKind::WorkItems,
        }
    }

    /// Every queue of the task hub: the control queues in partition order, then work items.
    pub fn queues(&self) -> Vec<QueueKind> {
        (0..self.hub.partitions().get())
            .map(QueueKind::Control)
            .chain([QueueKind::WorkItems])
            .collect()
    }

    /// The Azure name of a queue.
    pub fn queue_name(&self, queue: QueueKind) -> Result<String, StoreError> {
        match queue {
            QueueKind::Control(index) => self.hub.control_queue(index).ok_or_else(|| {
                StoreError::InvalidInput(format!(
                    "control queue {index} does not exist: task hub '{}' has {} partitions",
                    self.hub.name(),
                    self.hub.partitions().get()
                ))
            }),
            QueueKind::WorkItems => Ok(self.hub.work_item_queue()),
        }
    }

    fn client(&self, queue: QueueKind) -> Result<QueueClient, StoreError> {
        Ok(self.service.queue_client(self.queue_name(queue)?))
    }

    /// The queue's approximate message count (one metadata request).
    pub async fn length(&self, queue: QueueKind) -> Result<u64, StoreError> {
        let client = self.client(queue)?;
        let metadata = client.get_metadata().await.map_err(|e| {
            classify_unconditional(
                &format!("read the length of queue '{}'", client.queue_name()),
                e,
            )
        })?;
        Ok(metadata.approximate_messages_count as u64)
    }

    /// Enqueues each message on its destination's queue, invisible until its `deliver_at`
    /// (at most [`MAX_INITIAL_DELAY`] ahead). Not atomic: on error some may have been sent.
    pub async fn send(&self, messages: &[Message]) -> Result<(), StoreError> {
        let now = self.clock.now();
        // Bounded concurrency in fixed chunks: a stream combinator over borrowing closures
        // would make the future lose `Send`, which the Backend trait requires.
        for chunk in messages.chunks(SEND_CONCURRENCY) {
            let sends: Vec<_> = chunk
                .iter()
                .map(|message| self.send_one(message, now))
                .collect();
            for result in futures::future::join_all(sends).await {
                result?;
            }
        }
        Ok(())
    }

    async fn send_one(&self, message: &Message, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.put(message, initial_delay(message.deliver_at, now))
            .await
            .map(drop)
    }

    /// Sends `message` hidden for `hold`; the receipt the queue answers with deletes it (or,
    /// through `abandon`, releases it) before anyone has received it.
    pub async fn send_held(
        &self,
        message: &Message,
        hold: Duration,
    ) -> Result<Receipt, StoreError> {
        let queue = self.queue_for(&message.destination);
        let put = self
            .put(message, whole_seconds(hold).min(MAX_VISIBILITY))
            .await?;
        Ok(Receipt {
            queue,
            message_key: put.message_id,
            pop_receipt: format!("{}\n{}", put.pop_receipt, put.text),
        })
    }

    /// Puts the message's text (inline or a blob pointer) on its queue, invisible for `delay`.
    async fn put(&self, message: &Message, delay: Duration) -> Result<Put, StoreError> {
        let client = self.client(self.queue_for(&message.destination))?;
        let json = message_json(message)?;
        let text = if json.len() > MAX_INLINE_JSON {
            // The blob is written first, so a pointer on the queue always resolves (until a
            // purge of the instance removes both).
            let blob_name = message_blob_name(message);
            self.blobs.put(&blob_name, json.into_bytes()).await?;
            let pointer = serde_json::to_string(&BlobPointer { blob_name }).map_err(|e| {
                StoreError::InvalidInput(format!("blob pointer cannot be serialized: {e}"))
            })?;
            BASE64.encode(pointer)
        } else {
            BASE64.encode(json)
        };
        client
            .put_message(text.clone())
            .visibility_timeout(delay)
            .ttl(MESSAGE_TTL)
            .await
            .map(|put| Put {
                message_id: put.queue_message.message_id,
                pop_receipt: put.queue_message.pop_receipt,
                text,
            })
            .map_err(|e| {
                classify_unconditional(
                    &format!(
                        "send message '{}' to queue '{}'",
                        message.id,
                        client.queue_name()
                    ),
                    e,
                )
            })
    }

    /// Takes up to `max` (at most [`MAX_RECEIVE`]) visible messages off `queue`, hiding them for
    /// `visibility` (whole seconds, 1 s to 7 days). A message that can never be decoded is
    /// deleted with a warning; one whose blob cannot be read right now is left to reappear.
    pub async fn receive(
        &self,
        queue: QueueKind,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, StoreError> {
        let count = max.min(MAX_RECEIVE);
        if count == 0 {
            return Ok(Vec::new());
        }
        let client = self.client(queue)?;
        let visibility = whole_seconds(visibility).clamp(Duration::from_secs(1), MAX_VISIBILITY);
        let response = client
            .get_messages()
            .number_of_messages(u8::try_from(count).unwrap_or(u8::MAX))
            .visibility_timeout(visibility)
            .await
            .map_err(|e| {
                classify_unconditional(&format!("receive from queue '{}'", client.queue_name()), e)
            })?;
        let decoded = futures::future::join_all(
            response
                .messages
                .into_iter()
                .map(|raw| self.resolve(queue, &client, raw)),
        )
        .await;
        Ok(decoded.into_iter().flatten().collect())
    }

    /// Decodes one received message, resolving a blob pointer; `None` if it is not returned.
    async fn resolve(
        &self,
        queue: QueueKind,
        client: &QueueClient,
        raw: azure_storage_queues::operations::Message,
    ) -> Option<Received> {
        let dequeue_count = u32::try_from(raw.dequeue_count).unwrap_or(u32::MAX);
        let message = match decode_text(&raw.message_text) {
            Ok(MessageOrBlob::Message(message)) => Ok(message),
            Ok(MessageOrBlob::Blob(name)) => match self.blobs.get(&name).await {
                Ok(Some(bytes)) => String::from_utf8(bytes)
                    .map_err(|e| format!("blob '{name}' is not UTF-8: {e}"))
                    .and_then(|json| match decode_message_json(&json)? {
                        MessageOrBlob::Message(message) => Ok(message),
                        MessageOrBlob::Blob(_) => {
                            Err(format!("blob '{name}' holds another blob pointer"))
                        }
                    }),
                Ok(None) => Err(format!("its blob '{name}' does not exist")),
                Err(error) => {
                    tracing::warn!(
                        queue = client.queue_name(),
                        queue_message_id = %raw.message_id,
                        dequeue_count,
                        %error,
                        "could not read a queued message's blob; it will reappear after its visibility timeout"
                    );
                    return None;
                }
            },
            Err(error) => Err(error),
        };
        match message {
            Ok(message) => Some(Received {
                message,
                dequeue_count,
                receipt: Receipt {
                    queue,
                    message_key: raw.message_id.clone(),
                    pop_receipt: format!("{}\n{}", raw.pop_receipt, raw.message_text),
                },
            }),
            Err(error) => {
                // Never processable, so it would only come back forever: drop it.
                tracing::warn!(
                    queue = client.queue_name(),
                    queue_message_id = %raw.message_id,
                    dequeue_count,
                    text_len = raw.message_text.len(),
                    %error,
                    "deleting a queue message that is not a valid message envelope"
                );
                let pop_receipt = PopReceipt::new(raw.message_id.clone(), raw.pop_receipt.clone());
                if let Err(delete_error) = client.pop_receipt_client(pop_receipt).delete().await {
                    tracing::warn!(
                        queue = client.queue_name(),
                        queue_message_id = %raw.message_id,
                        error = %classify_unconditional("delete undecodable message", delete_error),
                        "could not delete an undecodable queue message; it will reappear"
                    );
                }
                None
            }
        }
    }

    /// Deletes a received message. [`StoreError::LostReceipt`] if the receipt no longer holds it.
    pub async fn delete(&self, receipt: &Receipt) -> Result<(), StoreError> {
        let client = self.client(receipt.queue)?;
        let (pop_receipt, _) = split_receipt(receipt);
        client
            .pop_receipt_client(PopReceipt::new(receipt.message_key.clone(), pop_receipt))
            .delete()
            .await
            .map(|_| ())
            .map_err(|e| {
                receipt_error(
                    &format!(
                        "delete message '{}' from queue '{}'",
                        receipt.message_key,
                        client.queue_name()
                    ),
                    receipt,
                    e,
                )
            })
    }

    /// Makes a received message visible again after `delay` (whole seconds, at most 7 days),
    /// re-sending its original text. The receipt is spent afterwards.
    pub async fn abandon(&self, receipt: &Receipt, delay: Duration) -> Result<(), StoreError> {
        let client = self.client(receipt.queue)?;
        let (pop_receipt, Some(text)) = split_receipt(receipt) else {
            return Err(StoreError::InvalidInput(format!(
                "receipt for message '{}' was not issued by Queues::receive (it carries no message text)",
                receipt.message_key
            )));
        };
        client
            .pop_receipt_client(PopReceipt::new(receipt.message_key.clone(), pop_receipt))
            .update(text, whole_seconds(delay).min(MAX_VISIBILITY))
            .await
            .map(|_| ())
            .map_err(|e| {
                receipt_error(
                    &format!(
                        "abandon message '{}' on queue '{}'",
                        receipt.message_key,
                        client.queue_name()
                    ),
                    receipt,
                    e,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use durable_engine::{EventKind, HistoryEvent};

    fn message(input: Option<String>) -> Message {
        Message {
            more_calls: Vec::new(),
            trace_context: None,
            deferral_recorded: false,
            id: "m/1".to_string(),
            destination: Destination::Instance {
                instance_id: "order^7 it's".to_string(),
                execution_id: Some("e1".to_string()),
            },
            event: HistoryEvent::message(
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                EventKind::EventRaised {
                    name: "Approval".to_string(),
                    input,
                },
            ),
            deliver_at: None,
            revision: None,
        }
    }

    #[test]
    fn encode_and_decode_round_trip() {
        let original = message(Some(
            r#"{"text":"<&> it's \"quoted\" ünïcødé"}"#.to_string(),
        ));
        let text = encode_message(&original).unwrap();
        assert!(!text.contains('{'), "base64, not raw JSON: {text}");
        assert_eq!(decode_message_text(&text).unwrap(), original);
        // Raw JSON (messageEncoding "none") decodes too.
        let json = serde_json::to_string(&original).unwrap();
        assert_eq!(decode_message_text(&json).unwrap(), original);
        assert_eq!(
            decode_message_json(&json).unwrap(),
            MessageOrBlob::Message(original)
        );
    }

    #[test]
    fn blob_pointers_and_garbage() {
        let pointer = r#"{"BlobName":"a/message-1.json"}"#;
        assert_eq!(
            decode_message_json(pointer).unwrap(),
            MessageOrBlob::Blob("a/message-1.json".to_string())
        );
        let err = decode_message_text(&BASE64.encode(pointer)).unwrap_err();
        assert!(err.contains("a/message-1.json"), "{err}");
        assert!(decode_message_text("not base64 !!!").is_err());
        assert!(decode_message_text(&BASE64.encode([0xff, 0xfe])).is_err());
        assert!(decode_message_text(&BASE64.encode(r#"{"Id":"x"}"#)).is_err());
        assert!(decode_message_json("{}").is_err());
    }

    #[test]
    fn blob_names_escape_the_instance_and_message_ids() {
        assert_eq!(
            message_blob_name(&message(None)),
            "order^^7 it's/message-m^01.json"
        );
    }

    #[test]
    fn initial_delay_rounds_up_and_clamps() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(initial_delay(None, now), Duration::ZERO);
        assert_eq!(
            initial_delay(Some(now - chrono::Duration::seconds(5)), now),
            Duration::ZERO
        );
        assert_eq!(
            initial_delay(Some(now + chrono::Duration::milliseconds(1500)), now),
            Duration::from_secs(2)
        );
        assert_eq!(
            initial_delay(Some(now + chrono::Duration::days(30)), now),
            MAX_INITIAL_DELAY
        );
    }

    #[test]
    fn receipts_split_at_the_first_newline() {
        let receipt = Receipt {
            queue: QueueKind::WorkItems,
            message_key: "id".to_string(),
            pop_receipt: "AgAAAA==\ntext\nwith newline".to_string(),
        };
        assert_eq!(
            split_receipt(&receipt),
            ("AgAAAA==", Some("text\nwith newline"))
        );
        let foreign = Receipt {
            pop_receipt: "AgAAAA==".to_string(),
            ..receipt
        };
        assert_eq!(split_receipt(&foreign), ("AgAAAA==", None));
    }

    #[test]
    fn inline_limit_keeps_base64_under_the_queue_limit() {
        assert!(MAX_INLINE_JSON.div_ceil(3) * 4 < 64 * 1024);
    }
}
