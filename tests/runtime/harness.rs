//! Test harness: runtimes ("processes") over one in-memory task hub behind a fault-injecting,
//! call-counting decorator, drives that process a message or a whole receive at a time, and a
//! manual clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use durable_engine::{EventKind, HistoryEvent, OrchestrationStatus, Registry};
use durable_runtime::{IdSource, Pump, Runtime, RuntimeOptions, UNSTARTED_GRACE};
use durable_store::backend::{Backend, Clock, ManualClock};
use durable_store::memory::MemoryBackend;
use durable_store::model::{Destination, InstanceSummary, Message, QueueKind};
use durable_store::names::PartitionCount;
use futures::future::join_all;
use serde::Serialize;

pub use crate::faulty::{FaultMode, Faulty};
pub use crate::invariants::assert_no_duplicates;
use crate::workflows::registry;

/// The runtime every test drives: a "process" over the shared in-memory task hub.
pub type TestRuntime = Runtime<Faulty<MemoryBackend>>;

/// How long a received message stays hidden: a message whose delete failed reappears after it.
const VISIBILITY: Duration = Duration::from_secs(300);

pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub backend: Arc<Faulty<MemoryBackend>>,
    pub runtime: Arc<TestRuntime>,
    registry: Registry,
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

    /// `options` with the app settings of the environment applied over them, as a worker applies
    /// them: `DURABLE_INSTANCE_CACHE_INSTANCES=0` runs the suite with the instance cache off.
    pub async fn with_options(options: RuntimeOptions) -> Self {
        let options = options
            .with_env()
            .expect("the DURABLE_* app settings in the environment are numbers");
        Self::build(options, |_| registry()).await
    }

    /// Exactly `options`, for tests of the settings themselves, and the registry `registry`
    /// makes with the harness's clock, for activities that take time on it.
    pub async fn build(
        options: RuntimeOptions,
        registry: impl FnOnce(Arc<ManualClock>) -> Registry,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let memory = MemoryBackend::new(clock.clone(), PartitionCount::new(4).unwrap());
        let backend = Arc::new(Faulty::new(memory));
        backend.create_task_hub().await.unwrap();
        let registry = registry(clock.clone());
        let runtime = Arc::new(Runtime::with_options(
            backend.clone(),
            registry.clone(),
            clock.clone(),
            options,
        ));
        Self {
            clock,
            backend,
            runtime,
            registry,
        }
    }

    /// Another worker process on the same task hub, with the same options: its own instance
    /// cache and mailboxes, so each may hold a copy of an instance the other moved on.
    pub fn another_process(&self) -> Arc<TestRuntime> {
        Arc::new(Runtime::with_options(
            self.backend.clone(),
            self.registry.clone(),
            self.clock.clone(),
            self.runtime.options().clone(),
        ))
    }

    /// Pumps every queue until idle, firing timers by moving the clock to each next delivery,
    /// for at most `max_rounds` rounds. Failed messages are retried at once.
    pub async fn drive(&self, max_rounds: usize) {
        self.drive_on(&self.runtime, max_rounds).await;
    }

    /// [`Harness::drive`] with `runtime` processing the messages.
    pub async fn drive_on(&self, runtime: &Arc<TestRuntime>, max_rounds: usize) {
        let pump = Pump::new(runtime.clone(), VISIBILITY, Duration::ZERO);
        for _ in 0..max_rounds {
            pump.run_until_idle(10_000).await;
            if !self.advance_to_next_delivery() {
                return;
            }
        }
    }

    /// [`Harness::drive`], then, while client starts wait unstarted, moves the clock past the
    /// grace a worker's sweep gives them, sweeps and drives again: what a task hub with a
    /// sweeping worker does after a start was lost.
    pub async fn drive_with_sweeps(&self, max_rounds: usize) {
        self.drive(max_rounds).await;
        for _ in 0..max_rounds {
            self.clock.advance(UNSTARTED_GRACE);
            match self.runtime.sweep_unstarted(UNSTARTED_GRACE).await {
                Ok(0) => return,
                // A failed sweep (an injected fault) is tried again, as a worker's next one is.
                Ok(_) | Err(_) => self.drive(max_rounds).await,
            }
        }
    }

    /// [`Harness::drive`] the way the Functions host runs a batch of queue triggers: every
    /// message of a receive processed at once, so those for one instance share turns.
    pub async fn drive_concurrently(&self, max_rounds: usize) {
        let queues = self.backend.queues();
        for _ in 0..max_rounds {
            self.pump(&self.runtime, &queues, true).await;
            if !self.advance_to_next_delivery() {
                return;
            }
        }
    }

    /// [`Harness::drive_on`] over the control queues only: work items wait for another process.
    pub async fn drive_control_on(&self, runtime: &Arc<TestRuntime>, max_rounds: usize) {
        let control: Vec<QueueKind> = self
            .backend
            .queues()
            .into_iter()
            .filter(|queue| *queue != QueueKind::WorkItems)
            .collect();
        for _ in 0..max_rounds {
            self.pump(runtime, &control, false).await;
            if !self.advance_to_next_delivery() {
                return;
            }
        }
    }

    /// Processes what `queues` hold until they are idle, as [`Pump`] does; with `concurrent`,
    /// all messages of a receive at once.
    async fn pump(&self, runtime: &Arc<TestRuntime>, queues: &[QueueKind], concurrent: bool) {
        for _ in 0..10_000 {
            let mut received_any = false;
            for queue in queues {
                let Ok(batch) = self.backend.receive(*queue, 32, VISIBILITY).await else {
                    received_any = true;
                    continue;
                };
                received_any |= !batch.is_empty();
                let outcomes = if concurrent {
                    join_all(batch.iter().map(|r| runtime.process(&r.message))).await
                } else {
                    let mut outcomes = Vec::new();
                    for received in &batch {
                        outcomes.push(runtime.process(&received.message).await);
                    }
                    outcomes
                };
                for (received, outcome) in batch.iter().zip(outcomes) {
                    // A failed delete or abandon leaves the message hidden until its visibility
                    // lapses; the clock gets there and it is redelivered.
                    let _ = match outcome {
                        Ok(_) => self.backend.delete(&received.receipt).await,
                        Err(_) => {
                            self.backend
                                .abandon(&received.receipt, Duration::ZERO)
                                .await
                        }
                    };
                }
            }
            if !received_any {
                return;
            }
        }
    }

    /// Moves the clock to the next hidden message; false if there is none.
    fn advance_to_next_delivery(&self) -> bool {
        match self.next_delivery() {
            Some(delay) => {
                self.clock.advance(delay);
                true
            }
            None => false,
        }
    }

    /// Queues event `name` for the instance as a client in another process does, past the
    /// fault-injecting decorator: it neither counts as nor fails as one of the runtime's calls.
    pub async fn raise_unfaulted(
        &self,
        instance_id: &str,
        name: &str,
        data: &(impl Serialize + ?Sized),
    ) {
        let message = Message {
            more_calls: Vec::new(),
            trace_context: None,
            deferral_recorded: false,
            id: IdSource::random().next_id(),
            destination: Destination::Instance {
                instance_id: instance_id.to_string(),
                execution_id: None,
            },
            event: HistoryEvent::message(
                Clock::now(self.clock.as_ref()),
                EventKind::EventRaised {
                    name: name.to_string(),
                    input: Some(serde_json::to_string(data).unwrap()),
                },
            ),
            deliver_at: None,
            revision: None,
        };
        self.backend.inner().send(&[message]).await.unwrap();
    }

    /// What every run must leave, whatever failed on the way: the history records nothing twice,
    /// the instance's outbox was sent and cleared, and no message is left on any queue.
    pub async fn assert_settled(&self, instance_id: &str, context: &str) {
        let loaded = self
            .backend
            .inner()
            .load(instance_id)
            .await
            .unwrap()
            .expect("the instance has state");
        assert_no_duplicates(&loaded.history);
        assert!(
            loaded.state.outbox.is_empty(),
            "{context}: outbox left: {:?}",
            loaded.state.outbox
        );
        for queue in self.backend.queues() {
            assert!(
                self.backend.inner().queued(queue).is_empty(),
                "{context}: messages left on {queue:?}"
            );
        }
    }

    /// How far the clock must move for the next hidden message to become visible.
    fn next_delivery(&self) -> Option<Duration> {
        let now = Clock::now(self.clock.as_ref());
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

    /// The instance's summary, asserting that it completed.
    pub async fn completed(&self, instance_id: &str) -> InstanceSummary {
        let summary = self.summary(instance_id).await;
        assert_eq!(
            summary.status,
            OrchestrationStatus::Completed,
            "{summary:?}"
        );
        summary
    }
}
