//! [`InMemoryRuntime`]: the production [`Runtime`] over a [`MemoryBackend`] and a [`ManualClock`].
//! It owns only the order of delivery (control messages in queue order, then the activities
//! they queued, whose results go straight into turns)
//! and the clock; every turn, outbox, timer and parent notification is the runtime's own.

// The API is synchronous (the runtime runs on a tokio runtime of the driver's own), so tests
// call it from plain `#[test]`s, never from inside an async test.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use durable_engine::{
    add_saturating, EntityId, FailureDetails, HistoryEvent, OrchestrationStatus, Registry,
};
use durable_store::backend::{Backend, Clock, ManualClock};
use durable_store::memory::MemoryBackend;
use durable_store::model::{InstanceQuery, InstanceSummary, QueueKind, Receipt, Received};
use durable_store::names::PartitionCount;

use crate::management::ManageError;
use crate::retention::Expired;
use crate::stuck::StuckReason;
use crate::{Disposition, IdSource, Runtime, RuntimeError, RuntimeOptions};

/// One control queue: messages for different instances are then delivered in the order they
/// were sent, so a run is reproducible whatever the instance ids hash to.
const CONTROL: QueueKind = QueueKind::Control(0);
/// The clock stands still while the driver holds a message, so any visibility outlasts it.
const VISIBILITY: Duration = Duration::from_secs(300);
/// The most a queue hands out per receive (as on Azure).
const RECEIVE_BATCH: usize = 32;

/// A snapshot of an instance, as a status query shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceState {
    pub name: String,
    pub execution_id: String,
    pub status: OrchestrationStatus,
    pub input: Option<String>,
    pub output: Option<String>,
    pub failure: Option<FailureDetails>,
    pub custom_status: Option<String>,
}

impl InstanceState {
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.output.as_deref().unwrap_or("null"))
    }

    pub fn custom_status_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.custom_status.as_deref().unwrap_or("null"))
    }
}

impl From<InstanceSummary> for InstanceState {
    fn from(summary: InstanceSummary) -> Self {
        Self {
            name: summary.name,
            execution_id: summary.execution_id,
            status: summary.status,
            input: summary.input,
            output: summary.output,
            failure: summary.failure,
            custom_status: summary.custom_status,
        }
    }
}

/// Drives a [`Runtime`] synchronously: each call runs the async runtime to the end of what it
/// was asked on a current-thread tokio runtime, so tests stay plain `#[test]`s.
pub struct InMemoryRuntime {
    runtime: Runtime<MemoryBackend>,
    backend: Arc<MemoryBackend>,
    clock: Arc<ManualClock>,
    executor: tokio::runtime::Runtime,
    /// Received, not yet processed; held (hidden) until then.
    control: VecDeque<Received>,
    work_items: VecDeque<Received>,
    shuffle: Option<u64>,
    duplicate_completions: bool,
    dropped: u64,
}

impl InMemoryRuntime {
    /// A runtime whose clock starts at 2026-01-01T00:00:00Z, with activities on the work-item
    /// queue (so their order can be shuffled and their completions duplicated).
    pub fn new(registry: Registry) -> Self {
        Self::with_options(
            registry,
            RuntimeOptions {
                inline_activities: false,
                ..RuntimeOptions::default()
            },
        )
    }

    /// [`InMemoryRuntime::new`] with other options, for instance activities run in the turn.
    /// Ids always come from a sequence, so a run records the same histories every time.
    pub fn with_options(registry: Registry, options: RuntimeOptions) -> Self {
        let start = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let clock = Arc::new(ManualClock::new(start));
        let one_queue = PartitionCount::new(1).unwrap_or_default();
        let backend = Arc::new(MemoryBackend::new(clock.clone(), one_queue));
        // The same app settings a worker reads, so a whole suite can run with the instance
        // cache off (ARCHITECTURE.md, "The instance cache").
        let options = RuntimeOptions {
            ids: IdSource::sequence(),
            ..options
        }
        .with_env()
        .unwrap_or_else(|error| panic!("{error}"));
        let runtime = Runtime::with_options(backend.clone(), registry, clock.clone(), options);
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread tokio runtime without I/O always builds");
        Self {
            runtime,
            backend,
            clock,
            executor,
            control: VecDeque::new(),
            work_items: VecDeque::new(),
            shuffle: None,
            duplicate_completions: false,
            dropped: 0,
        }
    }

    /// Deliver every work item twice, as an at-least-once queue may: the activity runs again
    /// and its result reaches the instance a second time.
    pub fn set_duplicate_completions(&mut self, duplicate: bool) {
        self.duplicate_completions = duplicate;
    }

