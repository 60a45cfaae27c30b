//! Poison messages: a queue message the runtime gives up on (it cannot be read, its last
//! delivery failed, or it has no instance to go to) is parked with why and how often it was
//! tried, so nothing is dropped unseen; an operator lists, requeues or discards it.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use super::{Disposition, Runtime, RuntimeError};
use durable_store::backend::{Backend, StoreError};
use durable_store::model::{Message, Page, PoisonMessage, PoisonQuery, QueueKind};

/// One delivery of a queue message by the Functions host.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub queue: QueueKind,
    /// The queue message's text as the host hands it over (already base64-decoded).
    pub text: &'a str,
    /// The host's id of the queue message: a record's id when the text cannot be read.
    pub queue_message_id: Option<&'a str>,
    /// The host's dequeue count: 1 on the first delivery.
    pub attempt: u32,
}

/// What became of a delivery that needs no retry.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivered {
    Processed(Disposition),
    /// Kept as the poison message of this id.
    Parked(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PoisonError {
    #[error("no poison message '{0}'")]
    NotFound(String),
    #[error(
        "poison message '{0}' could not be read as a message, so it cannot be requeued; discard it"
    )]
    Unreadable(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl From<StoreError> for PoisonError {
    fn from(error: StoreError) -> Self {
        Self::Runtime(error.into())
    }
}

impl<B: Backend> Runtime<B> {
    /// Processes one delivery. A text that is no message is parked at once: no retry can read
    /// it. Any other failure is returned for the host to retry, except when processing fails on
    /// the host's last delivery: the message is parked with the failure as its reason. Should
    /// parking fail too, or reading the message fail for want of storage, the failure is
    /// returned and the host moves the message to `<queue>-poison`.
    /// The last delivery costs two more storage calls (a record made first, taken back on
    /// success).
    pub async fn deliver(&self, delivery: Delivery<'_>) -> Result<Delivered, RuntimeError> {
        let last = delivery.attempt >= self.options.max_dequeue_count;
        let message = match self.backend.decode_message(delivery.text).await {
            Ok(message) => message,
            Err(StoreError::InvalidInput(reason)) => {
                let reason = format!("not a message this runtime can read: {reason}");
                return self.park_text(&delivery, reason).await;
            }
            // A storage failure (reading a large message's blob): parked as text, a message
            // that is fine could no longer be requeued. The host's `<queue>-poison` keeps it.
            Err(error) => return Err(error.into()),
        };
        if !last {
            return self.process(&message).await.map(Delivered::Processed);
        }
        // Parked before the last delivery runs, so a worker that dies during it (as it may have
        // on every earlier one) still leaves a record; a success takes it back.
        let stopped = "its last delivery has not finished: it is running, or its worker stopped";
        // A park that failed may still have written its record: take back whichever is there.
        let recorded = self
            .park_message(&message, stopped, delivery.attempt)
            .await
            .ok();
        match self.process(&message).await {
            Ok(Disposition::Parked) => Ok(Delivered::Parked(message.id)),
            Ok(disposition) => {
                if let Err(error) = self.backend.unpark(&message.id, recorded).await {
                    // The record outlives its processed message: a requeue of it is dropped as a
                    // duplicate, and a discard clears it.
                    tracing::warn!(
                        "message {} was processed but stays parked: {error}",
                        message.id
                    );
                }
                Ok(Delivered::Processed(disposition))
            }
            Err(error) => {
                let reason = format!("failed on all {} deliveries: {error}", delivery.attempt);
                match self.park_message(&message, reason, delivery.attempt).await {
                    Ok(_) => {
                        self.forget_deferral(&message).await;
                        Ok(Delivered::Parked(message.id))
                    }
                    Err(_) => Err(error),
                }
            }
        }
    }

    /// Parks a message the runtime could read; returns when (which tells this parking apart).
    pub(crate) async fn park_message(
        &self,
        message: &Message,
        reason: impl Display,
        attempts: u32,
    ) -> Result<DateTime<Utc>, StoreError> {
        let instance_id = message.destination.instance_id();
        tracing::warn!(
            "parked message {} for '{instance_id}' as a poison message: {reason}",
            message.id
        );
        let parked_at = self.clock.now();
        self.backend
            .park(&PoisonMessage {
                id: message.id.clone(),
                queue: self.backend.queue_for(&message.destination).label(),
                instance_id: Some(instance_id.to_string()),
                reason: reason.to_string(),
                attempts,
                parked_at,
                message: Some(message.clone()),
                text: None,
            })
            .await?;
        Ok(parked_at)
    }

    async fn park_text(
        &self,
        delivery: &Delivery<'_>,
        reason: impl Display,
    ) -> Result<Delivered, RuntimeError> {
        let id = delivery
            .queue_message_id
            .map_or_else(|| self.options.ids.next_id(), str::to_string);
        tracing::warn!("parked queue message {id} as a poison message: {reason}");
        self.backend
            .park(&PoisonMessage {
                id: id.clone(),
                queue: delivery.queue.label(),
                instance_id: None,
                reason: reason.to_string(),
                attempts: delivery.attempt,
                parked_at: self.clock.now(),
                message: None,
                text: Some(delivery.text.to_string()),
            })
            .await?;
        Ok(Delivered::Parked(id))
    }

    pub async fn poison_messages(
        &self,
        query: &PoisonQuery,
    ) -> Result<Page<PoisonMessage>, PoisonError> {
        Ok(self.backend.poison_messages(query).await?)
    }

    pub async fn poison_message(&self, id: &str) -> Result<PoisonMessage, PoisonError> {
        self.backend
            .poison_message(id)
            .await?
            .ok_or_else(|| PoisonError::NotFound(id.to_string()))
    }

    /// Sends a parked message again, then forgets it. A crash in between leaves the record for
    /// another requeue, whose copy the instance drops as a duplicate of the first.
    pub async fn requeue_poison(&self, id: &str) -> Result<Message, PoisonError> {
        let poison = self.poison_message(id).await?;
        let message = poison
            .message
            .ok_or_else(|| PoisonError::Unreadable(id.to_string()))?;
        self.backend.send(std::slice::from_ref(&message)).await?;
        // Only this parking: the message sent may already be parked again under its id.
        self.backend.unpark(id, Some(poison.parked_at)).await?;
        Ok(message)
    }

    pub async fn discard_poison(&self, id: &str) -> Result<(), PoisonError> {
        if self.backend.unpark(id, None).await? {
            Ok(())
        } else {
            Err(PoisonError::NotFound(id.to_string()))
        }
    }
}
