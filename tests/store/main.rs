//! Backend conformance: the same contract checked against every backend (the in-memory one here;
//! the Azure one against Azurite joins it with the Azure implementation).

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use durable_orchestrator::store::backend::ManualClock;
use durable_orchestrator::store::memory::MemoryBackend;
use durable_orchestrator::store::names::PartitionCount;

struct Memory {
    clock: Arc<ManualClock>,
    backend: MemoryBackend,
}

impl Memory {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(conformance::epoch()));
        let backend = MemoryBackend::new(clock.clone(), PartitionCount::new(4).unwrap());
        Self { clock, backend }
    }
}

impl conformance::Subject for Memory {
    type Backend = MemoryBackend;

    fn backend(&self) -> &MemoryBackend {
        &self.backend
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

macro_rules! memory_conformance {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                conformance::$case(&Memory::new()).await;
            }
        )*
    };
}

memory_conformance!(
    commit_create_load_and_conflict,
    new_execution_replaces_history,
    outbox_round_trips_in_state,
    queue_visibility_receipts_and_delays,
    work_items_have_their_own_queue,
    summaries_keep_the_newest_revision_and_query,
    purge_removes_everything,
);
