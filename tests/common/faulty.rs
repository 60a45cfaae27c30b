//! A fault-injecting, call-counting decorator for any storage backend: it fails exactly one
//! chosen call, before making it (the process died first) or after (it died before learning the
//! call succeeded).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use durable_store::backend::{Backend, StoreError};
use durable_store::model::{
    Commit, DeferredMessage, Destination, InstanceQuery, InstanceState, InstanceSummary,
    LoadedInstance, Message, Page, PoisonMessage, PoisonQuery, QueueKind, Receipt, Received,
    Version,
};

/// Where an injected fault strikes relative to the storage call it targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// The call is not made: the process died just before it.
    Before,
    /// The call is made, then the process dies before learning it succeeded.
    After,
}

/// Wraps a backend: counts calls by operation and fails exactly one chosen call.
pub struct Faulty<B> {
    inner: B,
    calls: AtomicUsize,
    fail_at: AtomicUsize,
    mode: Mutex<FaultMode>,
    counts: Mutex<std::collections::BTreeMap<&'static str, usize>>,
    /// Every call's operation, in order: where a fault lands relative to a given call.
    log: Mutex<Vec<&'static str>>,
    /// An operation whose next call fails, and how.
    fail_next: Mutex<Option<(&'static str, FaultMode)>>,
}

impl<B: Backend> Faulty<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            calls: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(0),
            mode: Mutex::new(FaultMode::Before),
            counts: Mutex::new(Default::default()),
            log: Mutex::new(Vec::new()),
            fail_next: Mutex::new(None),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Fails the `call`-th storage call from now on (1-based).
    pub fn fail_call(&self, call: usize, mode: FaultMode) {
        *self.mode.lock().unwrap() = mode;
        self.fail_at
            .store(self.calls.load(Ordering::SeqCst) + call, Ordering::SeqCst);
    }

    /// Fails the next call of `operation`, whenever it comes.
    pub fn fail_next(&self, operation: &'static str, mode: FaultMode) {
        *self.fail_next.lock().unwrap() = Some((operation, mode));
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        self.counts.lock().unwrap().clone()
    }

    /// The operations of the calls numbered `from + 1` onwards, in order (`from` as
    /// [`Faulty::calls`] returned it): entry `i` is what [`Faulty::fail_call`] with `i + 1`
    /// strikes.
    pub fn operations_since(&self, from: usize) -> Vec<&'static str> {
        self.log.lock().unwrap()[from..].to_vec()
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        run: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        *self.counts.lock().unwrap().entry(operation).or_default() += 1;
        // Numbered under the log's lock, so entry `number - 1` is this call's.
        let number = {
            let mut log = self.log.lock().unwrap();
            log.push(operation);
            self.calls.fetch_add(1, Ordering::SeqCst) + 1
        };
        // Yields once, as a call over the network does, so whatever else the task runs (messages
        // processed at once) gets to run meanwhile, even over the in-memory backend.
        tokio::task::yield_now().await;
        let next = {
            let mut fail_next = self.fail_next.lock().unwrap();
            match *fail_next {
                Some((named, mode)) if named == operation => fail_next.take().map(|_| mode),
                _ => None,
            }
        };
        let strike = next.is_some() || number == self.fail_at.load(Ordering::SeqCst);
        let mode = next.unwrap_or(*self.mode.lock().unwrap());
        if strike && mode == FaultMode::Before {
            return Err(injected(operation));
        }
        let result = run.await;
        if strike {
            return Err(injected(operation));
        }
        result
    }
}

fn injected(operation: &str) -> StoreError {
    StoreError::Transient {
        operation: operation.to_string(),
        message: "injected fault".to_string(),
    }
}

impl<B: Backend> Backend for Faulty<B> {
    async fn create_task_hub(&self) -> Result<(), StoreError> {
        self.call("create_task_hub", self.inner.create_task_hub())
            .await
    }

    async fn load(&self, instance_id: &str) -> Result<Option<LoadedInstance>, StoreError> {
        self.call("load", self.inner.load(instance_id)).await
    }

