//! The in-memory backend: the same contract as Azure (versions, conflicts, queue visibility,
//! receipts, summary revisions, paging) in one process, for fast tests of the runtime.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::backend::{Backend, Clock, StoreError};
use super::model::{
    Commit, DeferredMessage, Destination, InstanceQuery, InstanceSummary, LoadedInstance, Message,
    Page, PoisonMessage, PoisonQuery, QueueKind, Receipt, Received, StoredEvent, Version,
};
use super::names::{partition_of, PartitionCount};
use durable_engine::add_saturating;
use durable_protocol::storage_requests::count_request;

/// Azure Queues hand out at most 32 messages per receive.
const MAX_RECEIVE: usize = 32;
const DEFAULT_PAGE_SIZE: usize = 100;

pub struct MemoryBackend {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    partitions: PartitionCount,
}

#[derive(Default)]
struct Inner {
    instances: HashMap<String, StoredInstance>,
    summaries: BTreeMap<String, InstanceSummary>,
    /// Each queue's messages by their sequence number (the number in their key), so a receipt
    /// finds its message without a scan.
    queues: HashMap<QueueKind, BTreeMap<u64, Queued>>,
    poison: BTreeMap<String, PoisonMessage>,
    deferred: BTreeMap<String, DeferredMessage>,
    counter: u64,
}

struct StoredInstance {
    state: crate::model::InstanceState,
    history: Vec<StoredEvent>,
    version: u64,
}

struct Queued {
    key: String,
    sequence: u64,
    message: Message,
    visible_at: DateTime<Utc>,
    dequeue_count: u32,
    pop_receipt: Option<String>,
}

impl MemoryBackend {
    pub fn new(clock: Arc<dyn Clock>, partitions: PartitionCount) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            clock,
            partitions,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store for one backend call, counted as one storage request (Azure may make more for
    /// some calls: one per message sent, a read before a summary write, blobs for large values).
    fn request(&self) -> MutexGuard<'_, Inner> {
        count_request();
        self.lock()
    }