    /// Run queued activities in a pseudo-random order drawn from `seed`, so completions arrive
    /// out of scheduling order. Activities run in the turn (`with_options` with the runtime's
    /// defaults) never reach the queue, so only [`InMemoryRuntime::new`]'s queued ones shuffle.
    pub fn set_activity_shuffle(&mut self, seed: Option<u64>) {
        // xorshift never leaves zero.
        self.shuffle = seed.map(|s| s | 1);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Orchestration turns the runtime committed so far: one per control message applied.
    pub fn turns_executed(&self) -> u64 {
        self.runtime.turns_executed()
    }

    /// The options the runtime runs with, app settings from the environment applied.
    pub fn options(&self) -> &RuntimeOptions {
        self.runtime.options()
    }

    /// Messages the runtime recognised as duplicate, stale or stray and dropped.
    pub fn messages_dropped(&self) -> u64 {
        self.dropped
    }

    /// Starts orchestrator `name` as `instance_id`: queues its start, as a client does. An id may
    /// be reused once its previous instance has ended.
    pub fn start<I: Serialize + ?Sized>(
        &mut self,
        name: &str,
        instance_id: &str,
        input: &I,
    ) -> Result<(), RuntimeError> {
        self.block_on(self.runtime.start(name, Some(instance_id), input))
            .map(drop)
    }

    pub fn raise_event<T: Serialize + ?Sized>(
        &mut self,
        instance_id: &str,
        name: &str,
        data: &T,
    ) -> Result<(), RuntimeError> {
        self.block_on(self.runtime.raise_event(instance_id, name, data))
    }

    pub fn terminate(&mut self, instance_id: &str, reason: &str) -> Result<(), RuntimeError> {
        self.block_on(self.runtime.terminate(instance_id, reason))
    }

    /// Terminates the instance and, once that is applied, its open sub-orchestrations, all the
    /// way down.
    pub fn terminate_recursive(
        &mut self,
        instance_id: &str,
        reason: &str,
    ) -> Result<(), RuntimeError> {
        self.block_on(self.runtime.terminate_recursive(instance_id, reason))
    }

    /// Purges an instance that has ended.
    pub fn purge(&mut self, instance_id: &str) -> Result<(), ManageError> {
        self.block_on(self.runtime.purge(instance_id))
    }

    /// Purges an instance that has ended and the ended sub-orchestrations below it; returns
    /// how many instances it purged.
    pub fn purge_recursive(&mut self, instance_id: &str) -> Result<usize, ManageError> {
        self.block_on(self.runtime.purge_recursive(instance_id))
    }

    /// One run of retention ([`Runtime::purge_expired`]) at the current time.
    pub fn purge_expired(&mut self) -> Result<Vec<Expired>, ManageError> {
        self.block_on(self.runtime.purge_expired())
    }

    pub fn suspend(&mut self, instance_id: &str, reason: &str) -> Result<(), RuntimeError> {
        self.block_on(self.runtime.suspend(instance_id, reason))
    }

    pub fn resume(&mut self, instance_id: &str, reason: &str) -> Result<(), RuntimeError> {
        self.block_on(self.runtime.resume(instance_id, reason))
    }

    /// Queues a client's signal of operation `operation`, with `input`, to `entity`.
    pub fn signal_entity<T: Serialize + ?Sized>(
        &mut self,
        entity: &EntityId,
        operation: &str,
        input: &T,
    ) -> Result<(), RuntimeError> {
        let input = serde_json::to_string(input)
            .map_err(|e| RuntimeError::Invalid(format!("the input cannot be serialized: {e}")))?;
        self.block_on(
            self.runtime
                .signal_entity(entity, operation, Some(input), None),
        )
        .map(drop)
    }

    /// The entity's state, `None` if it has none (or it is not a `T`).
    pub fn entity_state<T: DeserializeOwned>(&self, entity: &EntityId) -> Option<T> {
        let status = self.block_on(self.runtime.entity(entity)).ok().flatten()?;
        serde_json::from_str(&status.state).ok()
    }

    /// The instance's status as a query shows it; `None` if no start of it was ever queued.
    pub fn state(&self, instance_id: &str) -> Option<InstanceState> {
        // The in-memory backend's reads cannot fail: `None` only for an unknown id.
        self.block_on(self.runtime.status(instance_id))
            .ok()
            .flatten()
            .map(InstanceState::from)
    }

    /// The ids of the instances idle for `idle` that look stuck, and why ([`Runtime::stuck`]).
    pub fn stuck(&self, idle: Duration) -> Result<Vec<(String, StuckReason)>, RuntimeError> {
        let stuck = self.block_on(self.runtime.stuck(idle, 1000))?;
        Ok(stuck
            .into_iter()
            .map(|s| (s.summary.instance_id, s.reason))
            .collect())
    }

    /// The history of the instance's current execution; `None` before its first turn.
    pub fn history(&self, instance_id: &str) -> Option<Vec<HistoryEvent>> {
        self.block_on(self.runtime.history(instance_id))
            .ok()
            .flatten()
    }

    /// The task hub's storage, for tests that read it as another process would.
    pub fn backend(&self) -> &MemoryBackend {
        &self.backend
    }

    /// Every instance id the task hub knows, sorted.
    pub fn instance_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut query = InstanceQuery::default();
        // The in-memory backend's queries cannot fail.
        while let Ok(page) = self.block_on(self.backend.query(&query)) {
            ids.extend(page.items.into_iter().map(|summary| summary.instance_id));
            match page.continuation {
                Some(next) => query.continuation = Some(next),
                None => break,
            }
        }
        ids.sort();
        ids
    }

