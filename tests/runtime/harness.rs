//! Test harness: a runtime over the in-memory backend (optionally behind a fault-injecting and
//! call-counting decorator), a pump, a manual clock, and the workflows the tests run.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use durable_orchestrator::engine::{
    join_all, ActivityContext, ActivityError, EventKind, HistoryEvent, OrchestrationContext,
    OrchestrationError, Registry,
};
use durable_orchestrator::runtime::{Pump, Runtime, RuntimeOptions};
use durable_orchestrator::store::backend::{Backend, ManualClock, StoreError};
use durable_orchestrator::store::memory::MemoryBackend;
use durable_orchestrator::store::model::{
    Commit, Destination, InstanceQuery, InstanceSummary, LoadedInstance, Message, Page, QueueKind,
    Receipt, Received, Version,
};
use durable_orchestrator::store::names::PartitionCount;

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
}

impl<B: Backend> Faulty<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            calls: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(0),
            mode: Mutex::new(FaultMode::Before),
            counts: Mutex::new(Default::default()),
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

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        self.counts.lock().unwrap().clone()
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        run: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        *self.counts.lock().unwrap().entry(operation).or_default() += 1;
        let number = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let strike = number == self.fail_at.load(Ordering::SeqCst);
        let mode = *self.mode.lock().unwrap();
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

    async fn query(&self, query: &InstanceQuery) -> Result<Page<InstanceSummary>, StoreError> {
        self.call("query", self.inner.query(query)).await
    }

    async fn purge(&self, instance_id: &str) -> Result<bool, StoreError> {
        self.call("purge", self.inner.purge(instance_id)).await
    }

    fn queue_for(&self, destination: &Destination) -> QueueKind {
        self.inner.queue_for(destination)
    }

    fn queues(&self) -> Vec<QueueKind> {
        self.inner.queues()
    }
}

pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub backend: Arc<Faulty<MemoryBackend>>,
    pub runtime: Arc<Runtime<Faulty<MemoryBackend>>>,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_options(RuntimeOptions::default()).await
    }

    /// Activities always travel through the work-item queue.
    pub async fn queued() -> Self {
        Self::with_options(RuntimeOptions {
            inline_activities: false,
            ..RuntimeOptions::default()
        })
        .await
    }

    pub async fn with_options(options: RuntimeOptions) -> Self {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let memory = MemoryBackend::new(clock.clone(), PartitionCount::new(4).unwrap());
        let backend = Arc::new(Faulty::new(memory));
        backend.create_task_hub().await.unwrap();
        let runtime = Arc::new(Runtime::with_options(
            backend.clone(),
            registry(),
            clock.clone(),
            options,
        ));
        Self {
            clock,
            backend,
            runtime,
        }
    }

    /// Pumps every queue until idle, firing timers by moving the clock to each next delivery,
    /// for at most `max_rounds` rounds. Failed messages are retried at once.
    pub async fn drive(&self, max_rounds: usize) {
        let pump = Pump::new(
            self.runtime.clone(),
            Duration::from_secs(300),
            Duration::ZERO,
        );
        for _ in 0..max_rounds {
            pump.run_until_idle(10_000).await;
            match self.next_delivery() {
                Some(delay) => self.clock.advance(delay),
                None => return,
            }
        }
    }

    /// How far the clock must move for the next hidden message to become visible.
    fn next_delivery(&self) -> Option<Duration> {
        let now = durable_orchestrator::store::backend::Clock::now(self.clock.as_ref());
        self.backend
            .queues()
            .into_iter()
            .flat_map(|queue| self.backend.inner().hidden(queue))
            .map(|visible_at| (visible_at - now).to_std().unwrap_or(Duration::ZERO))
            .min()
            .map(|delay| delay.max(Duration::from_millis(1)))
    }

    pub async fn history(&self, instance_id: &str) -> Vec<HistoryEvent> {
        self.backend
            .inner()
            .load(instance_id)
            .await
            .unwrap()
            .map(|loaded| loaded.history)
            .unwrap_or_default()
    }

    pub async fn summary(&self, instance_id: &str) -> InstanceSummary {
        self.backend
            .inner()
            .read_summary(instance_id)
            .await
            .unwrap()
            .expect("summary exists")
    }
}

/// Asserts the history never records the same thing twice: one decision per sequence number,
/// one completion per task, one event per delivering message.
pub fn assert_no_duplicates(history: &[HistoryEvent]) {
    let mut decisions = HashSet::new();
    let mut completions = HashSet::new();
    for event in history {
        if let Some(task_id) = event.kind.completed_task_id() {
            assert!(
                completions.insert(task_id),
                "completion of #{task_id} twice"
            );
        } else if event.kind.is_turn_output() && event.event_id >= 0 {
            assert!(
                decisions.insert(event.event_id),
                "decision #{} twice",
                event.event_id
            );
        }
    }
    let started = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ExecutionStarted { .. }))
        .count();
    assert_eq!(started, 1, "exactly one ExecutionStarted");
}

async fn say_hello(_ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
    Ok(format!("Hello {name}!"))
}

/// Calls SayHello five times in sequence.
async fn hello_sequence(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Vec<String>, OrchestrationError> {
    let mut out = Vec::new();
    for city in ["Tokyo", "Seattle", "London", "Cairo", "Lima"] {
        out.push(ctx.call_activity("SayHello", city).await?);
    }
    Ok(out)
}

/// Fans out to `n` activities, waits a minute, waits for "Go", then calls a child.
async fn mixed(ctx: OrchestrationContext, n: u32) -> Result<String, OrchestrationError> {
    let greetings =
        join_all((0..n).map(|i| ctx.call_activity::<String>("SayHello", &i.to_string()))).await;
    let mut count = 0;
    for greeting in greetings {
        greeting?;
        count += 1;
    }
    ctx.create_timer_after(Duration::from_secs(60)).await;
    let go: String = ctx.wait_for_external_event("Go").await?;
    let child: Vec<String> = ctx
        .call_sub_orchestrator("HelloSequence", None, &())
        .await?;
    Ok(format!(
        "{count} greetings, {go}, child said {}",
        child.len()
    ))
}

/// Counts to `n` with one execution per step.
async fn counter(ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    let doubled: String = ctx.call_activity("SayHello", &n.to_string()).await?;
    if n >= 3 {
        return Ok(doubled.len() as u32);
    }
    ctx.continue_as_new(&(n + 1)).await
}

/// Sleeps twenty days, longer than a queue can delay one message, then reports when it woke.
async fn long_nap(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    ctx.create_timer_after(Duration::from_secs(20 * 86_400))
        .await;
    Ok(ctx.current_utc_datetime().to_rfc3339())
}

pub fn registry() -> Registry {
    Registry::builder()
        .orchestrator("LongNap", long_nap)
        .orchestrator("HelloSequence", hello_sequence)
        .orchestrator("Mixed", mixed)
        .orchestrator("Counter", counter)
        .activity("SayHello", say_hello)
        .build()
        .unwrap()
}