    /// When each message on `queue` that is hidden now becomes visible (for tests that move the
    /// clock to the next delivery).
    pub fn hidden(&self, queue: QueueKind) -> Vec<DateTime<Utc>> {
        let now = self.clock.now();
        self.lock()
            .queues
            .get(&queue)
            .map(|queued| {
                queued
                    .values()
                    .map(|q| q.visible_at)
                    .filter(|at| *at > now)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many instances have state (for tests and diagnostics).
    pub fn instance_count(&self) -> usize {
        self.lock().instances.len()
    }

    /// Messages waiting on a queue, visible or not (for tests and diagnostics).
    pub fn queued(&self, queue: QueueKind) -> Vec<Message> {
        self.lock()
            .queues
            .get(&queue)
            .map(|queued| queued.values().map(|q| q.message.clone()).collect())
            .unwrap_or_default()
    }
}

impl Inner {
    /// A stored summary with its poison count, which is read from the poison records here (the
    /// Azure backend keeps it on the summary row instead).
    fn summary(&self, summary: &InstanceSummary) -> InstanceSummary {
        let count = self
            .poison
            .values()
            .filter(|poison| poison.instance_id.as_ref() == Some(&summary.instance_id))
            .count();
        InstanceSummary {
            poison_messages: u32::try_from(count).unwrap_or(u32::MAX),
            ..summary.clone()
        }
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn find(&mut self, receipt: &Receipt) -> Result<&mut Queued, StoreError> {
        let sequence = receipt
            .message_key
            .strip_prefix('m')
            .and_then(|n| n.parse::<u64>().ok());
        sequence
            .and_then(|sequence| self.queues.get_mut(&receipt.queue)?.get_mut(&sequence))
            .filter(|q| q.pop_receipt.as_deref() == Some(receipt.pop_receipt.as_str()))
            .ok_or_else(|| StoreError::LostReceipt(receipt.message_key.clone()))
    }
}

impl Backend for MemoryBackend {
    async fn create_task_hub(&self) -> Result<(), StoreError> {
        let mut inner = self.request();
        for queue in self.queues() {
            inner.queues.entry(queue).or_default();
        }
        Ok(())
    }

    async fn load(&self, instance_id: &str) -> Result<Option<LoadedInstance>, StoreError> {
        let inner = self.request();
        Ok(inner
            .instances
            .get(instance_id)
            .map(|stored| LoadedInstance {
                state: stored.state.clone(),
                history: stored.history.iter().map(|e| e.event.clone()).collect(),
                message_ids: stored
                    .history
                    .iter()
                    .map(|e| e.message_id.clone())
                    .collect(),
                version: Version(stored.version.to_string()),
            }))
    }

    async fn commit(
        &self,
        expected: Option<&Version>,
        commit: &Commit,
    ) -> Result<Version, StoreError> {
        let mut inner = self.request();
        let instance_id = commit.state.instance_id.clone();
        let current = inner
            .instances
            .get(&instance_id)
            .map(|stored| Version(stored.version.to_string()));
        if current.as_ref() != expected {
            return Err(StoreError::Conflict(instance_id));
        }
        let version = inner.next();
        let stored = inner
            .instances
            .entry(instance_id)
            .or_insert_with(|| StoredInstance {
                state: commit.state.clone(),
                history: Vec::new(),
                version,
            });
        if commit.new_execution {
            stored.history.clear();
        }
        stored.history.extend(commit.events.iter().cloned());
        stored.state = commit.state.clone();
        stored.version = version;
        Ok(Version(version.to_string()))
    }

    async fn send(&self, messages: &[Message]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut inner = self.request();
        for message in messages {
            let sequence = inner.next();
            let queue = self.queue_for(&message.destination);
            inner.queues.entry(queue).or_default().insert(
                sequence,
                Queued {
                    key: format!("m{sequence}"),
                    sequence,
                    message: message.clone(),
                    visible_at: message.deliver_at.map_or(now, |at| at.max(now)),
                    dequeue_count: 0,
                    pop_receipt: None,
                },
            );
        }
        Ok(())
    }

    async fn send_held(&self, message: &Message, hold: Duration) -> Result<Receipt, StoreError> {
        let now = self.clock.now();
        let mut inner = self.request();
        let sequence = inner.next();
        let key = format!("m{sequence}");
        let pop_receipt = format!("r{}", inner.next());
        let queue = self.queue_for(&message.destination);
        inner.queues.entry(queue).or_default().insert(
            sequence,
            Queued {
                key: key.clone(),
                sequence,
                message: message.clone(),
                visible_at: add_saturating(now, hold),
                dequeue_count: 0,
                pop_receipt: Some(pop_receipt.clone()),
            },
        );
        Ok(Receipt {
            queue,
            message_key: key,
            pop_receipt,
        })
    }

    async fn receive(
        &self,
        queue: QueueKind,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, StoreError> {
        let now = self.clock.now();
        let mut inner = self.request();
        let mut receipts = Vec::new();
        let Some(messages) = inner.queues.get(&queue) else {
            return Ok(Vec::new());
        };
        let mut visible: Vec<(DateTime<Utc>, u64)> = messages
            .values()
            .filter(|q| q.visible_at <= now)
            .map(|q| (q.visible_at, q.sequence))
            .collect();
        visible.sort();
        visible.truncate(max.min(MAX_RECEIVE));
        for (_, sequence) in visible {
            let pop_receipt = format!("r{}", inner.next());
            let Some(queued) = inner
                .queues
                .get_mut(&queue)
                .and_then(|queue| queue.get_mut(&sequence))
            else {
                continue;
            };
            queued.visible_at = add_saturating(now, visibility);
            queued.dequeue_count += 1;
            queued.pop_receipt = Some(pop_receipt.clone());
            receipts.push(Received {
                message: queued.message.clone(),
                dequeue_count: queued.dequeue_count,
                receipt: Receipt {
                    queue,
                    message_key: queued.key.clone(),
                    pop_receipt,
                },
            });
        }
        Ok(receipts)
    }

    async fn delete(&self, receipt: &Receipt) -> Result<(), StoreError> {
        let mut inner = self.request();
        let sequence = inner.find(receipt)?.sequence;
        if let Some(queue) = inner.queues.get_mut(&receipt.queue) {
            queue.remove(&sequence);
        }
        Ok(())
    }

    async fn abandon(&self, receipt: &Receipt, delay: Duration) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut inner = self.request();
        let queued = inner.find(receipt)?;
        queued.visible_at = add_saturating(now, delay);
        queued.pop_receipt = None;
        Ok(())
    }

    async fn write_summary(&self, summary: &InstanceSummary) -> Result<(), StoreError> {
        let mut inner = self.request();
        let newer = inner
            .summaries
            .get(&summary.instance_id)
            .is_some_and(|stored| stored.revision >= summary.revision);
        if !newer {
            inner
                .summaries
                .insert(summary.instance_id.clone(), summary.clone());
        }
        Ok(())
    }

    async fn read_summary(&self, instance_id: &str) -> Result<Option<InstanceSummary>, StoreError> {
        let inner = self.request();
        Ok(inner
            .summaries
            .get(instance_id)
            .map(|summary| inner.summary(summary)))
    }

    async fn create_summary(&self, summary: &InstanceSummary) -> Result<bool, StoreError> {
        let mut inner = self.request();
        if inner.summaries.contains_key(&summary.instance_id) {
            return Ok(false);
        }
        inner
            .summaries
            .insert(summary.instance_id.clone(), summary.clone());
        Ok(true)
    }

    async fn query(&self, query: &InstanceQuery) -> Result<Page<InstanceSummary>, StoreError> {
        let inner = self.request();
        Ok(page_of(
            &inner.summaries,
            query.page_size,
            query.continuation.as_ref(),
            |summary| matches_query(summary, query).then(|| inner.summary(summary)),
        ))
    }

    async fn purge(&self, instance_id: &str) -> Result<bool, StoreError> {
        let mut inner = self.request();
        let had_state = inner.instances.remove(instance_id).is_some();
        let had_summary = inner.summaries.remove(instance_id).is_some();
        Ok(had_state || had_summary)
    }

    async fn park(&self, poison: &PoisonMessage) -> Result<(), StoreError> {
        self.request()
            .poison
            .insert(poison.id.clone(), poison.clone());
        Ok(())
    }

    async fn poison_messages(
        &self,
        query: &PoisonQuery,
    ) -> Result<Page<PoisonMessage>, StoreError> {
        let inner = self.request();
        Ok(page_of(
            &inner.poison,
            query.page_size,
            query.continuation.as_ref(),
            |poison| {
                (query.instance_id.is_none() || poison.instance_id == query.instance_id)
                    .then(|| poison.clone())
            },
        ))
    }

    async fn poison_message(&self, id: &str) -> Result<Option<PoisonMessage>, StoreError> {
        Ok(self.request().poison.get(id).cloned())
    }

    async fn unpark(&self, id: &str, parked_at: Option<DateTime<Utc>>) -> Result<bool, StoreError> {
        let mut inner = self.request();
        let current = inner
            .poison
            .get(id)
            .is_some_and(|poison| parked_at.is_none_or(|at| at == poison.parked_at));
        Ok(current && inner.poison.remove(id).is_some())
    }

    async fn record_deferred(&self, deferred: &DeferredMessage) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.deferred.insert(deferred.id.clone(), deferred.clone());
        Ok(())
    }

    async fn deferred_messages(
        &self,
        page_size: usize,
        continuation: Option<&str>,
    ) -> Result<Page<DeferredMessage>, StoreError> {
        let inner = self.lock();
        let after = continuation.map(str::to_string);
        Ok(page_of(
            &inner.deferred,
            page_size,
            after.as_ref(),
            |deferred| Some(deferred.clone()),
        ))
    }

    async fn forget_deferred(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().deferred.remove(id).is_some())
    }

    async fn decode_message(&self, text: &str) -> Result<Message, StoreError> {
        serde_json::from_str(text)
            .map_err(|e| StoreError::InvalidInput(format!("not a message envelope: {e}")))
    }

    fn queue_for(&self, destination: &Destination) -> QueueKind {
        match destination {
            Destination::Instance { instance_id, .. } => {
                QueueKind::Control(partition_of(instance_id, self.partitions))
            }
            Destination::WorkItem { .. } => QueueKind::WorkItems,
        }
    }

    fn queues(&self) -> Vec<QueueKind> {
        (0..self.partitions.get())
            .map(QueueKind::Control)
            .chain([QueueKind::WorkItems])
            .collect()
    }

    async fn queue_length(&self, queue: QueueKind) -> Result<u64, StoreError> {
        let inner = self.request();
        Ok(inner.queues.get(&queue).map_or(0, |q| q.len() as u64))
    }
}

/// The page of `rows` (in key order, after the key `continuation`) that `take` keeps, and the
/// key to continue after when more may follow; `page_size` 0 means the default.
fn page_of<T, R>(
    rows: &BTreeMap<String, T>,
    page_size: usize,
    continuation: Option<&String>,
    take: impl Fn(&T) -> Option<R>,
) -> Page<R> {
    let page_size = if page_size == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        page_size
    };
    let start = match continuation {
        Some(after) => std::ops::Bound::Excluded(after.clone()),
        None => std::ops::Bound::Unbounded,
    };
    let mut kept = rows
        .range((start, std::ops::Bound::Unbounded))
        .filter_map(|(key, row)| take(row).map(|item| (key, item)));
    let mut items = Vec::new();
    let mut last = None;
    for (key, item) in kept.by_ref().take(page_size) {
        items.push(item);
        last = Some(key.clone());
    }
    Page {
        items,
        continuation: kept.next().and(last),
    }
}

fn matches_query(summary: &InstanceSummary, query: &InstanceQuery) -> bool {
    (query.statuses.is_empty() || query.statuses.contains(&summary.status))
        && query
            .created_from
            .is_none_or(|from| summary.created_at >= from)
        && query.created_to.is_none_or(|to| summary.created_at <= to)
        && query.updated_to.is_none_or(|to| summary.updated_at <= to)
        && query
            .instance_id_prefix
            .as_deref()
            .is_none_or(|prefix| summary.instance_id.starts_with(prefix))
        && query
            .version
            .as_ref()
            .is_none_or(|version| summary.version.as_ref() == Some(version))
        && query.keeps(summary)
}