    async fn commit(
        &self,
        expected: Option<&Version>,
        commit: &Commit,
    ) -> Result<Version, StoreError> {
        self.call("commit", self.inner.commit(expected, commit))
            .await
    }

    async fn send(&self, messages: &[Message]) -> Result<(), StoreError> {
        // One storage operation per message, as queues have no batch put.
        *self
            .counts
            .lock()
            .unwrap()
            .entry("send (messages)")
            .or_default() += messages.len();
        self.call("send", self.inner.send(messages)).await
    }

    async fn send_held(&self, message: &Message, hold: Duration) -> Result<Receipt, StoreError> {
        *self
            .counts
            .lock()
            .unwrap()
            .entry("send (messages)")
            .or_default() += 1;
        self.call("send_held", self.inner.send_held(message, hold))
            .await
    }

    async fn receive(
        &self,
        queue: QueueKind,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, StoreError> {
        self.call("receive", self.inner.receive(queue, max, visibility))
            .await
    }

    async fn delete(&self, receipt: &Receipt) -> Result<(), StoreError> {
        self.call("delete", self.inner.delete(receipt)).await
    }

    async fn abandon(&self, receipt: &Receipt, delay: Duration) -> Result<(), StoreError> {
        self.call("abandon", self.inner.abandon(receipt, delay))
            .await
    }

    async fn write_summary(&self, summary: &InstanceSummary) -> Result<(), StoreError> {
        self.call("write_summary", self.inner.write_summary(summary))
            .await
    }

    async fn read_summary(&self, instance_id: &str) -> Result<Option<InstanceSummary>, StoreError> {
        self.call("read_summary", self.inner.read_summary(instance_id))
            .await
    }

    async fn read_state(&self, instance_id: &str) -> Result<Option<InstanceState>, StoreError> {
        self.call("read_state", self.inner.read_state(instance_id))
            .await
    }

    async fn create_summary(&self, summary: &InstanceSummary) -> Result<bool, StoreError> {
        self.call("create_summary", self.inner.create_summary(summary))
            .await
    }

    async fn query(&self, query: &InstanceQuery) -> Result<Page<InstanceSummary>, StoreError> {
        self.call("query", self.inner.query(query)).await
    }

    async fn purge(&self, instance_id: &str) -> Result<bool, StoreError> {
        self.call("purge", self.inner.purge(instance_id)).await
    }

    async fn park(&self, poison: &PoisonMessage) -> Result<(), StoreError> {
        self.call("park", self.inner.park(poison)).await
    }

    async fn poison_messages(
        &self,
        query: &PoisonQuery,
    ) -> Result<Page<PoisonMessage>, StoreError> {
        self.call("poison_messages", self.inner.poison_messages(query))
            .await
    }

    async fn poison_message(&self, id: &str) -> Result<Option<PoisonMessage>, StoreError> {
        self.call("poison_message", self.inner.poison_message(id))
            .await
    }

    async fn unpark(
        &self,
        id: &str,
        parked_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<bool, StoreError> {
        self.call("unpark", self.inner.unpark(id, parked_at)).await
    }

    async fn record_deferred(&self, deferred: &DeferredMessage) -> Result<(), StoreError> {
        self.call("record_deferred", self.inner.record_deferred(deferred))
            .await
    }

    async fn deferred_messages(
        &self,
        page_size: usize,
        continuation: Option<&str>,
    ) -> Result<Page<DeferredMessage>, StoreError> {
        let listed = self.inner.deferred_messages(page_size, continuation);
        self.call("deferred_messages", listed).await
    }

    async fn forget_deferred(&self, id: &str) -> Result<bool, StoreError> {
        self.call("forget_deferred", self.inner.forget_deferred(id))
            .await
    }

    async fn decode_message(&self, text: &str) -> Result<Message, StoreError> {
        self.inner.decode_message(text).await
    }

    fn queue_for(&self, destination: &Destination) -> QueueKind {
        self.inner.queue_for(destination)
    }

    async fn queue_length(&self, queue: QueueKind) -> Result<u64, StoreError> {
        self.call("queue_length", self.inner.queue_length(queue))
            .await
    }

    fn queues(&self) -> Vec<QueueKind> {
        self.inner.queues()
    }
}
