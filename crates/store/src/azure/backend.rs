//! `AzureBackend`: the `Backend` trait on Azure Storage — Tables for state, history and
//! summaries, Queues for messages, Blobs for payloads beyond the services' size limits.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::blobs::Blobs;
use super::queues::{decode_message_json, MessageOrBlob, Queues};
use super::tables::Tables;
use crate::backend::{Backend, Clock, StoreError};
use crate::model::{
    Commit, DeferredMessage, Destination, InstanceQuery, InstanceState, InstanceSummary,
    LoadedInstance, Message, Page, PoisonMessage, PoisonQuery, QueueKind, Receipt, Received,
    Version,
};
use crate::names::TaskHub;
use durable_protocol::connection::{
    http_client, ConnectionError, HttpSettings, StorageClients, StorageConnection,
};

pub struct AzureBackend {
    tables: Tables,
    queues: Queues,
    blobs: Blobs,
}

impl AzureBackend {
    /// Builds the clients for `connection` (one pooled HTTP client for all of them) for the task
    /// hub `hub`. Nothing is contacted until the first call.
    pub fn connect(
        connection: &StorageConnection,
        hub: TaskHub,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConnectionError> {
        let http = http_client(HttpSettings::default())?;
        Ok(Self::from_clients(
            connection.build_clients(http)?,
            hub,
            clock,
        ))
    }

    /// The backend over clients the caller built, so other stores can share their HTTP pool and
    /// token cache.
    pub fn from_clients(clients: StorageClients, hub: TaskHub, clock: Arc<dyn Clock>) -> Self {
        let blobs = Blobs::new(clients.blobs, &hub);
        let tables = Tables::new(&clients.tables, &hub, blobs.clone());
        let queues = Queues::new(clients.queues, hub, blobs.clone(), clock);
        Self {
            tables,
            queues,
            blobs,
        }
    }
}

impl Backend for AzureBackend {
    async fn create_task_hub(&self) -> Result<(), StoreError> {
        self.tables.create().await?;
        self.blobs.create().await?;
        self.queues.create().await
    }

    async fn load(&self, instance_id: &str) -> Result<Option<LoadedInstance>, StoreError> {
        self.tables.load(instance_id).await
    }

    async fn commit(
        &self,
        expected: Option<&Version>,
        commit: &Commit,
    ) -> Result<Version, StoreError> {
        self.tables.commit(expected, commit).await
    }

    async fn send(&self, messages: &[Message]) -> Result<(), StoreError> {
        self.queues.send(messages).await
    }

    async fn send_held(&self, message: &Message, hold: Duration) -> Result<Receipt, StoreError> {
        self.queues.send_held(message, hold).await
    }

    async fn receive(
        &self,
        queue: QueueKind,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, StoreError> {
        self.queues.receive(queue, max, visibility).await
    }

    async fn delete(&self, receipt: &Receipt) -> Result<(), StoreError> {
        self.queues.delete(receipt).await
    }

    async fn abandon(&self, receipt: &Receipt, delay: Duration) -> Result<(), StoreError> {
        self.queues.abandon(receipt, delay).await
    }

    async fn write_summary(&self, summary: &InstanceSummary) -> Result<(), StoreError> {
        self.tables.write_summary(summary).await
    }

    async fn read_summary(&self, instance_id: &str) -> Result<Option<InstanceSummary>, StoreError> {
        self.tables.read_summary(instance_id).await
    }

    async fn create_summary(&self, summary: &InstanceSummary) -> Result<bool, StoreError> {
        self.tables.create_summary(summary).await
    }

    async fn read_state(&self, instance_id: &str) -> Result<Option<InstanceState>, StoreError> {
        self.tables.read_state(instance_id).await
    }

    async fn query(&self, query: &InstanceQuery) -> Result<Page<InstanceSummary>, StoreError> {
        self.tables.query(query).await
    }

    async fn purge(&self, instance_id: &str) -> Result<bool, StoreError> {
        self.tables.purge(instance_id).await
    }

    async fn park(&self, poison: &PoisonMessage) -> Result<(), StoreError> {
        self.tables.park(poison).await
    }

    async fn poison_messages(
        &self,
        query: &PoisonQuery,
    ) -> Result<Page<PoisonMessage>, StoreError> {
        self.tables.poison_messages(query).await
    }

    async fn poison_message(&self, id: &str) -> Result<Option<PoisonMessage>, StoreError> {
        self.tables.poison_message(id).await
    }

    async fn unpark(&self, id: &str, parked_at: Option<DateTime<Utc>>) -> Result<bool, StoreError> {
        self.tables.unpark(id, parked_at).await
    }

    async fn record_deferred(&self, deferred: &DeferredMessage) -> Result<(), StoreError> {
        self.tables.record_deferred(deferred).await
    }

    async fn deferred_messages(
        &self,
        page_size: usize,
        continuation: Option<&str>,
    ) -> Result<Page<DeferredMessage>, StoreError> {
        self.tables.deferred_messages(page_size, continuation).await
    }

    async fn forget_deferred(&self, id: &str) -> Result<bool, StoreError> {
        self.tables.forget_deferred(id).await
    }

    async fn decode_message(&self, text: &str) -> Result<Message, StoreError> {
        match decode_message_json(text).map_err(StoreError::InvalidInput)? {
            MessageOrBlob::Message(message) => Ok(message),
            MessageOrBlob::Blob(name) => {
                let bytes = self
                    .blobs
                    .get(&name)
                    .await?
                    .ok_or_else(|| StoreError::Permanent {
                        operation: "read message".to_string(),
                        message: format!("message blob '{name}' is missing"),
                    })?;
                let json = String::from_utf8(bytes).map_err(|e| {
                    StoreError::InvalidInput(format!("message blob '{name}' is not UTF-8: {e}"))
                })?;
                serde_json::from_str(&json).map_err(|e| {
                    StoreError::InvalidInput(format!("message blob '{name}' is not a message: {e}"))
                })
            }
        }
    }

    fn queue_for(&self, destination: &Destination) -> QueueKind {
        self.queues.queue_for(destination)
    }

    fn queues(&self) -> Vec<QueueKind> {
        self.queues.queues()
    }

    async fn queue_length(&self, queue: QueueKind) -> Result<u64, StoreError> {
        self.queues.length(queue).await
    }
}