    /// When the next message that is not yet visible (a timer, a deferred message) turns
    /// visible.
    pub fn next_timer(&self) -> Option<DateTime<Utc>> {
        self.backend
            .queues()
            .into_iter()
            .flat_map(|queue| self.backend.hidden(queue))
            .min()
    }

    /// Processes messages until none is visible at the current time: after each control
    /// message, the activities it queued. Returns the number of turns executed. On an error
    /// the messages not yet processed are made visible again, to be retried by the next run.
    pub fn run_until_idle(&mut self) -> Result<u64, RuntimeError> {
        let before = self.turns_executed();
        if let Err(error) = self.drain() {
            self.release_held();
            return Err(error);
        }
        Ok(self.turns_executed() - before)
    }

    /// Moves the clock forward by `by`, delivering hidden messages in time order (each at its
    /// own time).
    pub fn advance(&mut self, by: Duration) -> Result<u64, RuntimeError> {
        let target = add_saturating(self.now(), by);
        let turns = self.deliver_until(target)?;
        self.move_clock_to(target);
        Ok(turns + self.run_until_idle()?)
    }

    /// Moves the clock to each next hidden message until nothing is left to deliver, or `limit`
    /// orchestration time has passed. Returns the turns executed.
    pub fn run_to_completion(&mut self, limit: Duration) -> Result<u64, RuntimeError> {
        let deadline = add_saturating(self.now(), limit);
        self.deliver_until(deadline)
    }

    /// Runs until idle, then moves the clock to each next hidden message due by `until` and
    /// runs again. Returns the turns executed.
    fn deliver_until(&mut self, until: DateTime<Utc>) -> Result<u64, RuntimeError> {
        let mut turns = self.run_until_idle()?;
        while let Some(at) = self.next_timer().filter(|at| *at <= until) {
            self.move_clock_to(at);
            turns += self.run_until_idle()?;
        }
        Ok(turns)
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.executor.block_on(future)
    }

    fn move_clock_to(&self, at: DateTime<Utc>) {
        if let Ok(by) = (at - self.now()).to_std() {
            self.clock.advance(by);
        }
    }

    /// Control messages first, in queue order; once none is left, one round of the work items
    /// they queued, whose turns may queue more of both.
    fn drain(&mut self) -> Result<(), RuntimeError> {
        loop {
            if self.control.is_empty() {
                self.control = self.receive(CONTROL)?.into();
            }
            if let Some(message) = self.control.pop_front() {
                self.settle(&message)?;
                continue;
            }
            if !self.run_work_items()? {
                return Ok(());
            }
        }
    }

    /// Runs every visible work item, in shuffled order when a seed is set; false if there was
    /// none. A work item's result goes straight into a turn of its instance.
    fn run_work_items(&mut self) -> Result<bool, RuntimeError> {
        loop {
            let batch = self.receive(QueueKind::WorkItems)?;
            if batch.is_empty() {
                break;
            }
            self.work_items.extend(batch);
        }
        if self.work_items.is_empty() {
            return Ok(false);
        }
        while let Some(work_item) = self.next_work_item() {
            self.settle(&work_item)?;
            if self.duplicate_completions {
                self.settle_again(&work_item)?;
            }
        }
        Ok(true)
    }

    fn next_work_item(&mut self) -> Option<Received> {
        if self.work_items.is_empty() {
            return None;
        }
        let Some(seed) = self.shuffle.as_mut() else {
            return self.work_items.pop_front();
        };
        // xorshift64: cheap, deterministic, good enough to vary completion order.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let index = usize::try_from(*seed % self.work_items.len() as u64).unwrap_or(0);
        self.work_items.remove(index)
    }

    fn receive(&self, queue: QueueKind) -> Result<Vec<Received>, RuntimeError> {
        Ok(self.block_on(self.backend.receive(queue, RECEIVE_BATCH, VISIBILITY))?)
    }

    /// Processes one received message and deletes it, or makes it visible again on failure.
    fn settle(&mut self, received: &Received) -> Result<(), RuntimeError> {
        match self.block_on(self.runtime.process(&received.message)) {
            Ok(disposition) => {
                if let Disposition::Dropped(_) = disposition {
                    self.dropped += 1;
                }
                self.block_on(self.backend.delete(&received.receipt))?;
                Ok(())
            }
            Err(error) => {
                self.release(&received.receipt);
                Err(error)
            }
        }
    }

    fn release_held(&mut self) {
        let held: Vec<Received> = self
            .control
            .drain(..)
            .chain(self.work_items.drain(..))
            .collect();
        for received in held {
            self.release(&received.receipt);
        }
    }

    fn release(&self, receipt: &Receipt) {
        // Only a receipt that is no longer held can fail, and then there is nothing to release.
        let _ = self.block_on(self.backend.abandon(receipt, Duration::ZERO));
    }

    /// Processes a message that was already settled once, as its redelivery.
    fn settle_again(&mut self, received: &Received) -> Result<(), RuntimeError> {
        if let Disposition::Dropped(_) = self.block_on(self.runtime.process(&received.message))? {
            self.dropped += 1;
        }
        Ok(())
    }
}
