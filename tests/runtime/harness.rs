//! Test harness: a runtime over the in-memory backend (optionally behind a fault-injecting and
//! call-counting decorator), a pump, a manual clock, and the workflows the tests run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use durable_engine::{HistoryEvent, OrchestrationStatus};
use durable_runtime::{Pump, Runtime, RuntimeOptions};
use durable_store::backend::{Backend, ManualClock};
use durable_store::memory::MemoryBackend;
use durable_store::model::InstanceSummary;
use durable_store::names::PartitionCount;

pub use crate::faulty::{FaultMode, Faulty};
pub use crate::invariants::assert_no_duplicates;
use crate::workflows::registry;

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

    /// `options` with the app settings of the environment applied over them, as a worker applies
    /// them: `DURABLE_INSTANCE_CACHE_INSTANCES=0` runs the suite with the instance cache off.
    pub async fn with_options(options: RuntimeOptions) -> Self {
        let options = options
            .with_env()
            .expect("the DURABLE_* app settings in the environment are numbers");
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
        let now = durable_store::backend::Clock::now(self.clock.as_ref());
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
