//! Backend conformance: the same contract checked against every backend — the in-memory one,
//! and the Azure one against a real Azurite this test binary starts.

#[path = "../common/azurite.rs"]
mod azurite;
mod conformance;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use durable_protocol::connection::StorageConnection;
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::SystemClock;
use durable_store::names::TaskHub;

use durable_store::backend::ManualClock;
use durable_store::memory::MemoryBackend;
use durable_store::names::PartitionCount;

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

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        durable_store::backend::Clock::now(self.clock.as_ref())
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// One Azurite for the whole binary; the script's owner watch stops it when the process exits.
fn azurite() -> &'static azurite::Azurite {
    static AZURITE: OnceLock<azurite::Azurite> = OnceLock::new();
    AZURITE.get_or_init(azurite::Azurite::start)
}

/// The Azure backend on its own task hub, so cases never see each other's data.
struct Azure {
    backend: AzureBackend,
}

impl Azure {
    fn new() -> Self {
        static HUBS: AtomicUsize = AtomicUsize::new(0);
        Self::on_hub(&format!(
            "Conformance{}",
            HUBS.fetch_add(1, Ordering::SeqCst)
        ))
    }

    /// Another process's view of the same task hub: a backend with its own clients and memory.
    fn on_hub(hub: &str) -> Self {
        let settings = [("AzureWebJobsStorage", azurite().connection_string())];
        let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage")
            .expect("parse the Azurite connection string");
        let backend = AzureBackend::connect(
            &connection,
            TaskHub::new(hub).expect("valid hub name"),
            Arc::new(SystemClock),
        )
        .expect("clients");
        Self { backend }
    }
}

impl conformance::Subject for Azure {
    type Backend = AzureBackend;

    fn backend(&self) -> &AzureBackend {
        &self.backend
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    conformance::$case(&Memory::new()).await;
                }
            )*
        }
        mod azure {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    conformance::$case(&Azure::new()).await;
                }
            )*
        }
    };
}

conformance!(
    commit_create_load_and_conflict,
    new_execution_replaces_history,
    large_commits_load_back_in_order,
    history_rewritten_in_place_stays_rewritten,
    outbox_round_trips_in_state,
    queue_visibility_receipts_and_delays,
    held_messages_are_hidden_until_settled,
    work_items_have_their_own_queue,
    queue_lengths_count_hidden_and_delayed_messages,
    summaries_keep_the_newest_revision_and_query,
    summaries_query_by_version_and_tag,
    summaries_are_created_once_and_stale_writers_lose,
    purge_removes_everything,
    poison_messages_are_kept_counted_and_discarded,
    deferred_messages_are_recorded_listed_and_forgotten,
);

/// Two processes on one task hub: what one remembers of a summary row goes stale when the other
/// purges the instance and starts it again. The stale memory must cost a read, never the write.
#[tokio::test]
async fn a_summary_remembered_by_another_process_does_not_block_newer_writes() {
    use durable_engine::OrchestrationStatus;
    use durable_store::backend::Backend;

    let one = Azure::on_hub("TwoProcesses");
    let other = Azure::on_hub("TwoProcesses");
    one.backend.create_task_hub().await.unwrap();
    let mut finished = conformance::state("x", 7).summary();
    finished.status = OrchestrationStatus::Completed;
    one.backend.write_summary(&finished).await.unwrap();

    assert!(other.backend.purge("x").await.unwrap());
    assert!(other
        .backend
        .create_summary(&conformance::state("x", 1).summary())
        .await
        .unwrap());
    let mut running = conformance::state("x", 2).summary();
    running.status = OrchestrationStatus::Running;
    one.backend.write_summary(&running).await.unwrap();
    assert_eq!(
        other.backend.read_summary("x").await.unwrap(),
        Some(running)
    );
}
