//! The backend trait: the storage operations the runtime needs and the guarantees each must
//! give, plus the clock backends and the runtime read time from.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::model::{
    Commit, DeferredMessage, Destination, InstanceQuery, InstanceState, InstanceSummary,
    LoadedInstance, Message, Page, PoisonMessage, PoisonQuery, QueueKind, Receipt, Received,
    Version,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another writer changed the instance since it was loaded: reload and retry.
    #[error("instance '{0}' was changed by another writer")]
    Conflict(String),
    /// The receipt no longer holds the message (it was deleted, or its visibility lapsed and
    /// someone else received it).
    #[error("the receipt for message '{0}' is no longer valid")]
    LostReceipt(String),
    #[error("{0}")]
    InvalidInput(String),
    /// Throttling, timeouts, connection failures: worth retrying.
    #[error("{operation} failed (transient): {message}")]
    Transient { operation: String, message: String },
    #[error("{operation} failed: {message}")]
    Permanent { operation: String, message: String },
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

/// Where time comes from, so tests can control timers and visibility.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = durable_engine::add_saturating(*now, by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Storage for one task hub. Every method is a small number of storage calls; the runtime builds
/// the crash-safe protocol (ARCHITECTURE.md, "A turn, crash by crash") on top of them.
pub trait Backend: Send + Sync + 'static {
    /// Creates the task hub's tables, queues and containers if they are missing. Idempotent.
    fn create_task_hub(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The instance's state, current-execution history and version; `None` if it does not exist.
    fn load(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Option<LoadedInstance>, StoreError>> + Send;

    /// Applies `commit` atomically if the instance is still at `expected` (`None`: it must not
    /// exist). Returns the new version, or [`StoreError::Conflict`] and changes nothing.
    fn commit(
        &self,
        expected: Option<&Version>,
        commit: &Commit,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Enqueues messages, each on its destination's queue, invisible until its `deliver_at`.
    /// Not atomic across messages; a retried send may duplicate some.
    fn send(&self, messages: &[Message]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Enqueues one message hidden for `hold` and returns its receipt, so the sender can process
    /// the message itself and then `delete` it (or `abandon` it to release it early); if the
    /// sender dies, the message turns visible when the hold ends and is processed as usual.
    fn send_held(
        &self,
        message: &Message,
        hold: Duration,
    ) -> impl Future<Output = Result<Receipt, StoreError>> + Send;

    /// Takes up to `max` visible messages off `queue`, hiding them for `visibility`.
    fn receive(
        &self,
        queue: QueueKind,
        max: usize,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Received>, StoreError>> + Send;

    fn delete(&self, receipt: &Receipt) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes a received message visible again after `delay`.
    fn abandon(
        &self,
        receipt: &Receipt,
        delay: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes the query-model row unless the stored one has an equal or higher revision.
    fn write_summary(
        &self,
        summary: &InstanceSummary,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn read_summary(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Option<InstanceSummary>, StoreError>> + Send;

    /// Writes the query-model row only if the instance has none; returns whether it did (a row
    /// that exists, whatever its revision, is left as it is).
    fn create_summary(
        &self,
        summary: &InstanceSummary,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The instance's state without its history; `None` if it does not exist. A backend that
    /// can read the state on its own overrides this: the default loads the whole instance.
    fn read_state(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Option<InstanceState>, StoreError>> + Send {
        async move { Ok(self.load(instance_id).await?.map(|loaded| loaded.state)) }
    }

    fn query(
        &self,
        query: &InstanceQuery,
    ) -> impl Future<Output = Result<Page<InstanceSummary>, StoreError>> + Send;

    /// Deletes everything stored for the instance but its poison messages, which an operator
    /// still handles. Returns whether it existed.
    fn purge(&self, instance_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Keeps a poison message, replacing one of the same id, and brings its instance summary's
    /// `poison_messages` in step.
    fn park(&self, poison: &PoisonMessage) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Poison messages in id order, filtered by instance.
    fn poison_messages(
        &self,
        query: &PoisonQuery,
    ) -> impl Future<Output = Result<Page<PoisonMessage>, StoreError>> + Send;

    fn poison_message(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<PoisonMessage>, StoreError>> + Send;

    /// Deletes a poison message if it is still the one parked at `parked_at` (whichever, with
    /// `None`: a requeue must not delete the same message parked again since), and brings its
    /// instance summary's `poison_messages` in step. Returns whether it deleted it.
    fn unpark(
        &self,
        id: &str,
        parked_at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Keeps the record of a message that waits for its instance's start, replacing one of the
    /// same message id.
    fn record_deferred(
        &self,
        deferred: &DeferredMessage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records of deferred messages in message id order, `page_size` at a time (0: the
    /// default), after the id `continuation`.
    fn deferred_messages(
        &self,
        page_size: usize,
        continuation: Option<&str>,
    ) -> impl Future<Output = Result<Page<DeferredMessage>, StoreError>> + Send;

    /// Deletes the record of message `id`; returns whether there was one.
    fn forget_deferred(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The message a queue message's text stands for, as the Functions host hands it to the
    /// worker (already base64-decoded): the envelope's JSON, or a pointer to a blob holding it.
    fn decode_message(
        &self,
        text: &str,
    ) -> impl Future<Output = Result<Message, StoreError>> + Send;

    /// The queue a destination's messages travel on.
    fn queue_for(&self, destination: &Destination) -> QueueKind;

    /// Every queue of the task hub.
    fn queues(&self) -> Vec<QueueKind>;

    /// About how many messages `queue` holds, hidden and delayed ones included (Azure's
    /// approximate count): the backlog an operator watches.
    fn queue_length(
        &self,
        queue: QueueKind,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
